//! Bounces and complaints: one event row each, a score summed from them, and the mark
//! (`subscribers.bounced_at`) that stops every email to a subscriber.
//!
//! A hard bounce (a permanent SMTP refusal, or a webhook's `hard` report) counts 1, a soft
//! one (a temporary failure retried until the give-up time, or `soft`) counts 0.5. Both
//! count only within the window (`SPACEDIGEST_BOUNCE_WINDOW_DAYS`) and after the operator
//! last cleared the mark: that is how soft bounces age out. A successful delivery resets
//! nothing, so an address that fails one day in three still reaches the limit. Scores are
//! kept in half points, so the sums are exact.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::schema::{bounce_events, outbound_emails, subscribers};
use super::states::{BounceKind as Kind, BounceSource as Source};
use super::{DbConnection, subscribers as readers, subscriptions, write_transaction};

/// Longest reason kept, in characters: enough for any SMTP reply worth reading.
pub const MAX_REASON: usize = 500;

/// When repeated bounces mark a subscriber bounced: the caller maps its settings to these.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Hard bounces within the window that mark a subscriber bounced.
    pub hard_limit: u32,
    /// The score (hard 1, soft 0.5) within the window that does.
    pub score_limit: f64,
    /// How long a bounce counts.
    pub window: Duration,
}

/// A kind's weight in half points.
const fn halves(kind: Kind) -> u32 {
    match kind {
        Kind::Hard => 2,
        Kind::Soft => 1,
        Kind::Complaint | Kind::Cleared => 0,
    }
}

/// A reason as stored: control characters become spaces, and it is cut to [`MAX_REASON`].
pub fn clean_reason(reason: &str) -> String {
    reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A queued email the mail server refused, as the delivery recorder reports it.
#[derive(Debug, Clone)]
pub struct SmtpBounce {
    /// The `outbound_emails` row.
    pub email_id: i64,
    /// Hard (5xx) or soft (retries ran out).
    pub kind: Kind,
    /// The server's reply.
    pub reply: String,
}

/// Records bounces of queued emails in the caller's transaction (the one that writes their
/// outcome) and marks any subscriber who reached a limit. Emails without a subscriber
/// (erased meanwhile) are passed over; an email already recorded is not counted twice.
/// Returns the subscribers newly marked bounced.
pub fn record_smtp(
    conn: &mut DbConnection,
    limits: &Limits,
    bounces: &[SmtpBounce],
    now: NaiveDateTime,
) -> QueryResult<Vec<i64>> {
    if bounces.is_empty() {
        return Ok(Vec::new());
    }
    for bounce in bounces {
        let reason = clean_reason(&bounce.reply);
        let row = outbound_emails::table
            .filter(outbound_emails::id.eq(bounce.email_id))
            .filter(outbound_emails::subscriber_id.is_not_null())
            .select((
                outbound_emails::subscriber_id.assume_not_null(),
                bounce.kind.into_sql::<Text>(),
                Source::Smtp.into_sql::<Text>(),
                reason.into_sql::<Text>(),
                Some(bounce.email_id).into_sql::<Nullable<BigInt>>(),
                now.into_sql::<Timestamp>(),
            ));
        let insert = diesel::insert_into(bounce_events::table)
            .values(row)
            .into_columns((
                bounce_events::subscriber_id,
                bounce_events::kind,
                bounce_events::source,
                bounce_events::reason,
                bounce_events::outbound_email_id,
                bounce_events::created_at,
            ));
        crate::on_backend!(conn, c => insert.on_conflict_do_nothing().execute(c))?;
    }
    let ids: Vec<i64> = bounces.iter().map(|b| b.email_id).collect();
    let mut subscribers: Vec<i64> = outbound_emails::table
        .filter(outbound_emails::id.eq_any(&ids))
        .filter(outbound_emails::subscriber_id.is_not_null())
        .select(outbound_emails::subscriber_id.assume_not_null())
        .load(conn)?;
    subscribers.sort_unstable();
    subscribers.dedup();
    let mut marked = Vec::new();
    for subscriber in subscribers {
        if apply_limits(conn, limits, subscriber, now)? {
            marked.push(subscriber);
        }
    }
    Ok(marked)
}

/// Where a subscriber stands: the mark, and what counts towards it now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// When they were marked bounced; `None` while mail still goes to them.
    pub bounced_at: Option<NaiveDateTime>,
    /// Hard bounces that count.
    pub hard: u32,
    /// Soft bounces that count.
    pub soft: u32,
}

