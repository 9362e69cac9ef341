//! The delivery worker: claims due emails from the durable queue, sends them through
//! long-lived SMTP sessions, and records each outcome. At-least-once: a crash between the
//! server's 250 and the record re-sends only what was in flight.
//!
//! Four stages, joined by channels, keep the wire busy:
//! - the **claimer** leases due rows in chunks (one short transaction per chunk) and keeps
//!   a queue of a few chunks ahead of the senders;
//! - the **gate** takes an in-flight permit for each email, and for a small group at a
//!   time asks the database once which readers have left since the claim
//!   ([`gate`]);
//! - `SPACEDIGEST_SEND_CONCURRENCY` **senders**, each owning one SMTP connection per
//!   relay (transactional and digest), build each reader's copy and send it;
//! - the **recorder** commits outcomes in groups: whatever has finished since its last
//!   commit goes into the next one.
//!
//! The recorder returns an email's permit only once its outcome is committed, so at most
//! `SPACEDIGEST_SEND_IN_FLIGHT` emails are ever past the gate but unrecorded: that is all a
//! crash can repeat, and all that can still reach a reader after they unsubscribe.

pub mod backoff;
mod gate;
mod holds;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::Quota;
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{BounceSettings, DeliverySettings, MailStream};
use crate::db::{self, Pool, StorageError, digests, outbound};
use crate::digest::{Personaliser, PreparedIssue};
use crate::mail::{Mailers, SendError, Sessions, redact};
use crate::observability::{DeliveryTally, Metrics};
use crate::subscriptions::Policy;
use backoff::Retry;
use gate::Gated;
use holds::Holds;

/// How long an expired confirmation token is kept to explain itself.
const EXPIRED_TOKEN_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often a worker removes expired confirmation tokens.
const CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);
/// Issues kept prepared; a worker rarely sends more than a few at a time.
const CACHED_ISSUES: usize = 64;
/// Chunks that may wait for senders: enough that the next claim is done before the
/// senders run dry, even when a claim takes as long as sending a chunk.
const QUEUED_CHUNKS: usize = 4;
/// How long the claimer waits after a short claim before the next one.
const CLAIM_GATHER: Duration = Duration::from_millis(20);
/// Most outcomes committed in one transaction.
const RECORD_BATCH: usize = 1024;
/// The longest pause between the claimer's attempts to reach a failing database. Short,
/// so sending resumes within moments of the database's return: while it is down each
/// attempt already waits the pool's connection timeout, which paces the retries.
const STORAGE_RETRY_MAX: Duration = Duration::from_secs(2);
/// The longest pause between the recorder's attempts to write outcomes, for the same
/// reason; its senders wait on those outcomes' permits meanwhile.
const RECORD_RETRY_MAX: Duration = Duration::from_secs(1);
/// How often a write of outcomes that fails for a reason other than an unreachable
/// database is tried before the recorder gives up on it.
const RECORD_ATTEMPTS_ON_QUERY_ERROR: u32 = 5;
/// How long the recorder lets outcomes gather before a commit. Each commit is an fsync
/// (SQLite `synchronous=FULL`, PostgreSQL): gathering a few milliseconds' worth turns
/// thousands of commits a second into a couple of hundred, while the in-flight bound keeps
/// the senders from ever waiting on it for long.
const RECORD_GATHER: Duration = Duration::from_millis(2);

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
    Retry {
        error: String,
    },
    Failed {
        error: String,
    },
    /// The mail server refused it for good (5xx): final, and a hard bounce.
    Refused {
        error: String,
    },
    /// Not attempted: the worker is stopping, an operator paused or cancelled the
    /// send, or the lease ran too short to send safely, so the claim is given back.
    Released,
    /// Not attempted: the reader left after the email was claimed.
    Skipped,
}

impl Outcome {
    /// For logs: which outcome, without the server's reply.
    const fn name(&self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Retry { .. } => "retry",
            Self::Failed { .. } => "failed",
            Self::Refused { .. } => "refused",
            Self::Released => "released",
            Self::Skipped => "skipped",
        }
    }
}

/// A claimed email and, for a digest, its prepared issue.
struct Job {
    email: outbound::QueuedEmail,
    issue: Option<Arc<PreparedIssue>>,
    /// When the claim's lease runs out, by this process's clock (a little early: taken
    /// before the claim). After that another worker may send the email too.
    lease_ends: Instant,
}

