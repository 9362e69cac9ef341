//! Slow clients: a body trickled byte by byte is cut off at its deadline with a 408 and
//! nothing stored, and 200 of them at once do not delay an ordinary signup; a head
//! trickled in is cut off at the head's deadline; past the connection cap, a client waits
//! for a free connection instead of taking another file descriptor.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Got, head, read_answer, socket_address, tally};
use crate::support::app::{Mail, TestApp, spawn_app_with, unique_email, urlencode};

const BODY_TIMEOUT: Duration = Duration::from_secs(2);
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Between two bytes of a trickle: a whole signup would take about 15 s.
const TRICKLE_GAP: Duration = Duration::from_millis(250);
/// Scheduling on a loaded machine, on top of a deadline.
const SLACK: Duration = Duration::from_millis(1500);
/// Longest a trickling client waits for the server before it counts as not cut off.
const GIVE_UP: Duration = Duration::from_secs(25);
const TRICKLERS: usize = 200;
const ORDINARY_SIGNUPS: usize = 5;

async fn app_with(configure: impl FnOnce(&mut spacedigest::config::Settings)) -> TestApp {
    spawn_app_with(Mail::Server, |s| {
        s.server.http.body_timeout = BODY_TIMEOUT;
        s.server.http.head_timeout = HEAD_TIMEOUT;
        configure(s);
    })
    .await
}

/// How a trickling client ended: what it read, and how long after it connected.
#[derive(Debug)]
struct Trickled {
    got: Got,
    after: Duration,
    bytes_sent: usize,
}

