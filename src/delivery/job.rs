//! What passes between the worker's stages: a claimed email, and what became of it.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::db::outbound;
use crate::digest::PreparedIssue;

/// What happened to one claimed email.
#[derive(Debug)]
pub(super) enum Outcome {
    Sent,
    Retry {
        error: String,
    },
    Failed {
        error: String,
    },
    /// The mail server refused it for good (5xx): final, and a hard bounce.
    Refused {
        error: String,
    },
    /// Not attempted: the worker is stopping, an operator paused or cancelled the
    /// send, or the lease ran too short to send safely, so the claim is given back.
    Released,
    /// Not attempted: the reader left after the email was claimed.
    Skipped,
}

impl Outcome {
    /// For logs: which outcome, without the server's reply.
    pub(super) const fn name(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Retry { .. } => "retry",
            Self::Failed { .. } => "failed",
            Self::Refused { .. } => "refused",
            Self::Released => "released",
            Self::Skipped => "skipped",
        }
    }
}

/// A claimed email and, for a digest, its prepared issue.
pub(super) struct Job {
    pub email: outbound::QueuedEmail,
    pub issue: Option<Arc<PreparedIssue>>,
    /// When the claim's lease runs out, by this process's clock (a little early: taken
    /// before the claim). After that another worker may send the email too.
    pub lease_ends: Instant,
}

/// A finished job on its way to the recorder, holding its in-flight permit.
pub(super) struct Finished {
    pub email: outbound::QueuedEmail,
    pub outcome: Outcome,
    pub _permit: Option<OwnedSemaphorePermit>,
}
