//! When to try a failed email again.

use std::time::Duration;

use chrono::NaiveDateTime;

use crate::config::DeliverySettings;

/// What to do after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time.
    At(NaiveDateTime),
    /// The email has waited past the give-up time: fail it.
    GiveUp,
}

/// The delay before attempt `attempts + 1`: the base, doubling per attempt, capped.
pub fn delay(settings: &DeliverySettings, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    settings
        .retry_base
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(settings.retry_max)
}

/// Decides the next attempt for an email queued at `created_at` that failed `attempts` times.
pub fn next_attempt(
    settings: &DeliverySettings,
    attempts: i32,
    created_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Retry {
    let next = now + delay(settings, attempts);
    let give_up_at = created_at + settings.give_up_after;
    if now >= give_up_at {
        Retry::GiveUp
    } else {
        // The last attempt lands on the give-up time rather than past it.
        Retry::At(next.min(give_up_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            in_flight: 64,
            concurrency: 1,
            smtp_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(120),
            retry_base: Duration::from_secs(300),
            retry_max: Duration::from_secs(4000),
            give_up_after: Duration::from_secs(5 * 24 * 3600),
            poll_interval: Duration::from_secs(1),
            rate_per_second: 0,
            rate_per_hour: 0,
        }
    }

    #[test]
    fn delay_doubles_from_the_base_up_to_the_cap() {
        let s = settings();
        let delays: Vec<u64> = (1..=7).map(|a| delay(&s, a).as_secs()).collect();
        assert_eq!(delays, vec![300, 600, 1200, 2400, 4000, 4000, 4000]);
        assert_eq!(delay(&s, i32::MAX).as_secs(), 4000);
    }

    #[test]
    fn gives_up_after_the_configured_time() {
        let s = settings();
        let created = chrono::DateTime::from_timestamp(1_700_000_000, 0)
            .unwrap()
            .naive_utc();
        let soon = created + Duration::from_secs(60);
        assert_eq!(
            next_attempt(&s, 1, created, soon),
            Retry::At(soon + Duration::from_secs(300))
        );
        let nearly = created + s.give_up_after - Duration::from_secs(10);
        assert_eq!(
            next_attempt(&s, 40, created, nearly),
            Retry::At(created + s.give_up_after)
        );
        assert_eq!(
            next_attempt(&s, 41, created, created + s.give_up_after),
            Retry::GiveUp
        );
    }
}