/// A finished job on its way to the recorder, holding its in-flight permit.
struct Finished {
    email: outbound::QueuedEmail,
    outcome: Outcome,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Sends queued email until cancelled.
pub struct DeliveryWorker {
    pool: Pool,
    mailers: Mailers,
    settings: DeliverySettings,
    bounces: BounceSettings,
    personaliser: Arc<Personaliser>,
    limits: Arc<Vec<governor::DefaultDirectRateLimiter>>,
    signal: QueueSignal,
    metrics: Arc<Metrics>,
}

impl DeliveryWorker {
    /// A worker on this pool and these relays; `Err` when the DKIM key cannot be used.
    pub fn new(
        pool: Pool,
        mailers: Mailers,
        policy: &Policy,
        signal: QueueSignal,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            mailers,
            settings: policy.settings.delivery.clone(),
            bounces: policy.settings.bounces.clone(),
            personaliser: Arc::new(Personaliser::new(
                policy.settings.clone(),
                policy.signer.clone(),
            )?),
            limits: Arc::new(rate_limits(&policy.settings.delivery)),
            signal,
            metrics: Arc::clone(&policy.metrics),
        })
    }

    /// Runs until `shutdown` is cancelled. Then nothing new is claimed, sends under way
    /// finish, claimed emails not yet attempted are given back, and every outcome is
    /// recorded before this returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let chunk = claim_chunk(&self.settings);
        tracing::info!(
            concurrency = self.settings.concurrency,
            in_flight = self.settings.in_flight,
            chunk,
            "delivery worker started"
        );
        let (work_tx, work_rx) = mpsc::channel::<Job>(QUEUED_CHUNKS * chunk);
        let group = gate::group_size(&self.settings);
        let (gated_tx, gated_rx) = mpsc::channel::<Gated>(2 * group);
        let gated_rx = Arc::new(Mutex::new(gated_rx));
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Finished>();
        let in_flight = Arc::new(Semaphore::new(self.settings.in_flight));
        let gate = tokio::spawn(
            gate::Gate {
                pool: self.pool.clone(),
                claimed: work_rx,
                senders: gated_tx,
                done: done_tx.clone(),
                in_flight,
                group,
                shutdown: shutdown.clone(),
            }
            .run(),
        );
        let holds = Arc::new(Holds::default());
        let watcher = tokio::spawn(holds::watch(
            self.pool.clone(),
            Arc::clone(&holds),
            self.settings.lease,
            shutdown.clone(),
        ));
        let senders: Vec<_> = (0..self.settings.concurrency)
            .map(|_| {
                let sender = Sender {
                    sessions: self.mailers.sessions(),
                    personaliser: Arc::clone(&self.personaliser),
                    limits: Arc::clone(&self.limits),
                    jobs: Arc::clone(&gated_rx),
                    done: done_tx.clone(),
                    holds: Arc::clone(&holds),
                    send_deadline: self.settings.smtp_timeout,
                    shutdown: shutdown.clone(),
                    metrics: Arc::clone(&self.metrics),
                };
                tokio::spawn(sender.run())
            })
            .collect();
        drop(done_tx);
        let recorder = tokio::spawn(record_outcomes(
            self.pool.clone(),
            self.settings.clone(),
            Arc::clone(&self.metrics),
            self.bounces.clone(),
            done_rx,
        ));
        self.claim_until_cancelled(work_tx, chunk, &holds, &shutdown)
            .await;
        if let Err(error) = watcher.await {
            tracing::error!(%error, "the pause watcher ended abnormally");
        }
        if let Err(error) = gate.await {
            tracing::error!(%error, "the delivery gate ended abnormally");
        }
        for sender in senders {
            if let Err(error) = sender.await {
                tracing::error!(%error, "a delivery task ended abnormally");
            }
        }
        if let Err(error) = recorder.await {
            tracing::error!(%error, "the delivery recorder ended abnormally");
        }
        tracing::info!("delivery worker stopped");
    }

    /// The claimer: keeps the senders' queue filled until cancelled.
    async fn claim_until_cancelled(
        &self,
        queue: mpsc::Sender<Job>,
        chunk: usize,
        holds: &Holds,
        shutdown: &CancellationToken,
    ) {
        let mut issues: HashMap<i64, Arc<PreparedIssue>> = HashMap::new();
        let mut storage_backoff = Duration::from_millis(250);
        let mut next_cleanup = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_cleanup {
                self.delete_expired_tokens().await;
                next_cleanup = tokio::time::Instant::now() + CLEANUP_INTERVAL;
            }
            // Claim only once the queue has room for a whole chunk, so a lease is never
            // taken on an email that would wait long for a sender.
            let room = tokio::select! {
                room = queue.reserve_many(chunk) => room,
                () = shutdown.cancelled() => return,
            };
            let Ok(room) = room else { return };
            match self.claim(chunk, &mut issues).await {
                Ok(jobs) if jobs.is_empty() => {
                    storage_backoff = Duration::from_millis(250);
                    drop(room);
                    tokio::select! {
                        () = self.signal.notified() => {}
                        () = tokio::time::sleep(self.settings.poll_interval) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
                Ok(jobs) => {
                    storage_backoff = Duration::from_millis(250);
                    holds.note_claimed(jobs.iter().filter_map(|job| job.email.issue_id));
                    let short = jobs.len() < chunk / 2;
                    for (slot, job) in room.zip(jobs) {
                        slot.send(job);
                    }
                    if short {
                        // Email is trickling in (signups): let some gather rather than
                        // pay a claim transaction for every few.
                        tokio::select! {
                            () = tokio::time::sleep(CLAIM_GATHER) => {}
                            () = shutdown.cancelled() => return,
                        }
                    }
                }
                Err(error) => {
                    // The database is down or busy: wait and try again; the rows are safe.
                    tracing::warn!(%error, retry_in = ?storage_backoff, "delivery worker cannot reach the queue");
                    drop(room);
                    tokio::select! {
                        () = tokio::time::sleep(storage_backoff) => {}
                        () = shutdown.cancelled() => return,
                    }
                    storage_backoff = (storage_backoff * 2).min(STORAGE_RETRY_MAX);
                }
            }
        }
    }

    /// Leases up to `limit` due emails, preparing any issue not seen before.
    async fn claim(
        &self,
        limit: usize,
        issues: &mut HashMap<i64, Arc<PreparedIssue>>,
    ) -> Result<Vec<Job>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = self.settings.lease;
        let lease_ends = Instant::now() + lease;
        let known: Vec<i64> = issues.keys().copied().collect();
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
        if !loaded.is_empty() {
            if issues.len() + loaded.len() > CACHED_ISSUES {
                // Make room, but keep the issues this batch sends: they are not reloaded,
                // and a copy without its issue would fail for good.
                let sending: Vec<i64> = batch.iter().filter_map(|e| e.issue_id).collect();
                issues.retain(|id, _| sending.contains(id));
            }
            for issue in loaded {
                // Issue bodies never change once created: each is encoded once here.
                issues.insert(issue.id, Arc::new(self.personaliser.prepare(&issue)));
            }
        }
        Ok(batch
            .into_iter()
            .map(|email| Job {
                issue: email.issue_id.and_then(|id| issues.get(&id).cloned()),
                email,
                lease_ends,
            })
            .collect())
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
}

