//! Signup, double opt-in, unsubscribe: the reader's story.

use std::time::Duration;

use crate::support::app::{
    Backend, Mail, backend, spawn_app, spawn_app_with, unique_email, urlencode,
};

#[tokio::test]
async fn the_suite_runs_on_the_requested_backend() {
    let app = spawn_app().await;
    let expected = match backend() {
        Backend::Sqlite => "sqlite://",
        Backend::Postgres => "postgres",
    };
    println!(
        "backend under test: {}",
        app.database.url_string().split("://").next().unwrap()
    );
    assert!(app.database.url_string().starts_with(expected));
    if backend() == Backend::Sqlite {
        // Every pooled SQLite connection runs in WAL mode with foreign keys and a busy timeout.
        #[derive(diesel::QueryableByName)]
        struct Pragma {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        let pragmas = app
            .db(|conn| {
                use diesel::RunQueryDsl;
                diesel::sql_query(
                    "SELECT (SELECT journal_mode FROM pragma_journal_mode) || ',' || \
                     (SELECT foreign_keys FROM pragma_foreign_keys) || ',' || \
                     (SELECT timeout FROM pragma_busy_timeout) AS value",
                )
                .get_result::<Pragma>(conn)
            })
            .await;
        assert_eq!(pragmas.value, "wal,1,10000");
    }
    // The default newsletter exists from the first start.
    let page = app.get("/").await;
    assert!(page.body.contains("value=\"space-daily\""), "{}", page.body);
}

#[tokio::test]
async fn signup_then_confirm_then_unsubscribe() {
    let app = spawn_app().await;
    let email = unique_email();

    let answer = app.sign_up(&email).await;
    assert!(answer.body.contains("Check your inbox"), "{}", answer.body);
    assert_eq!(
        app.subscription_statuses(&email).await,
        vec![("space-daily".into(), "pending".into())]
    );

    // The confirmation email: multipart, with a Message-ID, a Date and the link.
    let confirmation = app.emails(1).await.remove(0);
    assert_eq!(confirmation.rcpt_to, vec![email.clone()]);
    assert_eq!(confirmation.content_type(), "multipart/alternative");
    assert!(confirmation.header("Message-ID").is_some());
    assert!(confirmation.header("Date").is_some());
    assert!(confirmation.subject().contains("Space Daily"));
    let link = app.confirmation_link(&confirmation);
    assert!(
        confirmation
            .html_body()
            .contains(&link.replace('&', "&amp;"))
    );

    let confirmed = app.confirm_via(&link).await;
    assert_eq!(confirmed.status, 200);
    assert!(confirmed.body.contains("Space Daily"), "{}", confirmed.body);
    assert_eq!(
        app.subscription_statuses(&email).await,
        vec![("space-daily".into(), "confirmed".into())]
    );

    // The welcome email carries a one-click unsubscribe.
    let welcome = app.emails(2).await.remove(1);
    let header = welcome
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe");
    assert_eq!(
        welcome.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let unsubscribe_url = header.trim_matches(['<', '>']).to_owned();
    assert!(unsubscribe_url.starts_with(&format!("{}/unsubscribe?token=", app.address)));
    assert!(welcome.text_body().contains(&unsubscribe_url));

    // GET shows a button and changes nothing.
    let page = app.get(&unsubscribe_url).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("method=\"post\" action=\"/unsubscribe?token="),
        "{}",
        page.body
    );
    assert_eq!(app.subscription_statuses(&email).await[0].1, "confirmed");

    // RFC 8058 one-click: a POST with that body and no cookie; 200, never a redirect.
    let one_click = app
        .post_raw(
            &unsubscribe_url,
            Some("application/x-www-form-urlencoded"),
            "List-Unsubscribe=One-Click",
        )
        .await;
    assert_eq!(one_click.status, 200, "{}", one_click.body);
    assert!(one_click.header("location").is_none());
    assert_eq!(app.subscription_statuses(&email).await[0].1, "unsubscribed");

    // Again: still 200, and the page offers to resubscribe.
    let again = app.post_raw(&unsubscribe_url, None, "").await;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("Resubscribe"), "{}", again.body);
    assert!(again.body.contains("action=\"/subscriptions\""));
    assert_eq!(app.subscription_statuses(&email).await[0].1, "unsubscribed");
}

