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

    fn settings_with(base: u64, max: u64, give_up: u64) -> DeliverySettings {
        DeliverySettings {
            retry_base: Duration::from_secs(base),
            retry_max: Duration::from_secs(max),
            give_up_after: Duration::from_secs(give_up),
            ..settings()
        }
    }

    proptest::proptest! {
        #[test]
        fn the_delay_grows_with_each_attempt_and_stays_within_base_and_cap(
            base in 1u64..3600,
            extra in 0u64..100_000,
            attempts in 0i32..200,
        ) {
            let s = settings_with(base, base + extra, 3600);
            let this = delay(&s, attempts);
            let next = delay(&s, attempts.saturating_add(1));
            proptest::prop_assert!(this <= next, "{this:?} then {next:?}");
            proptest::prop_assert!(this >= s.retry_base && this <= s.retry_max);
        }

        #[test]
        fn a_retry_is_always_later_and_never_past_the_give_up_time(
            base in 1u64..3600,
            extra in 0u64..100_000,
            give_up in 1u64..(10 * 24 * 3600),
            attempts in 0i32..1000,
            elapsed in 0u64..(11 * 24 * 3600),
        ) {
            let s = settings_with(base, base + extra, give_up);
            let created = chrono::DateTime::from_timestamp(1_700_000_000, 0)
                .unwrap()
                .naive_utc();
            let now = created + Duration::from_secs(elapsed);
            let give_up_at = created + s.give_up_after;
            match next_attempt(&s, attempts, created, now) {
                Retry::At(at) => {
                    proptest::prop_assert!(now < give_up_at);
                    proptest::prop_assert!(at > now && at <= give_up_at, "{at} after {now}");
                }
                Retry::GiveUp => proptest::prop_assert!(now >= give_up_at),
            }
        }

        #[test]
        fn retrying_on_schedule_ends_in_giving_up_at_the_give_up_time(
            base in 1u64..3600,
            extra in 0u64..20_000,
            give_up in 1u64..(5 * 24 * 3600),
        ) {
            let s = settings_with(base, base + extra, give_up);
            let created = chrono::DateTime::from_timestamp(1_700_000_000, 0)
                .unwrap()
                .naive_utc();
            let give_up_at = created + s.give_up_after;
            // Attempt 1 at once, each later one when the schedule says, every one failing.
            let mut now = created;
            let mut attempts = 1;
            let most = give_up / base + 2;
            while let Retry::At(at) = next_attempt(&s, attempts, created, now) {
                now = at;
                attempts += 1;
                proptest::prop_assert!(u64::try_from(attempts).unwrap() <= most);
            }
            // The last attempt is made at the give-up time itself, not before and not after.
            proptest::prop_assert_eq!(now, give_up_at);
        }
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
