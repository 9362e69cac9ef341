//! `spacedigest healthcheck`, the container image's HEALTHCHECK: exit 0 while `serve`
//! answers `/health_check`, 1 with a one-line reason when nothing answers.

use std::process::{Command, Output};

use crate::support::app::spawn_app;
use crate::support::smtp_server::free_port;

fn healthcheck(args: &[&str], listen: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spacedigest"))
        .arg("healthcheck")
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("SPACEDIGEST_LISTEN", listen)
        .env("SPACEDIGEST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn healthcheck_exits_0_while_serve_answers_and_1_when_nothing_does() {
    let app = spawn_app().await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();

    // As the image runs it: the port from SPACEDIGEST_LISTEN, bound to every address.
    let listen_all = format!("0.0.0.0:{port}");
    let up = tokio::task::spawn_blocking(move || healthcheck(&[], &listen_all))
        .await
        .unwrap();
    assert!(
        up.status.success(),
        "healthcheck against a serving app: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let url = format!("{}/health_check", app.address);
    let up = tokio::task::spawn_blocking(move || healthcheck(&["--url", &url], "127.0.0.1:1"))
        .await
        .unwrap();
    assert!(up.status.success(), "healthcheck --url: {up:?}");

    let down = format!("127.0.0.1:{}", free_port());
    let down = tokio::task::spawn_blocking(move || healthcheck(&[], &down))
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(1), "nothing listening: {down:?}");
    let reason = String::from_utf8_lossy(&down.stderr);
    assert!(
        reason.trim().lines().count() == 1 && reason.contains("no answer from http://127.0.0.1:"),
        "one line naming what was asked: {reason}"
    );

    let wrong_route = format!("{}/no-such-page", app.address);
    let wrong =
        tokio::task::spawn_blocking(move || healthcheck(&["--url", &wrong_route], "127.0.0.1:1"))
            .await
            .unwrap();
    assert_eq!(
        wrong.status.code(),
        Some(1),
        "a 404 is not healthy: {wrong:?}"
    );
}

#[tokio::test]
async fn healthcheck_gives_up_on_a_server_that_never_answers() {
    // The kernel completes the TCP handshake; nobody ever reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/health_check", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let hung = tokio::task::spawn_blocking(move || healthcheck(&["--url", &url], "127.0.0.1:1"))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(hung.status.code(), Some(1), "a silent server: {hung:?}");
    assert!(
        took < std::time::Duration::from_secs(10),
        "within its 3 s timeout, not the container's: took {took:?}"
    );
    drop(silent);
}
