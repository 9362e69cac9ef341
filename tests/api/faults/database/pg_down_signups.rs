//! PostgreSQL down while readers sign up, confirm, unsubscribe and load pages: a prompt
//! 503 that says to try again, nothing half-stored, and everything working once it is
//! back. Then the server killed in the middle of a burst of signups.

use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::{ReadersWithLinks, app_on_cluster, assert_no_raw_error, is_stored, partial_rows};
use crate::console::Browser;
use crate::support::app::{Answer, Backend, TestApp, require_backend, unique_email, urlencode};
use crate::support::pg_cluster::{PgCluster, StopMode};

/// Longest acceptable answer while the database is down: the pool waits 5 s for a
/// connection, then the reader must hear something.
const PROMPT: Duration = Duration::from_secs(8);
/// How long the database stays down in the full version.
const LONG_OUTAGE: Duration = Duration::from_secs(75);

/// One request a reader or operator makes.
struct Probe {
    what: &'static str,
    json: bool,
    answer: Answer,
    took: Duration,
}

#[tokio::test]
#[cfg_attr(
    not(spacedigest_test_backend = "postgres"),
    ignore = "PostgreSQL only: runs when SPACEDIGEST_TEST_POSTGRES_URL is set"
)]
async fn postgres_down_during_signups_answers_503_and_stores_nothing_half_done() {
    require_backend(Backend::Postgres);
    let full = crate::support::figures::full();
    let burst = if full { 400 } else { 60 };
    let cluster = PgCluster::start().await;
    let app = app_on_cluster(&cluster, |_| {}).await;
    let browser = Browser::logged_in(&app).await;
    let csrf = browser.csrf_token().await;

    let readers = ReadersWithLinks::sign_up(&app).await;
    let (confirm_link, unsubscribe) = (&readers.confirm_link, &readers.unsubscribe);

    cluster.stop(StopMode::Fast).await;
    let stopped = Instant::now();
    // The signup page's newsletters are cached for 2 s; past that, pages need the database.
    tokio::time::sleep(spacedigest::web::catalog::FRESH_FOR + Duration::from_millis(100)).await;
    let refused: Vec<String> = (0..4).map(|_| unique_email()).collect();
    let down = down_probes(
        &app,
        &browser,
        &csrf,
        &refused,
        &readers.confirm_token,
        unsubscribe,
    )
    .await;

    if full {
        // Long enough that a worker idle meanwhile would have stretched its pauses
        // between attempts far beyond the pool's timeout, had they no low cap.
        tokio::time::sleep(LONG_OUTAGE.saturating_sub(stopped.elapsed())).await;
    }
    let down_for = stopped.elapsed();

    let accepted = cluster.start_again().await;
    let (back, first) = loop {
        let email = unique_email();
        let answer = app
            .post_subscriptions(&format!("email={}", urlencode(&email)))
            .await;
        if answer.status == 200 {
            break (accepted.elapsed(), email);
        }
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert!(
            accepted.elapsed() < Duration::from_secs(30),
            "signups never worked again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    while app.smtp().messages_to(&first).is_empty() && accepted.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_confirmation = accepted.elapsed();
    let confirmed = app.confirm_via(confirm_link).await;
    let unsubscribed = app.post_raw(unsubscribe, None, "").await;

    let killed = kill_mid_burst(&app, &cluster, burst).await;
    let partial = partial_rows(&app).await;
    let mut stored_refusals = Vec::new();
    for email in &refused {
        if is_stored(&app, email).await {
            stored_refusals.push(email.clone());
        }
    }

    let statuses = |probes: &[Probe]| {
        let mut counts = std::collections::BTreeMap::<u16, usize>::new();
        for probe in probes {
            *counts.entry(probe.answer.status).or_default() += 1;
        }
        format!("{counts:?}")
    };
    let slowest = down.iter().map(|p| p.took).max().unwrap_or_default();
    crate::support::figures::report(
        "pg-down-signups",
        &format!(
            "down {:.0} s: {} requests answered {} (slowest {:.2} s); after PostgreSQL \
             accepted connections again, first signup 200 in {:.2} s, its confirmation \
             delivered in {:.2} s; killed mid-burst of {burst}: {} 200 \
             (all stored, confirmation sent), {} 503 (nothing stored), other {}, slowest \
             answer {:.2} s; partial rows {}",
            down_for.as_secs_f64(),
            down.len(),
            statuses(&down),
            slowest.as_secs_f64(),
            back.as_secs_f64(),
            first_confirmation.as_secs_f64(),
            killed.ok,
            killed.unavailable,
            killed.other,
            killed.slowest.as_secs_f64(),
            partial.total()
        ),
    );
    for probe in &down {
        let what = probe.what;
        assert_eq!(probe.answer.status, 503, "{what}: {}", probe.answer.body);
        assert!(probe.took < PROMPT, "{what} took {:?}", probe.took);
        assert!(
            probe.answer.header("retry-after").is_some(),
            "{what}: no Retry-After"
        );
        assert_no_raw_error(what, &probe.answer.body);
        if probe.json {
            assert_eq!(probe.answer.json()["error"], "unavailable", "{what}");
        } else {
            let page = probe.answer.body.to_lowercase();
            assert!(page.contains("<html"), "{what}: not a page: {page}");
            assert!(page.contains("try again"), "{what}: {page}");
        }
    }
    assert!(
        stored_refusals.is_empty(),
        "refused yet stored: {stored_refusals:?}"
    );
    // Generous for a loaded machine; with the worker's pauses growing to 30 s, the first
    // confirmation after a long outage waited up to that long.
    assert!(
        first_confirmation < Duration::from_secs(15),
        "the first confirmation after the outage took {first_confirmation:?}"
    );
    assert_eq!(confirmed.status, 200, "confirming once it is back");
    assert!(
        confirmed.body.contains("Thanks for confirming"),
        "{}",
        confirmed.body
    );
    assert_eq!(unsubscribed.status, 200, "unsubscribing once it is back");
    assert_eq!(killed.other, 0, "answers other than 200 or 503 mid-burst");
    assert!(
        killed.slowest < PROMPT,
        "a signup waited {:?} for its answer",
        killed.slowest
    );
    assert!(
        killed.stored_refusals.is_empty(),
        "503 yet stored: {:?}",
        killed.stored_refusals
    );
    assert!(
        killed.lost.is_empty(),
        "200 yet not stored or no confirmation: {:?}",
        killed.lost
    );
    assert_eq!(partial, Default::default(), "half-done signups");
}

/// Every kind of request, at once, while the database is down.
async fn down_probes(
    app: &TestApp,
    browser: &Browser<'_>,
    csrf: &str,
    refused: &[String],
    confirm_token: &str,
    unsubscribe: &str,
) -> Vec<Probe> {
    let form = |email: &str| format!("email={}&name=Ada", urlencode(email));
    let json = |email: &str| serde_json::json!({ "email": email, "name": "Ada" });
    let confirm_page = format!("/subscriptions/confirm?token={confirm_token}");
    let send_now = format!(
        "csrf_token={}&newsletter=space-daily&date=2026-11-20",
        urlencode(csrf)
    );
    let (forms, jsons) = (
        [form(&refused[0]), form(&refused[2])],
        [json(&refused[1]), json(&refused[3])],
    );
    let requests: Vec<(
        &'static str,
        bool,
        futures_util::future::BoxFuture<'_, Answer>,
    )> = vec![
        (
            "signup (form)",
            false,
            Box::pin(app.post_subscriptions(&forms[0])),
        ),
        (
            "signup (JSON)",
            true,
            Box::pin(app.post_subscriptions_json(&jsons[0])),
        ),
        (
            "another signup (form)",
            false,
            Box::pin(app.post_subscriptions(&forms[1])),
        ),
        (
            "another signup (JSON)",
            true,
            Box::pin(app.post_subscriptions_json(&jsons[1])),
        ),
        (
            "confirm (POST)",
            false,
            Box::pin(app.post_raw(
                "/subscriptions/confirm",
                Some("application/x-www-form-urlencoded"),
                format!("token={}", urlencode(confirm_token)),
            )),
        ),
        ("confirm page", false, Box::pin(app.get(&confirm_page))),
        (
            "unsubscribe (POST)",
            false,
            Box::pin(app.post_raw(unsubscribe, None, "")),
        ),
        ("unsubscribe page", false, Box::pin(app.get(unsubscribe))),
        ("signup page", false, Box::pin(app.get("/"))),
        ("console dashboard", false, Box::pin(browser.get("/admin"))),
        (
            "console send now",
            false,
            Box::pin(browser.post_raw("/admin/digests/send", &send_now)),
        ),
    ];
    // A little apart, as readers arrive: later ones queue behind earlier ones.
    let timed = requests
        .into_iter()
        .enumerate()
        .map(|(i, (what, json, request))| async move {
            tokio::time::sleep(Duration::from_millis(100) * u32::try_from(i).unwrap()).await;
            let started = Instant::now();
            let answer = request.await;
            Probe {
                what,
                json,
                answer,
                took: started.elapsed(),
            }
        });
    join_all(timed).await
}

/// What a burst of signups cut by a crash of the database got.
struct Burst {
    ok: usize,
    unavailable: usize,
    other: usize,
    slowest: Duration,
    /// Answered 503 yet stored.
    stored_refusals: Vec<String>,
    /// Answered 200 yet not fully stored or never sent a confirmation.
    lost: Vec<String>,
}

/// `n` signups arriving over about a second; PostgreSQL is killed a third of the way in,
/// then started again.
async fn kill_mid_burst(app: &TestApp, cluster: &PgCluster, n: usize) -> Burst {
    let emails: Vec<String> = (0..n).map(|i| format!("burst-{i}@example.com")).collect();
    let spacing = Duration::from_secs(1) / u32::try_from(n).unwrap();
    let signups = emails.iter().enumerate().map(|(i, email)| async move {
        tokio::time::sleep(spacing * u32::try_from(i).unwrap()).await;
        let started = Instant::now();
        let answer = app
            .post_subscriptions(&format!("email={}", urlencode(email)))
            .await;
        (answer, started.elapsed())
    });
    let kill = async {
        tokio::time::sleep(Duration::from_millis(330)).await;
        cluster.stop(StopMode::Immediate).await;
    };
    let (answers, ()) = tokio::join!(join_all(signups), kill);
    cluster.start_again().await;

    let mut burst = Burst {
        ok: 0,
        unavailable: 0,
        other: 0,
        slowest: Duration::ZERO,
        stored_refusals: Vec::new(),
        lost: Vec::new(),
    };
    for (answer, took) in &answers {
        burst.slowest = burst.slowest.max(*took);
        match answer.status {
            200 => burst.ok += 1,
            503 => burst.unavailable += 1,
            _ => burst.other += 1,
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for (email, (answer, _)) in emails.iter().zip(&answers) {
        let stored = is_stored(app, email).await;
        match answer.status {
            200 => loop {
                // Stored, and its confirmation arrives (the worker recovers by itself).
                if stored && !app.smtp().messages_to(email).is_empty() {
                    break;
                }
                if !stored || tokio::time::Instant::now() > deadline {
                    burst.lost.push(email.clone());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            },
            503 if stored => burst.stored_refusals.push(email.clone()),
            _ => {}
        }
    }
    burst
}
