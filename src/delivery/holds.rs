//! Digest sends an operator paused or cancelled, as the senders see them.
//!
//! Pausing or cancelling changes the rows in the database, but a worker may already hold
//! a few chunks of that issue's copies in its queue. A watcher looks up, twice a second,
//! which of the issues this worker claimed recently are held; senders give back any copy
//! of a held issue instead of sending it. So a pause takes effect within about half a
//! second plus the copies already on the wire, not after the queue has drained.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::db::{self, Pool, outbound};

/// How often the watcher looks.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Shared between the claimer (which notes issues), the watcher and the senders.
#[derive(Debug, Default)]
pub struct Holds {
    claimed: Mutex<HashMap<i64, Instant>>,
    held: Mutex<HashSet<i64>>,
}

impl Holds {
    /// The claimer took copies of these issues.
    pub fn note_claimed(&self, issues: impl IntoIterator<Item = i64>) {
        let now = Instant::now();
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        for issue in issues {
            claimed.insert(issue, now);
        }
    }

    /// True when copies of `issue` must not be sent now.
    pub fn is_held(&self, issue: i64) -> bool {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&issue)
    }

    /// Issues claimed within `lease`: only their copies can still be in this worker.
    fn recent(&self, lease: Duration) -> Vec<i64> {
        let mut claimed = self.claimed.lock().unwrap_or_else(PoisonError::into_inner);
        claimed.retain(|_, at| at.elapsed() <= lease);
        claimed.keys().copied().collect()
    }

    fn set_held(&self, issues: HashSet<i64>) {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = issues;
    }
}

/// Keeps `holds` current until cancelled. A failed lookup keeps the last answer: the
/// database being briefly away must not release a pause.
pub async fn watch(pool: Pool, holds: Arc<Holds>, lease: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {}
            () = shutdown.cancelled() => return,
        }
        let recent = holds.recent(lease);
        if recent.is_empty() {
            holds.set_held(HashSet::new());
            continue;
        }
        match db::run(&pool, move |conn| outbound::held_issues(conn, &recent)).await {
            Ok(held) => holds.set_held(held.into_iter().collect()),
            Err(error) => tracing::warn!(%error, "cannot check for paused sends"),
        }
    }
}
