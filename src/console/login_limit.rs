//! Login rate limits, counted in the database so that every web process shares them.
//!
//! Three windows of [`WINDOW`] each:
//! - one account from one IP: [`PER_ACCOUNT_AND_IP`] failures. This is what stops a
//!   guesser at the operator's door, and it never affects the operator's own address.
//! - one IP, any accounts: [`PER_IP`] failures, against one machine spraying addresses.
//! - one account from anywhere: [`PER_ACCOUNT`] failures, against a botnet. It is high,
//!   so that locking the operator out takes a sustained distributed attack, and it ends
//!   by itself [`WINDOW`] after the attack stops: nobody is ever locked out for good.
//!
//! An attempt is [`reserve`]d, counted and recorded in one step for its account and IP,
//! before its password is checked: so attempts sent at the same moment, to any of the
//! web processes, are counted one after another, and no more are checked than the
//! limits allow. It counts as a failure until its outcome says otherwise: a success
//! clears that account's failures from that IP, an attempt that was never checked (no
//! turn to hash it) is forgotten, and a process that dies mid-check leaves it counted.
//! A refused attempt is not counted, so waiting always works. Unknown addresses count
//! like known ones, so the answers do not tell which exist.

use std::time::Duration;

use chrono::NaiveDateTime;

use crate::db::DbConnection;
use crate::db::operators::{self, FailureCounts};

/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures of one account from one IP within the window.
pub const PER_ACCOUNT_AND_IP: i64 = 5;
/// Failures from one IP within the window, whatever the accounts.
pub const PER_IP: i64 = 20;
/// Failures of one account within the window, whatever the IPs.
pub const PER_ACCOUNT: i64 = 100;

/// An attempt counted against the limits from before its check until its outcome is
/// recorded ([`Attempt::failed`], [`Attempt::succeeded`], [`Attempt::not_made`]).
/// Passwords now; any other secret checked at login (a one-time code) can be counted
/// the same way.
#[derive(Debug)]
#[must_use = "an attempt counts as a failure until it is settled"]
pub struct Attempt {
    id: i64,
    email_key: String,
    ip: String,
}

/// Reserves an attempt at `email_key` from `ip`, or says how long to wait when a limit
/// is reached (nothing is counted then).
pub fn reserve(
    conn: &mut DbConnection,
    email_key: &str,
    ip: &str,
    now: NaiveDateTime,
) -> diesel::QueryResult<Result<Attempt, Duration>> {
    let reserved =
        operators::reserve_attempt(conn, email_key, ip, now, window_start(now), |counts| {
            retry_after(counts, now)
        })?;
    Ok(reserved.map(|id| Attempt {
        id,
        email_key: email_key.to_owned(),
        ip: ip.to_owned(),
    }))
}

impl Attempt {
    /// The secret was wrong, or the account unknown: it stays counted, nothing to write.
    pub fn failed(self) {}

    /// The secret was right: this account's failures from this IP are forgotten, this
    /// attempt's included.
    pub fn succeeded(self, conn: &mut DbConnection) -> diesel::QueryResult<()> {
        operators::clear_failures(conn, &self.email_key, &self.ip)
    }

    /// It was never checked (no turn to hash it): forgotten, as if never made.
    pub fn not_made(self, conn: &mut DbConnection) -> diesel::QueryResult<()> {
        operators::forget_attempt(conn, self.id)
    }
}

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
fn window_start(now: NaiveDateTime) -> NaiveDateTime {
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
