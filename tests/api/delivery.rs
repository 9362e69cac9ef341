//! The outbound queue against a real SMTP server that is down, refuses, or defers.

use std::time::Duration;

use crate::support::app::{Mail, spawn_app, spawn_app_with, unique_email};
use crate::support::smtp_server::{Behaviour, SmtpServer, free_port};

#[tokio::test]
async fn the_signup_answer_never_waits_for_smtp() {
    let app = spawn_app().await;
    app.smtp()
        .set_behaviour(Behaviour::SlowDataReply(Duration::from_secs(3)));
    let started = std::time::Instant::now();
    app.sign_up(&unique_email()).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn mail_queued_while_the_server_is_down_is_delivered_when_it_comes_up() {
    let port = free_port();
    let app = spawn_app_with(Mail::Port(port), |_| {}).await;
    let email = unique_email();
    let answer = app.sign_up(&email).await;
    assert_eq!(answer.status, 200);

    // The worker tries, fails, and keeps the email.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records = app.outbound().await;
        if records[0].attempts >= 2 {
            assert_eq!(records[0].status.as_str(), "pending");
            assert!(records[0].last_error.is_some());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{records:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let server = SmtpServer::start_on(port).await;
    let mails = server.wait_for_messages(1, Duration::from_secs(15)).await;
    assert_eq!(mails[0].rcpt_to, vec![email]);
    let records = app.wait_until_queue_settles().await;
    assert_eq!(records[0].status.as_str(), "sent");
    server
        .assert_no_more_messages(1, Duration::from_millis(800))
        .await;
}

#[tokio::test]
async fn a_5xx_marks_the_email_failed_with_the_reply_and_is_not_retried() {
    let app = spawn_app().await;
    app.smtp().set_behaviour(Behaviour::RejectRcpt {
        code: 550,
        text: "5.1.1 mailbox unavailable".into(),
    });
    app.sign_up(&unique_email()).await;
    let records = app.wait_until_queue_settles().await;
    assert_eq!(records[0].status.as_str(), "failed");
    assert_eq!(records[0].attempts, 1);
    let error = records[0].last_error.clone().unwrap();
    assert!(
        error.contains("550") || error.contains("mailbox unavailable"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.smtp().rcpt_attempts(),
        1,
        "a permanent failure is not retried"
    );
}

#[tokio::test]
async fn a_4xx_is_retried_with_backoff_until_accepted() {
    let app = spawn_app().await;
    app.smtp().set_behaviour(Behaviour::RejectRcpt {
        code: 451,
        text: "4.3.0 try again later".into(),
    });
    app.sign_up(&unique_email()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.smtp().rcpt_attempts() < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let records = app.outbound().await;
    assert_eq!(records[0].status.as_str(), "pending");
    assert!(
        records[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("451")
    );

    app.smtp().set_behaviour(Behaviour::Accept);
    app.emails(1).await;
    let records = app.wait_until_queue_settles().await;
    assert_eq!(records[0].status.as_str(), "sent");
    assert!(records[0].attempts >= 3, "{records:?}");
}

#[tokio::test]
async fn a_5xx_on_data_fails_and_a_dropped_connection_is_retried() {
    let app = spawn_app().await;
    app.smtp().set_behaviour(Behaviour::RejectData {
        code: 554,
        text: "5.7.1 message rejected".into(),
    });
    app.sign_up(&unique_email()).await;
    let records = app.wait_until_queue_settles().await;
    assert_eq!(records[0].status.as_str(), "failed");

    app.smtp().set_behaviour(Behaviour::DropAfterData);
    app.sign_up(&unique_email()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.smtp().data_attempts() < 3 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.smtp().set_behaviour(Behaviour::Accept);
    app.emails(1).await;
    let records = app.wait_until_queue_settles().await;
    assert_eq!(records[1].status.as_str(), "sent");
}

#[tokio::test]
async fn a_sent_email_keeps_no_link_in_the_database() {
    let app = spawn_app().await;
    app.sign_up(&unique_email()).await;
    let link = app.confirmation_link(&app.emails(1).await[0]);
    let token = link.split("token=").nth(1).unwrap().to_owned();
    app.wait_until_queue_settles().await;
    use diesel::prelude::*;
    use spacedigest::db::schema::{confirmation_tokens, outbound_emails};
    let bodies: Vec<(String, String)> = app
        .db(|c| {
            outbound_emails::table
                .select((outbound_emails::body_text, outbound_emails::body_html))
                .load(c)
        })
        .await;
    assert!(
        bodies
            .iter()
            .all(|(t, h)| !t.contains(&token) && !h.contains(&token))
    );
    let hashes: Vec<String> = app
        .db(|c| {
            confirmation_tokens::table
                .select(confirmation_tokens::token_hash)
                .load(c)
        })
        .await;
    assert_eq!(hashes.len(), 1);
    assert_ne!(hashes[0], token);
    assert_eq!(hashes[0], spacedigest::tokens::hash_token(&token));
}
