//! The reader's path: signing up (double opt-in), confirming, unsubscribing. Each step is
//! one database transaction, and any email it causes is queued inside that transaction.

mod confirm;
pub mod csv;
pub mod erase;
mod group;
mod rules;
mod signup;
mod signups;
mod unsubscribe;

pub use confirm::{ConfirmOutcome, confirm, peek_confirmation};
pub use signup::{SignupOutcome, SignupRequest};
pub use signups::Signups;
pub use unsubscribe::{Unsubscribed, describe_scope, unsubscribe};

use crate::config::Settings;
use crate::db::StorageError;
use crate::tokens::UnsubscribeSigner;

/// What the reader's path needs besides a connection.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Settings: base URL, limits, token lifetime, sender.
    pub settings: Settings,
    /// Signs unsubscribe links.
    pub signer: UnsubscribeSigner,
    /// The process's counters, shared by the web server and the delivery worker.
    pub metrics: std::sync::Arc<crate::observability::Metrics>,
}

/// A failure the reader cannot fix: storage trouble or a broken template.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The database failed or is unreachable.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An email template failed to render.
    #[error("rendering an email failed: {0}")]
    Render(#[from] askama::Error),
}

impl From<diesel::result::Error> for ServiceError {
    fn from(error: diesel::result::Error) -> Self {
        Self::Storage(StorageError::Query(error))
    }
}
