//! Scale-out on PostgreSQL: three `spacedigest worker` and two `spacedigest serve`
//! processes (the real binary) on one database send one digest to 20,000 readers. Every
//! reader gets exactly one copy, and the work is shared: each sender process has an SMTP
//! relay of its own, so the relays' counts are the processes' shares, seen from outside.
//!
//! `serve` runs a delivery worker of its own (CONTRACT), so the scale-out shape has five
//! senders; all five are counted. For throughput, the same 20,000 readers then go out
//! from three `worker` processes alone and from one alone (fresh databases, the issue
//! queued directly), first to last message. On a 2-core machine three workers need not
//! beat one: the test asserts correctness and sharing, and only reports speed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use spacedigest::config::Settings;
use spacedigest::db::DbConnection;
use tokio::time::Instant;

use crate::console::{OPERATOR_EMAIL, OPERATOR_PASSWORD};
use crate::support::app::{Backend, TestDatabase, hidden_field, require_backend, urlencode};
use crate::support::smtp_server::{SmtpServer, free_port};

const READERS: usize = 20_000;
/// The issue's day: a fixed past date, so `serve`'s scheduler (which sends today's
/// issue) never sends this one by itself; the operator's "Send now" does.
const DAY: &str = "2026-11-20";
/// A guard against a hung send, not a speed limit: the debug binary on a shared 2-core
/// machine, beside the rest of the suite, took up to 70 s for one send.
const SEND_WITHIN: Duration = Duration::from_secs(600);

