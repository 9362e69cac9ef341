//! Digest issues (one per newsletter and day) and their fan-out into the outbound queue.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};

use super::outbound::{EmailKind, status};
use super::schema::{digest_issues, outbound_emails, subscribers, subscriptions};
use super::{DbConnection, write_transaction};
use crate::db::subscribers::Status;

/// One day's digest of one newsletter, rendered once.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = digest_issues)]
pub struct Issue {
    /// Row id.
    pub id: i64,
    /// Newsletter.
    pub newsletter_id: i64,
    /// The day, in the newsletter's time zone.
    pub issue_date: NaiveDate,
    /// Subject line.
    pub subject: String,
    /// Text body with the unsubscribe placeholder.
    pub body_text: String,
    /// HTML body with the unsubscribe placeholder.
    pub body_html: String,
    /// How many stories it has.
    pub story_count: i32,
    /// The stories as JSON, for the web archive.
    pub stories_json: String,
    /// Created.
    pub created_at: NaiveDateTime,
    /// When its deliveries were queued; `None` until then.
    pub fanned_out_at: Option<NaiveDateTime>,
}

/// An issue to create.
#[derive(Debug, Insertable)]
#[diesel(table_name = digest_issues)]
pub struct NewIssue<'a> {
    /// Newsletter.
    pub newsletter_id: i64,
    /// Day.
    pub issue_date: NaiveDate,
    /// Subject.
    pub subject: &'a str,
    /// Text body.
    pub body_text: &'a str,
    /// HTML body.
    pub body_html: &'a str,
    /// Stories.
    pub story_count: i32,
    /// Stories as JSON.
    pub stories_json: &'a str,
    /// Now.
    pub created_at: NaiveDateTime,
}

/// The issue of that newsletter and day, if any.
pub fn find(
    conn: &mut DbConnection,
    newsletter_id: i64,
    date: NaiveDate,
) -> QueryResult<Option<Issue>> {
    digest_issues::table
        .filter(digest_issues::newsletter_id.eq(newsletter_id))
        .filter(digest_issues::issue_date.eq(date))
        .select(Issue::as_select())
        .first(conn)
        .optional()
}

/// Issues of a newsletter that went out, newest first.
pub fn sent_issues(
    conn: &mut DbConnection,
    newsletter_id: i64,
    limit: i64,
) -> QueryResult<Vec<Issue>> {
    digest_issues::table
        .filter(digest_issues::newsletter_id.eq(newsletter_id))
        .filter(digest_issues::fanned_out_at.is_not_null())
        .order(digest_issues::issue_date.desc())
        .limit(limit)
        .select(Issue::as_select())
        .load(conn)
}

/// Creates the issue unless it exists (two senders at once create one); returns the
/// stored issue either way.
pub fn create_if_absent(conn: &mut DbConnection, new: &NewIssue<'_>) -> QueryResult<Issue> {
    crate::on_backend!(conn, c => diesel::insert_into(digest_issues::table)
        .values(new)
        .on_conflict((digest_issues::newsletter_id, digest_issues::issue_date))
        .do_nothing()
        .execute(c))?;
    find(conn, new.newsletter_id, new.issue_date)?.ok_or(diesel::result::Error::NotFound)
}

