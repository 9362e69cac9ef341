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

use lettre::message::Mailbox;
use url::Url;

use crate::config::{MailStream, Settings, SignupSettings};
use crate::db::StorageError;
use crate::tokens::UnsubscribeSigner;

/// What the reader's path needs besides a connection: its limits, where its links point,
/// who its emails come from and the key that signs unsubscribe links. Nothing else.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The signup limits and how long a confirmation link works.
    pub signup: SignupSettings,
    /// `SPACEDIGEST_BASE_URL`: every link in a confirmation or welcome email starts here.
    pub base_url: Url,
    /// The From of confirmation and welcome emails.
    pub from: Mailbox,
    /// Signs unsubscribe links.
    pub signer: UnsubscribeSigner,
}

impl Policy {
    /// The reader's path's share of `settings`, signing with `signer`.
    pub fn new(settings: &Settings, signer: UnsubscribeSigner) -> Self {
        Self {
            signup: settings.signup.clone(),
            base_url: settings.server.base_url.clone(),
            from: settings.mail.from_for(MailStream::Transactional).clone(),
            signer,
        }
    }

    /// `BASE_URL` joined with an absolute path such as `/subscriptions/confirm`.
    pub fn link(&self, path_and_query: &str) -> String {
        crate::config::link(&self.base_url, path_and_query)
    }
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