/// A child process of the real binary, killed when dropped (also when a test fails).
struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// The last lines of what it wrote to stderr, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(20);
        format!(
            "--- {} ({}) ---\n{}",
            self.name,
            self.log.display(),
            lines[from..].join("\n")
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with only the settings given here (no stray `SPACEDIGEST_*` from outside).
fn spacedigest(dir: &Path, database_url: &str, smtp_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spacedigest"));
    command
        .current_dir(dir)
        .env_clear()
        .env("SPACEDIGEST_DATABASE_URL", database_url)
        .env("SPACEDIGEST_SMTP_URL", smtp_url)
        .env("SPACEDIGEST_LOG", "warn")
        .env("SPACEDIGEST_DB_POOL_SIZE", "4")
        .env("SPACEDIGEST_HTTP_WORKERS", "1")
        .env("SPACEDIGEST_SIGNUP_RATE_PER_MINUTE", "0");
    command
}

/// Runs a one-shot command to success.
fn run_to_end(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts a long-running process, its stderr kept in a file beside the database.
fn start(mut command: Command, dir: &Path, name: &str) -> Process {
    let log = dir.join(format!("{}.log", name.replace(' ', "-")));
    let file = std::fs::File::create(&log).expect("a log file");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Process {
        name: name.to_owned(),
        child,
        log,
    }
}

/// A connection of the test's own, for seeding and checking.
fn connect(database: &TestDatabase) -> PgConnection {
    PgConnection::establish(&database.url_string()).expect("the test database")
}

/// A fresh database, migrated by `spacedigest migrate`, with `READERS` confirmed readers
/// of the default newsletter and two stories on `DAY`.
async fn prepared_database() -> TestDatabase {
    let database = TestDatabase::create();
    run_to_end(
        spacedigest(&database.dir(), &database.url_string(), "file://outbox").arg("migrate"),
        "spacedigest migrate",
    );
    let url = database.url_string();
    tokio::task::spawn_blocking(move || {
        let mut conn = PgConnection::establish(&url).expect("the test database");
        // In bulk, in the database: the signup path has its own tests.
        conn.batch_execute(&format!(
            "INSERT INTO subscribers (email, email_key, created_at, updated_at)
               SELECT 'reader-' || g || '@example.com', 'reader-' || g || '@example.com',
                      now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
               FROM generate_series(1, {READERS}) AS g;
             INSERT INTO subscriptions
                 (subscriber_id, newsletter_id, status, created_at, confirmed_at, updated_at)
               SELECT s.id, n.id, 'confirmed', now() AT TIME ZONE 'utc',
                      now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
               FROM subscribers s, newsletters n WHERE n.slug = 'space-daily';
             INSERT INTO stories
                 (newsletter_id, guid, url, title, summary_html, source, published_at,
                  created_at, updated_at)
               SELECT n.id, 'https://news.example.org/' || t.slug,
                      'https://news.example.org/' || t.slug, t.title, t.summary,
                      'Example Space News', TIMESTAMP '{DAY} 09:00' + t.later,
                      now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc'
               FROM newsletters n,
                    (VALUES ('lunar-rover', 'Lunar rover wakes up',
                             '<p>After a long night.</p>', INTERVAL '0 hours'),
                            ('comet', 'Comet visible at dusk', '<p>Look west.</p>',
                             INTERVAL '2 hours')) AS t(slug, title, summary, later)
               WHERE n.slug = 'space-daily';"
        ))
        .expect("seeding readers and stories");
    })
    .await
    .unwrap();
    database
}

/// Waits until the server answers `GET /health_check` with 200.
async fn wait_until_serving(address: &str, process: &mut Process) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(answer) = client.get(format!("{address}/health_check")).send().await {
            if answer.status() == 200 {
                return;
            }
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            panic!(
                "{} exited with {status}\n{}",
                process.name,
                process.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{} never answered /health_check\n{}",
            process.name,
            process.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Logs into the console at `address` and presses "Send now" for `DAY`.
async fn send_now_from_console(address: &str) {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login_page = browser
        .get(format!("{address}/admin/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = hidden_field(&login_page, "csrf_token");
    let login = browser
        .post(format!("{address}/admin/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf_token={}&email={}&password={}",
            urlencode(&token),
            urlencode(OPERATOR_EMAIL),
            urlencode(OPERATOR_PASSWORD)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        303,
        "login: {}",
        login.text().await.unwrap()
    );
    let account = browser
        .get(format!("{address}/admin/account"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = hidden_field(&account, "csrf_token");
    let sent = browser
        .post(format!("{address}/admin/digests/send"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf_token={}&newsletter=space-daily&date={DAY}",
            urlencode(&token)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.status(),
        303,
        "send now: {}",
        sent.text().await.unwrap()
    );
}

/// Queues `DAY`'s issue directly, as `digest send` does before it delivers.
async fn queue_issue(database: &TestDatabase) {
    let url = database.url_string();
    let mut settings = Settings::defaults();
    settings.database.url = database.url.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = DbConnection::Pg(PgConnection::establish(&url).unwrap());
        let newsletter = spacedigest::db::newsletters::by_slugs(&mut conn, &["space-daily".into()])
            .expect("the default newsletter")
            .remove(0);
        let day = chrono::NaiveDate::parse_from_str(DAY, "%Y-%m-%d").unwrap();
        match spacedigest::digest::send(&mut conn, &settings, &newsletter, day) {
            Ok(spacedigest::digest::SendOutcome::Queued { recipients, .. }) => {
                assert_eq!(recipients, READERS, "every reader is queued");
            }
            other => panic!("the issue was not queued: {other:?}"),
        }
    })
    .await
    .unwrap();
}

/// One sender process's relay and what it received.
struct Relay {
    name: String,
    smtp: SmtpServer,
}

/// What one send measured.
struct Outcome {
    /// Per sender: its name and how many digests its relay received.
    shares: Vec<(String, usize)>,
    /// Emails per second, from the first message to the last across all relays.
    throughput: f64,
}

/// Waits until the relays hold `READERS` messages and the queue has nothing pending,
/// then checks that every reader got exactly one copy; returns the shares and the rate.
async fn delivered_once_each(
    relays: &[Relay],
    database: &TestDatabase,
    processes: &mut [Process],
) -> Outcome {
    let deadline = Instant::now() + SEND_WITHIN;
    let mut conn = connect(database);
    loop {
        let received: usize = relays.iter().map(|r| r.smtp.message_count()).sum();
        let pending: i64 =
            diesel::sql_query("SELECT count(*) AS n FROM outbound_emails WHERE status = 'pending'")
                .get_result::<Count>(&mut conn)
                .expect("counting pending emails")
                .n;
        if received >= READERS && pending == 0 {
            break;
        }
        for process in processes.iter_mut() {
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!(
                    "{} exited with {status}\n{}",
                    process.name,
                    process.log_tail()
                );
            }
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = processes.iter().map(Process::log_tail).collect();
            panic!(
                "after {SEND_WITHIN:?}: {received} of {READERS} received, {pending} pending\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Anything a sender still had on the wire arrives now, or never.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut copies: HashMap<String, usize> = HashMap::new();
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut shares = Vec::new();
    for relay in relays {
        let messages = relay.smtp.messages_with_arrival();
        shares.push((relay.name.clone(), messages.len()));
        for (at, message) in messages {
            first = Some(first.map_or(at, |f| f.min(at)));
            last = Some(last.map_or(at, |l| l.max(at)));
            for recipient in message.rcpt_to {
                *copies.entry(recipient).or_default() += 1;
            }
        }
        relay.smtp.clear_messages();
    }
    let duplicates = copies.values().filter(|&&n| n > 1).count();
    let missing = (1..=READERS)
        .filter(|i| !copies.contains_key(&format!("reader-{i}@example.com")))
        .count();
    let strangers = copies
        .keys()
        .filter(|r| !r.starts_with("reader-") || !r.ends_with("@example.com"))
        .count();
    let seconds = match (first, last) {
        (Some(first), Some(last)) => last.duration_since(first).as_secs_f64().max(0.001),
        _ => 0.001,
    };
    let total: usize = shares.iter().map(|(_, n)| n).sum();
    assert_eq!(duplicates, 0, "readers with more than one copy");
    assert_eq!(missing, 0, "readers with no copy");
    assert_eq!(strangers, 0, "messages to anyone but the readers");
    assert_eq!(total, READERS, "one message per reader across all relays");
    Outcome {
        shares,
        throughput: READERS as f64 / seconds,
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// `worker` processes (and `serve` processes when `serves > 0`, which then trigger the
/// send from the console), each with its own relay; `workers + serves` senders.
async fn send_with(workers: usize, serves: usize) -> Outcome {
    let database = prepared_database().await;
    let dir = database.dir();
    let url = database.url_string();
    let mut relays = Vec::new();
    let mut processes = Vec::new();
    for i in 1..=workers {
        let relay = Relay {
            name: format!("worker {i}"),
            smtp: SmtpServer::start().await,
        };
        let mut command = spacedigest(&dir, &url, &relay.smtp.url());
        command.arg("worker");
        processes.push(start(command, &dir, &relay.name));
        relays.push(relay);
    }
    let mut addresses = Vec::new();
    if serves > 0 {
        let mut command = spacedigest(&dir, &url, "file://outbox");
        command
            .args(["admin", "create", OPERATOR_EMAIL])
            .env("SPACEDIGEST_ADMIN_PASSWORD", OPERATOR_PASSWORD);
        run_to_end(&mut command, "spacedigest admin create");
    }
    for i in 1..=serves {
        let relay = Relay {
            name: format!("serve {i}"),
            smtp: SmtpServer::start().await,
        };
        let port = free_port();
        let address = format!("http://127.0.0.1:{port}");
        let mut command = spacedigest(&dir, &url, &relay.smtp.url());
        command
            .arg("serve")
            .env("SPACEDIGEST_LISTEN", format!("127.0.0.1:{port}"))
            .env("SPACEDIGEST_BASE_URL", &address);
        processes.push(start(command, &dir, &relay.name));
        relays.push(relay);
        addresses.push(address);
    }
    // The serves start together: their migrations must not race (an advisory lock).
    let first_serve = workers;
    for (i, address) in addresses.iter().enumerate() {
        wait_until_serving(address, &mut processes[first_serve + i]).await;
    }
    match addresses.first() {
        Some(address) => send_now_from_console(address).await,
        None => queue_issue(&database).await,
    }
    let outcome = delivered_once_each(&relays, &database, &mut processes).await;
    drop(processes);
    outcome
}

fn describe(outcome: &Outcome) -> String {
    let shares: Vec<String> = outcome
        .shares
        .iter()
        .map(|(name, n)| format!("{name} {n} ({:.1}%)", 100.0 * *n as f64 / READERS as f64))
        .collect();
    format!("{:.0} emails/s; {}", outcome.throughput, shares.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(spacedigest_test_backend = "postgres"),
    ignore = "PostgreSQL only: runs when SPACEDIGEST_TEST_POSTGRES_URL is set"
)]
async fn three_workers_and_two_serves_on_one_postgresql_send_each_reader_one_copy_and_share_the_work()
 {
    require_backend(Backend::Postgres);
    let started = Instant::now();
    let shape = send_with(3, 2).await;
    crate::support::figures::report(
        "scale-out-shares",
        &format!(
            "{READERS} readers, 3 workers + 2 serves (each serve runs a worker): {}",
            describe(&shape)
        ),
    );
    let three = send_with(3, 0).await;
    let one = send_with(1, 0).await;
    crate::support::figures::report(
        "scale-out-throughput",
        &format!(
            "{READERS} readers: 3 workers {:.0} emails/s, 1 worker {:.0} emails/s ({:.2}x); 3 workers alone: {}; test took {:.0} s",
            three.throughput,
            one.throughput,
            three.throughput / one.throughput,
            describe(&three),
            started.elapsed().as_secs_f64()
        ),
    );
    for (name, n) in shape.shares.iter().chain(&three.shares) {
        if name.starts_with("worker") {
            assert!(
                *n >= READERS / 10,
                "{name} sent only {n} of {READERS}: the work is not shared"
            );
        }
    }
}
