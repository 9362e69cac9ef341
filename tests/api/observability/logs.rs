//! The binary's logs: JSON on request, one object per line, request and delivery spans
//! with their ids, and never a token; plain text without colour codes when piped.

use std::process::Stdio;
use std::time::Duration;

use crate::support::app::{mail_to, spawn_app, unique_email, urlencode};
use crate::support::smtp_server::free_port;

use super::list_unsubscribe;

/// The `span` objects of a JSON log line: the current span and its parents.
fn spans(line: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut all: Vec<&serde_json::Value> = line["spans"]
        .as_array()
        .map(|spans| spans.iter().collect())
        .unwrap_or_default();
    if line["span"].is_object() {
        all.push(&line["span"]);
    }
    all
}

#[tokio::test]
async fn json_logs_carry_request_and_delivery_spans_and_no_tokens() {
    let mut app = spawn_app().await;
    app.stop().await; // the binary below serves this database and mail server
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let mut serve = tokio::process::Command::from(crate::support::binary(&app))
        .arg("serve")
        .env("SPACEDIGEST_LISTEN", format!("127.0.0.1:{port}"))
        .env("SPACEDIGEST_BASE_URL", &address)
        .env("SPACEDIGEST_LOG_FORMAT", "json")
        .env("SPACEDIGEST_LOG", "debug")
        .env("SPACEDIGEST_HTTP_WORKERS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    crate::support::wait_until_answering(&address, Duration::from_secs(30)).await;

    // A reader's whole path, tokens in query strings and bodies included.
    let email = unique_email();
    let signup = client
        .post(format!("{address}/subscriptions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={}", urlencode(&email)))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 200);
    let confirmation = mail_to(&app, &email, 1).await.remove(0);
    let link = confirmation.link_starting_with(&format!("{address}/subscriptions/confirm?token="));
    let confirm_token = link.split("token=").nth(1).unwrap().to_owned();
    assert_eq!(client.get(&link).send().await.unwrap().status(), 200);
    let confirmed = client
        .post(format!("{address}/subscriptions/confirm"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", urlencode(&confirm_token)))
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), 200);
    let welcome = mail_to(&app, &email, 2).await.remove(1);
    let unsubscribe = list_unsubscribe(&welcome);
    let unsubscribe_token = unsubscribe.split("token=").nth(1).unwrap().to_owned();
    assert_eq!(client.get(&unsubscribe).send().await.unwrap().status(), 200);
    let left = client
        .post(&unsubscribe)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 200);
    let archive = client
        .get(format!("{address}/archive/space-daily"))
        .send()
        .await
        .unwrap();
    assert_eq!(archive.status(), 200);

    let pid = serve.id().expect("a pid").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), serve.wait())
        .await
        .expect("serve stops on SIGTERM")
        .unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(serve.stderr.as_mut().unwrap(), &mut stderr)
        .await
        .unwrap();

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 10, "{stderr}");
    for secret in [confirm_token.as_str(), unsubscribe_token.as_str(), "token="] {
        assert!(
            !stderr.contains(secret),
            "{secret} is in the logs:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains(&email),
        "the reader's address is in the logs"
    );

    // Each request is a span with its id, method and route pattern, and the status.
    let request_spans: Vec<&serde_json::Value> = lines
        .iter()
        .flat_map(spans)
        .filter(|s| s["name"] == "request")
        .collect();
    for (method, route) in [
        ("POST", "/subscriptions"),
        ("GET", "/subscriptions/confirm"),
        ("POST", "/subscriptions/confirm"),
        ("POST", "/unsubscribe"),
        ("GET", "/archive/{slug}"),
    ] {
        let span = request_spans
            .iter()
            .find(|s| s["method"] == method && s["route"] == route)
            .unwrap_or_else(|| panic!("no request span for {method} {route}:\n{stderr}"));
        let id = span["request_id"].as_str().unwrap_or_default();
        assert_eq!(id.len(), 36, "a request id: {span}");
    }
    let finished = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request")
        .filter(|l| spans(l).iter().any(|s| s["route"] == "/subscriptions"))
        .count();
    assert_eq!(finished, 1, "one request event for the signup:\n{stderr}");

    // Each delivery is a span with the email's ids.
    let delivery = lines
        .iter()
        .flat_map(spans)
        .find(|s| s["name"] == "delivery")
        .unwrap_or_else(|| panic!("no delivery span:\n{stderr}"));
    assert!(delivery["email_id"].is_u64(), "{delivery}");
    assert!(delivery["attempt"].is_u64(), "{delivery}");
    let kinds: Vec<&str> = lines
        .iter()
        .flat_map(spans)
        .filter(|s| s["name"] == "delivery")
        .filter_map(|s| s["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"confirmation") && kinds.contains(&"welcome"),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn text_logs_have_no_colour_codes_when_piped_and_a_bad_format_is_refused() {
    // A fresh SQLite file each run, so the migrations log something.
    let dir = tempfile::tempdir().unwrap();
    let run = |format: Option<&'static str>| {
        let database = dir
            .path()
            .join(format!("{}.db", format.unwrap_or("default")));
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_spacedigest"));
        command
            .args(["newsletter", "list"])
            .current_dir(dir.path())
            .env_clear()
            .env(
                "SPACEDIGEST_DATABASE_URL",
                format!("sqlite://{}", database.display()),
            )
            .env("SPACEDIGEST_LOG", "debug");
        if let Some(format) = format {
            command.env("SPACEDIGEST_LOG_FORMAT", format);
        }
        command.output().expect("the binary runs")
    };
    for format in [None, Some("text")] {
        let out = run(format);
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.trim().is_empty(), "some logs at debug");
        assert!(
            !stderr.contains('\u{1b}'),
            "colour codes when piped:\n{stderr}"
        );
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_err(),
                "JSON by default: {line}"
            );
        }
    }
    let out = run(Some("yaml"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SPACEDIGEST_LOG_FORMAT"), "{stderr}");
}
