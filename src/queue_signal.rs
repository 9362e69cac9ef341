//! The in-process wake-up between whatever queues email (web, scheduler, CLI) and the
//! delivery worker that sends it. Below both, so neither depends on the other for it.

use std::sync::Arc;

use tokio::sync::Notify;

/// Wakes the worker when new email is queued, so it need not wait for the next poll.
#[derive(Debug, Clone, Default)]
pub struct QueueSignal(Arc<Notify>);

impl QueueSignal {
    /// Tells a waiting worker there is work.
    pub fn notify(&self) {
        self.0.notify_one();
    }

    /// Waits until some email has been queued since the last wake-up.
    pub(crate) async fn notified(&self) {
        self.0.notified().await;
    }
}
