//! The recorder: commits outcomes in groups, and returns each email's in-flight permit
//! only once its outcome is committed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::backoff::{self, Retry};
use super::job::{Finished, Outcome};
use crate::config::{BounceSettings, DeliverySettings};
use crate::db::{self, Pool, outbound};
use crate::mail::redact;
use crate::observability::{DeliveryTally, Metrics};

/// Most outcomes committed in one transaction.
const RECORD_BATCH: usize = 1024;
/// The longest pause between the recorder's attempts to write outcomes. Short, as the
/// claimer's, so recording resumes within moments of the database's return; its senders
/// wait on those outcomes' permits meanwhile.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(1);
/// How often a write of outcomes that fails for a reason other than an unreachable
/// database is tried before the recorder gives up on it.
const RECORD_ATTEMPTS_ON_QUERY_ERROR: u32 = 5;
/// How long the recorder lets outcomes gather before a commit. Each commit is an fsync
/// (SQLite `synchronous=FULL`, PostgreSQL): gathering a few milliseconds' worth turns
/// thousands of commits a second into a couple of hundred, while the in-flight bound keeps
/// the senders from ever waiting on it for long.
const RECORD_GATHER: Duration = Duration::from_millis(2);

/// The recorder: commits whatever has finished since its last commit, until every
/// sender is gone. Permits return to the senders as their outcomes commit.
pub(super) async fn record_outcomes(
    pool: Pool,
    settings: DeliverySettings,
    metrics: Arc<Metrics>,
    bounces: BounceSettings,
    mut finished: mpsc::UnboundedReceiver<Finished>,
) {
    while let Some(first) = finished.recv().await {
        // Unless half the in-flight allowance is already waiting, let more gather.
        if finished.len() < settings.in_flight / 2 {
            tokio::time::sleep(RECORD_GATHER).await;
        }
        let mut batch = vec![first];
        while batch.len() < RECORD_BATCH {
            match finished.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        record(&pool, &settings, &metrics, &bounces, batch).await;
    }
}

/// Writes a group of outcomes, retrying for as long as the database is unreachable:
/// losing the record of a sent email would send it again after the lease. The group's
/// in-flight permits are held until it commits, so while the database is away the
/// senders stop once the in-flight allowance is used, and at most that many emails are
/// ever sent but unrecorded. Only a write that fails while the database answers is given
/// up on, after a few attempts, leaving those emails to the lease.
async fn record(
    pool: &Pool,
    settings: &DeliverySettings,
    metrics: &Metrics,
    bounces: &BounceSettings,
    batch: Vec<Finished>,
) {
    // Held, not dropped, until this function returns: see above.
    let (outcomes, _permits): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|finished| ((finished.email, finished.outcome), finished._permit))
        .unzip();
    let outcomes: Arc<Vec<(outbound::QueuedEmail, Outcome)>> = Arc::new(outcomes);
    let mut wait = Duration::from_millis(100);
    let mut query_errors = 0;
    for attempt in 1u64.. {
        let outcomes = Arc::clone(&outcomes);
        let settings = settings.clone();
        let bounces = bounces.clone();
        let result = db::run(pool, move |conn| {
            db::write_transaction(conn, |conn| {
                write_outcomes(conn, &settings, &bounces, &outcomes)
            })
        })
        .await;
        let error = match result {
            Ok(tally) => {
                // Counted once committed: a group that is written again counts once.
                metrics.delivered(&tally);
                return;
            }
            Err(error) => error,
        };
        if !error.is_unavailable() {
            query_errors += 1;
            if query_errors >= RECORD_ATTEMPTS_ON_QUERY_ERROR {
                tracing::error!(error = %redact::addresses(&error.to_string()), "giving up recording delivery outcomes; the lease will bring these emails back");
                return;
            }
        }
        tracing::warn!(error = %redact::addresses(&error.to_string()), attempt, "cannot record delivery outcomes yet");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECORD_RETRY_MAX);
    }
}

