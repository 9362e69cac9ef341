//! The durable outbound queue: every email is a row before it is a message.
//!
//! A worker claims due rows by pushing `next_attempt_at` one lease into the future in a
//! short transaction, committed before any SMTP traffic; a crashed worker's rows become
//! due again when the lease runs out. Giving a claim back or rescheduling it matches the
//! claim's attempt number ([`Claim`]), so a worker whose lease ran out cannot move the
//! lease of the worker that holds the row now. Finished rows leave the partial index
//! workers scan.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::outbound_emails;
use super::{DbConnection, write_transaction};

/// What an email is for; decides nothing in the worker, but tells operators and limits apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailKind {
    /// Double opt-in link.
    Confirmation,
    /// Sent once a subscription is confirmed, with its unsubscribe links.
    Welcome,
    /// One day's digest to one subscriber; its body comes from the issue.
    Digest,
}

impl EmailKind {
    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Confirmation => "confirmation",
            Self::Welcome => "welcome",
            Self::Digest => "digest",
        }
    }
}

/// Stored status of a queued email.
pub mod status {
    /// Still to send (possibly retrying or claimed).
    pub const PENDING: &str = "pending";
    /// Held back by an operator who paused the send; workers do not claim it.
    pub const PAUSED: &str = "paused";
    /// The server answered 250.
    pub const SENT: &str = "sent";
    /// Permanently refused, or retried until the give-up time.
    pub const FAILED: &str = "failed";
    /// Not sent: the reader unsubscribed before their turn came.
    pub const SKIPPED: &str = "skipped";
    /// Not sent: an operator cancelled the send.
    pub const CANCELLED: &str = "cancelled";
    /// States from which an attempt's outcome may still be recorded: a send paused or
    /// cancelled while a copy was in flight records what really happened to that copy.
    pub const UNFINISHED: [&str; 3] = [PENDING, PAUSED, CANCELLED];
}

