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
mod claim;
mod gate;
mod holds;
mod job;
mod record;
mod send;

use std::sync::Arc;

use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{BounceSettings, DeliverySettings, Settings};
use crate::db::Pool;
use crate::digest::Personaliser;
use crate::mail::Mailers;
use crate::observability::Metrics;
use crate::queue_signal::QueueSignal;
use crate::tokens::UnsubscribeSigner;
use claim::{Claimer, QUEUED_CHUNKS, claim_chunk};
use gate::Gated;
use holds::Holds;
use job::{Finished, Job};
use record::record_outcomes;
use send::{Sender, rate_limits};

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
    /// It takes its own sections (delivery, bounces) and what the digest's personaliser
    /// needs to sign and link each copy.
    pub fn new(
        pool: Pool,
        mailers: Mailers,
        settings: &Settings,
        signer: UnsubscribeSigner,
        metrics: Arc<Metrics>,
        signal: QueueSignal,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            mailers,
            settings: settings.delivery.clone(),
            bounces: settings.bounces.clone(),
            personaliser: Arc::new(Personaliser::new(settings.clone(), signer)?),
            limits: Arc::new(rate_limits(&settings.delivery)),
            signal,
            metrics,
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
        Claimer {
            pool: self.pool,
            settings: self.settings,
            personaliser: self.personaliser,
            signal: self.signal,
        }
        .run(work_tx, chunk, &holds, &shutdown)
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
}
