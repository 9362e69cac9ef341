//! Access to the console: accounts, login, sessions, CSRF, rate limits, headers.

use std::process::Command;
use std::time::Duration;

use spacedigest::db::operators;

use super::{Browser, OPERATOR_EMAIL, OPERATOR_PASSWORD, assert_sent_to_login, create_operator};
use crate::support::app::{Mail, TestApp, hidden_field, spawn_app, spawn_app_with, urlencode};

fn session_cookie(answer: &crate::support::app::Answer) -> Option<String> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.contains("spacedigest_session="))
}

#[tokio::test]
async fn log_in_use_the_console_and_log_out_and_the_old_cookie_stops_working() {
    let app = spawn_app().await;
    let browser = Browser::new(&app);
    assert_sent_to_login(&browser.get("/admin").await, "the dashboard before login");

    create_operator(&app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let answer = browser.log_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let cookie = session_cookie(&answer).expect("a session cookie");
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("spacedigest_session=")
        .to_owned();
    let account = browser.get("/admin/account").await;
    assert_eq!(account.status, 200);
    assert!(account.body.contains(OPERATOR_EMAIL));

    let token = hidden_field(&account.body, "csrf_token");
    let out = browser
        .post_raw(
            "/admin/logout",
            &format!("csrf_token={}", urlencode(&token)),
        )
        .await;
    assert_eq!(out.status, 303);
    assert_eq!(
        out.header("location").as_deref(),
        Some("/admin/login?done=logged-out")
    );
    assert_sent_to_login(&browser.get("/admin/account").await, "after logout");

    // A copy of the cookie kept from before is dead too: the session is gone server-side.
    let replay = app
        .client
        .get(format!("{}/admin/account", app.address))
        .header("cookie", format!("spacedigest_session={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303, "a logged-out session id still works");
}

#[tokio::test]
async fn every_login_gets_a_new_session_id() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let first = browser.csrf_token().await;
    let again = browser.log_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let second_cookie = session_cookie(&again).expect("a new session cookie");
    assert!(second_cookie.contains("spacedigest_session="));
    let second = browser.csrf_token().await;
    assert_ne!(first, second, "the session was reused across logins");
    let sessions = app
        .db(|conn| {
            use diesel::prelude::*;
            spacedigest::db::schema::operator_sessions::table
                .count()
                .get_result::<i64>(conn)
        })
        .await;
    assert_eq!(
        sessions, 1,
        "the session from before the login was not ended"
    );
}

#[tokio::test]
async fn an_idle_session_and_an_old_session_both_end() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.console.session_idle = Duration::from_secs(2);
    })
    .await;
    let browser = Browser::logged_in(&app).await;
    assert_eq!(browser.get("/admin/account").await.status, 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_sent_to_login(&browser.get("/admin/account").await, "after 2.5 s idle");

    let app = spawn_app_with(Mail::Server, |s| {
        s.console.session_max = Duration::from_secs(3);
    })
    .await;
    let browser = Browser::logged_in(&app).await;
    for _ in 0..3 {
        assert_eq!(browser.get("/admin/account").await.status, 200);
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_sent_to_login(
        &browser.get("/admin/account").await,
        "3.2 s after login, though never idle",
    );
}

fn spacedigest(app: &TestApp, args: &[&str], password: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spacedigest"));
    command
        .args(args)
        .current_dir(app.database.dir())
        .env_clear()
        .env("SPACEDIGEST_DATABASE_URL", app.database.url_string())
        .env("SPACEDIGEST_LOG", "warn");
    if let Some(password) = password {
        command.env("SPACEDIGEST_ADMIN_PASSWORD", password);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn admin_create_stores_an_argon2id_hash_with_the_owasp_parameters_and_refuses_weak_passwords()
{
    let app = spawn_app().await;
    assert_eq!(
        app.db(operators::count).await,
        0,
        "there is a default account"
    );

    for weak in ["short", "password1234", "123456789012"] {
        let out = spacedigest(&app, &["admin", "create", "ops@example.com"], Some(weak));
        assert!(!out.status.success(), "{weak} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("password"), "{stderr}");
    }
    let out = spacedigest(&app, &["admin", "create", "ops@example.com"], None);
    assert!(!out.status.success(), "no password and no terminal");
    assert_eq!(app.db(operators::count).await, 0);

    let out = spacedigest(
        &app,
        &["admin", "create", "Ops@Example.com"],
        Some(OPERATOR_PASSWORD),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let operator = app
        .db(|conn| operators::find_by_email(conn, "ops@example.com"))
        .await
        .expect("the account");
    assert!(
        operator
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        operator.password_hash
    );
    assert!(!operator.password_hash.contains(OPERATOR_PASSWORD));

    let again = spacedigest(
        &app,
        &["admin", "create", "ops@example.com"],
        Some(OPERATOR_PASSWORD),
    );
    assert!(!again.status.success(), "a second account for one address");

    let browser = Browser::new(&app);
    let answer = browser.log_in("OPS@example.com", OPERATOR_PASSWORD).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
}

#[tokio::test]
async fn an_unknown_address_and_a_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    create_operator(&app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let browser = Browser::new(&app);
    let wrong = browser
        .log_in(OPERATOR_EMAIL, "orbital tangerine lighthouse 48")
        .await;
    let unknown = browser
        .log_in("nobody@spacedigest.test", "orbital tangerine lighthouse 48")
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, wrong.status);
    let normalise = |body: &str, email: &str| body.replace(email, "EMAIL");
    assert_eq!(
        normalise(&wrong.body, OPERATOR_EMAIL),
        normalise(&unknown.body, "nobody@spacedigest.test"),
    );
    assert!(
        wrong
            .body
            .contains("email address or password is not right")
    );
    assert!(session_cookie(&wrong).is_none() && session_cookie(&unknown).is_none());
}

#[tokio::test]
async fn login_attempts_are_limited_per_account_and_ip_without_locking_out_the_operator_elsewhere()
{
    let app = spawn_app_with(Mail::Server, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    create_operator(&app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let attempt = |ip: &'static str, email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let client = reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let page = client
                .get(format!("{}/admin/login", app.address))
                .header("x-forwarded-for", ip)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let token = hidden_field(&page, "csrf_token");
            let response = client
                .post(format!("{}/admin/login", app.address))
                .header("x-forwarded-for", ip)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "csrf_token={}&email={}&password={}",
                    urlencode(&token),
                    urlencode(email),
                    urlencode(password)
                ))
                .send()
                .await
                .unwrap();
            crate::support::app::Answer::from(response).await
        }
    };
    let attacker = "203.0.113.5";
    for n in 1..=5 {
        let answer = attempt(attacker, OPERATOR_EMAIL, "wrong wrong wrong wrong").await;
        assert_eq!(answer.status, 401, "attempt {n}");
    }
    // The sixth is refused before the password is looked at, even the right one.
    let refused = attempt(attacker, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "Retry-After {wait}");
    assert!(refused.body.contains("Too many failed attempts"));

    // The operator, elsewhere, is not locked out.
    let operator = attempt("198.51.100.7", OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    assert_eq!(operator.status, 303, "{}", operator.body);

    // One address spraying many accounts is stopped too.
    let sprayer = "192.0.2.77";
    let accounts: Vec<String> = (0..20).map(|i| format!("guess{i}@example.com")).collect();
    for account in &accounts {
        let account: &'static str = Box::leak(account.clone().into_boxed_str());
        assert_eq!(
            attempt(sprayer, account, "wrong wrong wrong").await.status,
            401
        );
    }
    let sprayed = attempt(sprayer, "another@example.com", "wrong wrong wrong").await;
    assert_eq!(sprayed.status, 429);
}

#[tokio::test]
async fn cookies_are_http_only_same_site_strict_and_secure_under_https() {
    let app = spawn_app().await;
    create_operator(&app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let browser = Browser::new(&app);
    let answer = browser.log_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let cookie = session_cookie(&answer).unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");

    let app = spawn_app_with(Mail::Server, |s| {
        s.server.base_url = "https://news.example.com".parse().unwrap();
    })
    .await;
    create_operator(&app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let page = app.get("/admin/login").await;
    let login_cookie = page.header("set-cookie").unwrap();
    assert!(
        login_cookie.starts_with("__Host-spacedigest_login="),
        "{login_cookie}"
    );
    let login_value = login_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let token = hidden_field(&page.body, "csrf_token");
    let answer = crate::support::app::Answer::from(
        app.client
            .post(format!("{}/admin/login", app.address))
            .header("cookie", format!("__Host-spacedigest_login={login_value}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "csrf_token={}&email={}&password={}",
                urlencode(&token),
                urlencode(OPERATOR_EMAIL),
                urlencode(OPERATOR_PASSWORD)
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let cookie = session_cookie(&answer).unwrap();
    for flag in [
        "__Host-spacedigest_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
    ] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
}

#[tokio::test]
async fn changing_the_password_ends_every_other_session() {
    let app = spawn_app().await;
    let mine = Browser::logged_in(&app).await;
    let other = Browser::logged_in(&app).await;
    assert_eq!(other.get("/admin/account").await.status, 200);

    let wrong_current = mine
        .post_form(
            "/admin/account/password",
            &[
                ("current_password", "not my password at all"),
                ("new_password", "copper nebula harmonica 1969"),
                ("confirm_password", "copper nebula harmonica 1969"),
            ],
        )
        .await;
    assert_eq!(wrong_current.status, 400);
    let weak = mine
        .post_form(
            "/admin/account/password",
            &[
                ("current_password", OPERATOR_PASSWORD),
                ("new_password", "password1234"),
                ("confirm_password", "password1234"),
            ],
        )
        .await;
    assert_eq!(weak.status, 400);
    assert!(weak.body.contains("too common"), "{}", weak.body);
    assert_eq!(
        other.get("/admin/account").await.status,
        200,
        "a refused change ended a session"
    );

    let changed = mine
        .post_form(
            "/admin/account/password",
            &[
                ("current_password", OPERATOR_PASSWORD),
                ("new_password", "copper nebula harmonica 1969"),
                ("confirm_password", "copper nebula harmonica 1969"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(
        mine.get("/admin/account").await.status,
        200,
        "my own session ended"
    );
    assert_sent_to_login(&other.get("/admin/account").await, "the other session");

    let fresh = Browser::new(&app);
    assert_eq!(
        fresh.log_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await.status,
        401
    );
    assert_eq!(
        fresh
            .log_in(OPERATOR_EMAIL, "copper nebula harmonica 1969")
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn login_logout_and_password_change_refuse_a_missing_or_wrong_csrf_token() {
    let app = spawn_app().await;
    create_operator(&app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;

    // Login without the login page's cookie, or with a token that is not its own.
    let bare = app
        .post_raw(
            "/admin/login",
            Some("application/x-www-form-urlencoded"),
            format!(
                "email={}&password={}",
                urlencode(OPERATOR_EMAIL),
                urlencode(OPERATOR_PASSWORD)
            ),
        )
        .await;
    assert_eq!(bare.status, 403);
    let browser = Browser::new(&app);
    browser.get("/admin/login").await;
    let forged = browser
        .post_raw(
            "/admin/login",
            &format!(
                "csrf_token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&email={}&password={}",
                urlencode(OPERATOR_EMAIL),
                urlencode(OPERATOR_PASSWORD)
            ),
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(session_cookie(&forged).is_none());

    let browser = Browser::logged_in(&app).await;
    for body in ["", "csrf_token=", "csrf_token=wrong"] {
        assert_eq!(
            browser.post_raw("/admin/logout", body).await.status,
            403,
            "{body:?}"
        );
        let change = browser
            .post_raw(
                "/admin/account/password",
                &format!(
                    "{body}&current_password={}&new_password=copper+nebula+harmonica+1969&confirm_password=copper+nebula+harmonica+1969",
                    urlencode(OPERATOR_PASSWORD)
                ),
            )
            .await;
        assert_eq!(change.status, 403, "{body:?}");
    }
    assert_eq!(
        browser.get("/admin/account").await.status,
        200,
        "still logged in"
    );
    let fresh = Browser::new(&app);
    assert_eq!(
        fresh.log_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await.status,
        303,
        "the password changed without a token"
    );
}

#[tokio::test]
async fn every_page_public_or_console_sends_the_security_headers() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    for path in [
        "/",
        "/admin/login",
        "/admin/account",
        "/admin",
        "/unsubscribe?token=x",
    ] {
        let answer = browser.get(path).await;
        let csp = answer
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("no CSP on {path}"));
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(
            answer.header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert!(answer.header("referrer-policy").is_some(), "{path}");
        if path.starts_with("/admin") {
            assert_eq!(
                answer.header("cache-control").as_deref(),
                Some("no-store"),
                "{path}"
            );
        }
    }
}
