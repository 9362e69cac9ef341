//! The `spacedigest` binary's commands, run against a test's app.

use std::process::Output;

use super::app::TestApp;

/// Runs the binary against the app's database, mail server and base URL. Async: the test's
/// SMTP server runs on this runtime and must keep answering meanwhile.
pub async fn cli(app: &TestApp, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_spacedigest"));
    command
        .args(args)
        .current_dir(app.database.dir())
        .env_clear()
        .env("SPACEDIGEST_DATABASE_URL", app.database.url_string())
        .env("SPACEDIGEST_BASE_URL", &app.address)
        .env("SPACEDIGEST_LOG", "warn");
    if let Some(smtp) = &app.smtp {
        command.env("SPACEDIGEST_SMTP_URL", smtp.url());
    }
    for (k, v) in extra {
        command.env(k, v);
    }
    command.output().await.expect("the binary runs")
}
