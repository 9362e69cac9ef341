//! `POST /webhooks/bounces`: off without a token, 401 and nothing changed with a wrong
//! one, all-or-nothing with the right one.

use serde_json::{Value, json};

use super::{events, standing};
use crate::support::add_confirmed_readers;
use crate::support::app::{Answer, Mail, TestApp, spawn_app, spawn_app_with};

pub const TOKEN: &str = "bounce-webhook-token-0123456789abcdef";

pub async fn app_with_webhook() -> TestApp {
    spawn_app_with(Mail::Server, |s| {
        s.bounces.webhook_token = Some(spacedigest::config::WebhookToken(TOKEN.into()));
    })
    .await
}

pub async fn post_reports(app: &TestApp, authorization: Option<&str>, body: &Value) -> Answer {
    let mut request = app
        .client
        .post(format!("{}/webhooks/bounces", app.address))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    Answer::from(request.send().await.unwrap()).await
}

/// Everything a report could change: the event log, the marks, the subscriptions.
async fn state(app: &TestApp, readers: &[String]) -> (Vec<(String, String, String)>, Vec<String>) {
    let mut marks = Vec::new();
    for reader in readers {
        let s = standing(app, reader).await;
        let subscriptions = app.subscription_statuses(reader).await;
        marks.push(format!("{reader} {:?} {subscriptions:?}", s.bounced_at));
    }
    (events(app).await, marks)
}

#[tokio::test]
async fn the_webhook_is_off_without_a_token() {
    let app = spawn_app().await;
    let readers = add_confirmed_readers(&app, "off", 1).await;
    let answer = post_reports(
        &app,
        Some("Bearer anything"),
        &json!({"email": readers[0], "type": "complaint"}),
    )
    .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(events(&app).await.is_empty());
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_refused_and_changes_nothing() {
    let app = app_with_webhook().await;
    let readers = add_confirmed_readers(&app, "auth", 2).await;
    let before = state(&app, &readers).await;
    let body = json!({"reports": [
        {"email": readers[0], "type": "hard", "reason": "550 no such user"},
        {"email": readers[1], "type": "complaint"},
    ]});
    let wrong = format!("Bearer {}", TOKEN.replace('0', "1"));
    let prefix = format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]);
    let basic = format!("Basic {TOKEN}");
    for authorization in [
        None,
        Some(wrong.as_str()),
        Some(prefix.as_str()),
        Some(basic.as_str()),
        Some("Bearer "),
    ] {
        let answer = post_reports(&app, authorization, &body).await;
        assert_eq!(answer.status, 401, "{authorization:?}: {}", answer.body);
        assert_eq!(
            answer.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"bounces\""),
            "{authorization:?}"
        );
        assert_eq!(answer.json()["error"], "unauthorized");
        assert!(!answer.body.contains(TOKEN));
    }
    assert_eq!(state(&app, &readers).await, before);
    assert!(before.0.is_empty());
}