#[tokio::test]
async fn opening_the_confirmation_link_changes_nothing() {
    let app = spawn_app().await;
    let email = unique_email();
    app.sign_up(&email).await;
    let link = app.confirmation_link(&app.emails(1).await[0]);

    // What a mail scanner does: HEAD and GET, several times.
    for _ in 0..3 {
        assert_eq!(app.head(&link).await.status, 200);
        let page = app.get(&link).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("action=\"/subscriptions/confirm\""));
        assert!(!page.body.contains("<script"));
    }
    assert_eq!(app.subscription_statuses(&email).await[0].1, "pending");
    app.smtp()
        .assert_no_more_messages(1, Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn confirming_twice_is_fine_and_sends_one_welcome() {
    let app = spawn_app().await;
    let email = unique_email();
    app.sign_up(&email).await;
    let link = app.confirmation_link(&app.emails(1).await[0]);

    let first = app.confirm_via(&link).await;
    assert_eq!(first.status, 200);
    // A second press (or a second tab) posts the same token again.
    let token = link.split("token=").nth(1).unwrap();
    let second = app
        .post_raw(
            "/subscriptions/confirm",
            Some("application/x-www-form-urlencoded"),
            format!("token={token}"),
        )
        .await;
    assert_eq!(second.status, 200);
    assert!(second.body.contains("already confirmed"), "{}", second.body);
    assert_eq!(app.subscription_statuses(&email).await[0].1, "confirmed");
    app.emails(2).await;
    app.smtp()
        .assert_no_more_messages(2, Duration::from_millis(800))
        .await;
}

#[tokio::test]
async fn unknown_and_expired_links_say_so_and_point_to_the_form() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.signup.confirmation_ttl = Duration::from_secs(1)
    })
    .await;

    for token in [
        "",
        "nonsense",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "%zz",
    ] {
        let page = app
            .get(&format!("/subscriptions/confirm?token={token}"))
            .await;
        assert_eq!(page.status, 404, "GET token {token:?}");
        assert!(page.body.contains("href=\"/\""), "{}", page.body);
        let posted = app
            .post_raw(
                "/subscriptions/confirm",
                Some("application/x-www-form-urlencoded"),
                format!("token={token}"),
            )
            .await;
        assert_eq!(posted.status, 404, "POST token {token:?}");
    }
    let page = app.get("/subscriptions/confirm").await;
    assert_eq!(page.status, 404);

    let email = unique_email();
    app.sign_up(&email).await;
    let link = app.confirmation_link(&app.emails(1).await[0]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let page = app.get(&link).await;
    assert_eq!(page.status, 410);
    assert!(page.body.contains("expired"), "{}", page.body);
    assert!(page.body.contains("href=\"/\""));
    let token = link.split("token=").nth(1).unwrap();
    let posted = app
        .post_raw(
            "/subscriptions/confirm",
            Some("application/x-www-form-urlencoded"),
            format!("token={token}"),
        )
        .await;
    assert_eq!(posted.status, 410);
    assert_eq!(app.subscription_statuses(&email).await[0].1, "pending");
}

#[tokio::test]
async fn a_new_signup_while_pending_replaces_the_link() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.signup.confirmation_resend_interval = Duration::ZERO
    })
    .await;
    let email = unique_email();
    app.sign_up(&email).await;
    let first = app.confirmation_link(&app.emails(1).await[0]);
    app.sign_up(&email).await;
    let second = app.confirmation_link(&app.emails(2).await[1]);
    assert_ne!(first, second);

    let old = app.get(&first).await;
    assert_eq!(old.status, 404, "the replaced link no longer works");
    assert_eq!(app.confirm_via(&second).await.status, 200);
    assert_eq!(app.subscription_statuses(&email).await[0].1, "confirmed");
}

#[tokio::test]
async fn a_confirmed_reader_who_signs_up_again_stays_confirmed() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.signup.confirmation_resend_interval = Duration::ZERO
    })
    .await;
    let email = unique_email();
    app.sign_up(&email).await;
    app.confirm_via(&app.confirmation_link(&app.emails(1).await[0]))
        .await;
    app.emails(2).await;

    app.sign_up(&email).await;
    assert_eq!(app.subscription_statuses(&email).await[0].1, "confirmed");
    // Nothing new to confirm, so nothing is sent.
    app.smtp()
        .assert_no_more_messages(2, Duration::from_millis(800))
        .await;
}

