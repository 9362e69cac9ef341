//! Bounces the mail server reports: a 5xx refusal is a hard bounce, a temporary failure
//! retried until the give-up time a soft one.

use std::time::Duration;

use diesel::prelude::*;
use spacedigest::db::schema::outbound_emails;

use super::{day, digests_to, events, send_digest_on, standing};
use crate::support::add_confirmed_readers;
use crate::support::app::{Mail, TestApp, spawn_app_with, urlencode};
use crate::support::smtp_server::Behaviour;

const SETTLE: Duration = Duration::from_secs(60);

fn refuse(address: &str, code: u16) -> Behaviour {
    Behaviour::RejectRcptTo {
        address: address.to_owned(),
        code,
        text: if code >= 500 {
            "5.1.1 <mailbox> does not exist".into()
        } else {
            "4.2.2 mailbox full, try later".into()
        },
    }
}

/// Digest rows queued for `email` (bounced readers get none at fan-out).
async fn queued_for(app: &TestApp, email: &str) -> i64 {
    let email = email.to_owned();
    app.db(move |c| {
        outbound_emails::table
            .filter(outbound_emails::recipient_email.eq(email))
            .count()
            .get_result(c)
    })
    .await
}

#[tokio::test]
async fn one_hard_bounce_at_limit_one_stops_the_next_digest_and_signups_send_nothing() {
    let app = spawn_app_with(Mail::Server, |s| s.bounces.hard_limit = 1).await;
    let readers = add_confirmed_readers(&app, "hard1", 3).await;
    let gone = &readers[0];
    app.smtp().set_behaviour(refuse(gone, 550));
    send_digest_on(&app, day(1)).await;
    let records = app.wait_until_settled(SETTLE).await;
    let failed: Vec<_> = records
        .iter()
        .filter(|r| r.status.as_str() == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{records:?}");
    assert_eq!(&failed[0].recipient_email, gone);

    let gone_standing = standing(&app, gone).await;
    assert!(gone_standing.bounced_at.is_some(), "{gone_standing:?}");
    assert_eq!(gone_standing.hard, 1);
    assert_eq!(
        events(&app).await,
        vec![(gone.clone(), "hard".into(), "smtp".into())]
    );

    // The next day the server would take it, but nothing is sent to a bounced reader.
    app.smtp().set_behaviour(Behaviour::Accept);
    send_digest_on(&app, day(2)).await;
    app.wait_until_settled(SETTLE).await;
    assert_eq!(queued_for(&app, gone).await, 1, "only the first day's copy");
    assert_eq!(digests_to(&app, gone), 0);
    for other in &readers[1..] {
        assert_eq!(digests_to(&app, other), 2, "{other} gets both days");
    }

    // Signing up again (for another newsletter) answers as always and mails nothing.
    app.add_newsletter("moon-weekly", "Moon Weekly").await;
    let before = app.smtp().message_count();
    let answer = app
        .post_subscriptions(&format!(
            "email={}&newsletters=moon-weekly",
            urlencode(gone)
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body.to_lowercase().contains("inbox"),
        "{}",
        answer.body
    );
    app.smtp()
        .assert_no_more_messages(before, Duration::from_secs(2))
        .await;
    assert_eq!(queued_for(&app, gone).await, 1, "no confirmation queued");
}

#[tokio::test]
async fn one_hard_bounce_at_limit_two_leaves_the_reader_subscribed() {
    let app = spawn_app_with(Mail::Server, |s| s.bounces.hard_limit = 2).await;
    let readers = add_confirmed_readers(&app, "hard2", 2).await;
    let flaky = &readers[0];
    app.smtp().set_behaviour(refuse(flaky, 550));
    send_digest_on(&app, day(1)).await;
    app.wait_until_settled(SETTLE).await;
    let after_one = standing(&app, flaky).await;
    assert_eq!(after_one.hard, 1);
    assert!(after_one.bounced_at.is_none(), "{after_one:?}");

    app.smtp().set_behaviour(Behaviour::Accept);
    send_digest_on(&app, day(2)).await;
    app.wait_until_settled(SETTLE).await;
    assert_eq!(digests_to(&app, flaky), 1, "the second day reaches them");

    // A second refusal reaches the limit.
    app.smtp().set_behaviour(refuse(flaky, 550));
    send_digest_on(&app, day(3)).await;
    app.wait_until_settled(SETTLE).await;
    let after_two = standing(&app, flaky).await;
    assert_eq!(after_two.hard, 2);
    assert!(after_two.bounced_at.is_some(), "{after_two:?}");
}

#[tokio::test]
async fn soft_bounces_count_half_and_six_reach_the_default_score_limit() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.delivery.retry_base = Duration::from_millis(200);
        s.delivery.retry_max = Duration::from_millis(400);
        s.delivery.give_up_after = Duration::from_secs(1);
    })
    .await;
    assert!((app.settings.bounces.score_limit - 3.0).abs() < f64::EPSILON);
    let readers = add_confirmed_readers(&app, "soft", 2).await;
    let full = &readers[0];
    app.smtp().set_behaviour(refuse(full, 452));
    for n in 1..=2 {
        send_digest_on(&app, day(n)).await;
    }
    app.wait_until_settled(SETTLE).await;
    let after_two = standing(&app, full).await;
    assert_eq!((after_two.hard, after_two.soft), (0, 2));
    assert!((after_two.score() - 1.0).abs() < f64::EPSILON);
    assert!(after_two.bounced_at.is_none(), "1.0 < 3: {after_two:?}");
    let attempts = app.smtp().rcpt_times(full).len();
    assert!(
        attempts > 2,
        "each was retried before giving up: {attempts}"
    );

    for n in 3..=6 {
        send_digest_on(&app, day(n)).await;
    }
    app.wait_until_settled(SETTLE).await;
    let after_six = standing(&app, full).await;
    assert_eq!(after_six.soft, 6);
    assert!((after_six.score() - 3.0).abs() < f64::EPSILON);
    assert!(
        after_six.bounced_at.is_some(),
        "3.0 reaches 3: {after_six:?}"
    );

    app.smtp().set_behaviour(Behaviour::Accept);
    send_digest_on(&app, day(7)).await;
    app.wait_until_settled(SETTLE).await;
    assert_eq!(digests_to(&app, full), 0);
    assert_eq!(digests_to(&app, &readers[1]), 7);
}
