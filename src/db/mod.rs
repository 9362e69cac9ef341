//! Storage through diesel on SQLite (embedded, the default) or PostgreSQL (scale-out).
//!
//! Error rule: queries return `QueryResult`; callers at the edges turn a failure into a
//! typed error (503 for an unreachable database) and never into "not found".

pub mod confirmation_tokens;
pub mod dashboard;
pub mod digests;
pub mod feeds;
pub mod newsletters;
pub mod operators;
pub mod outbound;
pub mod schema;
pub mod secrets;
pub mod signups;
mod storage_error;
pub mod stories;
pub mod subscribers;

pub use storage_error::StorageError;

use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::result::QueryResult;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::config::{DatabaseUrl, Settings, SqliteSynchronous};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a SQLite writer waits for the lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// An arbitrary constant that serialises migrations across processes on PostgreSQL.
const MIGRATION_LOCK_KEY: i64 = 0x5370_6163_6544_6967;

/// A connection to either backend; the variant is chosen from the URL scheme.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL.
    Pg(PgConnection),
    /// SQLite.
    Sqlite(SqliteConnection),
}

/// A pool of connections shared by the web server and the workers.
pub type Pool = r2d2::Pool<ConnectionManager>;
/// A connection checked out of the pool.
pub type PooledConnection = r2d2::PooledConnection<ConnectionManager>;

/// Runs `$body` with `$conn` bound to the concrete connection of either backend. For the
/// few queries whose SQL differs (upserts, `SKIP LOCKED`), so each stays in one place.
#[macro_export]
macro_rules! on_backend {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::db::DbConnection::Pg($conn) => $body,
            $crate::db::DbConnection::Sqlite($conn) => $body,
        }
    };
}

/// Opens connections of the configured backend and prepares each one.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    synchronous: SqliteSynchronous,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl, synchronous: SqliteSynchronous) -> Self {
        Self { url, synchronous }
    }

    fn connect(&self) -> Result<DbConnection, diesel::ConnectionError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => PgConnection::establish(url).map(DbConnection::Pg),
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_string_lossy();
                let mut conn = SqliteConnection::establish(&path)?;
                let synchronous = match self.synchronous {
                    SqliteSynchronous::Full => "FULL",
                    SqliteSynchronous::Normal => "NORMAL",
                };
                // WAL lets readers run beside the one writer; the busy timeout makes a
                // second writer wait instead of failing with "database is locked".
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;",
                    SQLITE_BUSY_TIMEOUT.as_millis()
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        ConnectionManager::connect(self).map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        <DbConnection as Connection>::TransactionManager::is_broken_transaction_manager(conn)
    }
}

/// Builds the pool. Connections are opened lazily, so a database that is down at start
/// delays work rather than stopping the program; `migrate` reports it plainly.
pub fn pool(settings: &Settings) -> Pool {
    r2d2::Pool::builder()
        .max_size(settings.db_pool_size)
        .min_idle(Some(0))
        .connection_timeout(Duration::from_secs(5))
        .build_unchecked(ConnectionManager::new(
            settings.database_url.clone(),
            settings.sqlite_synchronous,
        ))
}

/// Creates the SQLite file's directory when needed, then applies pending migrations.
pub fn migrate(pool: &Pool) -> anyhow::Result<Vec<String>> {
    let mut conn = pool.get()?;
    let applied = match &mut *conn {
        DbConnection::Pg(pg) => {
            // Two processes starting together must not both run the same migration.
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            let result = pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect());
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            result
        }
        DbConnection::Sqlite(sqlite) => sqlite
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect()),
    };
    applied.map_err(|e| anyhow::anyhow!("applying migrations failed: {e}"))
}

/// Now, in UTC, at the microsecond precision both backends store.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

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
            let deadline = Instant::now() + SQLITE_BUSY_TIMEOUT;
            let Some(_turn) = SQLITE_WRITER.wait_until(deadline) else {
                return Err(sqlite_busy().into());
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

/// Holds the turn until dropped.
struct Turn<'a>(&'a WriterTurn);

impl WriterTurn {
    const fn new() -> Self {
        Self {
            taken: std::sync::Mutex::new(false),
            freed: std::sync::Condvar::new(),
        }
    }

    /// Waits for the turn until `deadline`; `None` if it did not come by then.
    fn wait_until(&self, deadline: Instant) -> Option<Turn<'_>> {
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
        Some(Turn(self))
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self
            .0
            .taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
        self.0.freed.notify_one();
    }
}

/// Runs a diesel closure on the blocking thread pool, never on the async executor.
pub async fn run<T, F>(pool: &Pool, f: F) -> Result<T, StorageError>
where
    F: FnOnce(&mut DbConnection) -> QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get()?;
        f(&mut conn).map_err(StorageError::from)
    })
    .await
    .map_err(|e| StorageError::Task(e.to_string()))?
}

/// Like [`run`], for closures with their own error type.
pub async fn run_with<T, E, F>(pool: &Pool, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StorageError> + Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool.get().map_err(StorageError::from)?;
        f(&mut conn)
    })
    .await
    .map_err(|e| E::from(StorageError::Task(e.to_string())))?
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