/// Sends `first` whole, then `rest` a byte at a time, reading the answer meanwhile.
/// `started` counts clients whose `first` is out.
async fn trickle(
    address: String,
    first: Vec<u8>,
    rest: Vec<u8>,
    started: Arc<AtomicUsize>,
) -> Trickled {
    let began = Instant::now();
    let stream = match TcpStream::connect(&address).await {
        Ok(stream) => stream,
        Err(e) => {
            started.fetch_add(1, Ordering::SeqCst);
            return Trickled {
                got: Got::Reset(format!("connecting: {e}")),
                after: began.elapsed(),
                bytes_sent: 0,
            };
        }
    };
    let (mut reader, mut writer) = stream.into_split();
    let sent = AtomicUsize::new(0);
    let writing = async {
        let wrote = writer.write_all(&first).await;
        started.fetch_add(1, Ordering::SeqCst);
        if wrote.is_ok() {
            for byte in rest {
                tokio::time::sleep(TRICKLE_GAP).await;
                if writer.write_all(&[byte]).await.is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
        }
        // Held open either way: ending the connection is the server's doing.
        std::future::pending::<()>().await
    };
    let got = tokio::select! {
        got = read_answer(&mut reader, GIVE_UP) => got,
        () = writing => unreachable!("the writer never finishes"),
    };
    Trickled {
        got,
        after: began.elapsed(),
        bytes_sent: sent.load(Ordering::SeqCst),
    }
}

fn signup_head(body_length: usize) -> Vec<u8> {
    head(
        "POST",
        "/subscriptions",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(body_length),
    )
    .into_bytes()
}

fn slowest(durations: &[Duration]) -> Duration {
    durations.iter().copied().max().unwrap_or_default()
}

fn fastest(durations: &[Duration]) -> Duration {
    durations.iter().copied().min().unwrap_or_default()
}

#[tokio::test]
async fn trickled_bodies_are_cut_off_at_their_deadline_and_do_not_delay_an_ordinary_signup() {
    let app = app_with(|_| {}).await;
    let address = socket_address(&app);
    let started = Arc::new(AtomicUsize::new(0));
    let trickle_addresses: Vec<String> = (0..TRICKLERS)
        .map(|i| format!("trickle-{i}@example.com"))
        .collect();
    let mut tricklers = Vec::new();
    for email in &trickle_addresses {
        let body = format!("email={}&name=Slow+Trickling+Reader", urlencode(email)).into_bytes();
        tricklers.push(tokio::spawn(trickle(
            address.clone(),
            signup_head(body.len()),
            body,
            Arc::clone(&started),
        )));
    }
    // And one that trickles its head: the request line and headers never end.
    let head_trickler = tokio::spawn(trickle(
        address.clone(),
        Vec::new(),
        b"POST /subscriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            .to_vec(),
        Arc::clone(&started),
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while started.load(Ordering::SeqCst) < TRICKLERS + 1 {
        assert!(
            Instant::now() < deadline,
            "the trickling clients did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // While every trickle is open: ordinary readers sign up.
    let mut latencies = Vec::new();
    let mut ordinary = Vec::new();
    for _ in 0..ORDINARY_SIGNUPS {
        let email = unique_email();
        let asked = Instant::now();
        let answer = app
            .post_subscriptions(&format!("email={}&name=Ada", urlencode(&email)))
            .await;
        latencies.push(asked.elapsed());
        assert_eq!(answer.status, 200, "an ordinary signup: {}", answer.body);
        ordinary.push(email);
    }
    let mut trickled = Vec::new();
    for trickler in tricklers {
        trickled.push(trickler.await.unwrap());
    }
    let head_trickled = head_trickler.await.unwrap();
    let cut_off_after: Vec<Duration> = trickled.iter().map(|t| t.after).collect();
    let outcomes: Vec<Got> = trickled.iter().map(|t| t.got.clone()).collect();
    let most_bytes = trickled.iter().map(|t| t.bytes_sent).max().unwrap_or(0);
    let mut stored = Vec::new();
    for email in &trickle_addresses {
        if !app.subscription_statuses(email).await.is_empty() {
            stored.push(email.clone());
        }
    }
    crate::support::figures::report(
        "slow-bodies",
        &format!(
            "{TRICKLERS} signups trickled a byte per {} ms after their head (body deadline {} s): \
             cut off after {:.2}–{:.2} s, answers {}, at most {most_bytes} body bytes sent; \
             stored of theirs {}; {ORDINARY_SIGNUPS} ordinary signups meanwhile: slowest {:.0} ms; \
             a trickled head (deadline {} s) cut off after {:.2} s, answer {}",
            TRICKLE_GAP.as_millis(),
            BODY_TIMEOUT.as_secs(),
            fastest(&cut_off_after).as_secs_f64(),
            slowest(&cut_off_after).as_secs_f64(),
            tally(&outcomes),
            stored.len(),
            slowest(&latencies).as_secs_f64() * 1000.0,
            HEAD_TIMEOUT.as_secs(),
            head_trickled.after.as_secs_f64(),
            tally(std::slice::from_ref(&head_trickled.got)),
        ),
    );
    for t in &trickled {
        assert!(
            t.after <= BODY_TIMEOUT + SLACK,
            "a trickled body was not cut off at its deadline: {t:?}"
        );
        assert!(
            matches!(
                t.got,
                Got::Answer {
                    status: 408,
                    closes: true,
                    ..
                } | Got::Reset(_)
            ),
            "a trickled body got an answer other than 408: {t:?}"
        );
    }
    assert!(
        outcomes.iter().any(|got| got.status() == Some(408)),
        "no trickling client could read its 408: {}",
        tally(&outcomes)
    );
    assert!(stored.is_empty(), "stored for cut-off signups: {stored:?}");
    assert_eq!(app.count_subscribers().await, ORDINARY_SIGNUPS as i64);
    assert!(
        slowest(&latencies) < Duration::from_secs(2),
        "ordinary signups waited behind the trickles: {latencies:?}"
    );
    assert!(
        head_trickled.after <= HEAD_TIMEOUT + SLACK
            && !matches!(head_trickled.got, Got::Answer { status: 200, .. }),
        "a trickled head was not cut off: {head_trickled:?}"
    );
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_for_a_free_connection() {
    const CAP: usize = 10;
    let app = app_with(|s| {
        s.server.http.max_connections = CAP;
        s.server.http_workers = 1;
    })
    .await;
    let address = socket_address(&app);
    let started = Arc::new(AtomicUsize::new(0));
    let body = b"email=held%40example.com".to_vec();
    let holders: Vec<_> = (0..CAP)
        .map(|_| {
            tokio::spawn(trickle(
                address.clone(),
                signup_head(body.len()),
                body.clone(),
                Arc::clone(&started),
            ))
        })
        .collect();
    while started.load(Ordering::SeqCst) < CAP {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The holders' requests are in the handler, so every connection the cap allows is taken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let answer = app.get("/health_check").await;
    let waited = asked.elapsed();
    let mut held_for = Vec::new();
    for holder in holders {
        held_for.push(holder.await.unwrap().after);
    }
    let after_holders = app.get("/health_check").await;
    crate::support::figures::report(
        "connection-cap",
        &format!(
            "cap {CAP} connections, {CAP} held by trickled bodies (cut off after {:.2}–{:.2} s): \
             one more client answered {} after {:.2} s; once they were gone, at once ({})",
            fastest(&held_for).as_secs_f64(),
            slowest(&held_for).as_secs_f64(),
            answer.status,
            waited.as_secs_f64(),
            after_holders.status,
        ),
    );
    assert_eq!(answer.status, 200);
    assert!(
        waited >= BODY_TIMEOUT - Duration::from_millis(700),
        "the client past the cap was served at once ({waited:?}): the cap was not applied"
    );
    assert!(
        waited <= BODY_TIMEOUT + SLACK,
        "it waited too long: {waited:?}"
    );
    assert_eq!(after_holders.status, 200);
}
