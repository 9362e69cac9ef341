//! `/metrics`: exact counts of what readers and the worker did, the queue read from the
//! database, route labels without paths or tokens, and who may scrape.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use diesel::prelude::*;
use spacedigest::db::schema::outbound_emails;
use spacedigest::observability::{Metrics, listener};

use super::{list_unsubscribe, scrape, scrape_until};
use crate::support::app::{Mail, TestApp, mail_to, spawn_app, spawn_app_with, unique_email};
use crate::support::smtp_server::{Behaviour, free_port};
use crate::support::{add_confirmed_readers, add_story, binary, queue_issue};

const TOKEN: &str = "scrape-token-for-the-tests-0123456789";
const DAY: (i32, u32, u32) = (2026, 11, 20);

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(DAY.0, DAY.1, DAY.2).unwrap()
}

/// Queues the day's digest for every confirmed reader, as `digest send` does.
async fn send_digest(app: &TestApp) {
    queue_issue(app, day()).await;
}

/// The last error of the newest email to `email`, once it has one.
async fn wait_for_error_on(app: &TestApp, email: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let to = email.to_owned();
        let errors: Vec<Option<String>> = app
            .db(move |c| {
                outbound_emails::table
                    .filter(outbound_emails::recipient_email.eq(to))
                    .select(outbound_emails::last_error)
                    .load(c)
            })
            .await;
        if errors.iter().any(Option::is_some) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed attempt to {email}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn metrics_count_what_readers_and_the_worker_did() {
    let mut app = spawn_app_with(Mail::Server, |s| {
        s.observability.metrics_token = Some(TOKEN.into());
        // Long enough to see the failed attempt before its retry.
        s.delivery.retry_base = Duration::from_secs(2);
        s.delivery.retry_max = Duration::from_secs(2);
    })
    .await;
    let metrics_url = format!("{}/metrics", app.address);

    // A reader signs up and confirms: confirmation and welcome go out.
    let ada = unique_email();
    app.sign_up(&ada).await;
    let confirmation = mail_to(&app, &ada, 1).await.remove(0);
    let link = app.confirmation_link(&confirmation);
    assert_eq!(app.confirm_via(&link).await.status, 200);
    mail_to(&app, &ada, 2).await;

    // A second reader's confirmation meets a 4xx once, then goes out on the retry.
    let bob = unique_email();
    app.smtp().set_behaviour(Behaviour::RejectRcptTo {
        address: bob.clone(),
        code: 451,
        text: "4.7.1 greylisted, try later".into(),
    });
    app.sign_up(&bob).await;
    wait_for_error_on(&app, &bob).await;
    app.smtp().set_behaviour(Behaviour::Accept);
    let bob_confirmation = mail_to(&app, &bob, 1).await.remove(0);

    // The digest goes to Ada and two more readers; one address is refused for good.
    let others = add_confirmed_readers(&app, "metrics", 2).await;
    app.smtp().set_behaviour(Behaviour::RejectRcptTo {
        address: others[1].clone(),
        code: 550,
        text: "5.1.1 no such user".into(),
    });
    add_story(
        &app,
        "Metrics story",
        "",
        day().and_hms_opt(9, 0, 0).unwrap(),
    )
    .await;
    send_digest(&app).await;
    app.wait_until_queue_settles().await;
    let ada_digest = mail_to(&app, &ada, 3).await.remove(2);
    let other_digest = mail_to(&app, &others[0], 1).await.remove(0);

    // Ada leaves by one-click (twice: the repeat changes nothing), the other by the button.
    let client = reqwest::Client::new();
    for _ in 0..2 {
        let answer = client
            .post(list_unsubscribe(&ada_digest))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let answer = client
        .post(list_unsubscribe(&other_digest))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // An address no route knows, with a token in its query.
    assert_eq!(
        app.get("/no/such/page?token=not-for-the-labels")
            .await
            .status,
        404
    );

    let scraped = scrape_until(&metrics_url, Some(TOKEN), |s| {
        s.value("spacedigest_emails_sent_total", &[("kind", "digest")]) == Some(2.0)
            && s.value("spacedigest_emails_failed_total", &[("kind", "digest")]) == Some(1.0)
    })
    .await;
    let count = |name: &str, labels: &[(&str, &str)]| scraped.get(name, labels);
    assert_eq!(
        count(
            "spacedigest_signups_total",
            &[("outcome", "confirmation_queued")]
        ),
        2.0
    );
    assert_eq!(count("spacedigest_confirmations_total", &[]), 1.0);
    assert_eq!(
        count("spacedigest_unsubscribes_total", &[("how", "one_click")]),
        1.0
    );
    assert_eq!(
        count("spacedigest_unsubscribes_total", &[("how", "button")]),
        1.0
    );
    for (kind, sent, failed, retried, attempts) in [
        ("confirmation", 2.0, 0.0, 1.0, 3.0),
        ("welcome", 1.0, 0.0, 0.0, 1.0),
        ("digest", 2.0, 1.0, 0.0, 3.0),
    ] {
        let kind = [("kind", kind)];
        assert_eq!(
            count("spacedigest_emails_sent_total", &kind),
            sent,
            "{kind:?}"
        );
        assert_eq!(
            count("spacedigest_emails_failed_total", &kind),
            failed,
            "{kind:?}"
        );
        assert_eq!(
            count("spacedigest_emails_retried_total", &kind),
            retried,
            "{kind:?}"
        );
        // One observation per SMTP send, whatever the server answered.
        assert_eq!(
            count("spacedigest_smtp_send_duration_seconds_count", &kind),
            attempts,
            "{kind:?}"
        );
        assert_eq!(count("spacedigest_queue_depth", &kind), 0.0, "{kind:?}");
    }
    assert_eq!(count("spacedigest_database_up", &[]), 1.0);
    assert_eq!(
        count("spacedigest_queue_oldest_pending_age_seconds", &[]),
        0.0
    );

    // Requests by route pattern, never by path.
    let signups = [
        ("method", "POST"),
        ("route", "/subscriptions"),
        ("status", "200"),
    ];
    assert_eq!(
        count("spacedigest_http_request_duration_seconds_count", &signups),
        2.0
    );
    let routes = scraped.label_values("spacedigest_http_request_duration_seconds_count", "route");
    for expected in ["/subscriptions/confirm", "/unsubscribe", "unmatched"] {
        assert!(
            routes.iter().any(|r| r == expected),
            "{expected}: {routes:?}"
        );
    }
    let confirm_token = link.split("token=").nth(1).unwrap();
    let bob_token = app.confirmation_link(&bob_confirmation);
    let bob_token = bob_token.split("token=").nth(1).unwrap();
    for secret in ["token=", "no/such", confirm_token, bob_token, TOKEN, "@"] {
        assert!(
            !scraped.text.contains(secret),
            "{secret} in\n{}",
            scraped.text
        );
    }

    // A due email that no worker has taken: the queue gauges show it from the database.
    app.stop().await;
    let refused = others[1].clone();
    app.db(move |c| {
        diesel::update(outbound_emails::table.filter(outbound_emails::recipient_email.eq(refused)))
            .set((
                outbound_emails::status.eq("pending"),
                outbound_emails::next_attempt_at
                    .eq(spacedigest::db::now() - chrono::Duration::seconds(90)),
            ))
            .execute(c)
    })
    .await;
    let bound = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = bound.local_addr().unwrap().port();
    let server =
        listener::server(bound, app.pool.clone(), Arc::new(Metrics::new())).expect("listener");
    let handle = server.handle();
    tokio::spawn(server);
    let queued = scrape(&format!("http://127.0.0.1:{port}/metrics"), None).await;
    assert_eq!(
        queued.get("spacedigest_queue_depth", &[("kind", "digest")]),
        1.0
    );
    assert_eq!(
        queued.get("spacedigest_queue_depth", &[("kind", "welcome")]),
        0.0
    );
    let late = queued.get("spacedigest_queue_oldest_pending_age_seconds", &[]);
    assert!((89.0..600.0).contains(&late), "{late}");
    handle.stop(true).await;
}

#[tokio::test]
async fn metrics_need_the_bearer_token_on_the_public_listener() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.observability.metrics_token = Some(TOKEN.into());
    })
    .await;
    let url = format!("{}/metrics", app.address);
    let client = reqwest::Client::new();
    let wrong = format!("{TOKEN}x");
    let refusals = [
        client.get(&url),
        client.get(&url).bearer_auth(&wrong),
        client.get(&url).bearer_auth(&TOKEN[..TOKEN.len() - 1]),
        client.get(&url).basic_auth("prometheus", Some(TOKEN)),
        client.get(&url).header("authorization", TOKEN),
    ];
    for request in refusals {
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401);
        assert!(answer.headers().contains_key("www-authenticate"));
        let body = answer.text().await.unwrap();
        assert!(!body.contains("spacedigest_"), "{body}");
    }
    let scraped = scrape(&url, Some(TOKEN)).await;
    assert_eq!(scraped.get("spacedigest_database_up", &[]), 1.0);
}

