//! Rows read or written straight in the database, where a test needs what no page or
//! command shows.

use diesel::prelude::*;
use spacedigest::db::DbConnection;
use spacedigest::db::schema::{outbound_emails, subscriptions};
use spacedigest::db::states::{EmailKind, EmailStatus, SubscriptionStatus};

/// One queued email's state.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbound_emails)]
pub struct EmailRecord {
    pub kind: EmailKind,
    pub recipient_email: String,
    pub status: EmailStatus,
    pub attempts: i32,
    /// The last error, e.g. the server's reply to a refusal.
    pub last_error: Option<String>,
}

/// Every queued email, oldest first.
pub fn all_records(conn: &mut DbConnection) -> QueryResult<Vec<EmailRecord>> {
    outbound_emails::table
        .order(outbound_emails::id.asc())
        .select(EmailRecord::as_select())
        .load(conn)
}

/// Adds a pending subscription that no link confirms.
pub fn insert_pending(
    conn: &mut DbConnection,
    subscriber_id: i64,
    newsletter_id: i64,
    now: chrono::NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(subscriptions::table)
        .values((
            subscriptions::subscriber_id.eq(subscriber_id),
            subscriptions::newsletter_id.eq(newsletter_id),
            subscriptions::status.eq(SubscriptionStatus::Pending),
            subscriptions::created_at.eq(now),
            subscriptions::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}
