//! PostgreSQL restarted, crashed and stopped while a digest goes out: the worker carries
//! on by itself once the server is back, and every reader still gets their copy.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use spacedigest::db::schema::outbound_emails;

use super::app_on_cluster;
use crate::support::app::{Backend, TestApp, require_backend};
use crate::support::pg_cluster::{PgCluster, StopMode};
use crate::support::smtp_server::Behaviour;
use crate::support::{add_confirmed_readers, add_story, binary, queue_issue};

const CONCURRENCY: usize = 8;
const IN_FLIGHT: usize = 16;

/// One way the database goes away mid-send.
#[derive(Debug, Clone, Copy)]
enum Interruption {
    /// `pg_ctl restart` in this mode.
    Restart(StopMode),
    /// Stopped in this mode, down this long, then started.
    Down(StopMode, Duration),
}

impl Interruption {
    fn label(self) -> String {
        match self {
            Self::Restart(StopMode::Fast) => "restart (fast)".into(),
            Self::Restart(StopMode::Immediate) => "restart (immediate)".into(),
            Self::Down(mode, down) => format!(
                "stopped ({}) for {} s",
                if mode == StopMode::Fast {
                    "fast"
                } else {
                    "immediate"
                },
                down.as_secs()
            ),
        }
    }
}

/// What one interruption measured.
struct Recovery {
    what: Interruption,
    /// From "accepts connections again" to the first outcome recorded after it.
    records_resume: Duration,
    /// From "accepts connections again" to the first delivery claimed after it being
    /// recorded: the worker is claiming, sending and recording again.
    sending_resumes: Duration,
    /// Emails the SMTP server had taken whose outcome was not yet recorded, just before
    /// the database came back: what a crash then would have sent twice.
    unrecorded: Option<usize>,
}

