//! A misbehaving mail server: each fault for a while, then recovery (except a 5xx, which
//! is final). Four readers get the day's digest and a fifth signs up (a confirmation email),
//! so both kinds of email meet the fault. Each test reports lost emails, duplicates, the
//! gaps between attempts beside the retry schedule of `src/delivery/backoff.rs`, and the
//! final states.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use spacedigest::config::Settings;
use spacedigest::delivery::backoff;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::app::{Mail, TestApp, spawn_app_with};
use crate::support::smtp_server::{Behaviour, SmtpServer, free_port};
use crate::support::{add_confirmed_readers, add_story, queue_issue};

/// The day every fault test's issue is for.
pub const DAY: &str = "2026-11-20";
/// Digest readers per test; one more reader signs up.
const READERS: usize = 4;
/// How often the queue is sampled for attempts the server cannot see.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// A publication time within [`DAY`].
pub fn story_time() -> NaiveDateTime {
    NaiveDateTime::parse_from_str(&format!("{DAY} 09:00"), "%Y-%m-%d %H:%M").unwrap()
}

/// Queues the [`DAY`] issue for every confirmed reader, as `digest send` does, for the
/// app's own worker to deliver; returns the issue's id.
pub async fn queue_digest(app: &TestApp) -> i64 {
    let day = chrono::NaiveDate::parse_from_str(DAY, "%Y-%m-%d").unwrap();
    queue_digest_for(app, day).await
}

/// Queues `day`'s issue.
async fn queue_digest_for(app: &TestApp, day: chrono::NaiveDate) -> i64 {
    let outcome = queue_issue(app, day).await;
    match outcome {
        spacedigest::digest::SendOutcome::Queued { issue_id, .. } => issue_id,
        other => panic!("nothing was queued: {other:?}"),
    }
}

/// What the server does while the fault lasts.
enum During {
    /// Answers this way.
    Behaves(Behaviour),
    /// Nothing listens on its port.
    Down,
}

/// Where a test sees each attempt.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// The server's `RCPT TO` log (`rcpt_times`).
    AtServer,
    /// The row's `attempts` count going up: a 421 greeting or a refused connection never
    /// gets as far as naming the recipient.
    InQueue,
}

/// How every email must end.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Delivered once the server recovers.
    Delivered,
    /// Failed at once with the server's reply, which contains this text.
    Refused(&'static str),
    /// Retried until the give-up time, then failed.
    GaveUp,
}

struct Fault {
    /// The figure is `smtp-<name>`.
    name: &'static str,
    during: During,
    /// Attempts each email has begun under the fault when the server recovers (the last
    /// of them may meet the recovery: the server reads its behaviour as each reply is due).
    attempts: usize,
    seen: Seen,
    end: End,
    /// How long a failed attempt takes to be known as failed (a timeout's wait), which
    /// comes on top of the schedule's delay.
    noticed_after: Duration,
    settings: fn(&mut Settings),
}

fn no_change(_: &mut Settings) {}

#[tokio::test]
async fn a_dropped_connection_after_data_is_retried_and_nothing_is_lost() {
    exercise(Fault {
        name: "drop-after-data",
        during: During::Behaves(Behaviour::DropAfterData),
        attempts: 3,
        seen: Seen::AtServer,
        end: End::Delivered,
        noticed_after: Duration::ZERO,
        settings: no_change,
    })
    .await;
}

#[tokio::test]
async fn a_421_and_disconnect_is_retried_and_nothing_is_lost() {
    exercise(Fault {
        name: "421",
        during: During::Behaves(Behaviour::ServiceUnavailable),
        attempts: 3,
        seen: Seen::InQueue,
        end: End::Delivered,
        noticed_after: Duration::ZERO,
        settings: no_change,
    })
    .await;
}

#[tokio::test]
async fn a_4xx_on_rcpt_is_retried_and_nothing_is_lost() {
    exercise(Fault {
        name: "4xx-rcpt",
        during: During::Behaves(Behaviour::RejectRcpt {
            code: 451,
            text: "4.3.0 try again later".into(),
        }),
        attempts: 3,
        seen: Seen::AtServer,
        end: End::Delivered,
        noticed_after: Duration::ZERO,
        settings: no_change,
    })
    .await;
}

