//! The queue as a scrape sees it: pending emails by kind and how late the oldest due one
//! is. Both read only the partial index `outbound_emails_due` (pending rows), so their
//! cost follows what is still to send, not the history of everything sent.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::DbConnection;
use super::schema::outbound_emails;

/// What is still to send.
#[derive(Debug, Clone, Default)]
pub struct QueueStats {
    /// Pending rows (due, claimed or waiting for a retry) per stored kind.
    pub pending_by_kind: Vec<(String, i64)>,
    /// The earliest `next_attempt_at` among pending rows already due at `now`; `None`
    /// when nothing is due.
    pub oldest_due: Option<NaiveDateTime>,
}

/// Reads [`QueueStats`] as of `now`.
pub fn queue_stats(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<QueueStats> {
    let pending = super::outbound::is_pending_literally;
    let pending_by_kind = outbound_emails::table
        .filter(pending())
        .group_by(outbound_emails::kind)
        .select((outbound_emails::kind, diesel::dsl::count_star()))
        .load::<(String, i64)>(conn)?;
    let oldest_due = outbound_emails::table
        .filter(pending())
        .filter(outbound_emails::next_attempt_at.le(now))
        .select(diesel::dsl::min(outbound_emails::next_attempt_at))
        .first::<Option<NaiveDateTime>>(conn)?;
    Ok(QueueStats {
        pending_by_kind,
        oldest_due,
    })
}