#[tokio::test]
async fn without_a_token_metrics_are_only_on_the_separate_listener() {
    let port = free_port();
    let app = spawn_app_with(Mail::Server, |s| {
        s.observability.metrics_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    })
    .await;
    assert_eq!(app.get("/metrics").await.status, 404);
    let separate = format!("http://127.0.0.1:{port}");
    app.sign_up(&unique_email()).await;
    let scraped = scrape_until(&format!("{separate}/metrics"), None, |s| {
        s.value("spacedigest_emails_sent_total", &[("kind", "confirmation")]) == Some(1.0)
    })
    .await;
    assert_eq!(
        scraped.get(
            "spacedigest_signups_total",
            &[("outcome", "confirmation_queued")]
        ),
        1.0
    );
    // It serves only /metrics: not the site.
    let home = reqwest::get(format!("{separate}/")).await.unwrap();
    assert_eq!(home.status(), 404);

    // Neither listener answers with a token when none is configured.
    let app_without = spawn_app().await;
    assert_eq!(app_without.get("/metrics").await.status, 404);
}

#[tokio::test]
async fn a_scrape_with_the_database_down_still_answers_with_the_counters() {
    let mut settings = spacedigest::config::Settings::defaults();
    let nothing_listens = free_port();
    settings.database.url = spacedigest::config::DatabaseUrl::Postgres(format!(
        "postgres://postgres@127.0.0.1:{nothing_listens}/spacedigest"
    ));
    let pool = spacedigest::db::pool(&settings);
    let bound = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = bound.local_addr().unwrap().port();
    let server = listener::server(bound, pool, Arc::new(Metrics::new())).expect("listener");
    let handle = server.handle();
    tokio::spawn(server);
    let started = std::time::Instant::now();
    let scraped = scrape(&format!("http://127.0.0.1:{port}/metrics"), None).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(scraped.get("spacedigest_database_up", &[]), 0.0);
    assert_eq!(
        scraped.get("spacedigest_emails_sent_total", &[("kind", "digest")]),
        0.0
    );
    // No queue numbers rather than made-up ones.
    assert!(
        scraped
            .value("spacedigest_queue_oldest_pending_age_seconds", &[])
            .is_none()
    );
    assert!(
        scraped
            .label_values("spacedigest_queue_depth", "kind")
            .is_empty()
    );
    handle.stop(true).await;
}