#[tokio::test]
async fn a_4xx_on_data_is_retried_and_nothing_is_lost() {
    exercise(Fault {
        name: "4xx-data",
        during: During::Behaves(Behaviour::RejectData {
            code: 452,
            text: "4.3.1 insufficient system storage".into(),
        }),
        attempts: 3,
        seen: Seen::AtServer,
        end: End::Delivered,
        noticed_after: Duration::ZERO,
        settings: no_change,
    })
    .await;
}

#[tokio::test]
async fn a_5xx_on_rcpt_fails_at_once_with_the_reply() {
    exercise(Fault {
        name: "5xx-rcpt",
        during: During::Behaves(Behaviour::RejectRcpt {
            code: 550,
            text: "5.1.1 mailbox unavailable".into(),
        }),
        attempts: 1,
        seen: Seen::AtServer,
        end: End::Refused("5.1.1 mailbox unavailable"),
        noticed_after: Duration::ZERO,
        settings: no_change,
    })
    .await;
}

#[tokio::test]
async fn a_reply_slower_than_the_timeout_is_retried_and_nothing_is_lost() {
    exercise(Fault {
        name: "slow-reply",
        // Past the one-second timeout below: the client gives up, the server keeps the
        // message anyway (as a real relay does), so every timed-out attempt is a copy.
        during: During::Behaves(Behaviour::SlowDataReply(Duration::from_millis(1500))),
        attempts: 2,
        seen: Seen::AtServer,
        end: End::Delivered,
        noticed_after: Duration::from_secs(1),
        settings: |settings| {
            settings.delivery.smtp_timeout = Duration::from_secs(1);
            settings.delivery.lease = Duration::from_secs(3);
        },
    })
    .await;
}

#[tokio::test]
async fn mail_waits_while_the_server_is_down_and_goes_when_it_is_up() {
    exercise(Fault {
        name: "down",
        during: During::Down,
        attempts: 3,
        seen: Seen::InQueue,
        end: End::Delivered,
        noticed_after: Duration::ZERO,
        settings: no_change,
    })
    .await;
}

#[tokio::test]
async fn a_temporary_failure_past_the_give_up_time_fails_the_email() {
    exercise(Fault {
        name: "give-up",
        during: During::Behaves(Behaviour::RejectRcpt {
            code: 451,
            text: "4.7.1 greylisted, try again later".into(),
        }),
        // Never recovers within the give-up time: attempts at about 0, 0.5, 1.5, 2.5 and
        // 3 s (fewer on a slow machine, where the schedule slips past the give-up time).
        attempts: 2,
        seen: Seen::AtServer,
        end: End::GaveUp,
        noticed_after: Duration::ZERO,
        settings: |settings| settings.delivery.give_up_after = Duration::from_secs(3),
    })
    .await;
}

#[tokio::test]
async fn a_server_slow_within_the_timeout_never_gets_a_copy_twice() {
    // One session, replies just within the timeout, and more email claimed than it can
    // send within one lease: the copies at the back of the claim wait past their lease.
    const EMAILS: usize = 20;
    let reply = Duration::from_millis(300);
    let app = spawn_app_with(Mail::Server, |settings| {
        settings.delivery.concurrency = 1;
        settings.delivery.in_flight = 1;
        settings.delivery.smtp_timeout = Duration::from_secs(1);
        settings.delivery.lease = Duration::from_secs(2);
    })
    .await;
    app.smtp().set_behaviour(Behaviour::SlowDataReply(reply));
    add_story(&app, "Slow story", "", story_time()).await;
    let readers = add_confirmed_readers(&app, "slow", EMAILS).await;
    queue_digest(&app).await;
    let records = app.wait_until_settled(Duration::from_secs(60)).await;
    // Every row has an outcome, but claims may still wait in the worker: let it go quiet.
    let mut transactions = app.smtp().rcpt_attempts();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = app.smtp().rcpt_attempts();
        if now == transactions && app.smtp().message_count() >= transactions {
            break;
        }
        transactions = now;
    }
    let mut copies: HashMap<String, usize> = HashMap::new();
    for message in app.smtp().messages() {
        *copies.entry(message.rcpt_to[0].clone()).or_default() += 1;
    }
    let lost = readers.iter().filter(|r| !copies.contains_key(*r)).count();
    let twice = copies.values().filter(|n| **n > 1).count();
    let attempts: i32 = records.iter().map(|r| r.attempts).sum();
    let rcpts = app.smtp().rcpt_attempts();
    crate::support::figures::report(
        "smtp-slow-within-timeout",
        &format!(
            "{EMAILS} digests through 1 session, replies {} ms (timeout 1 s, lease 2 s): lost \
             {lost}, readers with two or more copies {twice}; transactions {rcpts}; attempts \
             recorded {attempts} (claims that waited past their lease are given back untried)",
            reply.as_millis()
        ),
    );
    assert_eq!(lost, 0);
    assert_eq!(
        twice, 0,
        "a copy was sent again while the first was still due: {copies:?}"
    );
    assert!(
        records.iter().all(|r| r.status.as_str() == "sent"),
        "{records:?}"
    );
}

