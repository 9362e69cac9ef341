//! Write transactions, and the one SQLite writer at a time per process.

use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::result::QueryResult;

use super::{DbConnection, SQLITE_BUSY_TIMEOUT};

/// One SQLite write transaction at a time per process; see [`write_transaction`].
static SQLITE_WRITER: WriterTurn = WriterTurn::new();

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`: taking the write
/// lock up front means two writers queue on the busy timeout instead of one failing when
/// it upgrades from reader to writer.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Pg(_) => conn.transaction(f),
        DbConnection::Sqlite(sqlite) => {
            // Writers in this process queue here rather than in SQLite's busy handler,
            // which polls with sleeps of up to 100 ms and lets a late writer overtake a
            // waiting one. (Other processes still meet the busy timeout.) The busy timeout
            // is each writer's whole allowance, the wait here included: were it counted
            // afresh after this wait, writers queued behind one that another process holds
            // up would each wait the whole timeout in turn, and the last for many times it.
            let (_turn, deadline) = match HELD_UNTIL.get() {
                // `run_writing` took the turn for this thread already.
                Some(deadline) => (None, deadline),
                None => {
                    let turn = take_turn()?;
                    let deadline = turn.deadline;
                    (Some(turn), deadline)
                }
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let shortened = remaining + SQLITE_BUSY_SLACK < SQLITE_BUSY_TIMEOUT;
            if shortened {
                set_busy_timeout(sqlite, remaining.max(Duration::from_millis(1)))?;
            }
            let begun = AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE");
            if shortened {
                // Should this fail, the connection only keeps the shorter timeout: a later
                // writer on it gives up sooner, and says so.
                let _ = set_busy_timeout(sqlite, SQLITE_BUSY_TIMEOUT);
            }
            begun?;
            match f(conn) {
                Ok(value) => {
                    <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
                    Ok(value)
                }
                Err(error) => {
                    match <DbConnection as Connection>::TransactionManager::rollback_transaction(
                        conn,
                    ) {
                        Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
                        Err(rollback_error) => Err(rollback_error.into()),
                    }
                }
            }
        }
    }
}

/// A writer that waited this little for its turn keeps the whole busy timeout, so the
/// common, uncontended write costs no extra statements.
const SQLITE_BUSY_SLACK: Duration = Duration::from_millis(50);

fn set_busy_timeout(conn: &mut SqliteConnection, timeout: Duration) -> QueryResult<()> {
    conn.batch_execute(&format!("PRAGMA busy_timeout = {}", timeout.as_millis()))
}

/// The error SQLite itself gives when its busy timeout runs out.
fn sqlite_busy() -> diesel::result::Error {
    diesel::result::Error::DatabaseError(
        diesel::result::DatabaseErrorKind::Unknown,
        Box::new("database is locked".to_owned()),
    )
}

/// A lock that a waiter gives up on at a deadline (`std`'s `Mutex` cannot).
struct WriterTurn {
    taken: std::sync::Mutex<bool>,
    freed: std::sync::Condvar,
}

/// Holds a [`WriterTurn`] until dropped.
struct Held<'a>(&'a WriterTurn);

thread_local! {
    /// Set while this thread holds [`SQLITE_WRITER`]: the writer's busy deadline.
    static HELD_UNTIL: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// This thread's turn as the process's SQLite writer, until dropped.
pub(super) struct Turn {
    _held: Held<'static>,
    /// When the busy timeout runs out for this writer.
    deadline: Instant,
}

impl Drop for Turn {
    fn drop(&mut self) {
        HELD_UNTIL.set(None);
    }
}

/// Waits for this thread's turn as the process's SQLite writer, for at most the busy
/// timeout; after that, SQLite's own "database is locked".
pub(super) fn take_turn() -> Result<Turn, diesel::result::Error> {
    let deadline = Instant::now() + SQLITE_BUSY_TIMEOUT;
    let held = SQLITE_WRITER.wait_until(deadline).ok_or_else(sqlite_busy)?;
    HELD_UNTIL.set(Some(deadline));
    Ok(Turn {
        _held: held,
        deadline,
    })
}

impl WriterTurn {
    const fn new() -> Self {
        Self {
            taken: std::sync::Mutex::new(false),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Waits for the turn until `deadline`; `None` if it did not come by then.
    fn wait_until(&self, deadline: Instant) -> Option<Held<'_>> {
        let mut taken = self
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *taken {
            let left = deadline.checked_duration_since(Instant::now())?;
            taken = self
                .freed
                .wait_timeout(taken, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        *taken = true;
        Some(Held(self))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *self
            .0
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_gives_up_its_turn_at_the_deadline() {
        let turn = WriterTurn::new();
        let held = turn
            .wait_until(Instant::now())
            .expect("a free turn is taken at once");
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(turn.wait_until(soon).is_none());
        assert!(Instant::now() >= soon);
        drop(held);
        assert!(turn.wait_until(Instant::now()).is_some());
    }
}
