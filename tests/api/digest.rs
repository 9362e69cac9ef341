//! The daily digest, end to end: stories in, one email per confirmed reader out.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeZone};
use diesel::prelude::*;
use spacedigest::db::schema::{newsletters, outbound_emails, subscribers, subscriptions};

use crate::support::app::{TestApp, mail_to, spawn_app, unique_email};
use crate::support::smtp_server::{Behaviour, ReceivedMessage};
use crate::support::{add_confirmed_readers, add_story, binary, cli, queue_issue, set_zone};

const DAY: &str = "2026-11-20";

/// A UTC time given as local time in `zone`.
fn at(zone: chrono_tz::Tz, local: &str) -> NaiveDateTime {
    let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
    zone.from_local_datetime(&naive).unwrap().naive_utc()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn digests(messages: &[ReceivedMessage]) -> Vec<ReceivedMessage> {
    messages
        .iter()
        .filter(|m| m.subject().starts_with("Space Daily — "))
        .cloned()
        .collect()
}

/// Signs a reader up through the form and confirms through the emailed link.
async fn confirmed_reader(app: &TestApp) -> String {
    let email = unique_email();
    app.sign_up(&email).await;
    let confirmation = mail_to(app, &email, 1).await.remove(0);
    let link = app.confirmation_link(&confirmation);
    app.confirm_via(&link).await;
    mail_to(app, &email, 2).await;
    email
}

#[tokio::test]
async fn confirmed_readers_get_exactly_one_digest_of_the_days_stories() {
    let app = spawn_app().await;
    set_zone(&app, "Europe/Berlin").await;
    let berlin = chrono_tz::Europe::Berlin;
    add_story(
        &app,
        "Artemis crew named",
        "<p>Four astronauts.</p>",
        at(berlin, "2026-11-20 00:30"),
    )
    .await;
    add_story(
        &app,
        "Starship flies again",
        "<p>Second <em>flight</em>.</p>",
        at(berlin, "2026-11-20 23:30"),
    )
    .await;
    add_story(&app, "Yesterday story", "", at(berlin, "2026-11-19 23:59")).await;
    add_story(&app, "Tomorrow story", "", at(berlin, "2026-11-21 00:00")).await;

    let reader_a = confirmed_reader(&app).await;
    let reader_b = confirmed_reader(&app).await;
    let pending = unique_email();
    app.sign_up(&pending).await;
    let leaver = confirmed_reader(&app).await;
    let before = app.emails(7).await.len();
    let welcome = app
        .smtp()
        .messages_to(&leaver)
        .into_iter()
        .find(|m| m.header("List-Unsubscribe").is_some())
        .unwrap();
    let url = welcome.header("List-Unsubscribe").unwrap();
    app.post_raw(url.trim_matches(['<', '>']), None, "").await;

    let out = cli(&app, &["digest", "send", "--date", DAY], &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("2 readers"), "{stdout}");
    assert!(stdout.contains("2 sent"), "{stdout}");

    let all = app.emails(before + 2).await;
    let sent = digests(&all);
    assert_eq!(sent.len(), 2);
    let mut recipients: Vec<String> = sent.iter().map(|m| m.rcpt_to[0].clone()).collect();
    recipients.sort();
    let mut expected = vec![reader_a.clone(), reader_b.clone()];
    expected.sort();
    assert_eq!(recipients, expected);

    let digest = &sent[0];
    assert_eq!(
        digest.subject(),
        "Space Daily — 20 November 2026: Artemis crew named"
    );
    assert_eq!(digest.content_type(), "multipart/alternative");
    for body in [digest.text_body(), digest.html_body()] {
        assert!(body.contains("Artemis crew named"));
        assert!(body.contains("Starship flies again"));
        assert!(!body.contains("Yesterday story"));
        assert!(!body.contains("Tomorrow story"));
        assert!(body.contains("https://news.example.org/artemis-crew-named"));
    }
    assert!(digest.html_body().contains("style=\""), "CSS is inlined");
    assert!(digest.header("Message-ID").is_some());
    assert!(digest.header("Date").is_some());
    assert!(digest.header("List-Id").unwrap().contains("space-daily"));
    assert_eq!(
        digest.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let unsubscribe = digest.header("List-Unsubscribe").unwrap();
    let unsubscribe = unsubscribe.trim_matches(['<', '>']).to_owned();
    assert!(
        digest.text_body().contains(&unsubscribe),
        "each reader's own link is in the body"
    );
    assert_ne!(
        sent[1].header("List-Unsubscribe"),
        digest.header("List-Unsubscribe"),
        "links are personal"
    );
    // Links in the text part are absolute.
    assert!(digest.links().iter().all(|l| l.starts_with("http")));

    // The one-click POST to the header's URL unsubscribes that reader.
    let reader = digest.rcpt_to[0].clone();
    assert_eq!(
        app.post_raw(
            &unsubscribe,
            Some("application/x-www-form-urlencoded"),
            "List-Unsubscribe=One-Click"
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.subscription_statuses(&reader).await[0].1,
        "unsubscribed"
    );

    // A second send of the same day sends nothing.
    let again = cli(&app, &["digest", "send", "--date", DAY], &[]).await;
    assert!(
        again.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        again.status,
        text(&again.stdout),
        text(&again.stderr)
    );
    assert!(
        text(&again.stdout).contains("nothing new was queued"),
        "{}",
        text(&again.stdout)
    );
    app.smtp()
        .assert_no_more_messages(before + 2, Duration::from_secs(1))
        .await;

    // The status command reports the counts.
    let status = text(
        &cli(&app, &["digest", "status", "--date", DAY], &[])
            .await
            .stdout,
    );
    assert!(status.contains("2 sent"), "{status}");

    // The archive shows the issue, with nothing personal in it.
    let archive = app.get(&format!("/archive/space-daily/{DAY}")).await;
    assert_eq!(archive.status, 200);
    assert!(archive.body.contains("Starship flies again"));
    assert!(!archive.body.contains("unsubscribe?token="));
    assert!(!archive.body.contains(&reader_a));
    let index = app.get("/archive/space-daily").await;
    assert!(index.body.contains(&format!("/archive/space-daily/{DAY}")));
    assert_eq!(app.get("/archive/space-daily/2026-11-21").await.status, 404);
    assert_eq!(app.get("/archive/nope").await.status, 404);
}

#[tokio::test]
async fn a_hostile_summary_never_reaches_the_email_or_the_archive() {
    let app = spawn_app().await;
    add_story(
        &app,
        "Hostile item",
        "<p onclick=\"steal()\">Hi<script>alert(1)</script><a href=\"javascript:alert(2)\">x</a><img src=x onerror=alert(3)><iframe src=\"https://evil.example\"></iframe><style>@import url(https://evil.example/x.css)</style></p>",
        at(chrono_tz::UTC, "2026-11-20 12:00"),
    )
    .await;
    add_confirmed_readers(&app, "hostile", 1).await;
    let out = cli(&app, &["digest", "send", "--date", DAY], &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let digest = digests(&app.emails(1).await).remove(0);
    let archive = app.get(&format!("/archive/space-daily/{DAY}")).await;
    for body in [digest.html_body(), digest.text_body(), archive.body.clone()] {
        let lower = body.to_lowercase();
        for bad in [
            "<script",
            "javascript:",
            "onclick",
            "onerror",
            "<iframe",
            "evil.example",
            "alert(",
        ] {
            assert!(!lower.contains(bad), "{bad} leaked into: {body}");
        }
    }
    assert!(digest.text_body().contains("Hostile item"));
}

#[tokio::test]
async fn a_day_with_no_stories_sends_nothing_and_says_so() {
    let app = spawn_app().await;
    add_confirmed_readers(&app, "quiet", 3).await;
    let out = cli(&app, &["digest", "send", "--date", DAY], &[]).await;
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("No stories"),
        "{}",
        text(&out.stdout)
    );
    let preview = cli(&app, &["digest", "preview", "--date", DAY], &[]).await;
    assert!(preview.status.success());
    assert!(text(&preview.stdout).contains("No stories"));
    app.smtp()
        .assert_no_more_messages(0, Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn preview_renders_without_sending() {
    let app = spawn_app().await;
    add_story(
        &app,
        "Preview story",
        "<p>Seen first.</p>",
        at(chrono_tz::UTC, "2026-11-20 09:00"),
    )
    .await;
    add_confirmed_readers(&app, "preview", 2).await;
    for (format, needle) in [
        ("text", "Subject: Space Daily"),
        ("html", "<!DOCTYPE html>"),
        ("eml", "List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
    ] {
        let out = cli(
            &app,
            &["digest", "preview", "--date", DAY, "--format", format],
            &[],
        )
        .await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(needle),
            "{format}: {}",
            text(&out.stdout)
        );
        assert!(text(&out.stdout).contains("Preview story"));
    }
    app.smtp()
        .assert_no_more_messages(0, Duration::from_millis(500))
        .await;
    let issues: i64 = app
        .db(|c| {
            spacedigest::db::schema::digest_issues::table
                .count()
                .get_result(c)
        })
        .await;
    assert_eq!(issues, 0, "preview creates no issue");
}

#[tokio::test]
async fn a_4xx_period_delays_and_a_5xx_fails_one_reader_only() {
    let app = spawn_app().await;
    add_story(
        &app,
        "Fault story",
        "",
        at(chrono_tz::UTC, "2026-11-20 09:00"),
    )
    .await;
    let readers = add_confirmed_readers(&app, "fault", 20).await;
    app.smtp().set_behaviour(Behaviour::RejectRcpt {
        code: 451,
        text: "4.7.1 try later".into(),
    });
    let app_ref = &app;
    let flip = async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        app_ref.smtp().set_behaviour(Behaviour::RejectRcptTo {
            address: "fault-7@example.com".into(),
            code: 550,
            text: "5.1.1 no such user".into(),
        });
    };
    let send = tokio::task::spawn_blocking({
        let args: Vec<String> = vec!["digest".into(), "send".into(), "--date".into(), DAY.into()];
        let env: Vec<(String, String)> = vec![
            ("SPACEDIGEST_DATABASE_URL".into(), app.database.url_string()),
            ("SPACEDIGEST_BASE_URL".into(), app.address.clone()),
            ("SPACEDIGEST_SMTP_URL".into(), app.smtp().url()),
            ("SPACEDIGEST_RETRY_BASE_SECONDS".into(), "1".into()),
            ("SPACEDIGEST_RETRY_MAX_SECONDS".into(), "1".into()),
            ("SPACEDIGEST_SMTP_TIMEOUT_SECONDS".into(), "5".into()),
            ("SPACEDIGEST_DELIVERY_LEASE_SECONDS".into(), "10".into()),
            ("SPACEDIGEST_LOG".into(), "warn".into()),
        ];
        let dir = app.database.dir();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_spacedigest"))
                .args(&args)
                .current_dir(dir)
                .env_clear()
                .envs(env)
                .output()
                .unwrap()
        }
    });
    let (out, ()) = tokio::join!(send, flip);
    let out = out.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("19 sent, 1 failed"),
        "{}",
        text(&out.stdout)
    );
    let delivered = digests(&app.smtp().messages());
    assert_eq!(delivered.len(), 19);
    for reader in readers
        .iter()
        .filter(|r| r.as_str() != "fault-7@example.com")
    {
        assert_eq!(app.smtp().messages_to(reader).len(), 1, "{reader}");
    }
    let failed: Vec<(String, Option<String>)> = app
        .db(|c| {
            outbound_emails::table
                .filter(outbound_emails::status.eq("failed"))
                .select((
                    outbound_emails::recipient_email,
                    outbound_emails::last_error,
                ))
                .load(c)
        })
        .await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "fault-7@example.com");
    assert!(failed[0].1.as_deref().unwrap().contains("no such user"));
}

#[tokio::test]
async fn killing_the_sender_midway_loses_nobody_and_duplicates_stay_within_the_in_flight_limit() {
    const READERS: usize = 2000;
    const CONCURRENCY: usize = 8;
    const IN_FLIGHT: usize = 16;
    let mut app = spawn_app().await;
    app.stop().await; // only the `digest send` processes below deliver
    add_story(
        &app,
        "Crash story",
        "<p>Durable.</p>",
        at(chrono_tz::UTC, "2026-11-20 09:00"),
    )
    .await;
    let readers = add_confirmed_readers(&app, "crash", READERS).await;
    // Slow enough replies that the kill lands in the middle of the list.
    app.smtp()
        .set_behaviour(Behaviour::SlowDataReply(Duration::from_millis(15)));
    let concurrency = CONCURRENCY.to_string();
    let in_flight = IN_FLIGHT.to_string();
    let env = [
        ("SPACEDIGEST_SEND_CONCURRENCY", concurrency.as_str()),
        ("SPACEDIGEST_SEND_IN_FLIGHT", in_flight.as_str()),
        ("SPACEDIGEST_SMTP_TIMEOUT_SECONDS", "2"),
        ("SPACEDIGEST_DELIVERY_LEASE_SECONDS", "4"),
    ];
    let spawn = |app: &TestApp| {
        let mut command = binary(app);
        command
            .args(["digest", "send", "--date", DAY])
            .env("SPACEDIGEST_LOG", "warn")
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        command.spawn().unwrap()
    };

    let mut sender = spawn(&app);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.smtp().message_count() < READERS / 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sender made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sender.kill().unwrap(); // SIGKILL
    sender.wait().unwrap();
    let at_kill = app.smtp().message_count();
    assert!(at_kill < READERS, "the kill came too late to test anything");

    app.smtp().set_behaviour(Behaviour::Accept);
    let resumed = tokio::task::spawn_blocking({
        let mut child = spawn(&app);
        move || child.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(resumed.success());

    let messages = app.smtp().messages();
    let mut copies = std::collections::HashMap::<String, usize>::new();
    for m in digests(&messages) {
        *copies.entry(m.rcpt_to[0].clone()).or_default() += 1;
    }
    let missing = readers.iter().filter(|r| !copies.contains_key(*r)).count();
    let twice = copies.values().filter(|n| **n == 2).count();
    let more = copies.values().filter(|n| **n >= 3).count();
    println!(
        "crash test: {READERS} readers, killed after {at_kill} deliveries; missing {missing}, twice {twice}, three or more {more} (in-flight limit {IN_FLIGHT})"
    );
    assert_eq!(missing, 0);
    assert_eq!(more, 0);
    assert!(
        twice <= IN_FLIGHT,
        "{twice} duplicates exceed the in-flight limit {IN_FLIGHT}"
    );
}

#[tokio::test]
async fn serve_sends_the_daily_digest_at_its_time_and_never_twice() {
    let app = spawn_app().await;
    // Readers and the send time come first: the app's own scheduler may tick at any moment,
    // and the story is what makes the day sendable.
    let readers = add_confirmed_readers(&app, "scheduled", 3).await;
    // A send time already passed today: a freshly started `serve` catches up at once.
    app.db(|c| {
        diesel::update(newsletters::table)
            .set(newsletters::send_at.eq("00:00"))
            .execute(c)
    })
    .await;
    let today = chrono::Utc::now();
    add_story(
        &app,
        "Scheduled story",
        "",
        today.naive_utc() - chrono::Duration::minutes(1),
    )
    .await;
    let first = crate::support::app::spawn_app_on(&app).await;
    let second = crate::support::app::spawn_app_on(&app).await;
    // Generous: under a loaded CI machine two apps start, migrate and tick.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    while app.smtp().message_count() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if app.smtp().message_count() < 3 {
        let issues: Vec<(i64, Option<NaiveDateTime>)> = app
            .db(|c| {
                use spacedigest::db::schema::digest_issues;
                digest_issues::table
                    .select((digest_issues::id, digest_issues::fanned_out_at))
                    .load(c)
            })
            .await;
        let queue: Vec<(String, i32, Option<String>)> = app
            .db(|c| {
                outbound_emails::table
                    .select((
                        outbound_emails::status,
                        outbound_emails::attempts,
                        outbound_emails::last_error,
                    ))
                    .load(c)
            })
            .await;
        panic!(
            "digests did not arrive: issues {issues:?}, queue {queue:?}, now {}",
            chrono::Utc::now()
        );
    }
    let mails = app.smtp().messages();
    assert_eq!(digests(&mails).len(), 3);
    drop((first, second));
    let again = crate::support::app::spawn_app_on(&app).await;
    app.smtp()
        .assert_no_more_messages(3, Duration::from_secs(2))
        .await;
    for reader in &readers {
        assert_eq!(app.smtp().messages_to(reader).len(), 1);
    }
    drop(again);
}

#[tokio::test]
async fn a_dropped_connection_mid_data_is_retried_and_nothing_is_lost() {
    let app = spawn_app().await;
    add_story(
        &app,
        "Flaky relay story",
        "",
        at(chrono_tz::UTC, "2026-11-20 09:00"),
    )
    .await;
    let readers = add_confirmed_readers(&app, "flaky", 10).await;
    app.smtp().set_behaviour(Behaviour::DropAfterData);
    let app_ref = &app;
    let recover = async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while app_ref.smtp().data_attempts() < 3 {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app_ref.smtp().set_behaviour(Behaviour::Accept);
    };
    let (out, ()) = tokio::join!(
        cli(
            &app,
            &["digest", "send", "--date", DAY],
            &[
                ("SPACEDIGEST_RETRY_BASE_SECONDS", "1"),
                ("SPACEDIGEST_RETRY_MAX_SECONDS", "1")
            ]
        ),
        recover
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for reader in &readers {
        assert_eq!(app.smtp().messages_to(reader).len(), 1, "{reader}");
    }
}

#[tokio::test]
async fn a_reader_who_unsubscribes_mid_send_gets_nothing_further() {
    let mut app = spawn_app().await;
    app.stop().await; // no worker yet: the issue is queued but not sent
    add_story(
        &app,
        "Mid-send story",
        "",
        at(chrono_tz::UTC, "2026-11-20 09:00"),
    )
    .await;
    let readers = add_confirmed_readers(&app, "midsend", 5).await;
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let queued = queue_issue(&app, date).await;
    assert!(matches!(
        queued,
        spacedigest::digest::SendOutcome::Queued { recipients: 5, .. }
    ));
    // The reader leaves after the fan-out, before their turn.
    let leaver = readers[2].clone();
    let key = leaver.clone();
    app.db(move |c| {
        let id: i64 = subscribers::table
            .filter(subscribers::email_key.eq(key))
            .select(subscribers::id)
            .first(c)?;
        diesel::update(subscriptions::table.filter(subscriptions::subscriber_id.eq(id)))
            .set(subscriptions::status.eq("unsubscribed"))
            .execute(c)
    })
    .await;

    let _worker = crate::support::app::spawn_app_on(&app).await;
    app.emails(4).await;
    app.smtp()
        .assert_no_more_messages(4, Duration::from_millis(800))
        .await;
    assert!(app.smtp().messages_to(&leaver).is_empty());
    let statuses: Vec<(String, String)> = app
        .db(|c| {
            outbound_emails::table
                .filter(outbound_emails::kind.eq("digest"))
                .select((outbound_emails::recipient_email, outbound_emails::status))
                .load(c)
        })
        .await;
    for (email, status) in statuses {
        let expected = if email == leaver { "skipped" } else { "sent" };
        assert_eq!(status, expected, "{email}");
    }
}
