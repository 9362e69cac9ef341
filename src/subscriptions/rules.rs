//! The rules of a signup, decided once for both backends: given what is stored about the
//! address and its mailbox, what a signup changes and whether a confirmation goes out.
//! No database here: the group writer reads the inputs, calls [`decide`] for each signup
//! in order, and stores the decisions.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use crate::config::SignupSettings;
use crate::db::states::SubscriptionStatus as Status;

/// What the signup did. The reader sees the same answer for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    /// A confirmation email is queued.
    ConfirmationQueued,
    /// Every requested newsletter was already confirmed: nothing to send.
    AlreadySubscribed,
    /// A confirmation is needed but the mailbox's limits say not now: nothing changed.
    Throttled,
    /// The address is marked bounced: nothing is changed and nothing is sent to it.
    Bounced,
}

impl SignupOutcome {
    /// The `outcome` label of the signups counter.
    pub const fn label(self) -> &'static str {
        match self {
            Self::ConfirmationQueued => "confirmation_queued",
            Self::AlreadySubscribed => "already_subscribed",
            Self::Throttled => "throttled",
            Self::Bounced => "bounced",
        }
    }
}

/// What is stored about one address when a signup of it is decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// The address has a subscriber row.
    pub known: bool,
    /// Mail to it bounced, so nothing more is sent to it.
    pub bounced: bool,
    /// Its subscriptions, by newsletter id.
    pub subscriptions: BTreeMap<i64, Status>,
}

/// The confirmation emails queued in the last day for one mailbox, whatever spelling of
/// it each was addressed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxHistory {
    sent: Vec<NaiveDateTime>,
}

/// The per-mailbox limits on confirmation emails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Least time between two confirmation emails to one mailbox.
    pub resend_interval: chrono::Duration,
    /// Most confirmation emails to one mailbox in any 24 hours.
    pub per_day: u32,
}

/// How far back [`MailboxHistory`] must reach for [`Limits::per_day`].
pub const DAY: chrono::Duration = chrono::Duration::hours(24);

/// What one signup changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every newsletter asked for is confirmed already: nothing changes, nothing is sent.
    AlreadySubscribed,
    /// Mail to the address bounced: nothing changes, nothing is sent.
    Bounced,
    /// The mailbox had its confirmation emails for now: nothing changes, so nothing a
    /// later click could confirm, and the earlier link keeps working.
    Throttled,
    /// A confirmation email goes out with a new link, which replaces the address's
    /// earlier unused links.
    Confirm {
        /// The newsletters (ids, ascending) that await confirmation from now on and that
        /// the new link confirms: those asked for that were not confirmed, and those
        /// already pending. A newsletter the reader left stays left unless asked for.
        confirms: Vec<i64>,
        /// The signup's name and IP replace the stored ones: the address has no
        /// confirmed subscription, so no reader's details are overwritten by a stranger.
        rename: bool,
    },
}

impl Limits {
    /// The configured limits.
    pub fn of(signup: &SignupSettings) -> Self {
        Self {
            resend_interval: chrono::Duration::from_std(signup.confirmation_resend_interval)
                .unwrap_or(chrono::Duration::MAX),
            per_day: signup.confirmations_per_day,
        }
    }
}

impl MailboxHistory {
    /// A mailbox's history from the times its confirmation emails were queued.
    pub fn new(mut sent: Vec<NaiveDateTime>) -> Self {
        sent.sort_unstable();
        Self { sent }
    }

    /// Whether another confirmation email may go to the mailbox at `now`.
    pub fn allows(&self, limits: &Limits, now: NaiveDateTime) -> bool {
        let today = self.sent.iter().filter(|&&at| at > now - DAY).count();
        let rested = self
            .sent
            .last()
            .is_none_or(|&latest| latest <= now - limits.resend_interval);
        today < usize::try_from(limits.per_day).unwrap_or(usize::MAX) && rested
    }

