//! SQLite's write lock held by another process (the `sqlite3` shell in `BEGIN
//! IMMEDIATE`) while readers sign up, confirm, unsubscribe and load pages. Held for less
//! than the 10 s busy timeout, everything succeeds once it is released; held past it,
//! every write gets the clear 503 page within the timeout and reads still work. No
//! reader ever sees "database is locked".

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, join_all};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{ReadersWithLinks, assert_no_raw_error, is_stored, mail_to, partial_rows};
use crate::console::Browser;
use crate::support::app::{
    Answer, Backend, TestApp, require_backend, spawn_app, unique_email, urlencode,
};

/// The app's SQLite busy timeout (`db::SQLITE_BUSY_TIMEOUT`).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// One request and what it got.
struct Probe {
    what: String,
    writes: bool,
    answer: Answer,
    took: Duration,
}

#[tokio::test]
#[cfg_attr(
    not(spacedigest_test_backend = "sqlite"),
    ignore = "SQLite only: runs when SPACEDIGEST_TEST_POSTGRES_URL is unset"
)]
async fn sqlite_locked_by_another_process_never_shows_a_reader_database_is_locked() {
    require_backend(Backend::Sqlite);
    let full = crate::support::figures::full();
    let (signups, short_hold) = if full {
        (100, Duration::from_secs(8))
    } else {
        (10, Duration::from_secs(3))
    };
    // Past the busy timeout by more than any answer may take.
    let long_hold = BUSY_TIMEOUT + Duration::from_secs(5);
    let app = spawn_app().await;
    let db_path = match &app.settings.database.url {
        spacedigest::config::DatabaseUrl::Sqlite(path) => path.clone(),
        other => panic!("not SQLite: {}", other.redacted()),
    };
    let browser = Browser::logged_in(&app).await;
    let first = ReadersWithLinks::sign_up(&app).await;
    let second = ReadersWithLinks::sign_up(&app).await;

    // Held briefly: everyone waits, then succeeds.
    let waited: Vec<String> = (0..signups).map(|_| unique_email()).collect();
    let lock = LockHolder::take(&db_path).await;
    let release = async {
        tokio::time::sleep(short_hold).await;
        lock.release().await;
    };
    let (brief, ()) = tokio::join!(probes(&app, &browser, &waited, &first), release);

    // Held past the busy timeout: writes get the 503 page, reads still work.
    let refused: Vec<String> = (0..2).map(|_| unique_email()).collect();
    let lock = LockHolder::take(&db_path).await;
    let locked_at = Instant::now();
    let long = probes(&app, &browser, &refused, &second).await;
    let answered_while_locked = locked_at.elapsed() < long_hold;
    tokio::time::sleep(long_hold.saturating_sub(locked_at.elapsed())).await;
    lock.release().await;

    // Afterwards: the first readers' changes took, the refused ones left no trace, and
    // the refused changes work when tried again.
    for email in &waited {
        mail_to(&app, email, 1).await;
    }
    let mut stored_refusals = Vec::new();
    for email in &refused {
        if is_stored(&app, email).await {
            stored_refusals.push(email.clone());
        }
    }
    let statuses_after_refusal = (
        app.subscription_statuses(&second.pending).await,
        app.subscription_statuses(&second.leaving).await,
    );
    let retried_confirm = app.confirm_via(&second.confirm_link).await.status;
    let retried_unsubscribe = app.post_raw(&second.unsubscribe, None, "").await.status;
    let partial = partial_rows(&app).await;

    let summary = |probes: &[Probe], writes: bool| {
        let mut statuses = BTreeMap::<u16, usize>::new();
        let mut longest = Duration::ZERO;
        for probe in probes.iter().filter(|p| p.writes == writes) {
            *statuses.entry(probe.answer.status).or_default() += 1;
            longest = longest.max(probe.took);
        }
        format!("{statuses:?}, longest {:.2} s", longest.as_secs_f64())
    };
    let shown_locked = brief
        .iter()
        .chain(&long)
        .filter(|p| p.answer.body.contains("database is locked"))
        .count();
    crate::support::figures::report(
        "sqlite-locked",
        &format!(
            "write lock held by another process for {} s: writes {}, reads {}; held {} s \
             (past the {} s busy timeout): writes {}, reads {}; \"database is locked\" shown \
             {shown_locked} times; partial rows {}",
            short_hold.as_secs(),
            summary(&brief, true),
            summary(&brief, false),
            long_hold.as_secs(),
            BUSY_TIMEOUT.as_secs(),
            summary(&long, true),
            summary(&long, false),
            partial.total()
        ),
    );
    for probe in brief.iter().chain(&long) {
        assert_no_raw_error(&probe.what, &probe.answer.body);
    }
    for probe in &brief {
        assert_eq!(
            probe.answer.status, 200,
            "{}: {}",
            probe.what, probe.answer.body
        );
    }
    assert_eq!(
        app.subscription_statuses(&first.pending).await[0].1,
        "confirmed"
    );
    assert_eq!(
        app.subscription_statuses(&first.leaving).await[0].1,
        "unsubscribed"
    );
    assert!(
        answered_while_locked,
        "answers came only after the lock was released"
    );
    for probe in &long {
        let what = &probe.what;
        if probe.writes {
            assert_eq!(probe.answer.status, 503, "{what}: {}", probe.answer.body);
            assert!(
                probe.took < long_hold,
                "{what} waited {:?}: past the busy timeout",
                probe.took
            );
            assert!(
                probe.answer.header("retry-after").is_some(),
                "{what}: no Retry-After"
            );
            if probe
                .answer
                .header("content-type")
                .unwrap_or_default()
                .contains("json")
            {
                assert_eq!(probe.answer.json()["error"], "unavailable", "{what}");
            } else {
                assert!(
                    probe.answer.body.to_lowercase().contains("try again"),
                    "{what}: {}",
                    probe.answer.body
                );
            }
        } else {
            assert_eq!(
                probe.answer.status, 200,
                "{what} (a read): {}",
                probe.answer.body
            );
        }
    }
    assert!(
        stored_refusals.is_empty(),
        "refused yet stored: {stored_refusals:?}"
    );
    assert_eq!(
        statuses_after_refusal.0[0].1, "pending",
        "a refused confirm changed it"
    );
    assert_eq!(
        statuses_after_refusal.1[0].1, "confirmed",
        "a refused unsubscribe changed it"
    );
    assert_eq!(retried_confirm, 200);
    assert_eq!(retried_unsubscribe, 200);
    assert_eq!(partial, Default::default(), "half-done signups");
}

