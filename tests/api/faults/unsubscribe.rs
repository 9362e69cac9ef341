//! Readers leave while their digest is going out. Once their unsubscribe has answered 200,
//! a copy may still reach them only if it was already on its way: the worker checks for
//! departed readers just before it hands emails to the senders, in queue order, and at
//! most `SPACEDIGEST_SEND_IN_FLIGHT` emails can be past that check and unrecorded at once.
//!
//! So a reader whose copy arrives after their 200 must have been, in the queue's order,
//! within IN_FLIGHT places of the copies delivered by then: if n copies had been recorded
//! when the unsubscribe committed (each delivered before it was recorded, so n is at most
//! the count at the 200), the check had let through at most n + IN_FLIGHT.

use std::collections::HashMap;
use std::time::Duration;

use diesel::prelude::*;
use spacedigest::db::schema::outbound_emails;
use spacedigest::tokens::UnsubscribeScope;
use tokio::time::Instant;

use super::smtp::{queue_digest, story_time};
use crate::support::app::{Mail, TestApp, spawn_app_with};
use crate::support::smtp_server::Behaviour;
use crate::support::{add_confirmed_readers, add_story};

const CONCURRENCY: usize = 4;
const IN_FLIGHT: usize = 8;
/// The far leavers of each batch start this many places past the last copy delivered:
/// far beyond what can be in flight, well within the chunks a worker claims ahead (at
/// least 96 here), which is where a check made only at claim time lets copies through.
const FAR_AHEAD: usize = 48;
/// Far leavers per batch: more than the in-flight limit.
const FAR_LEAVERS: usize = 2 * IN_FLIGHT;
/// Near leavers per batch, right after the last copy delivered: those within the in-flight
/// window may be on the wire when they leave, which it allows; the rest must not be.
const NEAR_LEAVERS: usize = 2 * IN_FLIGHT;

/// One reader who left, when their unsubscribe answered, and how many copies the server
/// had by then.
struct Leaver {
    email: String,
    near: bool,
    answered_at: Instant,
    delivered_by_then: usize,
}