/// How many emails one claim leases. A few chunks may wait for senders, and a claimed
/// email must go out well within its lease, so a relay quota makes chunks smaller.
fn claim_chunk(settings: &DeliverySettings) -> usize {
    let mut chunk = (settings.concurrency * 8).clamp(32, 512);
    let quarter_lease = settings.lease.as_secs_f64() / 4.0;
    let per_second = [
        f64::from(settings.rate_per_second),
        f64::from(settings.rate_per_hour) / 3600.0,
    ];
    for rate in per_second.into_iter().filter(|rate| *rate > 0.0) {
        // Truncation is intended: a whole number of emails, at least one.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let affordable = (rate * quarter_lease / QUEUED_CHUNKS as f64) as usize;
        chunk = chunk.min(affordable.max(1));
    }
    chunk
}

/// One delivery task, with a session on each relay.
struct Sender {
    sessions: Sessions,
    personaliser: Arc<Personaliser>,
    limits: Arc<Vec<governor::DefaultDirectRateLimiter>>,
    jobs: Arc<Mutex<mpsc::Receiver<Gated>>>,
    done: mpsc::UnboundedSender<Finished>,
    holds: Arc<Holds>,
    /// The longest one attempt may take (`SPACEDIGEST_SMTP_TIMEOUT_SECONDS`).
    send_deadline: Duration,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
}

