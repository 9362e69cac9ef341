//! An operator's control of one issue's send: pause, resume, cancel, and which issues
//! are held.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::outbound_emails;
use crate::db::states::EmailStatus;

/// Which of these issues an operator paused or cancelled: one index lookup each.
pub fn held_issues(conn: &mut DbConnection, issues: &[i64]) -> QueryResult<Vec<i64>> {
    let mut held = Vec::new();
    for &issue in issues {
        let any = outbound_emails::table
            .filter(outbound_emails::issue_id.eq(issue))
            .filter(outbound_emails::status.eq_any([EmailStatus::Paused, EmailStatus::Cancelled]))
            .select(outbound_emails::id)
            .first::<i64>(conn)
            .optional()?;
        if any.is_some() {
            held.push(issue);
        }
    }
    Ok(held)
}

/// Holds back an issue's deliveries that have not gone out: workers do not claim paused
/// rows. A copy already claimed may still finish, and its outcome is recorded. Returns how
/// many were paused.
pub fn pause_issue(conn: &mut DbConnection, issue_id: i64) -> QueryResult<usize> {
    diesel::update(
        outbound_emails::table
            .filter(outbound_emails::issue_id.eq(issue_id))
            .filter(outbound_emails::status.eq(EmailStatus::Pending)),
    )
    .set(outbound_emails::status.eq(EmailStatus::Paused))
    .execute(conn)
}

/// Lets an issue's paused deliveries go out again, each when it was due (a retry keeps
/// its back-off). Returns how many were resumed.
pub fn resume_issue(conn: &mut DbConnection, issue_id: i64) -> QueryResult<usize> {
    diesel::update(
        outbound_emails::table
            .filter(outbound_emails::issue_id.eq(issue_id))
            .filter(outbound_emails::status.eq(EmailStatus::Paused)),
    )
    .set(outbound_emails::status.eq(EmailStatus::Pending))
    .execute(conn)
}

/// Cancels an issue's deliveries that have not gone out (queued, retrying or paused).
/// Returns how many were cancelled.
pub fn cancel_issue(
    conn: &mut DbConnection,
    issue_id: i64,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        outbound_emails::table
            .filter(outbound_emails::issue_id.eq(issue_id))
            .filter(outbound_emails::status.eq_any([EmailStatus::Pending, EmailStatus::Paused])),
    )
    .set((
        outbound_emails::status.eq(EmailStatus::Cancelled),
        outbound_emails::finished_at.eq(now),
        outbound_emails::body_text.eq(""),
        outbound_emails::body_html.eq(""),
    ))
    .execute(conn)
}
