//! The `spacedigest` binary, run against a test's app.

use std::process::Output;
use std::time::Duration;

use super::app::TestApp;

/// The binary as an operator runs it against the app: in the database's directory, with
/// nothing from the test's environment but the app's database, base URL and mail server
/// (when it has one). Callers add the command, its settings and how it runs
/// (`tokio::process::Command::from` for an async one).
pub fn binary(app: &TestApp) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_spacedigest"));
    command
        .current_dir(app.database.dir())
        .env_clear()
        .env("SPACEDIGEST_DATABASE_URL", app.database.url_string())
        .env("SPACEDIGEST_BASE_URL", &app.address);
    if let Some(smtp) = &app.smtp {
        command.env("SPACEDIGEST_SMTP_URL", smtp.url());
    }
    command
}

/// Waits, up to `within`, until a `serve` process at `base` answers its health check at all.
pub async fn wait_until_answering(base: &str, within: Duration) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + within;
    while client
        .get(format!("{base}/health_check"))
        .send()
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops a `serve` process as systemd would, SIGTERM (through the shell's own `kill`, so
/// no procps is needed), and checks that it exits cleanly within 30 s.
pub async fn stop_with_sigterm(serve: &mut tokio::process::Child) {
    let pid = serve.id().expect("serve is running").to_string();
    let killed = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), serve.wait())
        .await
        .expect("serve stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "serve exited with {status}");
}

/// Runs the binary against the app's database, mail server and base URL. Async: the test's
/// SMTP server runs on this runtime and must keep answering meanwhile.
pub async fn cli(app: &TestApp, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::from(binary(app));
    command.args(args).env("SPACEDIGEST_LOG", "warn");
    for (k, v) in extra {
        command.env(k, v);
    }
    command.output().await.expect("the binary runs")
}
