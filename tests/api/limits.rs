//! Abuse limits, concurrency, the honeypot and the enumeration-proof answer.

use std::time::Duration;

use crate::support::app::{
    Backend, Mail, backend, spawn_app, spawn_app_with, unique_email, urlencode,
};

#[tokio::test]
async fn twenty_concurrent_signups_of_one_address_make_one_subscription_and_one_email() {
    let app = spawn_app().await;
    let email = unique_email();
    let body = format!("email={}", urlencode(&email));
    let answers =
        futures_util::future::join_all((0..20).map(|_| app.post_subscriptions(&body))).await;
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    assert_eq!(app.count_subscribers().await, 1);
    assert_eq!(app.count_subscriptions().await, 1);
    let queued = app.outbound().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    app.emails(1).await;
    app.smtp()
        .assert_no_more_messages(1, Duration::from_secs(1))
        .await;
}

#[tokio::test]
async fn a_signup_that_fails_fails_alone_among_the_signups_committed_with_it() {
    use diesel::RunQueryDsl;
    let app = spawn_app().await;
    // The database refuses one address, so that signup fails inside whatever group of
    // concurrent signups it is committed with.
    app.db(|conn| {
        let statements: &[&str] = match backend() {
            Backend::Sqlite => &["CREATE TRIGGER refuse_one BEFORE INSERT ON subscribers \
                 WHEN NEW.email_key = 'refused@example.com' \
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"],
            Backend::Postgres => &[
                "CREATE FUNCTION refuse_one() RETURNS trigger AS $$ BEGIN \
                 IF NEW.email_key = 'refused@example.com' THEN \
                 RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ \
                 LANGUAGE plpgsql",
                "CREATE TRIGGER refuse_one BEFORE INSERT ON subscribers \
                 FOR EACH ROW EXECUTE FUNCTION refuse_one()",
            ],
        };
        for statement in statements {
            diesel::sql_query(*statement).execute(conn)?;
        }
        Ok(())
    })
    .await;
    let mut addresses: Vec<String> = (0..30).map(|_| unique_email()).collect();
    addresses.insert(15, "refused@example.com".into());
    let bodies: Vec<String> = addresses
        .iter()
        .map(|email| format!("email={}", urlencode(email)))
        .collect();
    // Hold the write lock for a moment, so the signups queue up and are committed as a
    // group once it is released.
    let hold = app.db(|conn| {
        spacedigest::db::write_transaction(conn, |conn| {
            if backend() == Backend::Postgres {
                diesel::sql_query("LOCK TABLE subscribers IN SHARE ROW EXCLUSIVE MODE")
                    .execute(conn)?;
            }
            std::thread::sleep(Duration::from_millis(600));
            Ok::<(), diesel::result::Error>(())
        })
    });
    let signups = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        futures_util::future::join_all(bodies.iter().map(|body| app.post_subscriptions(body))).await
    };
    let ((), answers) = tokio::join!(hold, signups);
    for (email, answer) in addresses.iter().zip(&answers) {
        if email.starts_with("refused") {
            assert!(answer.status >= 500, "{email}: {}", answer.status);
        } else {
            assert_eq!(answer.status, 200, "{email}: {}", answer.body);
        }
    }
    assert_eq!(app.count_subscribers().await, 30);
    let queued = app.outbound().await;
    assert_eq!(queued.len(), 30, "{queued:?}");
    assert!(
        queued
            .iter()
            .all(|e| e.recipient_email != "refused@example.com")
    );
}