impl Standing {
    /// The score: hard bounces count 1, soft ones 0.5.
    pub fn score(&self) -> f64 {
        f64::from(self.halves()) / 2.0
    }

    fn halves(&self) -> u32 {
        self.hard * halves(Kind::Hard) + self.soft * halves(Kind::Soft)
    }

    /// Whether these counts reach either limit.
    pub fn reaches(&self, limits: &Limits) -> bool {
        self.hard >= limits.hard_limit || self.score() >= limits.score_limit
    }
}

/// The subscriber's standing: bounces within the window since the mark was last cleared.
pub fn standing(
    conn: &mut DbConnection,
    limits: &Limits,
    subscriber_id: i64,
    now: NaiveDateTime,
) -> QueryResult<Standing> {
    let bounced_at: Option<NaiveDateTime> = subscribers::table
        .find(subscriber_id)
        .select(subscribers::bounced_at)
        .first::<Option<NaiveDateTime>>(conn)
        .optional()?
        .flatten();
    let window_start = now - limits.window;
    let events: Vec<Kind> = bounce_events::table
        .filter(bounce_events::subscriber_id.eq(subscriber_id))
        .filter(bounce_events::created_at.ge(window_start))
        .order((bounce_events::created_at, bounce_events::id))
        .select(bounce_events::kind)
        .load(conn)?;
    let mut standing = Standing {
        bounced_at,
        hard: 0,
        soft: 0,
    };
    for kind in events {
        match kind {
            Kind::Hard => standing.hard += 1,
            Kind::Soft => standing.soft += 1,
            Kind::Cleared => {
                standing.hard = 0;
                standing.soft = 0;
            }
            Kind::Complaint => {}
        }
    }
    Ok(standing)
}

/// Marks the subscriber bounced if their standing reaches a limit; true when newly marked.
fn apply_limits(
    conn: &mut DbConnection,
    limits: &Limits,
    subscriber_id: i64,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    if !standing(conn, limits, subscriber_id, now)?.reaches(limits) {
        return Ok(false);
    }
    let changed = diesel::update(
        subscribers::table
            .find(subscriber_id)
            .filter(subscribers::bounced_at.is_null()),
    )
    .set(subscribers::bounced_at.eq(now))
    .execute(conn)?;
    if changed > 0 {
        tracing::info!(
            subscriber_id,
            "subscriber marked bounced; no more email goes to them"
        );
    }
    Ok(changed > 0)
}

/// One report of the bounce webhook, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The lower-cased address (`subscribers.email_key`).
    pub email_key: String,
    /// Hard, soft or complaint.
    pub kind: Kind,
    /// The sender's reason, cleaned.
    pub reason: String,
}

/// What a batch of reports changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportsApplied {
    /// Reports about a subscriber, recorded.
    pub applied: usize,
    /// Reports about an address not on the list, ignored.
    pub ignored: usize,
    /// Subscribers newly marked bounced.
    pub bounced: usize,
    /// Subscribers unsubscribed by a complaint.
    pub unsubscribed: usize,
}

/// Applies the webhook's reports in one transaction: all or none. A complaint unsubscribes
/// the subscriber from every newsletter; the delivery gate then skips their queued copies.
pub fn apply_reports(
    conn: &mut DbConnection,
    limits: &Limits,
    reports: &[Report],
    now: NaiveDateTime,
) -> QueryResult<ReportsApplied> {
    write_transaction(conn, |conn| {
        let mut result = ReportsApplied::default();
        for report in reports {
            let Some(subscriber) = readers::find_by_key(conn, &report.email_key)? else {
                result.ignored += 1;
                continue;
            };
            insert_event(
                conn,
                subscriber.id,
                report.kind,
                Source::Webhook,
                &report.reason,
                now,
            )?;
            result.applied += 1;
            if report.kind == Kind::Complaint {
                if subscriptions::unsubscribe_all(conn, subscriber.id, now)? > 0 {
                    result.unsubscribed += 1;
                    tracing::info!(
                        subscriber_id = subscriber.id,
                        "complaint: unsubscribed from all"
                    );
                }
            } else if apply_limits(conn, limits, subscriber.id, now)? {
                result.bounced += 1;
            }
        }
        Ok(result)
    })
}

