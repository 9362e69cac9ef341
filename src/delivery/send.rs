//! The senders: each owns one SMTP session per relay, builds each reader's copy, waits
//! for the relay's quota, and sends it within the lease and the SMTP deadline.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::Quota;
use tokio::sync::{Mutex, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::gate::Gated;
use super::holds::Holds;
use super::job::{Finished, Job, Outcome};
use crate::config::DeliverySettings;
use crate::db::outbound;
use crate::digest::{Personaliser, PreparedIssue};
use crate::mail::{SendError, Sessions};
use crate::observability::Metrics;

/// One delivery task, with a session on each relay.
pub(super) struct Sender {
    pub sessions: Sessions,
    pub personaliser: Arc<Personaliser>,
    pub limits: Arc<Vec<governor::DefaultDirectRateLimiter>>,
    pub jobs: Arc<Mutex<mpsc::Receiver<Gated>>>,
    pub done: mpsc::UnboundedSender<Finished>,
    pub holds: Arc<Holds>,
    /// The longest one attempt may take (`SPACEDIGEST_SMTP_TIMEOUT_SECONDS`).
    pub send_deadline: Duration,
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
}

impl Sender {
    /// Sends gated jobs until the gate has stopped and its queue is empty.
    pub async fn run(mut self) {
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
        let session = self.sessions.for_stream(email.kind.stream());
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

/// Limiters for relays with quotas (messages per second and per hour).
pub(super) fn rate_limits(settings: &DeliverySettings) -> Vec<governor::DefaultDirectRateLimiter> {
    let per_second = NonZeroU32::new(settings.rate_per_second).map(Quota::per_second);
    let per_hour = NonZeroU32::new(settings.rate_per_hour).map(Quota::per_hour);
    [per_second, per_hour]
        .into_iter()
        .flatten()
        .map(governor::RateLimiter::direct)
        .collect()
}
