//! A command that has done its work exits with status 0, every time. On PostgreSQL a
//! connection r2d2 was still opening met the exit handlers' OpenSSL cleanup, and about
//! one `digest send` in twenty crashed with SIGSEGV after printing "Done".

use std::collections::BTreeMap;

use chrono::NaiveDateTime;

use crate::support::app::{Backend, require_backend, spawn_app};
use crate::support::{add_confirmed_readers, add_story, cli};

#[tokio::test]
#[cfg_attr(
    not(spacedigest_test_backend = "postgres"),
    ignore = "PostgreSQL only: runs when SPACEDIGEST_TEST_POSTGRES_URL is set"
)]
async fn digest_send_on_postgres_exits_cleanly_every_time() {
    require_backend(Backend::Postgres);
    let runs = if crate::support::figures::full() {
        1000
    } else {
        150
    };
    let mut app = spawn_app().await;
    app.stop().await; // only the commands send
    let published = NaiveDateTime::parse_from_str("2026-11-20 09:00", "%Y-%m-%d %H:%M");
    add_story(&app, "Exit story", "", published.unwrap()).await;
    add_confirmed_readers(&app, "exit", 3).await;
    let mut statuses = BTreeMap::<String, usize>::new();
    let mut failure = None;
    for _ in 0..runs {
        // The first queues and sends; the rest find it sent and say so: each starts its
        // worker and pool, finishes, and exits.
        let out = cli(&app, &["digest", "send", "--date", "2026-11-20"], &[]).await;
        *statuses.entry(out.status.to_string()).or_default() += 1;
        if !out.status.success() && failure.is_none() {
            failure = Some(format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    crate::support::figures::report(
        "pg-clean-exit",
        &format!("{runs} runs of `digest send` on PostgreSQL: {statuses:?}"),
    );
    assert!(
        failure.is_none(),
        "a run failed: {}",
        failure.unwrap_or_default()
    );
    assert_eq!(app.smtp().message_count(), 3, "each reader got one copy");
}
