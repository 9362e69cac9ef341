//! The delivery worker: claims due emails from the durable queue, sends them through the
//! pooled transport, and records each outcome. At-least-once: a crash between the
//! server's 250 and the record re-sends only what was in flight.

pub mod backoff;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lettre::message::Mailbox;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use std::collections::HashMap;
use std::num::NonZeroU32;

use governor::Quota;

use crate::config::DeliverySettings;
use crate::db::{self, Pool, StorageError, digests, outbound};
use crate::digest::Personaliser;
use crate::mail::{Mailer, SendError, build_message};
use crate::subscriptions::Policy;
use backoff::Retry;

/// How long an expired confirmation token is kept to explain itself.
const EXPIRED_TOKEN_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often a worker removes expired confirmation tokens.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);

/// Wakes the worker when new email is queued, so it need not wait for the next poll.
#[derive(Debug, Clone, Default)]
pub struct QueueSignal(Arc<Notify>);

impl QueueSignal {
    /// Tells a waiting worker there is work.
    pub fn notify(&self) {
        self.0.notify_one();
    }

    async fn notified(&self) {
        self.0.notified().await;
    }
}

/// What happened to one claimed email.
#[derive(Debug)]
enum Outcome {
    Sent,
    Retry { error: String },
    Failed { error: String },
}

/// Sends queued email until cancelled.
pub struct DeliveryWorker {
    pool: Pool,
    mailer: Mailer,
    from: Mailbox,
    settings: DeliverySettings,
    personaliser: Personaliser,
    limits: Vec<governor::DefaultDirectRateLimiter>,
    /// Issue bodies never change once created, so each is read once, not once per batch.
    issues: Mutex<HashMap<i64, Arc<digests::IssueBody>>>,
    signal: QueueSignal,
}

/// Issues kept in the cache; a worker rarely sends more than a few at a time.
const CACHED_ISSUES: usize = 64;

impl DeliveryWorker {
    /// A worker on this pool and transport.
    pub fn new(pool: Pool, mailer: Mailer, policy: &Policy, signal: QueueSignal) -> Self {
        Self {
            pool,
            mailer,
            from: policy.settings.from.clone(),
            settings: policy.settings.delivery.clone(),
            personaliser: Personaliser::new(policy.settings.clone(), policy.signer.clone()),
            limits: rate_limits(&policy.settings.delivery),
            issues: Mutex::new(HashMap::new()),
            signal,
        }
    }

