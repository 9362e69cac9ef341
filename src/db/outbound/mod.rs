//! The outbound queue (`outbound_emails`): the queue a worker claims from, an operator's
//! control of an issue's send, and the console's pages of an issue's recipients.

mod issues;
mod queue;
mod recipients;

pub use issues::{cancel_issue, held_issues, pause_issue, resume_issue};
pub use queue::{
    Claim, NewOutboundEmail, QueuedEmail, claim, departed_readers, enqueue, is_pending_literally,
    mark_failed, mark_sent, mark_skipped, release, schedule_retry,
};
pub use recipients::{PageStart, Recipient, RecipientFilter, recipients};
