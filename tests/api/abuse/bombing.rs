//! Subscription bombing: someone signs a victim's address up over and over, from many
//! networks at once, to flood their inbox with confirmation emails. The per-IP limit
//! stops each network after 10 a minute (429, with `Retry-After`); the per-address
//! limits let one confirmation through per 10 minutes and 5 a day, whoever asks.
//!
//! A day passes without waiting: between rounds the test moves the victim's queued
//! emails' `created_at` back, which is the only thing the per-address limits read
//! (`subscriptions::signup::throttled`). The per-IP limit runs on real time, so the heavy
//! networks stay limited across rounds, as they would in a burst.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use futures_util::StreamExt;
use spacedigest::config::Settings;
use spacedigest::db::schema::{outbound_emails, subscribers};

use crate::support::app::{Mail, TestApp, spawn_app_with, urlencode};

const VICTIM: &str = "victim@example.com";
/// When each round of the attack happens, in minutes after the first: four within the
/// first 10 minutes, then on through the day to a minute before it ends.
const ROUNDS_AT_MINUTES: [i64; 15] = [
    0, 2, 5, 9, 10, 30, 60, 120, 240, 360, 480, 720, 960, 1200, 1439,
];
/// Networks that send many signups each.
const HEAVY_NETWORKS: usize = 5;

/// The confirmation emails the per-address limits allow at these times: one per
/// `interval` and at most `per_day` in any 24 hours.
fn allowed_by_the_limits(at: &[i64], interval_minutes: i64, per_day: usize) -> Vec<i64> {
    let mut sent: Vec<i64> = Vec::new();
    for &t in at {
        let today = sent.iter().filter(|&&s| s > t - 24 * 60).count();
        let rested = sent.last().is_none_or(|&last| t - last >= interval_minutes);
        if today < per_day && rested {
            sent.push(t);
        }
    }
    sent
}

/// One signup of the victim, from `network`, as a form or as JSON, in varying case.
async fn sign_up_victim(app: &TestApp, network: String, n: usize) -> (String, u16, Option<String>) {
    let email = match n % 4 {
        0 => VICTIM.to_owned(),
        1 => VICTIM.to_uppercase(),
        2 => "Victim@Example.COM".to_owned(),
        _ => format!(" {VICTIM} "),
    };
    let request = app
        .client
        .post(format!("{}/subscriptions", app.address))
        .header("x-forwarded-for", &network);
    let request = if n % 3 == 0 {
        request.json(&serde_json::json!({ "email": email, "name": "Victim" }))
    } else {
        request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("email={}&name=Victim", urlencode(&email)))
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (network, status, retry_after)
}