fn write_outcomes(
    conn: &mut db::DbConnection,
    settings: &DeliverySettings,
    bounce_rules: &BounceSettings,
    outcomes: &[(outbound::QueuedEmail, Outcome)],
) -> diesel::QueryResult<DeliveryTally> {
    let now = db::now();
    let mut tally = DeliveryTally::default();
    let ids_of = |wanted: fn(&Outcome) -> bool| -> Vec<i64> {
        outcomes
            .iter()
            .filter(|(_, outcome)| wanted(outcome))
            .map(|(email, _)| email.id)
            .collect()
    };
    let sent = ids_of(|outcome| matches!(outcome, Outcome::Sent));
    for (email, _) in outcomes
        .iter()
        .filter(|(_, outcome)| matches!(outcome, Outcome::Sent))
    {
        tally.sent(email.kind.as_str(), 1);
    }
    if !sent.is_empty() {
        outbound::mark_sent(conn, &sent, now)?;
        tracing::debug!(count = sent.len(), "emails sent");
    }
    let released: Vec<outbound::Claim> = outcomes
        .iter()
        .filter(|(_, outcome)| matches!(outcome, Outcome::Released))
        .map(|(email, _)| email.claim())
        .collect();
    if !released.is_empty() {
        outbound::release(conn, &released, now)?;
        tracing::info!(count = released.len(), "claimed emails given back");
    }
    let skipped = ids_of(|outcome| matches!(outcome, Outcome::Skipped));
    if !skipped.is_empty() {
        outbound::mark_skipped(conn, &skipped, now)?;
        tracing::info!(count = skipped.len(), "emails to readers who left skipped");
    }
    // Refusals and exhausted retries are bounces, recorded with the outcome they explain.
    let mut bounces: Vec<db::bounces::SmtpBounce> = Vec::new();
    for (email, outcome) in outcomes {
        match outcome {
            Outcome::Sent | Outcome::Released | Outcome::Skipped => {}
            Outcome::Failed { error } => {
                tracing::warn!(email_id = email.id, kind = %email.kind, error = %redact::addresses(error), "email failed permanently");
                outbound::mark_failed(conn, email.id, now, error)?;
                tally.failed(email.kind.as_str());
            }
            Outcome::Refused { error } => {
                tracing::warn!(email_id = email.id, kind = %email.kind, error = %redact::addresses(error), "email refused permanently");
                outbound::mark_failed(conn, email.id, now, error)?;
                bounces.push(db::bounces::SmtpBounce {
                    email_id: email.id,
                    kind: db::states::BounceKind::Hard,
                    reply: error.clone(),
                });
                tally.failed(email.kind.as_str());
            }
            Outcome::Retry { error } => {
                match backoff::next_attempt(settings, email.attempts, email.created_at, now) {
                    Retry::At(at) => {
                        tracing::info!(email_id = email.id, attempts = email.attempts, retry_at = %at, error = %redact::addresses(error), "email will be retried");
                        outbound::schedule_retry(conn, email.claim(), at, error)?;
                        tally.retried(email.kind.as_str());
                    }
                    Retry::GiveUp => {
                        let error = format!("gave up after {} attempts: {error}", email.attempts);
                        tracing::warn!(email_id = email.id, error = %redact::addresses(&error), "email failed");
                        outbound::mark_failed(conn, email.id, now, &error)?;
                        tally.failed(email.kind.as_str());
                        bounces.push(db::bounces::SmtpBounce {
                            email_id: email.id,
                            kind: db::states::BounceKind::Soft,
                            reply: error,
                        });
                    }
                }
            }
        }
    }
    let limits = db::bounces::Limits {
        hard_limit: bounce_rules.hard_limit,
        score_limit: bounce_rules.score_limit,
        window: bounce_rules.window,
    };
    db::bounces::record_smtp(conn, &limits, &bounces, now)?;
    Ok(tally)
}
