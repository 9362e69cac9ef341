//! A copy of the database (a stolen backup, a leaked dump) must hold no token that works:
//! confirmation tokens are stored hashed, unsubscribe tokens are signed with the secret
//! key, session ids are stored hashed, and CSRF tokens not at all.
//!
//! The deployment here sets `SPACEDIGEST_SECRET_KEY`. Without it the generated key is
//! kept in the database (CONTRACT.md), and whoever holds a dump can sign unsubscribe links.

use std::collections::BTreeSet;

use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{all_links, token_of};
use crate::console::{Browser, OPERATOR_EMAIL, OPERATOR_PASSWORD, create_operator};
use crate::support::app::{
    Answer, Backend, Mail, TestApp, backend, hidden_field, spawn_app_with, unique_email, urlencode,
};
use crate::support::{add_confirmed_readers, add_story};

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Every row of every table, as text: SQLite read table by table, PostgreSQL through
/// `pg_dump`, as whoever holds a copy of the database would.
async fn dump(app: &TestApp) -> String {
    match backend() {
        Backend::Sqlite => {
            app.db(|conn| {
                let tables: Vec<Line> = diesel::sql_query(
                    "SELECT name AS line FROM sqlite_master WHERE type = 'table' ORDER BY name",
                )
                .load(conn)?;
                let mut out = String::new();
                for table in tables {
                    let columns: Vec<Line> = diesel::sql_query(format!(
                        "SELECT name AS line FROM pragma_table_info('{}')",
                        table.line
                    ))
                    .load(conn)?;
                    let row = columns
                        .iter()
                        .map(|c| format!("quote(\"{}\")", c.line))
                        .collect::<Vec<_>>()
                        .join(" || ',' || ");
                    let rows: Vec<Line> =
                        diesel::sql_query(format!("SELECT {row} AS line FROM \"{}\"", table.line))
                            .load(conn)?;
                    out.push_str(&format!("-- {}\n", table.line));
                    for r in rows {
                        out.push_str(&r.line);
                        out.push('\n');
                    }
                }
                Ok(out)
            })
            .await
        }
        Backend::Postgres => {
            let out = tokio::process::Command::new("pg_dump")
                .arg("--no-owner")
                .arg(app.database.url_string())
                .output()
                .await
                .expect("pg_dump runs (apt-get install postgresql-client)");
            assert!(
                out.status.success(),
                "pg_dump: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).expect("a text dump")
        }
    }
}

/// Maximal runs of URL-safe base64 / hex characters long enough to be a secret.
fn token_shaped(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|s| s.len() >= 16)
        .map(str::to_owned)
        .collect()
}

/// What a string unlocks, tried the way a holder of the dump would use it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Unlocks {
    confirmation: bool,
    unsubscribe: bool,
    session: bool,
}

impl Unlocks {
    fn any(self) -> bool {
        self.confirmation || self.unsubscribe || self.session
    }
}

/// Tries `candidate` as a confirmation token, an unsubscribe token and a session cookie.
/// Only GETs: each shows a page for a working token and changes nothing.
async fn probe(app: &TestApp, client: &reqwest::Client, candidate: &str) -> Unlocks {
    let token = urlencode(candidate);
    let status = |path: String, cookie: Option<String>| async move {
        let mut request = client.get(format!("{}{path}", app.address));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap().status().as_u16()
    };
    Unlocks {
        confirmation: status(format!("/subscriptions/confirm?token={token}"), None).await == 200,
        unsubscribe: status(format!("/unsubscribe?token={token}"), None).await == 200,
        session: status(
            "/admin/account".to_owned(),
            Some(format!("spacedigest_session={candidate}")),
        )
        .await
            == 200,
    }
}

fn set_cookie(answer: &Answer, name: &str) -> String {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", answer.headers))
        .to_owned()
}