#[tokio::test]
async fn the_answer_is_the_same_for_new_pending_confirmed_and_unsubscribed_addresses() {
    let app = spawn_app().await;
    let confirmed = unique_email();
    let unsubscribed = unique_email();
    let pending = unique_email();
    for email in [&confirmed, &unsubscribed, &pending] {
        app.sign_up(email).await;
    }
    let mails = app.emails(3).await;
    for email in [&confirmed, &unsubscribed] {
        let mail = mails
            .iter()
            .find(|m| m.rcpt_to == vec![email.clone()])
            .unwrap();
        app.confirm_via(&app.confirmation_link(mail)).await;
    }
    let welcome = app.emails(5).await;
    let to_unsubscribe = welcome
        .iter()
        .find(|m| m.rcpt_to == vec![unsubscribed.clone()] && m.header("List-Unsubscribe").is_some())
        .unwrap();
    let url = to_unsubscribe.header("List-Unsubscribe").unwrap();
    app.post_raw(url.trim_matches(['<', '>']), None, "").await;

    let new = unique_email();
    let mut html = Vec::new();
    let mut json = Vec::new();
    for email in [&new, &pending, &confirmed, &unsubscribed] {
        let answer = app.sign_up(email).await;
        html.push((answer.status, answer.body));
        let answer = app
            .post_subscriptions_json(&serde_json::json!({ "email": email }))
            .await;
        json.push((answer.status, answer.body));
    }
    assert!(
        html.windows(2).all(|w| w[0] == w[1]),
        "HTML answers differ: {html:?}"
    );
    assert!(
        json.windows(2).all(|w| w[0] == w[1]),
        "JSON answers differ: {json:?}"
    );
}

#[tokio::test]
async fn the_per_ip_limit_answers_429() {
    let app = spawn_app_with(Mail::Server, |s| s.signup.rate_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(app.sign_up(&unique_email()).await.status, 200);
    }
    let body = format!("email={}", urlencode(&unique_email()));
    let limited = app.post_subscriptions(&body).await;
    assert_eq!(limited.status, 429);
    assert!(limited.body.contains("Too many"), "{}", limited.body);
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    let json = app
        .post_subscriptions_json(&serde_json::json!({"email": unique_email()}))
        .await;
    assert_eq!(json.status, 429);
    assert_eq!(json.json()["error"], "rate_limited");
    assert_eq!(app.count_subscribers().await, 3);
}

#[tokio::test]
async fn the_per_ip_limit_follows_x_forwarded_for_only_from_trusted_proxies() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.signup.rate_per_minute = 1;
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let answer = app
            .client
            .post(format!("{}/subscriptions", app.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", client)
            .body(format!("email={}", urlencode(&unique_email())))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "client {client}");
    }
    let again = app
        .client
        .post(format!("{}/subscriptions", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "198.51.100.1")
        .body(format!("email={}", urlencode(&unique_email())))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 429);
}

#[tokio::test]
async fn one_confirmation_email_per_address_per_interval() {
    let app = spawn_app().await;
    let email = unique_email();
    for _ in 0..4 {
        app.sign_up(&email).await;
    }
    app.emails(1).await;
    app.smtp()
        .assert_no_more_messages(1, Duration::from_secs(1))
        .await;
    // The first link still works: the throttled signups did not replace it.
    let link = app.confirmation_link(&app.smtp().messages()[0]);
    assert_eq!(app.confirm_via(&link).await.status, 200);
}

#[tokio::test]
async fn at_most_the_daily_cap_of_confirmation_emails_per_address() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.signup.confirmation_resend_interval = Duration::ZERO;
        s.signup.confirmations_per_day = 2;
    })
    .await;
    let email = unique_email();
    for _ in 0..5 {
        app.sign_up(&email).await;
    }
    app.emails(2).await;
    app.smtp()
        .assert_no_more_messages(2, Duration::from_secs(1))
        .await;
    // Case does not make a different address.
    app.sign_up(&email.to_uppercase().replace("@EXAMPLE.COM", "@example.com"))
        .await;
    app.smtp()
        .assert_no_more_messages(2, Duration::from_millis(500))
        .await;
    assert_eq!(app.count_subscribers().await, 1);
}

#[tokio::test]
async fn the_honeypot_gets_the_ordinary_answer_and_nothing_is_stored() {
    let app = spawn_app().await;
    let real = app.sign_up(&unique_email()).await;
    let bot = app
        .post_subscriptions(&format!(
            "email={}&website=http%3A%2F%2Fspam.example",
            urlencode(&unique_email())
        ))
        .await;
    assert_eq!(bot.status, 200);
    assert_eq!(bot.body, real.body);
    let bot_json = app
        .post_subscriptions_json(&serde_json::json!({"email": unique_email(), "website": "x"}))
        .await;
    assert_eq!(bot_json.status, 200);
    assert_eq!(app.count_subscribers().await, 1);
    app.emails(1).await;
    app.smtp()
        .assert_no_more_messages(1, Duration::from_millis(800))
        .await;
}
