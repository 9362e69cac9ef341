//! Mail: the transport chosen once from `SPACEDIGEST_SMTP_URL`, message building, templates.

mod message;
mod rendered;
pub mod templates;
mod transport;

pub use message::{build_message, new_message_id};
pub use rendered::RenderedEmail;
pub use transport::{Mailer, SendError};
