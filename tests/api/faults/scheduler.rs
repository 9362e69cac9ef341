//! The daily send triggered more than once at the same moment: schedulers ticking
//! together (in one process, and as two real `spacedigest serve` processes on one
//! database), and an operator's "Send now" racing `digest send`. However many ask, a
//! day's issue is created once and each reader gets one copy.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use futures_util::future::join_all;
use spacedigest::db::schema::{digest_issues, newsletters, outbound_emails};
use spacedigest::digest::SendOutcome;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::console::Browser;
use crate::support::app::{TestApp, spawn_app, urlencode};
use crate::support::{add_confirmed_readers, add_story, binary, cli};

const READERS: usize = 20;
/// The console's day; any day with stories will do.
const DAY: &str = "2026-11-20";

/// What one race left behind.
#[derive(Debug, Default)]
struct Tally {
    /// Issues of the day.
    issues: i64,
    /// Digest rows queued.
    queued: i64,
    /// Readers who got no copy, one, and more than one.
    missing: usize,
    more_than_once: usize,
    /// Emails the SMTP server received.
    emails: usize,
}

impl Tally {
    fn is_exact(&self) -> bool {
        self.issues == 1
            && self.queued == i64::try_from(READERS).unwrap()
            && self.missing == 0
            && self.more_than_once == 0
    }
}

#[tokio::test]
async fn the_scheduler_firing_twice_sends_one_issue_once_to_each_reader() {
    let full = crate::support::figures::full();
    let (in_process_races, process_races) = if full { (20, 10) } else { (3, 2) };
    let mut in_process = Vec::new();
    for _ in 0..in_process_races {
        in_process.push(race_in_one_process().await);
    }
    let mut two_processes = Vec::new();
    let mut queued_by = Vec::new();
    for _ in 0..process_races {
        let (tally, winners) = race_two_serve_processes().await;
        two_processes.push(tally);
        queued_by.push(winners);
    }
    let describe = |tallies: &[Tally]| {
        let exact = tallies.iter().filter(|t| t.is_exact()).count();
        let emails: usize = tallies.iter().map(|t| t.emails).sum();
        format!(
            "{exact}/{} races exact ({emails} emails for {} reader-days)",
            tallies.len(),
            tallies.len() * READERS
        )
    };
    crate::support::figures::report(
        "scheduler-twice",
        &format!(
            "{READERS} readers; 3 schedulers and 2 direct sends at once in one process: {}; \
             two `serve` processes started together: {} (processes that queued the issue, \
             per race: {queued_by:?})",
            describe(&in_process),
            describe(&two_processes)
        ),
    );
    for tally in in_process.iter().chain(&two_processes) {
        assert!(tally.is_exact(), "{tally:?}");
    }
    assert!(
        queued_by.iter().all(|n| *n == 1),
        "exactly one process queues the issue: {queued_by:?}"
    );
}

#[tokio::test]
async fn send_now_in_the_console_racing_digest_send_sends_once() {
    let races = if crate::support::figures::full() {
        20
    } else {
        3
    };
    let seed = std::env::var("SPACEDIGEST_TEST_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(6);
    let mut tallies = Vec::new();
    let mut winners = HashMap::<&'static str, usize>::new();
    for race in 0..races {
        // Either may start first, by up to 300 ms: about how long the command takes to
        // start and queue the issue, so each wins some of the races.
        let offset = i64::try_from((seed.wrapping_mul(7919) + race * 97) % 600).unwrap() - 300;
        let (tally, winner) = race_console_and_cli(offset).await;
        tallies.push(tally);
        *winners.entry(winner).or_default() += 1;
    }
    let exact = tallies.iter().filter(|t| t.is_exact()).count();
    let emails: usize = tallies.iter().map(|t| t.emails).sum();
    crate::support::figures::report(
        "console-and-cli-send",
        &format!(
            "{exact}/{races} races exact, {READERS} readers each ({emails} emails for {} \
             reader-days); queued by: {winners:?}; seed {seed}",
            races as usize * READERS
        ),
    );
    for tally in &tallies {
        assert!(tally.is_exact(), "{tally:?}");
    }
    assert!(
        !winners.contains_key("both") && !winners.contains_key("neither"),
        "exactly one of them queues the issue each time: {winners:?}"
    );
}

/// Three schedulers and two direct sends at once, on one pool, with the send time passed.
async fn race_in_one_process() -> Tally {
    let app = spawn_app().await;
    let readers = due_today_with_readers(&app).await;
    let stop = CancellationToken::new();
    let schedulers: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(spacedigest::digest::scheduler::run_scheduler(
                app.pool.clone(),
                app.settings.clone(),
                spacedigest::queue_signal::QueueSignal::default(),
                stop.clone(),
            ))
        })
        .collect();
    let sends = (0..2).map(|_| {
        let settings = app.settings.clone();
        app.db(move |c| {
            let newsletter =
                spacedigest::db::newsletters::by_slugs(c, &["space-daily".into()])?.remove(0);
            let today = spacedigest::digest::today(&newsletter);
            Ok(spacedigest::digest::send(c, &settings, &newsletter, today).unwrap())
        })
    });
    let outcomes = join_all(sends).await;
    let queued_directly = outcomes
        .iter()
        .filter(|o| matches!(o, SendOutcome::Queued { .. }))
        .count();
    assert!(queued_directly <= 1, "{outcomes:?}");
    let tally = settle(&app, &readers, today_utc()).await;
    stop.cancel();
    for scheduler in schedulers {
        scheduler.await.unwrap();
    }
    tally
}

