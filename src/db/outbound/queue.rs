//! The durable outbound queue: every email is a row before it is a message.
//!
//! A worker claims due rows by pushing `next_attempt_at` one lease into the future in a
//! short transaction, committed before any SMTP traffic; a crashed worker's rows become
//! due again when the lease runs out. Giving a claim back or rescheduling it matches the
//! claim's attempt number ([`Claim`]), so a worker whose lease ran out cannot move the
//! lease of the worker that holds the row now. Finished rows leave the partial index
//! workers scan.

use chrono::NaiveDateTime;
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use crate::db::schema::outbound_emails;
use crate::db::states::{EmailKind, EmailStatus, SubscriptionStatus};
use crate::db::{DbConnection, write_transaction};

/// An email to queue.
#[derive(Debug, Insertable)]
#[diesel(table_name = outbound_emails)]
pub struct NewOutboundEmail<'a> {
    /// What it is for.
    pub kind: EmailKind,
    /// The subscriber it concerns, for limits and history.
    pub subscriber_id: Option<i64>,
    /// Envelope and `To` address.
    pub recipient_email: &'a str,
    /// `To` display name.
    pub recipient_name: Option<&'a str>,
    /// Subject line.
    pub subject: &'a str,
    /// `text/plain` part.
    pub body_text: &'a str,
    /// `text/html` part.
    pub body_html: &'a str,
    /// URL for `List-Unsubscribe` (with one-click), when the email has one.
    pub list_unsubscribe: Option<&'a str>,
    /// Stable `Message-ID`, so a retried message is recognisably the same.
    pub message_id: &'a str,
    /// Always pending.
    pub status: EmailStatus,
    /// Due at once.
    pub next_attempt_at: NaiveDateTime,
    /// Now.
    pub created_at: NaiveDateTime,
}

/// A claimed email, ready to send.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbound_emails)]
pub struct QueuedEmail {
    /// Row id.
    pub id: i64,
    /// What it is for.
    pub kind: EmailKind,
    /// Address.
    pub recipient_email: String,
    /// Display name.
    pub recipient_name: Option<String>,
    /// Subject.
    pub subject: String,
    /// Plain text.
    pub body_text: String,
    /// HTML.
    pub body_html: String,
    /// One-click unsubscribe URL.
    pub list_unsubscribe: Option<String>,
    /// `Message-ID` without angle brackets.
    pub message_id: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// Queued at.
    pub created_at: NaiveDateTime,
    /// The digest issue it delivers, if it is a digest.
    pub issue_id: Option<i64>,
    /// The subscription it is for, if it is a digest.
    pub subscription_id: Option<i64>,
    /// The reader it is for (`None` once erased): for logs, which carry ids, not addresses.
    pub subscriber_id: Option<i64>,
}

impl QueuedEmail {
    /// This worker's claim on the row.
    pub const fn claim(&self) -> Claim {
        Claim {
            id: self.id,
            attempt: self.attempts,
        }
    }
}

/// One claim of a row: its id and the attempt number the claim gave it. Every claim counts
/// one higher than the row's last, and only the worker holding the claim gives it back
/// (which counts one lower), so while a claim is current no other worker holds one with
/// the same number. Updates that move a row's lease match on both and do nothing once the
/// lease has expired and passed to another worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Claim {
    /// Row id.
    pub id: i64,
    /// `attempts` as the claim left it.
    pub attempt: i32,
}

/// `outbound_emails.status = 'pending'`, with the status written into the SQL, not
/// bound: a planner can use the partial index `outbound_emails_due` only when it sees the
/// index's own condition.
pub fn is_pending_literally() -> SqlLiteral<Bool> {
    diesel::dsl::sql::<Bool>(&format!(
        "outbound_emails.status = '{}'",
        EmailStatus::Pending.as_str()
    ))
}

/// Queues an email; returns its id.
pub fn enqueue(conn: &mut DbConnection, email: &NewOutboundEmail<'_>) -> QueryResult<i64> {
    diesel::insert_into(outbound_emails::table)
        .values(email)
        .returning(outbound_emails::id)
        .get_result(conn)
}