/// Signups of `emails`, a confirm and an unsubscribe, and the pages, at once.
async fn probes(
    app: &TestApp,
    browser: &Browser<'_>,
    emails: &[String],
    readers: &ReadersWithLinks,
) -> Vec<Probe> {
    let forms: Vec<String> = emails
        .iter()
        .map(|email| format!("email={}&name=Ada", urlencode(email)))
        .collect();
    let confirm_body = format!("token={}", urlencode(&readers.confirm_token));
    let confirm_page = format!("/subscriptions/confirm?token={}", readers.confirm_token);
    let json = serde_json::json!({ "email": unique_email() });
    let mut requests: Vec<(String, bool, BoxFuture<'_, Answer>)> = forms
        .iter()
        .enumerate()
        .map(|(i, form)| -> (String, bool, BoxFuture<'_, Answer>) {
            (
                format!("signup {i}"),
                true,
                Box::pin(app.post_subscriptions(form)),
            )
        })
        .collect();
    requests.extend::<[(String, bool, BoxFuture<'_, Answer>); 7]>([
        (
            "signup (JSON)".into(),
            true,
            Box::pin(app.post_subscriptions_json(&json)),
        ),
        (
            "confirm (POST)".into(),
            true,
            Box::pin(app.post_raw(
                "/subscriptions/confirm",
                Some("application/x-www-form-urlencoded"),
                confirm_body,
            )),
        ),
        (
            "unsubscribe (POST)".into(),
            true,
            Box::pin(app.post_raw(&readers.unsubscribe, None, "")),
        ),
        ("signup page".into(), false, Box::pin(app.get("/"))),
        (
            "confirm page".into(),
            false,
            Box::pin(app.get(&confirm_page)),
        ),
        (
            "unsubscribe page".into(),
            false,
            Box::pin(app.get(&readers.unsubscribe)),
        ),
        (
            "console dashboard".into(),
            false,
            Box::pin(browser.get("/admin")),
        ),
    ]);
    let timed = requests
        .into_iter()
        .enumerate()
        .map(|(i, (what, writes, request))| async move {
            // A little apart, as readers arrive.
            tokio::time::sleep(Duration::from_millis(20) * u32::try_from(i).unwrap()).await;
            let started = Instant::now();
            let answer = request.await;
            Probe {
                what,
                writes,
                answer,
                took: started.elapsed(),
            }
        });
    join_all(timed).await
}

/// Another process holding SQLite's write lock: the `sqlite3` shell inside `BEGIN
/// IMMEDIATE`, until released.
struct LockHolder {
    shell: tokio::process::Child,
    input: tokio::process::ChildStdin,
}

impl LockHolder {
    /// Returns once the shell holds the lock.
    async fn take(db: &Path) -> Self {
        let mut shell = tokio::process::Command::new("sqlite3")
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs the sqlite3 shell (Debian package `sqlite3`) to hold the \
                     database's lock from another process: {e}"
                )
            });
        let mut input = shell.stdin.take().unwrap();
        let mut output = BufReader::new(shell.stdout.take().unwrap()).lines();
        // It may have to wait for one of the app's own writers first.
        input
            .write_all(b"PRAGMA busy_timeout = 30000;\nBEGIN IMMEDIATE;\nSELECT 'locked';\n")
            .await
            .unwrap();
        input.flush().await.unwrap();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(40), output.next_line())
                .await
                .expect("the sqlite3 shell took the lock in time")
                .unwrap();
            match line.as_deref() {
                Some("locked") => break,
                Some(_) => {}
                None => panic!("the sqlite3 shell ended before it took the lock"),
            }
        }
        Self { shell, input }
    }

    /// Commits (nothing) and ends the shell, releasing the lock.
    async fn release(mut self) {
        self.input.write_all(b"COMMIT;\n.quit\n").await.unwrap();
        self.input.flush().await.unwrap();
        drop(self.input);
        let status = self.shell.wait().await.unwrap();
        assert!(status.success(), "the sqlite3 shell failed: {status}");
    }
}
