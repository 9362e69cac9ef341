//! The claimer: leases due emails in chunks (one short transaction per chunk), prepares
//! each digest issue once, and keeps a few chunks queued ahead of the senders.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::holds::Holds;
use super::job::Job;
use crate::config::DeliverySettings;
use crate::db::{self, Pool, StorageError, digests, outbound};
use crate::digest::{Personaliser, PreparedIssue};
use crate::queue_signal::QueueSignal;

/// Issues kept prepared; a worker rarely sends more than a few at a time.
const CACHED_ISSUES: usize = 64;
/// Chunks that may wait for senders: enough that the next claim is done before the
/// senders run dry, even when a claim takes as long as sending a chunk.
pub(super) const QUEUED_CHUNKS: usize = 4;
/// How long the claimer waits after a short claim before the next one.
const CLAIM_GATHER: Duration = Duration::from_millis(20);
/// The longest pause between the claimer's attempts to reach a failing database. Short,
/// so sending resumes within moments of the database's return: while it is down each
/// attempt already waits the pool's connection timeout, which paces the retries.
const STORAGE_RETRY_MAX: Duration = Duration::from_secs(2);

/// The claimer's task and what it needs.
pub(super) struct Claimer {
    pub pool: Pool,
    pub settings: DeliverySettings,
    pub personaliser: Arc<Personaliser>,
    pub signal: QueueSignal,
}

impl Claimer {
    /// The claimer: keeps the senders' queue filled until cancelled.
    pub async fn run(
        &self,
        queue: mpsc::Sender<Job>,
        chunk: usize,
        holds: &Holds,
        shutdown: &CancellationToken,
    ) {
        let mut issues: HashMap<i64, Arc<PreparedIssue>> = HashMap::new();
        let mut storage_backoff = Duration::from_millis(250);
        loop {
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
}

/// How many emails one claim leases. A few chunks may wait for senders, and a claimed
/// email must go out well within its lease, so a relay quota makes chunks smaller.
pub(super) fn claim_chunk(settings: &DeliverySettings) -> usize {
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
