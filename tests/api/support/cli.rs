//! The `spacedigest` binary, run against a test's app.

use std::process::Output;

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
