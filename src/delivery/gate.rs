//! The last look before sending: readers who left after their copy was claimed.
//!
//! The claimer leases emails a few chunks ahead of the senders, so a reader can unsubscribe
//! while their copy waits in this worker. Checking when the row is claimed is too early,
//! and polling for departures (as [`super::holds`] does for paused sends) bounds the delay
//! in time, not in emails: at thousands of emails a second, half a second is thousands of
//! copies. So the gate stands between the claimed queue and the senders: it takes an
//! in-flight permit for each email, and for a small group at a time asks the database once
//! which digest copies no longer have a confirmed subscription; those are recorded as
//! skipped and the rest go to the senders. A permit is returned only once the email's
//! outcome is committed, so once an unsubscribe has committed, at most
//! `SPACEDIGEST_SEND_IN_FLIGHT` copies to that reader can still go out: those already past
//! the gate. Subscribers marked bounced (`db::bounces`) are held back the same way, from
//! transactional email too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::job::{Finished, Job, Outcome};
use crate::config::DeliverySettings;
use crate::db::{self, Pool, outbound};

/// Longest wait after the database could not be asked, before the next group.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A job past the gate, with the in-flight permit it holds until its outcome is recorded.
pub(super) struct Gated {
    pub job: Job,
    pub permit: OwnedSemaphorePermit,
}

/// Most emails checked with one query. Big enough that the query is never what limits
/// the send rate (a round trip per 32 emails allows tens of thousands a second), and a
/// quarter of the in-flight allowance at most, so the emails waiting for a sender leave
/// most permits to those being sent and recorded.
pub(super) fn group_size(settings: &DeliverySettings) -> usize {
    (settings.in_flight / 4).clamp(1, 64)
}

/// The gate's task and what it joins.
pub(super) struct Gate {
    pub pool: Pool,
    pub claimed: mpsc::Receiver<Job>,
    pub senders: mpsc::Sender<Gated>,
    pub done: mpsc::UnboundedSender<Finished>,
    pub in_flight: Arc<Semaphore>,
    pub group: usize,
    pub shutdown: CancellationToken,
}

impl Gate {
    /// Passes claimed emails on until the claimer has stopped and its queue is empty.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            // Room first, then permits: a permit is not held while the senders are busy.
            let Ok(room) = self.senders.reserve_many(self.group).await else {
                return;
            };
            let Some(first) = self.claimed.recv().await else {
                return;
            };
            if self.shutdown.is_cancelled() {
                // Stopping: nothing more is sent, and every claim is given back.
                self.finish(first, Outcome::Released);
                continue;
            }
            let permit = tokio::select! {
                permit = Arc::clone(&self.in_flight).acquire_owned() => permit.ok(),
                () = self.shutdown.cancelled() => None,
            };
            let Some(permit) = permit else {
                self.finish(first, Outcome::Released);
                continue;
            };
            let mut group = vec![(first, permit)];
            while group.len() < self.group {
                let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
                    break;
                };
                let Ok(job) = self.claimed.try_recv() else {
                    break;
                };
                group.push((job, permit));
            }
            match self.departed(&group).await {
                Ok(departed) => {
                    backoff = Duration::from_millis(100);
                    for ((job, permit), slot) in group.into_iter().zip(room) {
                        if departed.contains(&job.email.id) {
                            self.finish(job, Outcome::Skipped);
                        } else {
                            slot.send(Gated { job, permit });
                        }
                    }
                }
                Err(error) => {
                    // Unchecked, they must not go out; given back, they come round again.
                    tracing::warn!(%error, retry_in = ?backoff, "cannot check for readers who left; claims given back");
                    for (job, _) in group {
                        self.finish(job, Outcome::Released);
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.shutdown.cancelled() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The emails in `group` not to send: digest copies whose reader has left, and any
    /// email to a subscriber marked bounced. One query per kind present in the group.
    async fn departed(
        &self,
        group: &[(Job, OwnedSemaphorePermit)],
    ) -> Result<Vec<i64>, db::StorageError> {
        let (digests, transactional): (Vec<i64>, Vec<i64>) = {
            let (d, t): (Vec<_>, Vec<_>) = group
                .iter()
                .map(|(job, _)| job)
                .partition(|job| job.email.issue_id.is_some());
            (
                d.iter().map(|job| job.email.id).collect(),
                t.iter().map(|job| job.email.id).collect(),
            )
        };
        db::run(&self.pool, move |conn| {
            let mut departed = if digests.is_empty() {
                Vec::new()
            } else {
                outbound::departed_readers(conn, &digests)?
            };
            if !transactional.is_empty() {
                departed.extend(db::bounces::to_bounced(conn, &transactional)?);
            }
            Ok(departed)
        })
        .await
    }

    /// Sends an outcome straight to the recorder; the email took no permit along.
    fn finish(&self, job: Job, outcome: Outcome) {
        // The recorder outlives the gate; if it is gone, the lease brings the email back.
        let _ = self.done.send(Finished {
            email: job.email,
            outcome,
            _permit: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_a_quarter_of_the_in_flight_allowance_within_bounds() {
        let with = |in_flight| {
            group_size(&DeliverySettings {
                concurrency: 1,
                in_flight,
                smtp_timeout: Duration::from_secs(30),
                lease: Duration::from_secs(120),
                retry_base: Duration::from_secs(300),
                retry_max: Duration::from_secs(4000),
                give_up_after: Duration::from_secs(3600),
                poll_interval: Duration::from_secs(1),
                rate_per_second: 0,
                rate_per_hour: 0,
            })
        };
        assert_eq!(with(128), 32);
        assert_eq!(with(8), 2);
        assert_eq!(with(1), 1);
        assert_eq!(with(65536), 64);
    }
}