    /// Counts a confirmation email queued at `now`.
    pub fn record(&mut self, now: NaiveDateTime) {
        self.sent.push(now);
    }
}

impl Decision {
    /// The outcome the caller reports (the reader's answer is the same for all).
    pub fn outcome(&self) -> SignupOutcome {
        match self {
            Self::AlreadySubscribed => SignupOutcome::AlreadySubscribed,
            Self::Bounced => SignupOutcome::Bounced,
            Self::Throttled => SignupOutcome::Throttled,
            Self::Confirm { .. } => SignupOutcome::ConfirmationQueued,
        }
    }
}

/// Decides a signup of an address, standing as it does, for the newsletters `asked`.
pub fn decide(
    standing: &Standing,
    mailbox: &MailboxHistory,
    asked: &[i64],
    limits: &Limits,
    now: NaiveDateTime,
) -> Decision {
    let status = |newsletter: &i64| standing.subscriptions.get(newsletter).copied();
    if asked.iter().all(|n| status(n) == Some(Status::Confirmed)) {
        return Decision::AlreadySubscribed;
    }
    // A confirmation would bounce too, and count against our sender.
    if standing.bounced {
        return Decision::Bounced;
    }
    if !mailbox.allows(limits, now) {
        return Decision::Throttled;
    }
    let mut confirms: Vec<i64> = standing
        .subscriptions
        .iter()
        .filter(|(_, status)| **status == Status::Pending)
        .map(|(newsletter, _)| *newsletter)
        .chain(
            asked
                .iter()
                .copied()
                .filter(|n| status(n) != Some(Status::Confirmed)),
        )
        .collect();
    confirms.sort_unstable();
    confirms.dedup();
    let rename = !standing
        .subscriptions
        .values()
        .any(|status| *status == Status::Confirmed);
    Decision::Confirm { confirms, rename }
}

