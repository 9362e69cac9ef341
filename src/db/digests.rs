//! Digest issues (one per newsletter and day) and their fan-out into the outbound queue.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};

use super::newsletters::Newsletter;
use super::schema::{digest_issues, newsletters, outbound_emails, subscribers, subscriptions};
use super::states::{EmailKind, EmailStatus, SubscriptionStatus as Status};
use super::{DbConnection, write_transaction};

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
            .filter(subscriptions::status.eq(Status::Confirmed))
            // Bounced addresses get nothing until an operator clears the mark.
            .filter(subscribers::bounced_at.is_null())
            .select((
                EmailKind::Digest.into_sql::<Text>(),
                subscribers::id.nullable(),
                subscribers::email,
                subscribers::name,
                subject.as_str().into_sql::<Text>(),
                "".into_sql::<Text>(),
                "".into_sql::<Text>(),
                "".into_sql::<Text>(),
                EmailStatus::Pending.into_sql::<Text>(),
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
    /// Held back by an operator who paused the send.
    pub paused: i64,
    /// Not sent because an operator cancelled the send.
    pub cancelled: i64,
}

/// Where a send stands as a whole, in the words the console and the CLI show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// Deliveries are still going out.
    Sending,
    /// An operator paused it; nothing more goes out until it is resumed.
    Paused,
    /// An operator cancelled it; the readers not reached by then get nothing.
    Cancelled,
    /// Every delivery has an outcome.
    Delivered,
}

impl SendState {
    /// The word shown for the state.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Sending => "Sending",
            Self::Paused => "Paused",
            Self::Cancelled => "Cancelled",
            Self::Delivered => "Delivered",
        }
    }
}

impl IssueCounts {
    /// Still to be delivered (paused deliveries not included).
    pub fn remaining(&self) -> i64 {
        self.queued + self.retrying
    }

    /// Deliveries with a final outcome.
    pub fn done(&self) -> i64 {
        self.sent + self.failed + self.skipped + self.cancelled
    }

    /// Every delivery.
    pub fn total(&self) -> i64 {
        self.done() + self.remaining() + self.paused
    }

    /// Share of deliveries with a final outcome, in whole percent rounded down; 100 when
    /// there is nothing left to do.
    pub fn percent(&self) -> i64 {
        let total = self.total();
        if total == 0 || self.done() >= total {
            100
        } else {
            self.done() * 100 / total
        }
    }

    /// The send's state: anything still queued means sending, then paused, then cancelled.
    pub fn state(&self) -> SendState {
        if self.remaining() > 0 {
            SendState::Sending
        } else if self.paused > 0 {
            SendState::Paused
        } else if self.cancelled > 0 {
            SendState::Cancelled
        } else {
            SendState::Delivered
        }
    }

    fn add(&mut self, state: EmailStatus, n: i64) {
        match state {
            EmailStatus::Sent => self.sent += n,
            EmailStatus::Failed => self.failed += n,
            EmailStatus::Skipped => self.skipped += n,
            EmailStatus::Paused => self.paused += n,
            EmailStatus::Cancelled => self.cancelled += n,
            EmailStatus::Pending => self.queued += n,
        }
    }
}

/// Counts an issue's deliveries by state.
pub fn counts(conn: &mut DbConnection, issue_id: i64) -> QueryResult<IssueCounts> {
    let by_status: Vec<(EmailStatus, i64)> = outbound_emails::table
        .filter(outbound_emails::issue_id.eq(issue_id))
        .group_by(outbound_emails::status)
        .select((outbound_emails::status, count_star()))
        .load(conn)?;
    let retrying: i64 = outbound_emails::table
        .filter(outbound_emails::issue_id.eq(issue_id))
        .filter(outbound_emails::status.eq(EmailStatus::Pending))
        .filter(outbound_emails::attempts.gt(0))
        .count()
        .get_result(conn)?;
    let mut counts = IssueCounts::default();
    for (state, n) in by_status {
        counts.add(state, n);
    }
    counts.retrying = retrying.min(counts.queued);
    counts.queued -= counts.retrying;
    Ok(counts)
}

/// Counts the deliveries of several issues by state (pending ones all count as queued).
pub fn counts_of(
    conn: &mut DbConnection,
    issue_ids: &[i64],
) -> QueryResult<HashMap<i64, IssueCounts>> {
    let rows: Vec<(Option<i64>, EmailStatus, i64)> = outbound_emails::table
        .filter(outbound_emails::issue_id.eq_any(issue_ids))
        .group_by((outbound_emails::issue_id, outbound_emails::status))
        .select((
            outbound_emails::issue_id,
            outbound_emails::status,
            count_star(),
        ))
        .load(conn)?;
    let mut counts: HashMap<i64, IssueCounts> = HashMap::new();
    for (issue_id, state, n) in rows {
        if let Some(issue_id) = issue_id {
            counts.entry(issue_id).or_default().add(state, n);
        }
    }
    Ok(counts)
}

/// How many of an issue's deliveries reached an outcome (sent or failed) since `since`.
/// The index on `(issue_id, status, finished_at)` makes this a short range scan however
/// long the list, so the console can ask every second.
pub fn finished_since(
    conn: &mut DbConnection,
    issue_id: i64,
    since: NaiveDateTime,
) -> QueryResult<i64> {
    outbound_emails::table
        .filter(outbound_emails::issue_id.eq(issue_id))
        .filter(outbound_emails::status.eq_any([EmailStatus::Sent, EmailStatus::Failed]))
        .filter(outbound_emails::finished_at.ge(since))
        .count()
        .get_result(conn)
}

/// An issue with its newsletter, for the console.
#[derive(Debug, Clone)]
pub struct IssueWithNewsletter {
    /// The issue.
    pub issue: Issue,
    /// Its newsletter.
    pub newsletter: Newsletter,
}

/// The issue with this id, and its newsletter.
pub fn find_by_id(
    conn: &mut DbConnection,
    issue_id: i64,
) -> QueryResult<Option<IssueWithNewsletter>> {
    digest_issues::table
        .inner_join(newsletters::table)
        .filter(digest_issues::id.eq(issue_id))
        .select((Issue::as_select(), Newsletter::as_select()))
        .first::<(Issue, Newsletter)>(conn)
        .optional()
        .map(|found| found.map(|(issue, newsletter)| IssueWithNewsletter { issue, newsletter }))
}

/// One page of issues of every newsletter, newest day first.
pub fn list(
    conn: &mut DbConnection,
    limit: i64,
    offset: i64,
) -> QueryResult<Vec<IssueWithNewsletter>> {
    let rows: Vec<(Issue, Newsletter)> = digest_issues::table
        .inner_join(newsletters::table)
        .order((digest_issues::issue_date.desc(), digest_issues::id.desc()))
        .limit(limit)
        .offset(offset)
        .select((Issue::as_select(), Newsletter::as_select()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(issue, newsletter)| IssueWithNewsletter { issue, newsletter })
        .collect())
}

/// How many issues there are.
pub fn count_issues(conn: &mut DbConnection) -> QueryResult<i64> {
    digest_issues::table.count().get_result(conn)
}

/// How many readers a send of this newsletter would reach now.
pub fn confirmed_readers(conn: &mut DbConnection, newsletter_id: i64) -> QueryResult<i64> {
    subscriptions::table
        .inner_join(subscribers::table)
        .filter(subscriptions::newsletter_id.eq(newsletter_id))
        .filter(subscriptions::status.eq(Status::Confirmed))
        .filter(subscribers::bounced_at.is_null())
        .count()
        .get_result(conn)
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
