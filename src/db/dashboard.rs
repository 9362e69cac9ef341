//! The figures on the console's dashboard: who is subscribed, how the list moved over
//! the last month, and how the outbound queue is doing. Each is one aggregate query, so
//! the page costs the same few round trips whatever the size of the list.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Date, Nullable, Timestamp};

use super::DbConnection;
use super::schema::{digest_issues, newsletters, subscriptions};
use super::states::SubscriptionStatus;
use crate::on_backend;

/// How many subscriptions of one newsletter are in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    /// Newsletter id.
    pub newsletter_id: i64,
    /// Which status.
    pub status: SubscriptionStatus,
    /// How many.
    pub count: i64,
}

/// Subscriptions by newsletter and status (served by the `(newsletter_id, status)` index).
pub fn subscriptions_by_status(conn: &mut DbConnection) -> QueryResult<Vec<StatusCount>> {
    let rows: Vec<(i64, SubscriptionStatus, i64)> = subscriptions::table
        .group_by((subscriptions::newsletter_id, subscriptions::status))
        .select((
            subscriptions::newsletter_id,
            subscriptions::status,
            count_star(),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(newsletter_id, status, count)| StatusCount {
            newsletter_id,
            status,
            count,
        })
        .collect())
}

/// People (not subscriptions) by where they stand: confirmed to at least one newsletter;
/// otherwise awaiting confirmation of at least one; otherwise unsubscribed from all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub struct PeopleCounts {
    /// Every subscriber.
    #[diesel(sql_type = BigInt)]
    pub total: i64,
    /// Receiving at least one newsletter.
    #[diesel(sql_type = BigInt)]
    pub confirmed: i64,
    /// Not receiving anything yet, awaiting confirmation.
    #[diesel(sql_type = BigInt)]
    pub pending: i64,
    /// Left every newsletter they had.
    #[diesel(sql_type = BigInt)]
    pub unsubscribed: i64,
}