#[tokio::test]
async fn an_unsubscribed_reader_who_signs_up_again_goes_through_double_opt_in() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.signup.confirmation_resend_interval = Duration::ZERO
    })
    .await;
    let email = unique_email();
    app.sign_up(&email).await;
    app.confirm_via(&app.confirmation_link(&app.emails(1).await[0]))
        .await;
    let welcome = app.emails(2).await.remove(1);
    let unsubscribe = welcome.header("List-Unsubscribe").unwrap();
    let unsubscribe = unsubscribe.trim_matches(['<', '>']);
    assert_eq!(app.post_raw(unsubscribe, None, "").await.status, 200);

    app.sign_up(&email).await;
    assert_eq!(app.subscription_statuses(&email).await[0].1, "pending");
    let again = app.emails(3).await.remove(2);
    let link = app.confirmation_link(&again);
    assert_eq!(app.confirm_via(&link).await.status, 200);
    assert_eq!(app.subscription_statuses(&email).await[0].1, "confirmed");
}

#[tokio::test]
async fn one_signup_can_choose_several_newsletters_and_leave_one() {
    let app = spawn_app().await;
    app.add_newsletter("mars-weekly", "Mars Weekly").await;
    let page = app.get("/").await;
    assert!(page.body.contains("value=\"mars-weekly\""));

    let email = unique_email();
    let answer = app
        .post_subscriptions(&format!(
            "email={}&newsletters=space-daily&newsletters=mars-weekly",
            urlencode(&email)
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let confirmation = app.emails(1).await.remove(0);
    assert!(confirmation.text_body().contains("Mars Weekly"));
    app.confirm_via(&app.confirmation_link(&confirmation)).await;
    assert_eq!(
        app.subscription_statuses(&email).await,
        vec![
            ("space-daily".into(), "confirmed".into()),
            ("mars-weekly".into(), "confirmed".into())
        ]
    );

    let welcome = app.emails(2).await.remove(1);
    let links: Vec<String> = welcome
        .links()
        .into_iter()
        .filter(|l| l.contains("/unsubscribe?token="))
        .collect();
    assert!(
        links.len() >= 3,
        "one link per newsletter and one for all: {links:?}"
    );
    // The first listed link leaves just the first newsletter.
    assert_eq!(app.post_raw(&links[0], None, "").await.status, 200);
    assert_eq!(
        app.subscription_statuses(&email).await,
        vec![
            ("space-daily".into(), "unsubscribed".into()),
            ("mars-weekly".into(), "confirmed".into())
        ]
    );
}

#[tokio::test]
async fn forged_or_altered_unsubscribe_links_are_refused() {
    let app = spawn_app().await;
    let email = unique_email();
    app.sign_up(&email).await;
    app.confirm_via(&app.confirmation_link(&app.emails(1).await[0]))
        .await;
    let welcome = app.emails(2).await.remove(1);
    let url = welcome.header("List-Unsubscribe").unwrap();
    let url = url.trim_matches(['<', '>']);
    let token = url.split("token=").nth(1).unwrap();
    let mut altered: Vec<char> = token.chars().collect();
    altered[5] = if altered[5] == 'A' { 'B' } else { 'A' };
    let altered: String = altered.into_iter().collect();

    for bad in [altered.as_str(), "", "x", "AQEAAAAAAAAAAQ"] {
        let answer = app
            .post_raw(&format!("/unsubscribe?token={bad}"), None, "")
            .await;
        assert_eq!(answer.status, 404, "token {bad:?}");
        assert_eq!(
            app.get(&format!("/unsubscribe?token={bad}")).await.status,
            404
        );
    }
    assert_eq!(app.subscription_statuses(&email).await[0].1, "confirmed");
}

#[tokio::test]
async fn json_clients_get_json() {
    let app = spawn_app().await;
    let email = unique_email();
    let answer = app
        .post_subscriptions_json(
            &serde_json::json!({"email": email, "name": "Grace", "newsletters": ["space-daily"]}),
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "ok");
    let confirmation = app.emails(1).await.remove(0);
    assert!(confirmation.text_body().contains("Grace"));
}