impl Sender {
    async fn run(mut self) {
        loop {
            let gated = self.jobs.lock().await.recv().await;
            let Some(Gated { job, permit }) = gated else {
                return;
            };
            let Job {
                email,
                issue,
                lease_ends,
            } = job;
            // Checked the moment before sending: a hold, or the worker stopping, gives the
            // claim back untried.
            let finished = if self.shutdown.is_cancelled()
                || email
                    .issue_id
                    .is_some_and(|issue| self.holds.is_held(issue))
            {
                Finished {
                    email,
                    outcome: Outcome::Released,
                    _permit: None,
                }
            } else {
                // Ids only: never the address, the token or the links. At debug, so the
                // send path pays nothing for it at the default level.
                let span = tracing::debug_span!(
                    "delivery",
                    email_id = email.id,
                    kind = %email.kind,
                    issue_id = email.issue_id,
                    subscriber_id = email.subscriber_id,
                    attempt = email.attempts,
                );
                let outcome = self.send(&email, issue, lease_ends).instrument(span).await;
                Finished {
                    email,
                    outcome,
                    _permit: Some(permit),
                }
            };
            if self.done.send(finished).is_err() {
                return;
            }
        }
    }

    async fn send(
        &mut self,
        email: &outbound::QueuedEmail,
        issue: Option<Arc<PreparedIssue>>,
        lease_ends: Instant,
    ) -> Outcome {
        let built = if self.personaliser.signs() {
            // A DKIM signature is a millisecond or more of CPU per email: made on the
            // blocking pool, it runs on the other cores instead of stalling this
            // worker's single event loop.
            let personaliser = Arc::clone(&self.personaliser);
            let queued = email.clone();
            tokio::task::spawn_blocking(move || personaliser.message(&queued, issue.as_deref()))
                .await
                .unwrap_or_else(|e| Err(format!("building the message failed: {e}")))
        } else {
            self.personaliser.message(email, issue.as_deref())
        };
        let message = match built {
            Ok(message) => message,
            Err(error) => return Outcome::Failed { error },
        };
        for limit in self.limits.iter() {
            limit.until_ready().await;
        }
        // An attempt that could outlast the lease might overlap another worker's (or this
        // one's own next claim's) attempt at the same email: give the claim back instead.
        // It happens only when emails wait longer than a lease for a sender, e.g. behind
        // a relay that answers just within the timeout.
        if Instant::now() + self.send_deadline > lease_ends {
            tracing::debug!(email_id = email.id, "lease too short to send; given back");
            return Outcome::Released;
        }
        let session = self.sessions.for_stream(MailStream::of_kind(email.kind));
        let started = Instant::now();
        let sent = session.send(&message).await;
        let elapsed = started.elapsed();
        self.metrics.smtp_send(email.kind.as_str(), elapsed);
        let outcome = match sent {
            Ok(()) => Outcome::Sent,
            Err(SendError::Permanent(error)) => Outcome::Refused { error },
            Err(SendError::Transient(error)) => Outcome::Retry { error },
        };
        tracing::debug!(
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            outcome = outcome.name(),
            "email handed to the server"
        );
        outcome
    }
}

/// The recorder: commits whatever has finished since its last commit, until every
/// sender is gone. Permits return to the senders as their outcomes commit.
async fn record_outcomes(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(concurrency: usize, per_second: u32, per_hour: u32) -> DeliverySettings {
        DeliverySettings {
            concurrency,
            in_flight: 64,
            smtp_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(120),
            retry_base: Duration::from_secs(300),
            retry_max: Duration::from_secs(4000),
            give_up_after: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(1),
            rate_per_second: per_second,
            rate_per_hour: per_hour,
        }
    }

    #[test]
    fn chunks_grow_with_concurrency_and_shrink_under_a_relay_quota() {
        assert_eq!(claim_chunk(&settings(1, 0, 0)), 32);
        assert_eq!(claim_chunk(&settings(16, 0, 0)), 128);
        assert_eq!(claim_chunk(&settings(1024, 0, 0)), 512);
        // 10/s for a quarter of a 120 s lease, split over the four queued chunks.
        assert_eq!(claim_chunk(&settings(16, 10, 0)), 75);
        assert_eq!(claim_chunk(&settings(16, 2, 0)), 15);
        assert_eq!(claim_chunk(&settings(16, 0, 100)), 1);
    }
}
