//! The per-address limits hold per mailbox: `victim+1@`, `victim+2@` and `v.ictim@gmail.com`
//! reach one inbox, so between them they get one confirmation email per resend interval
//! and the daily cap, not one allowance each. Each spelling is still mailed exactly as
//! typed. Two servers on one database taking signups of one mailbox at the same moment
//! cannot both pass its limits.
//!
//! Time passes as in `bombing`: the queued confirmation emails' `created_at` is moved back.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::StreamExt;
use spacedigest::config::Settings;

use crate::support::app::{Mail, TestApp, spawn_app_on, spawn_app_with, urlencode};

/// Sixteen spellings of one Gmail mailbox: 8 with a `+tag`, 8 with dots (some at
/// googlemail.com, some in capitals). Domains are written lower-case, as they are stored.
fn spellings(user: &str) -> Vec<String> {
    let mut all: Vec<String> = (1..=8)
        .map(|i| format!("{user}+news{i}@gmail.com"))
        .collect();
    for i in 1..=8 {
        let cut = 1 + (i - 1) % (user.len() - 1);
        let dotted = format!("{}.{}", &user[..cut], &user[cut..]);
        let dotted = if i % 2 == 0 {
            dotted.to_uppercase()
        } else {
            dotted
        };
        let domain = if i % 3 == 0 {
            "googlemail.com"
        } else {
            "gmail.com"
        };
        all.push(format!("{dotted}@{domain}"));
    }
    all
}

async fn sign_up_at(app: &TestApp, base: &str, email: &str) -> u16 {
    app.client
        .post(format!("{base}/subscriptions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={}&name=Reader", urlencode(email)))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Confirmation emails queued so far (the SMTP server sees them a moment later).
async fn queued(app: &TestApp) -> usize {
    app.outbound()
        .await
        .iter()
        .filter(|e| e.kind.as_str() == "confirmation")
        .count()
}

#[tokio::test]
async fn sixteen_spellings_of_one_mailbox_share_one_allowance() {
    let defaults = Settings::defaults();
    let app = spawn_app_with(Mail::Server, |s| {
        s.signup.confirmation_resend_interval = defaults.signup.confirmation_resend_interval;
        s.signup.confirmations_per_day = defaults.signup.confirmations_per_day;
    })
    .await;
    let interval =
        i64::try_from(defaults.signup.confirmation_resend_interval.as_secs() / 60).unwrap();
    let cap = usize::try_from(defaults.signup.confirmations_per_day).unwrap();
    let spelled = spellings("victimreader");
    // Every spelling signs up in each round, eight at a time; rounds a resend interval
    // apart, for longer than the cap allows, all within one day.
    let rounds = cap + 3;
    let mut per_round = Vec::new();
    for round in 0..rounds {
        if round > 0 {
            app.age_confirmations(interval + 1).await;
        }
        let answers: Vec<u16> = futures_util::stream::iter(&spelled)
            .map(|email| sign_up_at(&app, &app.address, email))
            .buffer_unordered(8)
            .collect()
            .await;
        assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
        per_round.push(queued(&app).await);
    }
    let total = *per_round.last().unwrap();
    let mails = app.emails(total).await;
    app.smtp()
        .assert_no_more_messages(total, Duration::from_millis(800))
        .await;
    let typed: BTreeSet<&str> = spelled.iter().map(String::as_str).collect();
    let recipients: Vec<String> = mails.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    let subscribers = app.count_subscribers().await;
    crate::support::figures::report(
        "mailbox-caps",
        &format!(
            "{} spellings of one Gmail mailbox (8 +tag, 8 dotted, some at googlemail.com or in \
             capitals), each signing up in {rounds} rounds {} minutes apart: emails to the \
             mailbox {} (cap {cap}), after the first round {}; per round {per_round:?}; \
             subscribers stored {subscribers}; every email to a spelling as typed: {}",
            spelled.len(),
            interval + 1,
            mails.len(),
            per_round[0],
            recipients.iter().all(|r| typed.contains(r.as_str())),
        ),
    );
    assert_eq!(per_round[0], 1, "one email within the resend interval");
    assert_eq!(mails.len(), cap, "the daily cap, whatever the spelling");
    for recipient in &recipients {
        assert!(
            typed.contains(recipient.as_str()),
            "{recipient} is not a spelling that was typed"
        );
    }
    // Only spellings that were sent a link are stored, each its own subscriber.
    assert!(
        (1..=i64::try_from(cap).unwrap()).contains(&subscribers),
        "{subscribers}"
    );
}

#[tokio::test]
async fn two_servers_cannot_both_pass_one_mailboxs_limits() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.signup.confirmation_resend_interval = Duration::from_secs(600);
        s.signup.confirmations_per_day = 5;
    })
    .await;
    let other = spawn_app_on(&app).await;
    let trials = if crate::support::figures::full() {
        60
    } else {
        12
    };
    let mut more_than_one = 0;
    let mut emails = Vec::new();
    for trial in 0..trials {
        let user = format!(
            "mailbox{trial:03}x{}",
            hex::encode(&spacedigest::tokens::random_bytes()[..3])
        );
        let spelled = spellings(&user);
        let before = queued(&app).await;
        // All sixteen at once, alternating between the two servers.
        let answers =
            futures_util::future::join_all(spelled.iter().enumerate().map(|(i, email)| {
                let base = if i % 2 == 0 {
                    &app.address
                } else {
                    &other.address
                };
                sign_up_at(&app, base, email)
            }))
            .await;
        assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
        let sent = queued(&app).await - before;
        if sent > 1 {
            more_than_one += 1;
        }
        emails.push(sent);
    }
    crate::support::figures::report(
        "mailbox-race",
        &format!(
            "{trials} mailboxes, each signed up in 16 spellings at once through two servers on one \
             database: confirmation emails per mailbox {:?}; mailboxes that got more than one: \
             {more_than_one}",
            emails.iter().copied().collect::<BTreeSet<_>>()
        ),
    );
    assert_eq!(more_than_one, 0, "{emails:?}");
    assert!(emails.iter().all(|n| *n == 1), "{emails:?}");
}