/// Moves the victim's emails `minutes` into the past.
async fn let_time_pass(app: &TestApp, minutes: i64) {
    app.db(move |conn| {
        let victim: i64 = subscribers::table
            .filter(subscribers::email_key.eq(VICTIM))
            .select(subscribers::id)
            .first(conn)?;
        let rows: Vec<(i64, NaiveDateTime)> = outbound_emails::table
            .filter(outbound_emails::subscriber_id.eq(victim))
            .select((outbound_emails::id, outbound_emails::created_at))
            .load(conn)?;
        for (id, created_at) in rows {
            diesel::update(outbound_emails::table.find(id))
                .set(
                    outbound_emails::created_at.eq(created_at - chrono::Duration::minutes(minutes)),
                )
                .execute(conn)?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn bombing_one_address_from_many_networks_sends_at_most_the_daily_cap() {
    let defaults = Settings::defaults();
    // The shipped limits, not ones chosen for the test.
    assert_eq!(defaults.signup.rate_per_minute, 10);
    assert_eq!(
        defaults.signup.confirmation_resend_interval,
        Duration::from_secs(600)
    );
    assert_eq!(defaults.signup.confirmations_per_day, 5);
    let app = spawn_app_with(Mail::Server, |s| {
        s.signup.rate_per_minute = defaults.signup.rate_per_minute;
        s.signup.confirmation_resend_interval = defaults.signup.confirmation_resend_interval;
        s.signup.confirmations_per_day = defaults.signup.confirmations_per_day;
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let total = if crate::support::figures::full() {
        1000
    } else {
        300
    };
    // Half from a few heavy networks, half from networks that each send one.
    let heavy_each = total / 2 / HEAVY_NETWORKS;
    let mut plan: Vec<String> = (0..HEAVY_NETWORKS)
        .flat_map(|h| std::iter::repeat_n(format!("203.0.113.{}", h + 1), heavy_each))
        .collect();
    let singles = total - plan.len();
    plan.extend((0..singles).map(|i| format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)));

    let rounds = ROUNDS_AT_MINUTES.len();
    let started = Instant::now();
    let mut answers: Vec<(String, u16, Option<String>)> = Vec::new();
    let mut mails_by_round = Vec::new();
    let mut previous = 0;
    for (round, &at) in ROUNDS_AT_MINUTES.iter().enumerate() {
        if round > 0 {
            let_time_pass(&app, at - previous).await;
        }
        previous = at;
        // Every round gets its share of each network's signups.
        let share: Vec<(usize, String)> = plan
            .iter()
            .cloned()
            .enumerate()
            .filter(|(i, _)| i % rounds == round)
            .collect();
        let results: Vec<_> = futures_util::stream::iter(share)
            .map(|(n, network)| sign_up_victim(&app, network, n))
            .buffer_unordered(8)
            .collect()
            .await;
        answers.extend(results);
        app.wait_until_queue_settles().await;
        mails_by_round.push(app.smtp().messages_to(VICTIM).len());
    }
    let elapsed = started.elapsed();

    let limited: Vec<&(String, u16, Option<String>)> = answers
        .iter()
        .filter(|(_, status, _)| *status == 429)
        .collect();
    let with_retry_after = limited
        .iter()
        .filter(|(_, _, retry)| {
            retry
                .as_deref()
                .and_then(|r| r.parse::<u64>().ok())
                .is_some_and(|s| (1..=60).contains(&s))
        })
        .count();
    let mut accepted_by_network: HashMap<&str, usize> = HashMap::new();
    for (network, status, _) in &answers {
        if *status == 200 {
            *accepted_by_network.entry(network.as_str()).or_default() += 1;
        }
    }
    let mails = app.smtp().messages_to(VICTIM).len();
    let in_first_ten_minutes = ROUNDS_AT_MINUTES
        .iter()
        .zip(&mails_by_round)
        .filter(|(at, _)| **at < 10)
        .map(|(_, n)| *n)
        .next_back()
        .unwrap_or(0);
    let expected = allowed_by_the_limits(
        &ROUNDS_AT_MINUTES,
        i64::try_from(defaults.signup.confirmation_resend_interval.as_secs() / 60).unwrap(),
        usize::try_from(defaults.signup.confirmations_per_day).unwrap(),
    );
    let subscribers = app.count_subscribers().await;
    let subscriptions = app.count_subscriptions().await;
    crate::support::figures::report(
        "subscription-bombing",
        &format!(
            "{} signups of one address over a simulated day from {} networks ({HEAVY_NETWORKS} \
             sending {heavy_each} each, {singles} sending one), in {:.1} s: {} answered 429 \
             ({with_retry_after} with Retry-After); mails to the victim in 24 h: {mails} \
             (cap 5), in the first 10 minutes: {in_first_ten_minutes}; subscribers stored: \
             {subscribers}",
            answers.len(),
            HEAVY_NETWORKS + singles,
            elapsed.as_secs_f64(),
            limited.len()
        ),
    );

    assert_eq!(answers.len(), total);
    for (network, status, _) in &answers {
        assert!(*status == 200 || *status == 429, "{network}: {status}");
    }
    assert_eq!(
        with_retry_after,
        limited.len(),
        "every 429 says when to retry"
    );
    assert!(
        limited
            .iter()
            .all(|(network, _, _)| network.starts_with("203.0.113.")),
        "a network that sent one signup was limited"
    );
    // Ten a minute, and one more for each six seconds the test took.
    let allowance = 10 + usize::try_from(elapsed.as_secs() / 6).unwrap() + 1;
    for h in 1..=HEAVY_NETWORKS {
        let network = format!("203.0.113.{h}");
        let accepted = accepted_by_network
            .get(network.as_str())
            .copied()
            .unwrap_or(0);
        assert!(accepted <= allowance, "{network}: {accepted} accepted");
        assert!(accepted < heavy_each, "{network} was never limited");
    }
    assert_eq!(
        mails,
        expected.len(),
        "the limits allow mails at {expected:?} minutes"
    );
    assert!(mails <= 5, "more than the daily cap");
    assert_eq!(in_first_ten_minutes, 1);
    assert_eq!(subscribers, 1);
    assert_eq!(subscriptions, 1);
    let queued = app.outbound().await;
    assert_eq!(queued.len(), mails, "{queued:?}");
}