#[tokio::test]
#[cfg_attr(
    not(spacedigest_test_backend = "postgres"),
    ignore = "PostgreSQL only: runs when SPACEDIGEST_TEST_POSTGRES_URL is set"
)]
async fn postgres_restarted_mid_send_recovers_by_itself_and_loses_nobody() {
    require_backend(Backend::Postgres);
    let full = crate::support::figures::full();
    let readers_wanted = if full { 5000 } else { 2000 };
    let mut interruptions = vec![
        Interruption::Restart(StopMode::Fast),
        Interruption::Down(StopMode::Immediate, Duration::from_secs(3)),
    ];
    if full {
        interruptions.insert(1, Interruption::Restart(StopMode::Immediate));
        // Longer than a recorder that gave up after 20 attempts (about 170 s) took.
        interruptions.push(Interruption::Down(StopMode::Fast, Duration::from_secs(200)));
    }

    let cluster = PgCluster::start().await;
    let app = app_on_cluster(&cluster, |settings| {
        settings.delivery.concurrency = CONCURRENCY;
        settings.delivery.in_flight = IN_FLIGHT;
        // Longer than any outage here, so a lease never runs out while its email waits
        // to be sent or recorded: no worker dies, so no reader may get two copies.
        settings.delivery.lease = Duration::from_secs(300);
    })
    .await;
    add_story(
        &app,
        "Restart story",
        "<p>Durable.</p>",
        NaiveDateTime::parse_from_str("2026-11-20 09:00", "%Y-%m-%d %H:%M").unwrap(),
    )
    .await;
    let readers = add_confirmed_readers(&app, "restart", readers_wanted).await;
    // Slow enough replies that every interruption lands mid-send.
    app.smtp()
        .set_behaviour(Behaviour::SlowDataReply(Duration::from_millis(15)));
    let started = Instant::now();
    queue_the_digest(&app).await;

    let mut recoveries = Vec::new();
    for (i, &what) in interruptions.iter().enumerate() {
        let mark = readers.len() * (i + 1) / (interruptions.len() + 1);
        wait_for_deliveries(&app, mark).await;
        let (accepted, down_since) = match what {
            Interruption::Restart(mode) => (cluster.restart(mode).await, None),
            Interruption::Down(mode, down) => {
                cluster.stop(mode).await;
                let stopped = spacedigest::db::now();
                tokio::time::sleep(down).await;
                let taken = app.smtp().message_count();
                (cluster.start_again().await, Some((stopped, taken)))
            }
        };
        let accepted_wall = spacedigest::db::now() - accepted.elapsed();
        let since = |at: NaiveDateTime| (at - accepted_wall).to_std().unwrap_or_default();
        let recorded = first_recorded(&app, accepted_wall, None).await;
        // A claim moves the row's next attempt one lease ahead of the claim's time.
        let claimed_after = accepted_wall + app.settings.delivery.lease;
        let resumed = first_recorded(&app, accepted_wall, Some(claimed_after)).await;
        let unrecorded = match down_since {
            Some((stopped, taken)) => {
                Some(taken.saturating_sub(recorded_before(&app, stopped).await))
            }
            None => None,
        };
        recoveries.push(Recovery {
            what,
            records_resume: since(recorded),
            sending_resumes: since(resumed),
            unrecorded,
        });
    }
    // Past the lease, should any email have been left to it.
    let records = wait_until_all_finished(&app, Duration::from_secs(400)).await;
    let elapsed = started.elapsed();

    let mut copies = HashMap::<String, usize>::new();
    for message in app.smtp().messages() {
        *copies.entry(message.rcpt_to[0].clone()).or_default() += 1;
    }
    let missing = readers.iter().filter(|r| !copies.contains_key(*r)).count();
    let twice = copies.values().filter(|n| **n == 2).count();
    let more = copies.values().filter(|n| **n >= 3).count();
    let not_sent = records.iter().filter(|(_, s)| s != "sent").count();
    let recovered = recoveries
        .iter()
        .map(|r| {
            let mut line = format!(
                "{}: records resume {:.2} s, sending resumes {:.2} s",
                r.what.label(),
                r.records_resume.as_secs_f64(),
                r.sending_resumes.as_secs_f64()
            );
            if let Some(unrecorded) = r.unrecorded {
                line.push_str(&format!(", sent but unrecorded while down {unrecorded}"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ");
    crate::support::figures::report(
        "pg-restart-mid-send",
        &format!(
            "{} readers, concurrency {CONCURRENCY}, in-flight limit {IN_FLIGHT}; after \
             PostgreSQL accepts connections again: {recovered}; missing {missing}, \
             twice {twice}, three or more {more}, rows not sent {not_sent}; whole send {:.1} s",
            readers.len(),
            elapsed.as_secs_f64()
        ),
    );
    assert_eq!(missing, 0, "readers without their digest");
    assert_eq!(more, 0, "readers with three or more copies");
    assert_eq!(twice, 0, "readers with two copies, though no worker died");
    assert_eq!(not_sent, 0, "rows not sent\nserver log:\n{}", cluster.log());
    for recovery in &recoveries {
        let what = recovery.what.label();
        // Generous for a loaded machine; with the worker's retry pauses growing to 30 s,
        // sending resumed only up to 30 s after a long outage.
        assert!(
            recovery.sending_resumes < Duration::from_secs(12),
            "after {what} the worker took {:.1} s to send again",
            recovery.sending_resumes.as_secs_f64()
        );
        if let Some(unrecorded) = recovery.unrecorded {
            assert!(
                unrecorded <= IN_FLIGHT,
                "while {what}, {unrecorded} emails were sent but unrecorded: more than the \
                 in-flight limit {IN_FLIGHT}"
            );
        }
    }
}

/// Creates the day's issue and fans it out; the app's own worker delivers it.
async fn queue_the_digest(app: &TestApp) {
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let queued = queue_issue(app, date).await;
    assert!(
        matches!(queued, spacedigest::digest::SendOutcome::Queued { .. }),
        "{queued:?}"
    );
}

/// Waits until the SMTP server has `n` messages.
async fn wait_for_deliveries(app: &TestApp, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while app.smtp().message_count() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} deliveries arrived",
            app.smtp().message_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// When the first outcome at or after `since` was recorded; with `claimed_after`, only
/// among rows whose next attempt was set at or after it.
async fn first_recorded(
    app: &TestApp,
    since: NaiveDateTime,
    claimed_after: Option<NaiveDateTime>,
) -> NaiveDateTime {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let first: Option<NaiveDateTime> = app
            .db(move |c| {
                let mut query = outbound_emails::table
                    .filter(outbound_emails::finished_at.ge(since))
                    .select(diesel::dsl::min(outbound_emails::finished_at))
                    .into_boxed();
                if let Some(claimed_after) = claimed_after {
                    query = query.filter(outbound_emails::next_attempt_at.ge(claimed_after));
                }
                query.first(c)
            })
            .await;
        if let Some(first) = first {
            return first;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing was recorded within two minutes of the database coming back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many outcomes were recorded before `at`.
async fn recorded_before(app: &TestApp, at: NaiveDateTime) -> usize {
    let count: i64 = app
        .db(move |c| {
            outbound_emails::table
                .filter(outbound_emails::finished_at.lt(at))
                .count()
                .get_result(c)
        })
        .await;
    usize::try_from(count).unwrap()
}

/// Every row's (recipient, status) once none is pending, or as they stand after `wait`
/// (the caller's assertions then say what is missing).
async fn wait_until_all_finished(app: &TestApp, wait: Duration) -> Vec<(String, String)> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let rows: Vec<(String, String)> = app
            .db(|c| {
                outbound_emails::table
                    .select((outbound_emails::recipient_email, outbound_emails::status))
                    .load(c)
            })
            .await;
        if rows.iter().all(|(_, status)| status != "pending")
            || tokio::time::Instant::now() >= deadline
        {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
#[cfg_attr(
    not(spacedigest_test_backend = "postgres"),
    ignore = "PostgreSQL only: runs when SPACEDIGEST_TEST_POSTGRES_URL is set"
)]
async fn digest_send_rides_out_postgres_stopped_mid_send() {
    require_backend(Backend::Postgres);
    let readers_wanted = if crate::support::figures::full() {
        3000
    } else {
        1000
    };
    // Past the pool's 5 s wait for a connection, so the command meets the outage.
    let down = Duration::from_secs(7);
    let cluster = PgCluster::start().await;
    let mut app = app_on_cluster(&cluster, |_| {}).await;
    app.stop().await; // only the command sends
    add_story(
        &app,
        "Command story",
        "",
        NaiveDateTime::parse_from_str("2026-11-20 09:00", "%Y-%m-%d %H:%M").unwrap(),
    )
    .await;
    let readers = add_confirmed_readers(&app, "command", readers_wanted).await;
    app.smtp()
        .set_behaviour(Behaviour::SlowDataReply(Duration::from_millis(15)));
    let database_url = match &app.settings.database.url {
        spacedigest::config::DatabaseUrl::Postgres(url) => url.clone(),
        other => panic!("not the private cluster: {}", other.redacted()),
    };
    let concurrency = CONCURRENCY.to_string();
    let in_flight = IN_FLIGHT.to_string();
    let command = tokio::process::Command::from(binary(&app))
        .args(["digest", "send", "--date", "2026-11-20"])
        .env("SPACEDIGEST_DATABASE_URL", database_url)
        .env("SPACEDIGEST_SEND_CONCURRENCY", &concurrency)
        .env("SPACEDIGEST_SEND_IN_FLIGHT", &in_flight)
        .env("SPACEDIGEST_LOG", "error")
        .kill_on_drop(true)
        .output();
    let outage = async {
        wait_for_deliveries(&app, readers.len() / 3).await;
        cluster.stop(StopMode::Immediate).await;
        tokio::time::sleep(down).await;
        cluster.start_again().await;
    };
    let (out, ()) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(180), command),
        outage
    );
    let out = out.expect("digest send finished").expect("digest send ran");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // A command that gave up leaves the rest to `serve`: no point waiting long for it.
    let settle = if out.status.success() { 60 } else { 5 };
    let records = wait_until_all_finished(&app, Duration::from_secs(settle)).await;
    let mut copies = HashMap::<String, usize>::new();
    for message in app.smtp().messages() {
        *copies.entry(message.rcpt_to[0].clone()).or_default() += 1;
    }
    let missing = readers.iter().filter(|r| !copies.contains_key(*r)).count();
    let twice = copies.values().filter(|n| **n >= 2).count();
    let not_sent = records.iter().filter(|(_, s)| s != "sent").count();
    crate::support::figures::report(
        "pg-down-digest-send",
        &format!(
            "`digest send` to {} readers, PostgreSQL stopped (immediate) for {} s a third of \
             the way in: command {}, missing {missing}, two or more copies {twice}, rows not sent \
             {not_sent}",
            readers.len(),
            down.as_secs(),
            out.status
        ),
    );
    assert!(
        out.status.success(),
        "digest send gave up: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Done in"), "{stdout}");
    assert_eq!(missing, 0, "readers without their digest");
    assert_eq!(
        twice, 0,
        "readers with two or more copies, though no sender died"
    );
    assert_eq!(not_sent, 0, "rows not sent");
}