#[tokio::test]
async fn a_hard_report_counts_and_a_complaint_unsubscribes_at_once() {
    let app = app_with_webhook().await;
    let readers = add_confirmed_readers(&app, "reports", 3).await;
    app.add_newsletter("moon-weekly", "Moon Weekly").await;
    let bearer = format!("Bearer {TOKEN}");
    let answer = post_reports(
        &app,
        Some(&bearer),
        &json!({"reports": [
            {"email": readers[0].to_uppercase(), "type": "hard", "reason": "550 5.1.1 user unknown"},
            {"email": readers[1], "type": "complaint", "reason": "abuse report"},
            {"email": "nobody-here@example.com", "type": "hard"},
        ]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.json(),
        json!({"applied": 2, "ignored": 1, "bounced": 1, "unsubscribed": 1})
    );
    let hard = standing(&app, &readers[0]).await;
    assert!(hard.bounced_at.is_some(), "{hard:?}");
    assert_eq!(hard.hard, 1);
    assert_eq!(
        app.subscription_statuses(&readers[1]).await,
        vec![("space-daily".to_owned(), "unsubscribed".to_owned())]
    );
    let complainer = standing(&app, &readers[1]).await;
    assert!(
        complainer.bounced_at.is_none(),
        "a complaint is not a bounce"
    );
    assert_eq!(
        app.subscription_statuses(&readers[2]).await,
        vec![("space-daily".to_owned(), "confirmed".to_owned())]
    );
    assert_eq!(
        events(&app).await,
        vec![
            (readers[0].clone(), "hard".into(), "webhook".into()),
            (readers[1].clone(), "complaint".into(), "webhook".into()),
        ]
    );

    // One report on its own works too; a soft one counts half.
    let answer = post_reports(
        &app,
        Some(&bearer),
        &json!({"email": readers[2], "type": "soft"}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let soft = standing(&app, &readers[2]).await;
    assert_eq!((soft.soft, soft.bounced_at), (1, None));
}

#[tokio::test]
async fn a_malformed_request_is_refused_whole_with_its_reasons() {
    let app = app_with_webhook().await;
    let readers = add_confirmed_readers(&app, "malformed", 1).await;
    let bearer = format!("Bearer {TOKEN}");
    let before = state(&app, &readers).await;
    let bodies = [
        json!({"reports": [
            {"email": readers[0], "type": "complaint"},
            {"email": "not an address", "type": "hard"},
        ]}),
        json!({"reports": [{"email": readers[0], "type": "bounce"}]}),
        json!({"reports": [{"type": "hard"}]}),
        json!({"reports": []}),
        json!({"reports": "all of them"}),
        json!([{"email": readers[0], "type": "hard"}]),
        json!({"email": readers[0], "type": "hard", "reason": 550}),
    ];
    for body in &bodies {
        let answer = post_reports(&app, Some(&bearer), body).await;
        assert_eq!(answer.status, 400, "{body}: {}", answer.body);
        let json = answer.json();
        assert_eq!(json["error"], "malformed_reports", "{body}");
        assert!(
            json["problems"].as_array().is_some_and(|p| !p.is_empty()),
            "{json}"
        );
    }
    let not_json = app
        .client
        .post(format!("{}/webhooks/bounces", app.address))
        .header("authorization", &bearer)
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let huge = "x".repeat(300 * 1024);
    let too_big = post_reports(
        &app,
        Some(&bearer),
        &json!({"email": readers[0], "type": "hard", "reason": huge}),
    )
    .await;
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    assert_eq!(state(&app, &readers).await, before, "nothing was applied");
}

#[tokio::test]
async fn queued_mail_to_a_complainer_or_a_bounced_reader_is_skipped_not_sent() {
    use crate::support::smtp_server::Behaviour;
    use std::time::Duration;
    let app = app_with_webhook().await;
    let readers = add_confirmed_readers(&app, "inflight", 2).await;
    let complainer = readers[0].clone();
    let newcomer = crate::support::app::unique_email();
    // The server defers both, so their emails wait in the queue for a retry.
    app.smtp().set_behaviour(Behaviour::RejectRcpt {
        code: 451,
        text: "4.3.0 try again later".into(),
    });
    super::send_digest_on(&app, super::day(1)).await;
    app.sign_up(&newcomer).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while app.smtp().rcpt_times(&complainer).is_empty()
        || app.smtp().rcpt_times(&newcomer).is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "both were tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bearer = format!("Bearer {TOKEN}");
    let answer = post_reports(
        &app,
        Some(&bearer),
        &json!({"reports": [
            {"email": complainer, "type": "complaint"},
            {"email": newcomer, "type": "hard"},
        ]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    app.smtp().set_behaviour(Behaviour::Accept);
    let records = app.wait_until_settled(Duration::from_secs(30)).await;
    let status_of = |email: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.recipient_email == email)
            .map(|r| r.status.to_string())
            .collect()
    };
    assert_eq!(status_of(&complainer), vec!["skipped"], "{records:?}");
    assert_eq!(status_of(&newcomer), vec!["skipped"], "{records:?}");
    assert_eq!(status_of(&readers[1]), vec!["sent"], "{records:?}");
    assert!(app.smtp().messages_to(&complainer).is_empty());
    assert!(app.smtp().messages_to(&newcomer).is_empty());
}
