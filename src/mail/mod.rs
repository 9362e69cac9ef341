//! Mail: the transports chosen once from the SMTP settings, message building, DKIM, templates.

pub mod dkim;
mod message;
pub mod redact;
mod rendered;
pub mod templates;
mod transport;

pub use dkim::DkimSigner;
pub use message::{Envelope, PreparedBody, build_message, build_prepared, new_message_id};
pub use rendered::RenderedEmail;
pub use transport::{MailSession, Mailer, Mailers, Outgoing, SendError, Sessions};
