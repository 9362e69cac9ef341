//! The delivery worker: how many SMTP sessions, how far sending may run ahead of the
//! database, deadlines, leases, the retry schedule and rate limits for relay quotas.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::values::{Count, Hours, Seconds};

/// How the delivery worker talks to the mail server and retries.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// SMTP sessions per worker, each sending one message at a time.
    pub concurrency: usize,
    /// Most messages a worker may have sent without having recorded them yet: what a crash
    /// can at worst send twice. Outcomes are committed in groups, so this also bounds how
    /// far sending may run ahead of the database.
    pub in_flight: usize,
    /// How long one SMTP command may take before the attempt counts as failed.
    pub smtp_timeout: Duration,
    /// How long a claimed email stays invisible to other workers.
    pub lease: Duration,
    /// First retry delay after a transient failure; it doubles per attempt.
    pub retry_base: Duration,
    /// Longest delay between two attempts.
    pub retry_max: Duration,
    /// After this long since an email was queued, a transient failure becomes final.
    pub give_up_after: Duration,
    /// How often an idle worker looks for due email (it is also woken on new email).
    pub poll_interval: Duration,
    /// At most this many messages per second per worker (0 = no limit), for relay quotas.
    pub rate_per_second: u32,
    /// At most this many messages per hour per worker (0 = no limit).
    pub rate_per_hour: u32,
}

/// The delivery settings as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawDelivery {
    #[serde(default = "Count::of::<16>")]
    send_concurrency: Count<1, 1024>,
    /// Unset: [`default_in_flight`] of the concurrency.
    #[serde(default)]
    send_in_flight: Option<usize>,
    #[serde(default = "Seconds::of::<30>")]
    smtp_timeout_seconds: Seconds,
    #[serde(default = "Seconds::of::<120>")]
    delivery_lease_seconds: Seconds,
    // Postfix's schedule: 5 minutes, doubling to about 67 minutes, for 5 days.
    #[serde(default = "Seconds::of::<300>")]
    retry_base_seconds: Seconds,
    #[serde(default = "Seconds::of::<4000>")]
    retry_max_seconds: Seconds,
    #[serde(default = "Hours::of::<120>")]
    retry_give_up_hours: Hours,
    #[serde(default)]
    send_rate_per_second: u32,
    #[serde(default)]
    send_rate_per_hour: u32,
}

/// Enough that group commits keep the sessions busy, small enough that a crash
/// repeats little.
fn default_in_flight(concurrency: usize) -> usize {
    (8 * concurrency).max(128)
}

impl RawDelivery {
    pub(super) fn validate(self) -> Result<DeliverySettings, ConfigError> {
        let (smtp_timeout, lease) = (self.smtp_timeout_seconds, self.delivery_lease_seconds);
        if lease.units() < 2 * smtp_timeout.units() {
            return Err(ConfigError::new(
                "delivery_lease_seconds",
                format!(
                    "must be at least twice SPACEDIGEST_SMTP_TIMEOUT_SECONDS ({}), or a slow send could be sent twice",
                    2 * smtp_timeout.units()
                ),
            ));
        }
        let (retry_base, retry_max) = (self.retry_base_seconds, self.retry_max_seconds);
        if retry_max.units() < retry_base.units() {
            return Err(ConfigError::new(
                "retry_max_seconds",
                "must not be less than SPACEDIGEST_RETRY_BASE_SECONDS",
            ));
        }
        let concurrency = self.send_concurrency.as_usize();
        let in_flight = self
            .send_in_flight
            .unwrap_or_else(|| default_in_flight(concurrency));
        if in_flight < concurrency || in_flight > 65536 {
            return Err(ConfigError::new(
                "send_in_flight",
                "must be at least SPACEDIGEST_SEND_CONCURRENCY and at most 65536",
            ));
        }
        Ok(DeliverySettings {
            concurrency,
            in_flight,
            smtp_timeout: smtp_timeout.duration(),
            lease: lease.duration(),
            retry_base: retry_base.duration(),
            retry_max: retry_max.duration(),
            give_up_after: self.retry_give_up_hours.duration(),
            poll_interval: Duration::from_secs(1),
            rate_per_second: self.send_rate_per_second,
            rate_per_hour: self.send_rate_per_hour,
        })
    }
}