/// Logs in as the test operator; returns the browser, its session id and the login
/// form's double-submit token.
async fn log_in(app: &TestApp) -> (Browser<'_>, String, String) {
    let browser = Browser::new(app);
    let page = browser.get("/admin/login").await;
    let login_token = hidden_field(&page.body, "csrf_token");
    let answer = browser
        .post_raw(
            "/admin/login",
            &format!(
                "csrf_token={}&email={}&password={}",
                urlencode(&login_token),
                urlencode(OPERATOR_EMAIL),
                urlencode(OPERATOR_PASSWORD)
            ),
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let session = set_cookie(&answer, "spacedigest_session");
    (browser, session, login_token)
}

#[tokio::test]
async fn a_database_dump_holds_no_token_that_works() {
    let key = hex::encode(spacedigest::tokens::random_bytes());
    let app = spawn_app_with(Mail::Server, |s| s.server.secret_key = Some(key.clone())).await;
    let mut handed_out: Vec<(&'static str, String)> = vec![("secret key", key.clone())];

    // A reader who confirms, one who stays pending, and readers who get a digest.
    let confirmed = unique_email();
    let pending = unique_email();
    app.sign_up(&confirmed).await;
    app.sign_up(&pending).await;
    let confirmations = app.emails(2).await;
    for mail in &confirmations {
        let link = app.confirmation_link(mail);
        handed_out.push(("confirmation token", token_of(&link)));
        if mail.rcpt_to == vec![confirmed.clone()] {
            assert_eq!(app.confirm_via(&link).await.status, 200);
        }
    }
    let pending_token = token_of(
        &app.confirmation_link(
            confirmations
                .iter()
                .find(|m| m.rcpt_to == vec![pending.clone()])
                .unwrap(),
        ),
    );
    add_confirmed_readers(&app, "dump", 2).await;

    // The console: a session that stays, and one that logs out.
    create_operator(&app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let (browser, session, login_token) = log_in(&app).await;
    let csrf = browser.csrf_token().await;
    handed_out.extend([
        ("session id", session.clone()),
        ("login form token", login_token),
        ("CSRF token", csrf),
    ]);
    {
        let (other, gone, other_login) = log_in(&app).await;
        handed_out.extend([
            ("session id (logged out)", gone),
            ("login form token", other_login),
            ("CSRF token (logged out)", other.csrf_token().await),
        ]);
        assert_eq!(other.post_form("/admin/logout", &[]).await.status, 303);
    }
    add_story(
        &app,
        "Starliner returns",
        "<p>Uncrewed.</p>",
        chrono::NaiveDate::from_ymd_opt(2026, 11, 20)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap(),
    )
    .await;
    let sent = browser
        .post_form(
            "/admin/digests/send",
            &[("newsletter", "space-daily"), ("date", "2026-11-20")],
        )
        .await;
    assert_eq!(sent.status, 303, "{}", sent.body);
    // Confirmations, the welcome, and a digest to each of the three confirmed readers.
    let all = app.emails(2 + 1 + 3).await;
    for mail in &all {
        for link in all_links(mail) {
            if link.contains("/unsubscribe?token=") {
                handed_out.push(("unsubscribe token", token_of(&link)));
            }
        }
    }
    // The confirmed reader leaves through their digest's one-click link.
    let digest = all
        .iter()
        .find(|m| m.rcpt_to == vec![confirmed.clone()] && m.header("List-Id").is_some())
        .unwrap();
    let one_click = digest.header("List-Unsubscribe").unwrap();
    let left = app
        .post_raw(
            one_click.trim_matches(['<', '>']),
            Some("application/x-www-form-urlencoded"),
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(left.status, 200);
    app.wait_until_queue_settles().await;

    // The probe works: what was handed out does unlock things.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert!(probe(&app, &client, &pending_token).await.confirmation);
    assert!(probe(&app, &client, &session).await.session);
    let reader_token = all
        .iter()
        .find(|m| m.rcpt_to[0].starts_with("dump-") && m.header("List-Id").is_some())
        .and_then(|m| m.header("List-Unsubscribe"))
        .map(|h| token_of(h.trim_matches(['<', '>'])))
        .unwrap();
    assert!(probe(&app, &client, &reader_token).await.unsubscribe);

    let text = dump(&app).await;
    let found: Vec<&str> = handed_out
        .iter()
        .filter(|(_, value)| text.contains(value.as_str()))
        .map(|(what, _)| *what)
        .collect();
    let candidates = token_shaped(&text);
    let mut working = Vec::new();
    for candidate in &candidates {
        let unlocks = probe(&app, &client, candidate).await;
        if unlocks.any() {
            working.push(format!("{candidate}: {unlocks:?}"));
        }
    }
    crate::support::figures::report(
        "database-dump",
        &format!(
            "dump of {} bytes (secret key set): {} of {} handed-out secrets in it; {} token-shaped \
             strings tried as confirmation token, unsubscribe token and session cookie: {} work",
            text.len(),
            found.len(),
            handed_out.len(),
            candidates.len(),
            working.len()
        ),
    );
    assert!(
        text.contains(&confirmed),
        "the dump is not of this database"
    );
    assert!(
        found.is_empty(),
        "handed-out secrets in the dump: {found:?}"
    );
    assert!(
        working.is_empty(),
        "strings from the dump that work: {working:#?}"
    );
}