fn insert_event(
    conn: &mut DbConnection,
    subscriber_id: i64,
    kind: Kind,
    source: Source,
    reason: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(bounce_events::table)
        .values((
            bounce_events::subscriber_id.eq(subscriber_id),
            bounce_events::kind.eq(kind),
            bounce_events::source.eq(source),
            bounce_events::reason.eq(reason),
            bounce_events::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Clears the bounced mark (an operator's decision), recorded in the history; earlier
/// bounces stop counting. False when the subscriber was not marked.
pub fn clear(
    conn: &mut DbConnection,
    subscriber_id: i64,
    operator_email: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    write_transaction(conn, |conn| {
        let changed = diesel::update(
            subscribers::table
                .find(subscriber_id)
                .filter(subscribers::bounced_at.is_not_null()),
        )
        .set(subscribers::bounced_at.eq(None::<NaiveDateTime>))
        .execute(conn)?;
        if changed == 0 {
            return Ok(false);
        }
        let reason = clean_reason(&format!("cleared by {operator_email}"));
        insert_event(
            conn,
            subscriber_id,
            Kind::Cleared,
            Source::Console,
            &reason,
            now,
        )?;
        Ok(true)
    })
}

/// Of these queued emails, the ones addressed to a bounced subscriber: one indexed read,
/// for the delivery gate.
pub fn to_bounced(conn: &mut DbConnection, email_ids: &[i64]) -> QueryResult<Vec<i64>> {
    outbound_emails::table
        .inner_join(
            subscribers::table.on(outbound_emails::subscriber_id.eq(subscribers::id.nullable())),
        )
        .filter(outbound_emails::id.eq_any(email_ids))
        .filter(subscribers::bounced_at.is_not_null())
        .select(outbound_emails::id)
        .load(conn)
}

/// One line of a subscriber's bounce history.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = bounce_events)]
pub struct Event {
    /// Row id.
    pub id: i64,
    /// What it says about the address.
    pub kind: Kind,
    /// Where it came from.
    pub source: Source,
    /// The server's reply or the report's reason.
    pub reason: String,
    /// The email that bounced, when it was one of ours.
    pub outbound_email_id: Option<i64>,
    /// When.
    pub created_at: NaiveDateTime,
}

/// The subscriber's latest `limit` events, newest first, and how many there are.
pub fn events_of(
    conn: &mut DbConnection,
    subscriber_id: i64,
    limit: i64,
) -> QueryResult<(Vec<Event>, i64)> {
    let events = bounce_events::table
        .filter(bounce_events::subscriber_id.eq(subscriber_id))
        .order((bounce_events::created_at.desc(), bounce_events::id.desc()))
        .limit(limit)
        .select(Event::as_select())
        .load(conn)?;
    let total = bounce_events::table
        .filter(bounce_events::subscriber_id.eq(subscriber_id))
        .select(count_star())
        .first(conn)?;
    Ok((events, total))
}

/// How many subscribers are marked bounced.
pub fn count_bounced(conn: &mut DbConnection) -> QueryResult<i64> {
    subscribers::table
        .filter(subscribers::bounced_at.is_not_null())
        .count()
        .get_result(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(hard_limit: u32, score_limit: f64) -> Limits {
        Limits {
            hard_limit,
            score_limit,
            window: Duration::from_secs(30 * 86_400),
        }
    }

    #[test]
    fn soft_bounces_count_half_and_hard_ones_count_against_both_limits() {
        let standing = |hard, soft| Standing {
            bounced_at: None,
            hard,
            soft,
        };
        assert!((standing(0, 2).score() - 1.0).abs() < f64::EPSILON);
        assert!(!standing(0, 5).reaches(&rules(1, 3.0)));
        assert!(standing(0, 6).reaches(&rules(1, 3.0)));
        assert!(standing(1, 0).reaches(&rules(1, 3.0)));
        assert!(!standing(1, 0).reaches(&rules(2, 3.0)));
        assert!(standing(1, 4).reaches(&rules(2, 3.0)));
    }

    #[test]
    fn reasons_are_cut_short_and_lose_control_characters() {
        assert_eq!(
            clean_reason(" 550 5.1.1\r\nno such user "),
            "550 5.1.1  no such user"
        );
        assert_eq!(clean_reason(&"x".repeat(2000)).chars().count(), MAX_REASON);
        assert_eq!(clean_reason(&"é".repeat(600)).chars().count(), MAX_REASON);
    }
}