/// An email to queue.
#[derive(Debug, Insertable)]
#[diesel(table_name = outbound_emails)]
pub struct NewOutboundEmail<'a> {
    /// `EmailKind::as_str`.
    pub kind: &'a str,
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
    /// Always `pending`.
    pub status: &'a str,
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
    /// `EmailKind::as_str`.
    pub kind: String,
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
        // The status is written into the SQL, not bound: a planner can use the partial
        // index `outbound_emails_due` only when it sees the index's own condition.
        let due = outbound_emails::table
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "outbound_emails.status = 'pending'",
            ))
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
    use super::schema::{subscribers, subscriptions};
    let staying: std::collections::HashSet<i64> = outbound_emails::table
        .inner_join(
            subscriptions::table
                .on(outbound_emails::subscription_id.eq(subscriptions::id.nullable())),
        )
        .filter(outbound_emails::id.eq_any(ids))
        .filter(subscriptions::status.eq(crate::db::subscribers::Status::Confirmed.as_str()))
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
            .filter(outbound_emails::status.eq_any([status::PENDING, status::PAUSED])),
    )
    .set((
        outbound_emails::status.eq(status::SKIPPED),
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
            .filter(outbound_emails::status.eq_any(status::UNFINISHED)),
    )
    .set((
        outbound_emails::status.eq(status::SENT),
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
                .filter(outbound_emails::status.eq_any([status::PENDING, status::PAUSED])),
        )
        .set((
            outbound_emails::next_attempt_at.eq(now),
            outbound_emails::attempts.eq(outbound_emails::attempts - 1),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// Which of these issues an operator paused or cancelled: one index lookup each.
pub fn held_issues(conn: &mut DbConnection, issues: &[i64]) -> QueryResult<Vec<i64>> {
    let mut held = Vec::new();
    for &issue in issues {
        let any = outbound_emails::table
            .filter(outbound_emails::issue_id.eq(issue))
            .filter(outbound_emails::status.eq_any([status::PAUSED, status::CANCELLED]))
            .select(outbound_emails::id)
            .first::<i64>(conn)
            .optional()?;
        if any.is_some() {
            held.push(issue);
        }
    }
    Ok(held)
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
            .filter(outbound_emails::status.eq_any([status::PENDING, status::PAUSED])),
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
            .filter(outbound_emails::status.eq_any([status::PENDING, status::PAUSED])),
    )
    .set((
        outbound_emails::status.eq(status::FAILED),
        outbound_emails::finished_at.eq(now),
        outbound_emails::last_error.eq(error),
        outbound_emails::body_text.eq(""),
        outbound_emails::body_html.eq(""),
        outbound_emails::list_unsubscribe.eq(None::<String>),
    ))
    .execute(conn)?;
    Ok(())
}

/// One email's state, for operators and tests.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbound_emails)]
pub struct EmailRecord {
    /// Row id.
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// Address.
    pub recipient_email: String,
    /// `pending`, `sent` or `failed`.
    pub status: String,
    /// Attempts made.
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

/// Holds back an issue's deliveries that have not gone out: workers do not claim paused
/// rows. A copy already claimed may still finish, and its outcome is recorded. Returns how
/// many were paused.
pub fn pause_issue(conn: &mut DbConnection, issue_id: i64) -> QueryResult<usize> {
    diesel::update(
        outbound_emails::table
            .filter(outbound_emails::issue_id.eq(issue_id))
            .filter(outbound_emails::status.eq(status::PENDING)),
    )
    .set(outbound_emails::status.eq(status::PAUSED))
    .execute(conn)
}

/// Lets an issue's paused deliveries go out again, each when it was due (a retry keeps
/// its back-off). Returns how many were resumed.
pub fn resume_issue(conn: &mut DbConnection, issue_id: i64) -> QueryResult<usize> {
    diesel::update(
        outbound_emails::table
            .filter(outbound_emails::issue_id.eq(issue_id))
            .filter(outbound_emails::status.eq(status::PAUSED)),
    )
    .set(outbound_emails::status.eq(status::PENDING))
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
            .filter(outbound_emails::status.eq_any([status::PENDING, status::PAUSED])),
    )
    .set((
        outbound_emails::status.eq(status::CANCELLED),
        outbound_emails::finished_at.eq(now),
        outbound_emails::body_text.eq(""),
        outbound_emails::body_html.eq(""),
    ))
    .execute(conn)
}

/// Which of an issue's recipients to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientFilter {
    /// Every one.
    All,
    /// Accepted by the server.
    Sent,
    /// Refused or given up.
    Failed,
    /// Queued or retrying.
    Remaining,
    /// Held back by a pause.
    Paused,
    /// Not sent: the send was cancelled.
    Cancelled,
    /// Not sent: the reader left first.
    Skipped,
}

impl RecipientFilter {
    /// Every filter, in the order the console offers them.
    pub const ALL: [Self; 7] = [
        Self::All,
        Self::Sent,
        Self::Failed,
        Self::Remaining,
        Self::Paused,
        Self::Cancelled,
        Self::Skipped,
    ];

    /// The name in URLs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Remaining => "remaining",
            Self::Paused => "paused",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }

    /// The filter named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    fn status(self) -> Option<&'static str> {
        match self {
            Self::All => None,
            Self::Sent => Some(status::SENT),
            Self::Failed => Some(status::FAILED),
            Self::Remaining => Some(status::PENDING),
            Self::Paused => Some(status::PAUSED),
            Self::Cancelled => Some(status::CANCELLED),
            Self::Skipped => Some(status::SKIPPED),
        }
    }
}

/// One recipient of an issue, as the console lists it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbound_emails)]
pub struct Recipient {
    /// Row id (the page's key).
    pub id: i64,
    /// Address.
    pub recipient_email: String,
    /// Stored status.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// When it reached its outcome.
    pub finished_at: Option<NaiveDateTime>,
    /// The server's last reply to a refusal or failure.
    pub last_error: Option<String>,
}

/// Where a page of recipients starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStart {
    /// The first page.
    First,
    /// The page after the row with this id.
    After(i64),
    /// The page before the row with this id.
    Before(i64),
}

/// A page of an issue's recipients in row order, keyed by id so that deep pages cost no
/// more than the first. Returns the rows and whether more lie beyond the page in the
/// direction it was read.
pub fn recipients(
    conn: &mut DbConnection,
    issue_id: i64,
    filter: RecipientFilter,
    start: PageStart,
    limit: i64,
) -> QueryResult<(Vec<Recipient>, bool)> {
    let mut query = outbound_emails::table
        .filter(outbound_emails::issue_id.eq(issue_id))
        .select(Recipient::as_select())
        .limit(limit + 1)
        .into_boxed();
    if let Some(state) = filter.status() {
        query = query.filter(outbound_emails::status.eq(state));
    }
    query = match start {
        PageStart::First => query.order(outbound_emails::id.asc()),
        PageStart::After(id) => query
            .filter(outbound_emails::id.gt(id))
            .order(outbound_emails::id.asc()),
        PageStart::Before(id) => query
            .filter(outbound_emails::id.lt(id))
            .order(outbound_emails::id.desc()),
    };
    let mut rows = query.load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    if matches!(start, PageStart::Before(_)) {
        rows.reverse();
    }
    Ok((rows, more))
}