impl Standing {
    /// The standing after `decision` is stored.
    pub fn apply(&mut self, decision: &Decision) {
        if let Decision::Confirm { confirms, .. } = decision {
            self.known = true;
            for newsletter in confirms {
                self.subscriptions.insert(*newsletter, Status::Pending);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(minutes: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc()
            + chrono::Duration::minutes(minutes)
    }

    const LIMITS: Limits = Limits {
        resend_interval: chrono::Duration::minutes(10),
        per_day: 5,
    };

    fn standing(subscriptions: &[(i64, Status)]) -> Standing {
        Standing {
            known: !subscriptions.is_empty(),
            bounced: false,
            subscriptions: subscriptions.iter().copied().collect(),
        }
    }

    #[test]
    fn a_new_address_is_asked_to_confirm_what_it_chose() {
        let decision = decide(
            &Standing::default(),
            &MailboxHistory::default(),
            &[3, 1],
            &LIMITS,
            at(0),
        );
        assert_eq!(
            decision,
            Decision::Confirm {
                confirms: vec![1, 3],
                rename: true
            }
        );
    }

    #[test]
    fn a_known_address_is_asked_about_everything_pending_but_not_what_it_left() {
        use Status::*;
        let stored = standing(&[
            (1, Confirmed),
            (2, Pending),
            (3, Unsubscribed),
            (4, Unsubscribed),
        ]);
        let decision = decide(
            &stored,
            &MailboxHistory::new(vec![at(-11)]),
            &[1, 4, 5],
            &LIMITS,
            at(0),
        );
        assert_eq!(
            decision,
            Decision::Confirm {
                confirms: vec![2, 4, 5],
                rename: false
            }
        );
    }

    #[test]
    fn nothing_to_confirm_bounced_and_throttled_change_nothing() {
        use Status::*;
        let confirmed = standing(&[(1, Confirmed)]);
        let none = MailboxHistory::default();
        assert_eq!(
            decide(&confirmed, &none, &[1], &LIMITS, at(0)),
            Decision::AlreadySubscribed
        );
        let mut bounced = standing(&[(1, Pending)]);
        bounced.bounced = true;
        assert_eq!(
            decide(&bounced, &none, &[2], &LIMITS, at(0)),
            Decision::Bounced
        );
        let recent = MailboxHistory::new(vec![at(-9)]);
        assert_eq!(
            decide(&Standing::default(), &recent, &[1], &LIMITS, at(0)),
            Decision::Throttled
        );
        let full_day = MailboxHistory::new((0..5).map(|h| at(-60 * (h + 1))).collect());
        assert_eq!(
            decide(&Standing::default(), &full_day, &[1], &LIMITS, at(0)),
            Decision::Throttled
        );
        // A day later the oldest no longer counts.
        assert!(full_day.allows(&LIMITS, at(60 * 20)));
    }

    fn status() -> impl Strategy<Value = Status> {
        prop_oneof![
            Just(Status::Pending),
            Just(Status::Confirmed),
            Just(Status::Unsubscribed)
        ]
    }

    proptest! {
        #[test]
        fn a_decision_touches_only_what_it_may(
            stored in prop::collection::btree_map(0i64..6, status(), 0..6),
            asked in prop::collection::vec(0i64..6, 1..4),
            bounced in any::<bool>(),
            sent in prop::collection::vec(-2000i64..0, 0..8),
        ) {
            let before = Standing { known: !stored.is_empty(), bounced, subscriptions: stored };
            let history = MailboxHistory::new(sent.into_iter().map(at).collect());
            let decision = decide(&before, &history, &asked, &LIMITS, at(0));
            let mut after = before.clone();
            after.apply(&decision);
            match &decision {
                Decision::Confirm { confirms, rename } => {
                    prop_assert!(!bounced);
                    prop_assert!(history.allows(&LIMITS, at(0)));
                    // The link confirms exactly what is pending afterwards.
                    let pending: Vec<i64> = after.subscriptions.iter()
                        .filter(|(_, s)| **s == Status::Pending).map(|(n, _)| *n).collect();
                    prop_assert_eq!(confirms, &pending);
                    for (newsletter, status) in &before.subscriptions {
                        let now = after.subscriptions[newsletter];
                        match status {
                            // Confirmed stays confirmed, and a newsletter left and not
                            // asked for again stays left.
                            Status::Confirmed => prop_assert_eq!(now, Status::Confirmed),
                            Status::Unsubscribed if !asked.contains(newsletter) => {
                                prop_assert_eq!(now, Status::Unsubscribed);
                            }
                            _ => prop_assert_eq!(now, Status::Pending),
                        }
                    }
                    for newsletter in &asked {
                        prop_assert!(after.subscriptions.contains_key(newsletter));
                    }
                    prop_assert_eq!(
                        *rename,
                        !before.subscriptions.values().any(|s| *s == Status::Confirmed)
                    );
                }
                _ => prop_assert_eq!(&after, &before),
            }
        }

        #[test]
        fn a_mailbox_never_gets_more_than_the_limits_allow(
            gaps in prop::collection::vec(0i64..400, 1..60),
            interval in 0i64..30,
            per_day in 0u32..6,
        ) {
            let limits = Limits {
                resend_interval: chrono::Duration::minutes(interval),
                per_day,
            };
            let mut history = MailboxHistory::default();
            let mut standing = Standing::default();
            let mut now = 0;
            let mut sent = Vec::new();
            for gap in gaps {
                now += gap;
                let decision = decide(&standing, &history, &[1], &limits, at(now));
                if matches!(decision, Decision::Confirm { .. }) {
                    history.record(at(now));
                    sent.push(now);
                }
                standing.apply(&decision);
            }
            for (i, &t) in sent.iter().enumerate() {
                let in_day = sent[..=i].iter().filter(|&&s| s > t - 24 * 60).count();
                prop_assert!(in_day <= usize::try_from(per_day).unwrap());
                if i > 0 {
                    prop_assert!(t - sent[i - 1] >= interval);
                }
            }
        }
    }
}
