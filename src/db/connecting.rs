//! PostgreSQL connection attempts under way, so the program can let them finish before
//! it exits.
//!
//! r2d2 opens connections on its own threads, and may still be opening one the program
//! no longer needs when `main` returns. libpq sets up OpenSSL while it connects, and the
//! exit handlers tear OpenSSL down: with both at once the process crashed with SIGSEGV
//! after finishing its work (one `digest send` in twenty, exit status 139). So each
//! attempt is counted, and [`stop_connecting`] refuses new ones and waits for the rest.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// (attempts under way, whether new ones are refused).
static ATTEMPTS: Mutex<(usize, bool)> = Mutex::new((0, false));
static FINISHED: Condvar = Condvar::new();

/// One attempt under way, until dropped.
pub(super) struct Attempt(());

impl Drop for Attempt {
    fn drop(&mut self) {
        let mut attempts = ATTEMPTS.lock().unwrap_or_else(PoisonError::into_inner);
        attempts.0 -= 1;
        FINISHED.notify_all();
    }
}

/// Counts an attempt; `None` once the program is exiting.
pub(super) fn begin() -> Option<Attempt> {
    let mut attempts = ATTEMPTS.lock().unwrap_or_else(PoisonError::into_inner);
    if attempts.1 {
        return None;
    }
    attempts.0 += 1;
    Some(Attempt(()))
}

/// Refuses new connection attempts and waits, at most `wait`, for those under way. Call
/// it last thing before the process exits.
pub fn stop_connecting(wait: Duration) {
    let deadline = Instant::now() + wait;
    let mut attempts = ATTEMPTS.lock().unwrap_or_else(PoisonError::into_inner);
    attempts.1 = true;
    while attempts.0 > 0 {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return;
        };
        attempts = FINISHED
            .wait_timeout(attempts, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}