/// Two real `serve` processes started together on one database, the send time passed;
/// the test's own app is stopped so only they send. Returns the tally and how many of
/// them logged that they queued the issue.
async fn race_two_serve_processes() -> (Tally, usize) {
    let mut app = spawn_app().await;
    app.stop().await;
    let readers = due_today_with_readers(&app).await;
    let spawn = || {
        tokio::process::Command::from(binary(&app))
            .arg("serve")
            .env("SPACEDIGEST_LISTEN", "127.0.0.1:0")
            .env(
                "SPACEDIGEST_LOG",
                "warn,spacedigest::app=info,spacedigest::digest=info",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("`spacedigest serve` starts")
    };
    let mut servers = [spawn(), spawn()];
    let tally = settle(&app, &readers, today_utc()).await;
    let mut queued_by = 0;
    for server in &mut servers {
        let pid = server.id().expect("still running").to_string();
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await;
        let stopped = tokio::time::timeout(Duration::from_secs(30), server.wait()).await;
        assert!(
            stopped.is_ok_and(|status| status.is_ok_and(|s| s.success())),
            "a serve process did not stop cleanly on SIGTERM"
        );
        let mut log = String::new();
        server
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .await
            .unwrap();
        assert!(
            log.contains("spacedigest is serving"),
            "a serve process never got going: {log}"
        );
        if log.contains("scheduled digest queued") {
            queued_by += 1;
        }
    }
    (tally, queued_by)
}

/// "Send now" pressed `offset_ms` after `digest send` is started (before, if negative),
/// for the same day. Returns the tally and which of them queued the issue.
async fn race_console_and_cli(offset_ms: i64) -> (Tally, &'static str) {
    let wait = |ms: i64| Duration::from_millis(u64::try_from(ms.max(0)).unwrap());
    let app = spawn_app().await;
    let published = NaiveDateTime::parse_from_str(&format!("{DAY} 12:00"), "%Y-%m-%d %H:%M");
    add_story(&app, "Race story", "<p>Once.</p>", published.unwrap()).await;
    let readers = add_confirmed_readers(&app, "race", READERS).await;
    let browser = Browser::logged_in(&app).await;
    // The operator has the confirmation step open, as before pressing the button.
    let step = browser
        .get(&format!(
            "/admin/digests/send?newsletter=space-daily&date={DAY}"
        ))
        .await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert!(step.body.contains("id=\"confirm-send\""), "{}", step.body);
    let token = browser.csrf_token().await;
    let press = async {
        tokio::time::sleep(wait(offset_ms)).await;
        browser
            .post_raw(
                "/admin/digests/send",
                &format!(
                    "csrf_token={}&newsletter=space-daily&date={DAY}",
                    urlencode(&token)
                ),
            )
            .await
    };
    let command = async {
        tokio::time::sleep(wait(-offset_ms)).await;
        cli(&app, &["digest", "send", "--date", DAY], &[]).await
    };
    let (out, pressed) = tokio::join!(command, press);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "digest send ended with {}: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pressed.status, 303, "send now: {}", pressed.body);
    let location = pressed.header("location").unwrap_or_default();
    let console_queued = location.ends_with("?done=queued");
    assert!(
        console_queued || location.ends_with("?done=already-sent"),
        "{location}"
    );
    let cli_queued = stdout.contains(&format!("to {READERS} readers"));
    assert!(
        cli_queued || stdout.contains("nothing new was queued"),
        "{stdout}"
    );
    let date = NaiveDate::parse_from_str(DAY, "%Y-%m-%d").unwrap();
    let tally = settle(&app, &readers, date).await;
    let winner = match (console_queued, cli_queued) {
        (true, false) => "console",
        (false, true) => "cli",
        (true, true) => "both",
        (false, false) => "neither",
    };
    (tally, winner)
}

/// Readers of the default newsletter, a story published today, and a send time already
/// passed: any scheduler that ticks now sends today's issue.
async fn due_today_with_readers(app: &TestApp) -> Vec<String> {
    let readers = add_confirmed_readers(app, "due", READERS).await;
    app.db(|c| {
        diesel::update(newsletters::table)
            .set((
                newsletters::send_at.eq("00:00"),
                newsletters::timezone.eq("UTC"),
            ))
            .execute(c)
    })
    .await;
    // Halfway between midnight and now, so it is today's even just after midnight.
    let now = Utc::now().naive_utc();
    let midnight = now.date().and_hms_opt(0, 0, 0).unwrap();
    add_story(
        app,
        "Due story",
        "<p>Today.</p>",
        midnight + (now - midnight) / 2,
    )
    .await;
    readers
}

fn today_utc() -> NaiveDate {
    Utc::now().date_naive()
}

/// Waits until every reader has had time to get their copy and the queue is done, then
/// counts issues, rows and copies.
async fn settle(app: &TestApp, readers: &[String], date: NaiveDate) -> Tally {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while app.smtp().message_count() < readers.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} digests arrived",
            app.smtp().message_count(),
            readers.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A second fan-out, had there been one, would be going out now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (issues, queued) = app
        .db(move |c| {
            let issues: i64 = digest_issues::table
                .filter(digest_issues::issue_date.eq(date))
                .count()
                .get_result(c)?;
            let queued: i64 = outbound_emails::table
                .filter(outbound_emails::kind.eq("digest"))
                .count()
                .get_result(c)?;
            Ok((issues, queued))
        })
        .await;
    let mut copies = HashMap::<String, usize>::new();
    for message in app.smtp().messages() {
        *copies.entry(message.rcpt_to[0].clone()).or_default() += 1;
    }
    Tally {
        issues,
        queued,
        missing: readers.iter().filter(|r| !copies.contains_key(*r)).count(),
        more_than_once: copies.values().filter(|n| **n > 1).count(),
        emails: app.smtp().message_count(),
    }
}