#[tokio::test]
async fn a_worker_process_exposes_its_counters_on_its_metrics_listener() {
    let mut app = spawn_app().await;
    app.stop().await; // only the worker process below sends
    add_story(
        &app,
        "Worker story",
        "",
        day().and_hms_opt(9, 0, 0).unwrap(),
    )
    .await;
    add_confirmed_readers(&app, "worker-metrics", 3).await;
    send_digest(&app).await;
    let port = free_port();
    let worker = tokio::process::Command::from(binary(&app))
        .arg("worker")
        .env("SPACEDIGEST_METRICS_LISTEN", format!("127.0.0.1:{port}"))
        .env("SPACEDIGEST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the worker starts");
    app.emails(3).await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let scraped = loop {
        if let Ok(response) = reqwest::get(&url).await {
            let scraped = super::Scrape::parse(response.text().await.unwrap());
            if scraped.value("spacedigest_emails_sent_total", &[("kind", "digest")]) == Some(3.0) {
                break scraped;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker's metrics never showed 3 sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        scraped.get(
            "spacedigest_smtp_send_duration_seconds_count",
            &[("kind", "digest")]
        ),
        3.0
    );
    assert_eq!(
        scraped.get("spacedigest_queue_depth", &[("kind", "digest")]),
        0.0
    );
    let pid = worker.id().expect("a pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let out = worker.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
