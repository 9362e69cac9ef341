//! Mail: the transport chosen once from `SPACEDIGEST_SMTP_URL`, message building, templates.

mod message;
mod rendered;
pub mod templates;
mod transport;

pub use message::{Envelope, PreparedBody, build_message, build_prepared, new_message_id};
pub use rendered::RenderedEmail;
pub use transport::{MailSession, Mailer, Outgoing, SendError};