#[tokio::test]
async fn after_an_unsubscribe_answers_sends_to_that_reader_stay_within_the_in_flight_window() {
    let (readers, batches) = if crate::support::figures::full() {
        (3000, 20)
    } else {
        (600, 5)
    };
    let app = spawn_app_with(Mail::Server, |settings| {
        settings.delivery.concurrency = CONCURRENCY;
        settings.delivery.in_flight = IN_FLIGHT;
    })
    .await;
    add_story(&app, "Leaving story", "", story_time()).await;
    add_confirmed_readers(&app, "leaving", readers).await;
    // Slow-ish replies (about 80 copies a second over four sessions): the send lasts long
    // enough for readers to leave during it.
    app.smtp()
        .set_behaviour(Behaviour::SlowDataReply(Duration::from_millis(50)));
    let issue_id = queue_digest(&app).await;
    // All rows are due at once, so the claim order is the fan-out's id order.
    let queue: Vec<(String, Option<i64>)> = app
        .db(move |c| {
            outbound_emails::table
                .filter(outbound_emails::issue_id.eq(issue_id))
                .order(outbound_emails::id)
                .select((
                    outbound_emails::recipient_email,
                    outbound_emails::subscription_id,
                ))
                .load(c)
        })
        .await;
    assert_eq!(queue.len(), readers);
    let position: HashMap<&str, usize> = queue
        .iter()
        .enumerate()
        .map(|(i, (email, _))| (email.as_str(), i))
        .collect();

    let per_batch = NEAR_LEAVERS + FAR_LEAVERS;
    let stride = readers / (batches + 1);
    let mut leavers: Vec<Leaver> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    for batch in 0..batches {
        // Copies delivered by the batch's moment, less those earlier leavers never got.
        let checkpoint = stride * (batch + 1) - batch * per_batch;
        while app.smtp().message_count() < checkpoint {
            assert!(Instant::now() < deadline, "the send made no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Where the send has got to in the claim order (skipped leavers leave gaps).
        let reached = app
            .smtp()
            .messages()
            .iter()
            .filter_map(|m| position.get(m.rcpt_to[0].as_str()))
            .max()
            .copied()
            .unwrap_or(0);
        let near = (reached + 1..).take(NEAR_LEAVERS).map(|i| (i, true));
        let far = (reached + FAR_AHEAD..)
            .take(FAR_LEAVERS)
            .map(|i| (i, false));
        let chosen: Vec<(usize, bool)> = near.chain(far).collect();
        let answers = futures_util::future::join_all(chosen.iter().map(|(i, _)| {
            unsubscribe(
                &app,
                queue[*i].1.expect("a digest row names its subscription"),
            )
        }))
        .await;
        for ((i, near), (answered_at, delivered_by_then)) in chosen.into_iter().zip(answers) {
            leavers.push(Leaver {
                email: queue[i].0.clone(),
                near,
                answered_at,
                delivered_by_then,
            });
        }
    }
    app.smtp().set_behaviour(Behaviour::Accept);
    let records = app.wait_until_settled(Duration::from_secs(120)).await;

    let mut copies: HashMap<String, Vec<Instant>> = HashMap::new();
    for (at, message) in app.smtp().messages_with_arrival() {
        copies
            .entry(message.rcpt_to[0].clone())
            .or_default()
            .push(at);
    }
    let status: HashMap<&str, &str> = records
        .iter()
        .map(|r| (r.recipient_email.as_str(), r.status.as_str()))
        .collect();
    // Each reader's place in the queue's order among the copies that went out.
    let mut place: HashMap<&str, usize> = HashMap::new();
    for (email, _) in &queue {
        if status.get(email.as_str()) == Some(&"sent") {
            let next = place.len() + 1;
            place.insert(email.as_str(), next);
        }
    }
    // For a leaver whose copy arrived after their 200: how far past the copies delivered
    // by then they stood in that order. At most IN_FLIGHT, or the check let them through
    // when it should not have.
    let past = |leaver: &Leaver| -> Option<usize> {
        copies
            .get(&leaver.email)?
            .iter()
            .find(|at| **at > leaver.answered_at)?;
        Some(place[leaver.email.as_str()].saturating_sub(leaver.delivered_by_then))
    };
    let lags: Vec<(bool, usize)> = leavers
        .iter()
        .filter_map(|l| past(l).map(|n| (l.near, n)))
        .collect();
    let late_near = lags.iter().filter(|(near, _)| *near).count();
    let late_far = lags.len() - late_near;
    let worst = lags.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let got_before = leavers
        .iter()
        .filter(|l| past(l).is_none() && copies.contains_key(&l.email))
        .count();
    let skipped = records
        .iter()
        .filter(|r| r.status.as_str() == "skipped")
        .count();
    let left: HashMap<&str, &Leaver> = leavers.iter().map(|l| (l.email.as_str(), l)).collect();
    let stayers_wrong = queue
        .iter()
        .filter(|(email, _)| !left.contains_key(email.as_str()))
        .filter(|(email, _)| copies.get(email).map_or(0, Vec::len) != 1)
        .count();
    crate::support::figures::report(
        "unsubscribe-mid-send",
        &format!(
            "{readers} readers, {batches} batches of leavers; copies after the 200: near \
             (1 to {NEAR_LEAVERS} places past the last copy delivered) {late_near} of {}, far \
             ({FAR_AHEAD} to {} places past) {late_far} of {}; of those, the farthest stood \
             {worst} places past the copies delivered at their 200 (bound: in-flight \
             {IN_FLIGHT}); leavers already served before their 200: \
             {got_before}; rows skipped: {skipped}; readers who stayed without exactly one \
             copy: {stayers_wrong}",
            batches * NEAR_LEAVERS,
            FAR_AHEAD + FAR_LEAVERS - 1,
            batches * FAR_LEAVERS,
        ),
    );
    assert!(
        worst <= IN_FLIGHT,
        "a reader {worst} places past the copies delivered at their 200 still got one, \
         beyond the {IN_FLIGHT} that can be past the check (near?, places): {lags:?}"
    );
    assert_eq!(
        stayers_wrong, 0,
        "every reader who stayed gets exactly one copy"
    );
    for leaver in &leavers {
        let got = copies.get(&leaver.email).map_or(0, Vec::len);
        assert!(got <= 1, "{} got {got} copies", leaver.email);
    }
    // The database agrees: a leaver's row is skipped unless their copy went out.
    for record in &records {
        let expected = if left.contains_key(record.recipient_email.as_str())
            && !copies.contains_key(&record.recipient_email)
        {
            "skipped"
        } else {
            "sent"
        };
        assert_eq!(
            record.status.as_str(),
            expected,
            "{}",
            record.recipient_email
        );
    }
    assert_eq!(skipped, leavers.len() - lags.len() - got_before);
}

/// The reader's one-click unsubscribe (RFC 8058), with the link the product would have put
/// in their copy; returns when it answered 200 and how many copies the server had then.
async fn unsubscribe(app: &TestApp, subscription_id: i64) -> (Instant, usize) {
    let signer = spacedigest::app::policy(&app.settings, &app.pool)
        .await
        .expect("the app's signing key")
        .signer;
    let token = signer.sign(UnsubscribeScope::Subscription(subscription_id));
    let answer = app
        .post_raw(
            &format!("/unsubscribe?token={token}"),
            Some("application/x-www-form-urlencoded"),
            "List-Unsubscribe=One-Click",
        )
        .await;
    let answered = (Instant::now(), app.smtp().message_count());
    assert_eq!(answer.status, 200, "unsubscribe: {}", answer.body);
    answered
}
