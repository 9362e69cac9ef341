//! Turns at argon2: at most [`turns`] password hashes run at once in this process, each
//! in memory of its own that is kept for the next.
//!
//! Every argon2id check fills [`MEMORY_KIB`](super::password::MEMORY_KIB) of memory on a
//! blocking thread. Unbounded, forty logins at once took 770 MiB. A cap on concurrency
//! alone is not enough: glibc keeps a freed 19 MiB block in the arena of the thread that
//! hashed, so the process still grew with every blocking thread that ever hashed (544
//! MiB through forty logins with two at a time). Here a hash needs a [`Turn`], a turn
//! lends the hash a buffer and keeps it for the next, and so the process holds at most
//! `turns()` buffers whatever the burst (89 MiB through the same forty). A request that
//! finds no turn within [`WAIT`] is told to come back ([`Busy`]) rather than queueing
//! without end.

use std::num::NonZeroUsize;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use argon2::Block;
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a hash waits for a turn before the request is turned away.
pub const WAIT: Duration = Duration::from_secs(2);

/// More turns than this only serve an attacker (each is tens of milliseconds of a core)
/// and would let memory grow past 150 MiB on a large machine.
const MAX_TURNS: usize = 8;

/// No turn came within [`WAIT`]: every turn is taken by other password checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many passwords are being checked at once; try again in a few seconds")]
pub struct Busy;

struct Turns {
    permits: Semaphore,
    count: usize,
    /// Buffers of turns that ended, for the next; the most recent first, so that
    /// logins one after another always use the same one.
    spare: Mutex<Vec<Vec<Block>>>,
}

static TURNS: LazyLock<Turns> = LazyLock::new(|| {
    Turns::new(
        std::thread::available_parallelism()
            .map_or(1, NonZeroUsize::get)
            .clamp(1, MAX_TURNS),
    )
});

/// How many hashes may run at once in this process: one per core, at most 8.
pub fn turns() -> usize {
    TURNS.count
}

/// Waits up to [`WAIT`] for a turn. Waiting is asynchronous: a queued request holds no
/// thread and no hash memory.
pub async fn turn() -> Result<Turn, Busy> {
    let turns: &'static Turns = &TURNS;
    turns.take(WAIT).await
}

/// One hash's turn, and the memory it fills. Returned when dropped.
pub struct Turn {
    memory: Vec<Block>,
    turns: &'static Turns,
    _permit: SemaphorePermit<'static>,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn")
            .field("blocks", &self.memory.len())
            .finish()
    }
}

impl Turns {
    fn new(count: usize) -> Self {
        Self {
            permits: Semaphore::new(count),
            count,
            spare: Mutex::new(Vec::with_capacity(count)),
        }
    }

    async fn take(&'static self, wait: Duration) -> Result<Turn, Busy> {
        let permit = tokio::time::timeout(wait, self.permits.acquire())
            .await
            .map_err(|_| Busy)?
            .map_err(|_| Busy)?;
        let memory = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        Ok(Turn {
            memory,
            turns: self,
            _permit: permit,
        })
    }
}

impl Turn {
    /// At least `blocks` blocks of memory for one hash (contents left from the last:
    /// argon2 writes every block before it reads it).
    pub(super) fn memory(&mut self, blocks: usize) -> &mut [Block] {
        if self.memory.len() < blocks {
            // Only the first hash of each turn, or a stored hash with a higher memory
            // cost than ours, gets here.
            self.memory = Vec::new();
            self.memory.resize(blocks, Block::new());
        }
        &mut self.memory[..blocks]
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // Before the permit is released (fields drop after this), so the next turn
        // finds the buffer.
        let memory = std::mem::take(&mut self.memory);
        if !memory.is_empty() {
            self.turns
                .spare
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(memory);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_are_limited_and_their_memory_is_reused() {
        let turns: &'static Turns = Box::leak(Box::new(Turns::new(2)));
        let wait = Duration::from_millis(50);
        let mut first = turns.take(wait).await.expect("a free turn");
        let second = turns.take(wait).await.expect("a free turn");
        let started = std::time::Instant::now();
        assert_eq!(turns.take(wait).await.unwrap_err(), Busy);
        assert!(started.elapsed() >= wait);

        let address = first.memory(16).as_ptr();
        drop(first);
        let mut again = turns
            .take(wait)
            .await
            .expect("a turn comes back when dropped");
        assert_eq!(again.memory(16).as_ptr(), address, "a new buffer was made");
        drop(second);
        assert_eq!(
            turns.spare.lock().unwrap().len(),
            0,
            "an empty buffer was kept"
        );
        drop(again);
        assert_eq!(turns.spare.lock().unwrap().len(), 1);
    }
}