// PostgreSQL may sum into NUMERIC; the casts keep both backends on BIGINT.
const PEOPLE_COUNTS: &str = "
SELECT CAST((SELECT COUNT(*) FROM subscribers) AS BIGINT) AS total,
       CAST(COALESCE(SUM(CASE WHEN confirmed > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS confirmed,
       CAST(COALESCE(SUM(CASE WHEN confirmed = 0 AND pending > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS pending,
       CAST(COALESCE(SUM(CASE WHEN confirmed = 0 AND pending = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS unsubscribed
FROM (SELECT subscriber_id,
             SUM(CASE WHEN status = 'confirmed' THEN 1 ELSE 0 END) AS confirmed,
             SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS pending
      FROM subscriptions GROUP BY subscriber_id) AS per_person";

/// Counts people by where they stand, given [`subscriptions_by_status`]. While every
/// subscription belongs to one newsletter, a person's status is their subscription's, so
/// those counts answer without a second pass over the list (on a million subscriptions
/// the per-person grouping takes about two seconds on SQLite).
pub fn people(conn: &mut DbConnection, by_status: &[StatusCount]) -> QueryResult<PeopleCounts> {
    let first = by_status.first().map(|c| c.newsletter_id);
    if by_status.iter().all(|c| Some(c.newsletter_id) == first) {
        let count = |status: SubscriptionStatus| {
            by_status
                .iter()
                .filter(|c| c.status == status)
                .map(|c| c.count)
                .sum()
        };
        return Ok(PeopleCounts {
            total: super::schema::subscribers::table.count().get_result(conn)?,
            confirmed: count(SubscriptionStatus::Confirmed),
            pending: count(SubscriptionStatus::Pending),
            unsubscribed: count(SubscriptionStatus::Unsubscribed),
        });
    }
    on_backend!(conn, c => diesel::sql_query(PEOPLE_COUNTS).get_result::<PeopleCounts>(c))
}

/// One day's movement of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCount {
    /// The day (UTC).
    pub day: NaiveDate,
    /// How many.
    pub count: i64,
}

#[derive(QueryableByName)]
struct DayRow {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Which subscription timestamp to count by day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// `created_at`: signups.
    Signups,
    /// `unsubscribed_at`: unsubscribes.
    Unsubscribes,
}

/// Subscriptions signed up (or unsubscribed) per UTC day since `since`; days with none
/// are absent. Grouped in the database: only one row per day comes back.
pub fn per_day(
    conn: &mut DbConnection,
    movement: Movement,
    since: NaiveDateTime,
) -> QueryResult<Vec<DayCount>> {
    let column = match movement {
        Movement::Signups => "created_at",
        Movement::Unsubscribes => "unsubscribed_at",
    };
    let rows: Vec<DayRow> = match conn {
        DbConnection::Pg(c) => diesel::sql_query(format!(
            "SELECT CAST({column} AS DATE) AS day, COUNT(*) AS n FROM subscriptions \
             WHERE {column} >= $1 GROUP BY CAST({column} AS DATE)"
        ))
        .bind::<Timestamp, _>(since)
        .load(c)?,
        DbConnection::Sqlite(c) => diesel::sql_query(format!(
            "SELECT date({column}) AS day, COUNT(*) AS n FROM subscriptions \
             WHERE {column} >= ? GROUP BY date({column})"
        ))
        .bind::<Timestamp, _>(since)
        .load(c)?,
    };
    Ok(rows
        .into_iter()
        .map(|r| DayCount {
            day: r.day,
            count: r.n,
        })
        .collect())
}

/// Where the outbound queue stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, QueryableByName)]
pub struct QueueHealth {
    /// Waiting for a first attempt.
    #[diesel(sql_type = BigInt)]
    pub queued: i64,
    /// Tried, waiting for another attempt.
    #[diesel(sql_type = BigInt)]
    pub retrying: i64,
    /// Held back by a paused send.
    #[diesel(sql_type = BigInt)]
    pub paused: i64,
    /// Failed for good since the cut-off.
    #[diesel(sql_type = BigInt)]
    pub failed_recently: i64,
    /// Failed for good, ever (as long as the rows are kept).
    #[diesel(sql_type = BigInt)]
    pub failed_total: i64,
    /// When the oldest email still to send was queued.
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub oldest_pending: Option<NaiveDateTime>,
}

// One subquery per figure, each answered from an index: the pending rows from the
// partial `outbound_emails_due`, failed and paused ones from their own partial indexes.
// The statuses are written literally so that the planner can match those indexes.
const QUEUE_HEALTH: &str = "
SELECT (SELECT COUNT(*) FROM outbound_emails WHERE status = 'pending' AND attempts = 0) AS queued,
       (SELECT COUNT(*) FROM outbound_emails WHERE status = 'pending' AND attempts > 0) AS retrying,
       (SELECT COUNT(*) FROM outbound_emails WHERE status = 'paused') AS paused,
       (SELECT COUNT(*) FROM outbound_emails WHERE status = 'failed' AND finished_at >= {since}) AS failed_recently,
       (SELECT COUNT(*) FROM outbound_emails WHERE status = 'failed') AS failed_total,
       (SELECT MIN(created_at) FROM outbound_emails WHERE status = 'pending') AS oldest_pending";

/// The queue's state in one pass; `failed_recently` counts failures since `since`.
pub fn queue_health(conn: &mut DbConnection, since: NaiveDateTime) -> QueryResult<QueueHealth> {
    match conn {
        DbConnection::Pg(c) => diesel::sql_query(QUEUE_HEALTH.replace("{since}", "$1"))
            .bind::<Timestamp, _>(since)
            .get_result(c),
        DbConnection::Sqlite(c) => diesel::sql_query(QUEUE_HEALTH.replace("{since}", "?"))
            .bind::<Timestamp, _>(since)
            .get_result(c),
    }
}

/// A recent digest issue with its newsletter's title.
#[derive(Debug, Clone)]
pub struct RecentIssue {
    /// Issue id.
    pub id: i64,
    /// Newsletter title.
    pub newsletter: String,
    /// The day it covers.
    pub issue_date: NaiveDate,
    /// Stories in it.
    pub story_count: i32,
    /// When its deliveries were queued.
    pub fanned_out_at: Option<NaiveDateTime>,
}

/// The latest `limit` digest issues, newest first.
pub fn recent_issues(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<RecentIssue>> {
    let rows: Vec<(i64, String, NaiveDate, i32, Option<NaiveDateTime>)> = digest_issues::table
        .inner_join(newsletters::table)
        .order((digest_issues::created_at.desc(), digest_issues::id.desc()))
        .limit(limit)
        .select((
            digest_issues::id,
            newsletters::title,
            digest_issues::issue_date,
            digest_issues::story_count,
            digest_issues::fanned_out_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, newsletter, issue_date, story_count, fanned_out_at)| RecentIssue {
                id,
                newsletter,
                issue_date,
                story_count,
                fanned_out_at,
            },
        )
        .collect())
}
