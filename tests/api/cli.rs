//! The binary as an operator runs it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::app::{TestDatabase, urlencode};
use crate::support::smtp_server::free_port;

fn spacedigest(db: &TestDatabase, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spacedigest"));
    command
        .args(args)
        .current_dir(db.dir())
        .env_clear()
        .env("SPACEDIGEST_DATABASE_URL", db.url_string())
        .env("SPACEDIGEST_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_bad_setting_stops_the_program_with_a_message_naming_it() {
    let db = TestDatabase::create();
    for (variable, value) in [
        ("SPACEDIGEST_LISTEN", "not-an-address"),
        ("SPACEDIGEST_DATABASE_URL", "mysql://localhost/x"),
        ("SPACEDIGEST_SMTP_URL", "ftp://mail"),
        ("SPACEDIGEST_SIGNUP_RATE_PER_MINUTE", "-3"),
        ("SPACEDIGEST_BASE_URL", "not a url"),
        ("SPACEDIGEST_FROM", "nobody"),
        ("SPACEDIGEST_NO_SUCH_SETTING", "1"),
        ("SPACEDIGEST_ADMIN_SESSION_IDLE_MINUTES", "0"),
        ("SPACEDIGEST_ADMIN_SESSION_MAX_HOURS", "100000000000000000"),
    ] {
        let out = spacedigest(&db, &["migrate"], &[(variable, value)]);
        assert!(!out.status.success(), "{variable}={value} was accepted");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn settings_are_read_from_spacedigest_toml() {
    let db = TestDatabase::create();
    std::fs::write(db.dir().join("spacedigest.toml"), "listen = \"nowhere\"\n").unwrap();
    let out = spacedigest(&db, &["migrate"], &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("SPACEDIGEST_LISTEN"));
}

#[test]
fn migrate_then_add_and_list_newsletters() {
    let db = TestDatabase::create();
    let out = spacedigest(&db, &["migrate"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = spacedigest(&db, &["migrate"], &[]);
    assert!(text(&again.stdout).contains("up to date"));

    let out = spacedigest(
        &db,
        &[
            "newsletter",
            "add",
            "mars-weekly",
            "--title",
            "Mars Weekly",
            "--send-at",
            "06:30",
            "--timezone",
            "Europe/Berlin",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let list = text(&spacedigest(&db, &["newsletter", "list"], &[]).stdout);
    assert!(
        list.contains("space-daily") && list.contains("Space Daily"),
        "{list}"
    );
    assert!(
        list.contains("mars-weekly") && list.contains("06:30") && list.contains("Europe/Berlin"),
        "{list}"
    );

    let duplicate = spacedigest(
        &db,
        &["newsletter", "add", "mars-weekly", "--title", "Again"],
        &[],
    );
    assert!(!duplicate.status.success());
    assert!(text(&duplicate.stderr).contains("already exists"));
    for bad in [
        vec!["newsletter", "add", "Bad Slug", "--title", "X"],
        vec![
            "newsletter",
            "add",
            "ok-slug",
            "--title",
            "X",
            "--timezone",
            "Mars/Olympus",
        ],
        vec![
            "newsletter",
            "add",
            "ok-slug",
            "--title",
            "X",
            "--send-at",
            "25:00",
        ],
        vec!["newsletter", "add", "ok-slug", "--title", ""],
    ] {
        let out = spacedigest(&db, &bad, &[]);
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(text(&out.stderr).starts_with("error: "));
    }
}

fn wait_for_health(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = stream
                .write_all(b"GET /health_check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn eml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn serve_writes_confirmation_mail_to_the_outbox_and_stops_on_sigterm() {
    let db = TestDatabase::create();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spacedigest"))
        .arg("serve")
        .current_dir(db.dir())
        .env_clear()
        .env("SPACEDIGEST_DATABASE_URL", db.url_string())
        .env("SPACEDIGEST_LISTEN", format!("127.0.0.1:{port}"))
        .env("SPACEDIGEST_BASE_URL", format!("http://127.0.0.1:{port}"))
        .env(
            "SPACEDIGEST_LOG",
            "warn,spacedigest::app=info,spacedigest::delivery=info",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_health(port);

    let body = format!("email={}", urlencode("outbox-reader@example.com"));
    let request = format!(
        "POST /subscriptions HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    // The default mail setting writes .eml files into ./outbox.
    let outbox = db.dir().join("outbox");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while eml_files(&outbox).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no .eml in {}",
            outbox.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let eml = std::fs::read_to_string(&eml_files(&outbox)[0]).unwrap();
    assert!(eml.contains("outbox-reader@example.com"));
    assert!(eml.contains("multipart/alternative"));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            // Say what it was doing: kill it, then read what it logged.
            child.kill().unwrap();
            child.wait().unwrap();
            let stderr = logged(&mut child);
            panic!("serve did not stop within 20 s of SIGTERM; it logged:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = logged(&mut child);
    assert!(status.success(), "exit {status:?}: {stderr}");
    // No operator exists yet, and there is no default account: serve says how to make one.
    assert!(
        stderr.contains("spacedigest admin create"),
        "no hint about the console's first account: {stderr}"
    );
}

/// Everything an exited child wrote to its piped stderr.
fn logged(child: &mut std::process::Child) -> String {
    use std::io::Read;
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

#[tokio::test]
async fn the_worker_command_delivers_queued_mail_and_stops_on_sigterm() {
    use crate::support::app::{Mail, spawn_app_with, unique_email};
    use crate::support::smtp_server::SmtpServer;

    // The web app queues a confirmation while its own mail server is down.
    let mut app = spawn_app_with(Mail::Port(free_port()), |s| {
        s.delivery.retry_base = Duration::from_secs(60);
        s.delivery.retry_max = Duration::from_secs(60);
    })
    .await;
    let email = unique_email();
    app.sign_up(&email).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.outbound().await[0].attempts < 1 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Only the separate `spacedigest worker` process below may send it, through a working relay.
    app.stop().await;
    {
        use diesel::prelude::*;
        use spacedigest::db::schema::outbound_emails;
        app.db(|c| {
            diesel::update(outbound_emails::table)
                .set(outbound_emails::next_attempt_at.eq(spacedigest::db::now()))
                .execute(c)
        })
        .await;
    }
    let relay = SmtpServer::start().await;
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_spacedigest"))
        .arg("worker")
        .current_dir(app.database.dir())
        .env_clear()
        .env("SPACEDIGEST_DATABASE_URL", app.database.url_string())
        .env("SPACEDIGEST_SMTP_URL", relay.url())
        .env("SPACEDIGEST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mails = relay.wait_for_messages(1, Duration::from_secs(20)).await;
    assert_eq!(mails[0].rcpt_to, vec![email]);
    let records = app.wait_until_queue_settles().await;
    assert_eq!(records[0].status.as_str(), "sent");

    let pid = worker.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), worker.wait())
        .await
        .expect("the worker stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