/// Queues one email per confirmed subscriber of the issue's newsletter, once: the first
/// caller marks the issue fanned out in the same transaction, every later caller (a second
/// `digest send`, a second operator, the scheduler firing twice) gets `None`.
pub fn fan_out(
    conn: &mut DbConnection,
    issue_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Option<usize>> {
    write_transaction(conn, |conn| {
        let claimed = diesel::update(
            digest_issues::table
                .find(issue_id)
                .filter(digest_issues::fanned_out_at.is_null()),
        )
        .set(digest_issues::fanned_out_at.eq(now))
        .returning((digest_issues::newsletter_id, digest_issues::subject))
        .get_result::<(i64, String)>(conn)
        .optional()?;
        let Some((newsletter_id, subject)) = claimed else {
            return Ok(None);
        };
        // One INSERT … SELECT: the database copies the list without it passing through us,
        // so memory stays flat whatever its size. Bodies are rendered at send time.
        let rows = subscriptions::table
            .inner_join(subscribers::table)
            .filter(subscriptions::newsletter_id.eq(newsletter_id))
            .filter(subscriptions::status.eq(Status::Confirmed.as_str()))
            .select((
                EmailKind::Digest.as_str().into_sql::<Text>(),
                subscribers::id.nullable(),
                subscribers::email,
                subscribers::name,
                subject.as_str().into_sql::<Text>(),
                "".into_sql::<Text>(),
                "".into_sql::<Text>(),
                "".into_sql::<Text>(),
                status::PENDING.into_sql::<Text>(),
                0.into_sql::<Integer>(),
                now.into_sql::<Timestamp>(),
                now.into_sql::<Timestamp>(),
                Some(issue_id).into_sql::<Nullable<BigInt>>(),
                subscriptions::id.nullable(),
            ));
        let insert = diesel::insert_into(outbound_emails::table)
            .values(rows)
            .into_columns((
                outbound_emails::kind,
                outbound_emails::subscriber_id,
                outbound_emails::recipient_email,
                outbound_emails::recipient_name,
                outbound_emails::subject,
                outbound_emails::body_text,
                outbound_emails::body_html,
                outbound_emails::message_id,
                outbound_emails::status,
                outbound_emails::attempts,
                outbound_emails::next_attempt_at,
                outbound_emails::created_at,
                outbound_emails::issue_id,
                outbound_emails::subscription_id,
            ));
        let inserted = crate::on_backend!(conn, c => insert.on_conflict_do_nothing().execute(c))?;
        Ok(Some(inserted))
    })
}

/// Where an issue's deliveries stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IssueCounts {
    /// Accepted by the server.
    pub sent: i64,
    /// Refused for good, or given up.
    pub failed: i64,
    /// Not sent because the reader left before their turn.
    pub skipped: i64,
    /// Not tried yet.
    pub queued: i64,
    /// Tried and waiting for another attempt.
    pub retrying: i64,
}

impl IssueCounts {
    /// Still to be delivered.
    pub fn remaining(&self) -> i64 {
        self.queued + self.retrying
    }

    /// Every delivery.
    pub fn total(&self) -> i64 {
        self.sent + self.failed + self.skipped + self.remaining()
    }
}

/// Counts an issue's deliveries by state.
pub fn counts(conn: &mut DbConnection, issue_id: i64) -> QueryResult<IssueCounts> {
    let by_status: Vec<(String, i64)> = outbound_emails::table
        .filter(outbound_emails::issue_id.eq(issue_id))
        .group_by(outbound_emails::status)
        .select((outbound_emails::status, count_star()))
        .load(conn)?;
    let retrying: i64 = outbound_emails::table
        .filter(outbound_emails::issue_id.eq(issue_id))
        .filter(outbound_emails::status.eq(status::PENDING))
        .filter(outbound_emails::attempts.gt(0))
        .count()
        .get_result(conn)?;
    let mut counts = IssueCounts {
        retrying,
        ..IssueCounts::default()
    };
    for (state, n) in by_status {
        match state.as_str() {
            status::SENT => counts.sent = n,
            status::FAILED => counts.failed = n,
            status::SKIPPED => counts.skipped = n,
            _ => counts.queued = n - retrying,
        }
    }
    Ok(counts)
}

/// What the worker needs of an issue to send a copy.
#[derive(Debug, Clone, Queryable)]
pub struct IssueBody {
    /// Issue id.
    pub id: i64,
    /// Subject.
    pub subject: String,
    /// Text body with the placeholder.
    pub body_text: String,
    /// HTML body with the placeholder.
    pub body_html: String,
    /// For `List-Id`.
    pub newsletter_slug: String,
    /// For `List-Id`.
    pub newsletter_title: String,
}

/// The rendered bodies of these issues.
pub fn bodies(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<IssueBody>> {
    use super::schema::newsletters;
    digest_issues::table
        .inner_join(newsletters::table)
        .filter(digest_issues::id.eq_any(ids))
        .select((
            digest_issues::id,
            digest_issues::subject,
            digest_issues::body_text,
            digest_issues::body_html,
            newsletters::slug,
            newsletters::title,
        ))
        .load(conn)
}