#[tokio::test]
async fn a_reader_deferred_across_many_issues_gets_every_one_of_them() {
    // More issues than a worker keeps prepared (64), with one reader's copies of all of
    // them waiting for retries when the newest goes out.
    const ISSUES: usize = 65;
    let app = spawn_app_with(Mail::Server, |_| {}).await;
    let readers = add_confirmed_readers(&app, "many", 2).await;
    let deferred = readers[0].clone();
    app.smtp().set_behaviour(Behaviour::RejectRcptTo {
        address: deferred.clone(),
        code: 451,
        text: "4.2.2 mailbox full, try later".into(),
    });
    let first_day = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let days: Vec<chrono::NaiveDate> = first_day.iter_days().take(ISSUES).collect();
    for (i, day) in days.iter().enumerate() {
        let published = day.and_hms_opt(9, 0, 0).unwrap();
        add_story(&app, &format!("Story of day {i}"), "", published).await;
    }
    for day in &days {
        queue_digest_for(&app, *day).await;
    }
    // Every issue has been prepared by the worker: the other reader has each.
    app.smtp()
        .wait_for_messages(ISSUES, Duration::from_secs(60))
        .await;
    // Hold the deferred copies back until none is in flight (a retry in flight would
    // reschedule itself), then let them all come due at once: one claim takes every issue.
    loop {
        let later = spacedigest::db::now() + Duration::from_secs(3600);
        set_retry_time(&app, &deferred, later).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if retry_times(&app, &deferred)
            .await
            .iter()
            .all(|at| *at == later)
        {
            break;
        }
    }
    set_retry_time(
        &app,
        &deferred,
        spacedigest::db::now() - Duration::from_secs(1),
    )
    .await;
    app.smtp().set_behaviour(Behaviour::Accept);
    let records = app.wait_until_settled(Duration::from_secs(60)).await;
    let got = |reader: &str| app.smtp().messages_to(reader).len();
    let failed: Vec<String> = records
        .iter()
        .filter(|r| r.status.as_str() == "failed")
        .map(|r| r.last_error.clone().unwrap_or_default())
        .collect();
    crate::support::figures::report(
        "smtp-4xx-across-issues",
        &format!(
            "{ISSUES} issues (a worker keeps 64 prepared); the reader deferred with 451 until \
             all their copies were due at once got {} of them, the other reader {}; failed \
             rows {} {:?}",
            got(&deferred),
            got(&readers[1]),
            failed.len(),
            failed.first()
        ),
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(got(&deferred), ISSUES);
    assert_eq!(got(&readers[1]), ISSUES);
}

/// Moves every pending email to `recipient` to be tried at `at`.
async fn set_retry_time(app: &TestApp, recipient: &str, at: NaiveDateTime) {
    use diesel::prelude::*;
    use spacedigest::db::schema::outbound_emails;
    // The worker moves these rows too; on PostgreSQL two multi-row updates can deadlock,
    // and the one the server aborts is simply tried again, as the worker does its own.
    for attempt in 1.. {
        let recipient = recipient.to_owned();
        let moved = spacedigest::db::run(&app.pool, move |c| {
            diesel::update(
                outbound_emails::table
                    .filter(outbound_emails::recipient_email.eq(recipient))
                    .filter(outbound_emails::status.eq("pending")),
            )
            .set(outbound_emails::next_attempt_at.eq(at))
            .execute(c)
        })
        .await;
        match moved {
            Ok(_) => return,
            Err(error) if attempt < 5 && error.to_string().contains("deadlock") => {}
            Err(error) => panic!("moving the retry time: {error}"),
        }
    }
}

/// When each pending email to `recipient` is next due.
async fn retry_times(app: &TestApp, recipient: &str) -> Vec<NaiveDateTime> {
    use diesel::prelude::*;
    use spacedigest::db::schema::outbound_emails;
    let recipient = recipient.to_owned();
    app.db(move |c| {
        outbound_emails::table
            .filter(outbound_emails::recipient_email.eq(recipient))
            .filter(outbound_emails::status.eq("pending"))
            .select(outbound_emails::next_attempt_at)
            .load(c)
    })
    .await
}

/// Every email's attempts, by recipient, as the test saw them.
type Attempts = BTreeMap<String, Vec<Instant>>;

async fn exercise(fault: Fault) {
    let port = free_port();
    let mail = match fault.during {
        During::Down => Mail::Port(port),
        During::Behaves(_) => Mail::Server,
    };
    let app = spawn_app_with(mail, fault.settings).await;
    let mut recovered: Option<SmtpServer> = None;
    if let During::Behaves(behaviour) = &fault.during {
        app.smtp().set_behaviour(behaviour.clone());
    }
    add_story(&app, "Fault story", "", story_time()).await;
    let mut recipients = add_confirmed_readers(&app, "fault", READERS).await;
    // No email is queued before this, so none gives up before this plus the give-up time.
    let queued_at = Instant::now();
    let newcomer = "newcomer@example.com".to_owned();
    app.sign_up(&newcomer).await;
    recipients.push(newcomer);
    queue_digest(&app).await;
    let queue_attempts = sample_queue_attempts(&app);

    // The fault lasts until every email has met it `attempts` times.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = attempts(&fault, &app, None, &queue_attempts.0);
        if recipients
            .iter()
            .all(|r| seen.get(r).map_or(0, Vec::len) >= fault.attempts)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fault was not met {} times by every email: {:?}",
            fault.attempts,
            seen.iter().map(|(r, a)| (r, a.len())).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match (&fault.during, fault.end) {
        (During::Down, _) => recovered = Some(SmtpServer::start_on(port).await),
        (_, End::Delivered) => app.smtp().set_behaviour(Behaviour::Accept),
        // A refusal is final and a given-up email stays failed: the server recovers only
        // to show that nothing is tried again.
        (_, End::Refused(_) | End::GaveUp) => {}
    }
    let records = app.wait_until_settled(Duration::from_secs(30)).await;
    if !matches!(fault.end, End::Delivered) {
        app.smtp().set_behaviour(Behaviour::Accept);
    }
    // Late copies (a slow server stores what the client gave up on) and retries that
    // should not happen both have time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    queue_attempts.1.cancel();
    let server = recovered.as_ref().unwrap_or_else(|| app.smtp());
    let seen = attempts(&fault, &app, Some(server), &queue_attempts.0);

    let mut copies: HashMap<String, usize> = HashMap::new();
    for message in server.messages() {
        *copies.entry(message.rcpt_to[0].clone()).or_default() += 1;
    }
    let failed_with = |recipient: &str| {
        records
            .iter()
            .find(|r| r.recipient_email == recipient && r.status.as_str() == "failed")
            .and_then(|r| r.last_error.clone())
    };
    let lost = recipients
        .iter()
        .filter(|r| !copies.contains_key(*r) && failed_with(r).is_none())
        .count();
    let duplicates: usize = copies.values().map(|n| n.saturating_sub(1)).sum();
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &records {
        *states.entry(record.status.as_str()).or_default() += 1;
    }
    // The schedule: attempt k+1 comes backoff::delay(k) after attempt k failed (which a
    // timeout takes a while to tell), but no later than the give-up time.
    let delivery = &app.settings.delivery;
    let give_up_at = queued_at + delivery.give_up_after;
    let schedule = |k: usize, at: Instant| {
        let delay = backoff::delay(delivery, i32::try_from(k).unwrap()) + fault.noticed_after;
        delay.min(give_up_at.saturating_duration_since(at))
    };
    let gaps_of = |recipient: &str| -> Vec<(Duration, Duration)> {
        seen[recipient]
            .windows(2)
            .enumerate()
            .map(|(k, pair)| (pair[1] - pair[0], schedule(k + 1, pair[0])))
            .collect()
    };
    let (gaps, expected): (Vec<Duration>, Vec<Duration>) =
        gaps_of(&recipients[0]).into_iter().unzip();
    let seconds = |ds: &[Duration]| {
        if ds.is_empty() {
            return "none".to_owned();
        }
        ds.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join("/")
    };
    let attempts_made: Vec<usize> = recipients.iter().map(|r| seen[r].len()).collect();
    crate::support::figures::report(
        &format!("smtp-{}", fault.name),
        &format!(
            "{} emails ({READERS} digests, 1 confirmation): lost {lost}, duplicates \
             {duplicates}; attempts per email {attempts_made:?}; gaps for one email {} s vs \
             schedule {} s (seen {}); final states {states:?}",
            recipients.len(),
            seconds(&gaps),
            seconds(&expected),
            match fault.seen {
                Seen::AtServer => "in the server's RCPT log",
                Seen::InQueue => "as the queue's attempt count rose",
            },
        ),
    );

    assert_eq!(lost, 0, "every email is delivered or failed with a reason");
    // Attempts never come sooner than the schedule says (the queue is sampled, so allow
    // for the sampling there).
    let slack = match fault.seen {
        Seen::AtServer => Duration::from_millis(5),
        Seen::InQueue => SAMPLE_EVERY * 3,
    };
    for recipient in &recipients {
        for (k, (gap, expected)) in gaps_of(recipient).into_iter().enumerate() {
            assert!(
                gap + slack >= expected,
                "{recipient}: attempt {} came {gap:?} after the one before, sooner than the \
                 schedule's {expected:?}",
                k + 2,
            );
        }
    }
    match fault.end {
        End::Delivered => {
            assert_eq!(states.get("sent"), Some(&recipients.len()), "{states:?}");
            for recipient in &recipients {
                let got = copies.get(recipient).copied().unwrap_or(0);
                // A copy per timed-out attempt is SMTP's own duplicate problem (RFC 1047);
                // any other fault must not duplicate.
                let most = if fault.noticed_after.is_zero() {
                    1
                } else {
                    seen[recipient].len()
                };
                assert!(
                    (1..=most).contains(&got),
                    "{recipient} got {got} copies in {} attempts",
                    seen[recipient].len()
                );
                assert!(
                    seen[recipient].len() >= 2,
                    "{recipient}: delivered without meeting the fault"
                );
            }
        }
        End::Refused(reply) => {
            assert_eq!(states.get("failed"), Some(&recipients.len()), "{states:?}");
            for recipient in &recipients {
                let error = failed_with(recipient).unwrap_or_default();
                assert!(error.contains(reply), "{recipient}: {error}");
                assert_eq!(
                    seen[recipient].len(),
                    1,
                    "{recipient}: a 5xx is not retried"
                );
            }
            assert!(copies.is_empty());
        }
        End::GaveUp => {
            assert_eq!(states.get("failed"), Some(&recipients.len()), "{states:?}");
            for recipient in &recipients {
                let error = failed_with(recipient).unwrap_or_default();
                let attempts = seen[recipient].len();
                assert!(
                    error.starts_with(&format!("gave up after {attempts} attempts")),
                    "{recipient}: {error}"
                );
            }
            assert!(copies.is_empty());
        }
    }
}

/// The attempts so far: from the server's log, or from the queue sampler.
fn attempts(
    fault: &Fault,
    app: &TestApp,
    server: Option<&SmtpServer>,
    sampled: &Mutex<Attempts>,
) -> Attempts {
    match fault.seen {
        Seen::InQueue => sampled.lock().unwrap().clone(),
        Seen::AtServer => {
            let server = server.unwrap_or_else(|| app.smtp());
            let recipients: Vec<String> = sampled.lock().unwrap().keys().cloned().collect();
            recipients
                .into_iter()
                .map(|r| {
                    let times = server.rcpt_times(&r);
                    (r, times)
                })
                .collect()
        }
    }
}

/// Samples every row's attempt count until cancelled, noting when each went up. Every
/// row is listed from the first sample, attempted or not.
fn sample_queue_attempts(app: &TestApp) -> (Arc<Mutex<Attempts>>, CancellationToken) {
    let sampled: Arc<Mutex<Attempts>> = Arc::default();
    let stop = CancellationToken::new();
    let (pool, into, stopped) = (app.pool.clone(), Arc::clone(&sampled), stop.clone());
    tokio::spawn(async move {
        let mut counts: HashMap<String, i32> = HashMap::new();
        while !stopped.is_cancelled() {
            let records = spacedigest::db::run(&pool, crate::support::rows::all_records)
                .await
                .expect("the queue");
            let now = Instant::now();
            {
                let mut into = into.lock().unwrap();
                for record in records {
                    let times = into.entry(record.recipient_email.clone()).or_default();
                    let before = counts.insert(record.recipient_email, record.attempts);
                    let rises = record.attempts - before.unwrap_or(0);
                    times.extend((0..rises).map(|_| now));
                }
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    });
    (sampled, stop)
}