/// Claims up to `limit` due emails until `lease_until`.
pub fn claim(
    conn: &mut DbConnection,
    limit: i64,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
) -> QueryResult<Vec<QueuedEmail>> {
    write_transaction(conn, |conn| {
        let due = outbound_emails::table
            .filter(is_pending_literally())
            .filter(outbound_emails::next_attempt_at.le(now))
            .order((outbound_emails::next_attempt_at, outbound_emails::id))
            .limit(limit)
            .select(outbound_emails::id);
        // Several workers on PostgreSQL share the queue: each skips rows another is claiming.
        // SQLite has one writer, and BEGIN IMMEDIATE already serialises claims.
        let ids: Vec<i64> = match conn {
            DbConnection::Pg(c) => due.for_update().skip_locked().load(c)?,
            DbConnection::Sqlite(c) => due.load(c)?,
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        diesel::update(outbound_emails::table.filter(outbound_emails::id.eq_any(&ids)))
            .set((
                outbound_emails::attempts.eq(outbound_emails::attempts + 1),
                outbound_emails::next_attempt_at.eq(lease_until),
            ))
            .execute(conn)?;
        // Read back after the update: `RETURNING` of a derived selection does not type-check
        // on the multi-backend connection.
        outbound_emails::table
            .filter(outbound_emails::id.eq_any(&ids))
            .select(QueuedEmail::as_select())
            .load(conn)
    })
}

/// Of these claimed digest rows, the ones whose reader has left: their subscription is no
/// longer confirmed, or it (or the row itself) was erased, or the subscriber is marked
/// bounced. One indexed read for the whole group, so the worker can ask just before
/// sending without a round trip per email.
pub fn departed_readers(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<i64>> {
    use crate::db::schema::{subscribers, subscriptions};
    let staying: std::collections::HashSet<i64> = outbound_emails::table
        .inner_join(
            subscriptions::table
                .on(outbound_emails::subscription_id.eq(subscriptions::id.nullable())),
        )
        .filter(outbound_emails::id.eq_any(ids))
        .filter(subscriptions::status.eq(SubscriptionStatus::Confirmed))
        // A subquery on the small partial index of bounced subscribers, not a join: a join
        // to `subscribers` made SQLite plan this check slowly enough to show in the
        // fault tests' lock timings.
        .filter(
            subscriptions::subscriber_id.ne_all(
                subscribers::table
                    .filter(subscribers::bounced_at.is_not_null())
                    .select(subscribers::id),
            ),
        )
        .select(outbound_emails::id)
        .load::<i64>(conn)?
        .into_iter()
        .collect();
    Ok(ids
        .iter()
        .copied()
        .filter(|id| !staying.contains(id))
        .collect())
}

/// Marks claimed digest rows of departed readers skipped, so a reader who unsubscribes
/// mid-send gets nothing further. They were never attempted, so the claim's attempt is
/// not counted. Final whoever holds the lease: the reader has left either way.
pub fn mark_skipped(conn: &mut DbConnection, ids: &[i64], now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(
        outbound_emails::table
            .filter(outbound_emails::id.eq_any(ids))
            .filter(outbound_emails::status.eq_any([EmailStatus::Pending, EmailStatus::Paused])),
    )
    .set((
        outbound_emails::status.eq(EmailStatus::Skipped),
        outbound_emails::finished_at.eq(now),
        outbound_emails::attempts.eq(outbound_emails::attempts - 1),
        outbound_emails::body_text.eq(""),
        outbound_emails::body_html.eq(""),
        outbound_emails::list_unsubscribe.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Records the server's acceptance. The bodies and the `List-Unsubscribe` link are
/// dropped: they hold single-use and unsubscribe links, and the row stays only as a record.
pub fn mark_sent(conn: &mut DbConnection, ids: &[i64], now: NaiveDateTime) -> QueryResult<()> {
    diesel::update(
        outbound_emails::table
            .filter(outbound_emails::id.eq_any(ids))
            .filter(outbound_emails::status.eq_any(EmailStatus::UNFINISHED)),
    )
    .set((
        outbound_emails::status.eq(EmailStatus::Sent),
        outbound_emails::finished_at.eq(now),
        outbound_emails::body_text.eq(""),
        outbound_emails::body_html.eq(""),
        outbound_emails::list_unsubscribe.eq(None::<String>),
        outbound_emails::last_error.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Gives back claimed emails that were never attempted (the worker is stopping): they are
/// due again at once, for this or another worker, and the attempt is not counted. Rows
/// paused meanwhile are given back too, so a resume sends them at once rather than when
/// the lease would have run out. A claim whose lease has passed to another worker gives
/// back nothing: that worker's lease stands.
pub fn release(conn: &mut DbConnection, claims: &[Claim], now: NaiveDateTime) -> QueryResult<()> {
    let mut by_attempt: Vec<(i32, Vec<i64>)> = Vec::new();
    for claim in claims {
        match by_attempt.iter_mut().find(|(a, _)| *a == claim.attempt) {
            Some((_, ids)) => ids.push(claim.id),
            None => by_attempt.push((claim.attempt, vec![claim.id])),
        }
    }
    // Nearly always one group: a chunk's rows are claimed together, mostly first attempts.
    for (attempt, ids) in by_attempt {
        diesel::update(
            outbound_emails::table
                .filter(outbound_emails::id.eq_any(&ids))
                .filter(outbound_emails::attempts.eq(attempt))
                .filter(
                    outbound_emails::status.eq_any([EmailStatus::Pending, EmailStatus::Paused]),
                ),
        )
        .set((
            outbound_emails::next_attempt_at.eq(now),
            outbound_emails::attempts.eq(outbound_emails::attempts - 1),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// Schedules another attempt after a transient failure. A claim whose lease has passed to
/// another worker schedules nothing: moving `next_attempt_at` would cut that worker's
/// lease short and let a third claim the row while it is being sent.
pub fn schedule_retry(
    conn: &mut DbConnection,
    claim: Claim,
    next_attempt_at: NaiveDateTime,
    error: &str,
) -> QueryResult<()> {
    diesel::update(
        outbound_emails::table
            .find(claim.id)
            .filter(outbound_emails::attempts.eq(claim.attempt))
            .filter(outbound_emails::status.eq_any([EmailStatus::Pending, EmailStatus::Paused])),
    )
    .set((
        outbound_emails::next_attempt_at.eq(next_attempt_at),
        outbound_emails::last_error.eq(error),
    ))
    .execute(conn)?;
    Ok(())
}

/// Records a final failure with the server's reply.
pub fn mark_failed(
    conn: &mut DbConnection,
    id: i64,
    now: NaiveDateTime,
    error: &str,
) -> QueryResult<()> {
    diesel::update(
        outbound_emails::table
            .find(id)
            .filter(outbound_emails::status.eq_any([EmailStatus::Pending, EmailStatus::Paused])),
    )
    .set((
        outbound_emails::status.eq(EmailStatus::Failed),
        outbound_emails::finished_at.eq(now),
        outbound_emails::last_error.eq(error),
        outbound_emails::body_text.eq(""),
        outbound_emails::body_html.eq(""),
        outbound_emails::list_unsubscribe.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(())
}