    /// Runs until `shutdown` is cancelled; a batch in flight is finished and recorded first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            concurrency = self.settings.concurrency,
            "delivery worker started"
        );
        let mut storage_backoff = Duration::from_millis(250);
        let mut next_cleanup = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            if tokio::time::Instant::now() >= next_cleanup {
                self.delete_expired_tokens().await;
                next_cleanup = tokio::time::Instant::now() + CLEANUP_INTERVAL;
            }
            match self.deliver_batch().await {
                Ok(0) => {
                    storage_backoff = Duration::from_millis(250);
                    tokio::select! {
                        () = self.signal.notified() => {}
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
                Ok(_) => storage_backoff = Duration::from_millis(250),
                Err(error) => {
                    // The database is down or busy: wait and try again; the rows are safe.
                    tracing::warn!(%error, retry_in = ?storage_backoff, "delivery worker cannot reach the queue");
                    tokio::select! {
                        () = tokio::time::sleep(storage_backoff) => {}
                        () = shutdown.cancelled() => {}
                    }
                    storage_backoff = (storage_backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        tracing::info!("delivery worker stopped");
    }

    /// Expired confirmation tokens can never be used again: remove them, a week late, so
    /// an old link still explains that it expired rather than that it is unknown.
    async fn delete_expired_tokens(&self) {
        match db::run(&self.pool, |conn| {
            db::confirmation_tokens::delete_expired(conn, db::now() - EXPIRED_TOKEN_GRACE)
        })
        .await
        {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired confirmation tokens removed"),
            Err(error) => tracing::warn!(%error, "cannot remove expired confirmation tokens"),
        }
    }

    /// Claims, sends and records one batch; returns how many emails it handled.
    pub async fn deliver_batch(&self) -> Result<usize, StorageError> {
        // A batch is recorded once all its sends finish, so a crash re-sends at most one
        // batch: keeping it to the concurrency bounds duplicates by the in-flight limit.
        let limit = i64::try_from(self.settings.concurrency).unwrap_or(i64::MAX);
        let lease = self.settings.lease;
        let known: Vec<i64> = self.cached_issues().keys().copied().collect();
        let (batch, loaded) = db::run(&self.pool, move |conn| {
            let now = db::now();
            let batch = outbound::claim(conn, limit, now, now + lease)?;
            let mut missing: Vec<i64> = batch
                .iter()
                .filter_map(|e| e.issue_id)
                .filter(|id| !known.contains(id))
                .collect();
            missing.sort_unstable();
            missing.dedup();
            let loaded = if missing.is_empty() {
                Vec::new()
            } else {
                digests::bodies(conn, &missing)?
            };
            Ok((batch, loaded))
        })
        .await?;
        if batch.is_empty() {
            return Ok(0);
        }
        let issues = {
            let mut cache = self.cached_issues();
            if cache.len() + loaded.len() > CACHED_ISSUES {
                cache.clear();
            }
            cache.extend(loaded.into_iter().map(|issue| (issue.id, Arc::new(issue))));
            cache.clone()
        };
        let issues = &issues;
        let count = batch.len();
        let outcomes: Vec<(outbound::QueuedEmail, Outcome)> = futures_util::stream::iter(batch)
            .map(|mut email| async move {
                let outcome = match self.personaliser.apply(&mut email, issues) {
                    Ok(list_id) => self.send(&email, list_id.as_deref()).await,
                    Err(error) => Outcome::Failed { error },
                };
                (email, outcome)
            })
            .buffer_unordered(self.settings.concurrency)
            .collect()
            .await;
        self.record(outcomes).await;
        Ok(count)
    }

    fn cached_issues(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<digests::IssueBody>>> {
        self.issues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn send(&self, email: &outbound::QueuedEmail, list_id: Option<&str>) -> Outcome {
        let message = match build_message(&self.from, email, list_id) {
            Ok(message) => message,
            Err(error) => return Outcome::Failed { error },
        };
        for limit in &self.limits {
            limit.until_ready().await;
        }
        match self.mailer.send(message).await {
            Ok(()) => Outcome::Sent,
            Err(SendError::Permanent(error)) => Outcome::Failed { error },
            Err(SendError::Transient(error)) => Outcome::Retry { error },
        }
    }

    /// Writes the outcomes, retrying while the database is unreachable: losing the record
    /// of a sent email would send it again after the lease.
    async fn record(&self, outcomes: Vec<(outbound::QueuedEmail, Outcome)>) {
        let settings = self.settings.clone();
        let outcomes = Arc::new(outcomes);
        let mut wait = Duration::from_millis(100);
        for attempt in 1.. {
            let outcomes = Arc::clone(&outcomes);
            let settings = settings.clone();
            let result = db::run(&self.pool, move |conn| {
                db::write_transaction(conn, |conn| record_outcomes(conn, &settings, &outcomes))
            })
            .await;
            match result {
                Ok(()) => return,
                Err(error) if attempt < 20 => {
                    tracing::warn!(%error, attempt, "cannot record delivery outcomes yet");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    tracing::error!(%error, "giving up recording delivery outcomes; the lease will bring these emails back");
                    return;
                }
            }
        }
    }
}

/// Limiters for relays with quotas (messages per second and per hour).
fn rate_limits(settings: &DeliverySettings) -> Vec<governor::DefaultDirectRateLimiter> {
    let per_second = NonZeroU32::new(settings.rate_per_second).map(Quota::per_second);
    let per_hour = NonZeroU32::new(settings.rate_per_hour).map(Quota::per_hour);
    [per_second, per_hour]
        .into_iter()
        .flatten()
        .map(governor::RateLimiter::direct)
        .collect()
}

fn record_outcomes(
    conn: &mut db::DbConnection,
    settings: &DeliverySettings,
    outcomes: &[(outbound::QueuedEmail, Outcome)],
) -> diesel::QueryResult<()> {
    let now = db::now();
    let sent: Vec<i64> = outcomes
        .iter()
        .filter(|(_, outcome)| matches!(outcome, Outcome::Sent))
        .map(|(email, _)| email.id)
        .collect();
    if !sent.is_empty() {
        outbound::mark_sent(conn, &sent, now)?;
    }
    for (email, outcome) in outcomes {
        match outcome {
            Outcome::Sent => {
                tracing::info!(email_id = email.id, kind = %email.kind, "email sent");
            }
            Outcome::Failed { error } => {
                tracing::warn!(email_id = email.id, kind = %email.kind, %error, "email failed permanently");
                outbound::mark_failed(conn, email.id, now, error)?;
            }
            Outcome::Retry { error } => {
                match backoff::next_attempt(settings, email.attempts, email.created_at, now) {
                    Retry::At(at) => {
                        tracing::info!(email_id = email.id, attempts = email.attempts, retry_at = %at, %error, "email will be retried");
                        outbound::schedule_retry(conn, email.id, at, error)?;
                    }
                    Retry::GiveUp => {
                        let error = format!("gave up after {} attempts: {error}", email.attempts);
                        tracing::warn!(email_id = email.id, %error, "email failed");
                        outbound::mark_failed(conn, email.id, now, &error)?;
                    }
                }
            }
        }
    }
    Ok(())
}
