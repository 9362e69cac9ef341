//! Login rate limits, counted in the database so that every web process shares them.
//!
//! Three windows of [`WINDOW`] each, checked before a password is looked at:
//! - one account from one IP: [`PER_ACCOUNT_AND_IP`] failures. This is what stops a
//!   guesser at the operator's door, and it never affects the operator's own address.
//! - one IP, any accounts: [`PER_IP`] failures, against one machine spraying addresses.
//! - one account from anywhere: [`PER_ACCOUNT`] failures, against a botnet. It is high,
//!   so that locking the operator out takes a sustained distributed attack, and it ends
//!   by itself [`WINDOW`] after the attack stops: nobody is ever locked out for good.
//!
//! A refused attempt is not counted, so waiting always works. Successful logins clear
//! that account's failures from that IP. Unknown addresses count like known ones, so
//! the answers do not tell which exist.

use std::time::Duration;

use chrono::NaiveDateTime;

use crate::db::operators::FailureCounts;

/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures of one account from one IP within the window.
pub const PER_ACCOUNT_AND_IP: i64 = 5;
/// Failures from one IP within the window, whatever the accounts.
pub const PER_IP: i64 = 20;
/// Failures of one account within the window, whatever the IPs.
pub const PER_ACCOUNT: i64 = 100;

/// When the next attempt may be made, if one is refused now.
pub fn retry_after(counts: &FailureCounts, now: NaiveDateTime) -> Option<Duration> {
    let window = chrono::Duration::from_std(WINDOW).unwrap_or_default();
    [
        (counts.account_from_ip, PER_ACCOUNT_AND_IP),
        (counts.ip, PER_IP),
        (counts.account, PER_ACCOUNT),
    ]
    .into_iter()
    .filter(|((n, _), limit)| n >= limit)
    .filter_map(|((_, oldest), _)| oldest)
    .map(|oldest| {
        (oldest + window - now)
            .to_std()
            .unwrap_or(Duration::from_secs(1))
    })
    .max()
}

/// The earliest failure still counted at `now`.
pub fn window_start(now: NaiveDateTime) -> NaiveDateTime {
    now - chrono::Duration::from_std(WINDOW).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u32) -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 11, 26)
            .unwrap()
            .and_hms_opt(10, minute, 0)
            .unwrap()
    }

    #[test]
    fn under_every_limit_nothing_waits() {
        let counts = FailureCounts {
            account: (4, Some(at(0))),
            account_from_ip: (4, Some(at(0))),
            ip: (19, Some(at(0))),
        };
        assert_eq!(retry_after(&counts, at(5)), None);
    }

    #[test]
    fn the_wait_ends_when_the_oldest_counted_failure_ages_out() {
        let counts = FailureCounts {
            account: (5, Some(at(0))),
            account_from_ip: (5, Some(at(2))),
            ip: (5, Some(at(2))),
        };
        assert_eq!(
            retry_after(&counts, at(10)),
            Some(Duration::from_secs(7 * 60))
        );
    }
}
