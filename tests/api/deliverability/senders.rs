//! Transactional mail and the digest leave through their own relays, with their own From.

use std::time::Duration;

use spacedigest::config::SmtpUrl;

use super::verifier::{self, verify};
use super::{dkim_with, mail_to, send_todays_digest, sign_up_and_confirm};
use crate::console::Browser;
use crate::support::app::{Mail, spawn_app_with, unique_email};
use crate::support::cli;
use crate::support::smtp_server::SmtpServer;

const TRANSACTIONAL_FROM: &str = "Space Daily Accounts <accounts@spacedigest.test>";
const DIGEST_FROM: &str = "Space Daily <daily@news.spacedigest.test>";

#[tokio::test]
async fn confirmations_and_digests_go_through_their_own_relay_from_their_own_sender() {
    // Relay A is the app's own test server; relay B carries only digests.
    let relay_b = SmtpServer::start().await;
    let relay_b_url = relay_b.url();
    let app = spawn_app_with(Mail::Server, |s| {
        s.mail.senders.transactional_from = Some(TRANSACTIONAL_FROM.parse().unwrap());
        s.mail.senders.digest_from = Some(DIGEST_FROM.parse().unwrap());
        s.mail.senders.digest_smtp_url = Some(SmtpUrl::parse(&relay_b_url).unwrap());
        s.mail.dkim = Some(dkim_with("test_key_rsa_pkcs1.pem", "sd2026", None));
    })
    .await;
    let relay_a = app.smtp();
    let key = verifier::public_key("test_key_rsa_pkcs1.pem");
    let email = unique_email();
    sign_up_and_confirm(&app, relay_a, &email).await;
    let transactional = mail_to(relay_a, &email, 2).await;
    send_todays_digest(&app).await;
    let digests = mail_to(&relay_b, &email, 1).await;

    for mail in &transactional {
        assert_eq!(
            mail.header("From").as_deref(),
            Some(TRANSACTIONAL_FROM),
            "{}",
            mail.subject()
        );
        assert!(
            mail.header("Message-ID")
                .unwrap()
                .ends_with("@spacedigest.test>")
        );
        assert_eq!(mail.mail_from, "accounts@spacedigest.test");
        assert!(mail.header("List-Id").is_none(), "a digest on relay A");
        assert_eq!(verify(&mail.data, &key).unwrap().domain, "spacedigest.test");
    }
    let digest = &digests[0];
    assert_eq!(digest.header("From").as_deref(), Some(DIGEST_FROM));
    assert_eq!(digest.mail_from, "daily@news.spacedigest.test");
    assert!(
        digest
            .header("Message-ID")
            .unwrap()
            .ends_with("@news.spacedigest.test>"),
        "{:?}",
        digest.header("Message-ID")
    );
    assert!(digest.header("List-Id").is_some());
    // Each stream is signed for its own From domain, with the one key and selector.
    let verified = verify(&digest.data, &key).unwrap();
    assert_eq!(verified.domain, "news.spacedigest.test");
    assert_eq!(verified.selector, "sd2026");

    // Nothing crosses: relay A got only the two transactional emails, relay B only the digest.
    relay_a
        .assert_no_more_messages(2, Duration::from_millis(500))
        .await;
    relay_b
        .assert_no_more_messages(1, Duration::from_millis(200))
        .await;
    assert!(
        relay_a
            .messages()
            .iter()
            .all(|m| m.header("List-Id").is_none())
    );
}

#[tokio::test]
async fn without_the_new_settings_both_streams_use_from_and_smtp_url() {
    let app = spawn_app_with(Mail::Server, |_| {}).await;
    let email = unique_email();
    sign_up_and_confirm(&app, app.smtp(), &email).await;
    send_todays_digest(&app).await;
    let mails = mail_to(app.smtp(), &email, 3).await;
    for mail in &mails {
        assert_eq!(
            mail.header("From").as_deref(),
            Some("Space Daily <news@spacedigest.test>")
        );
        assert!(mail.header("DKIM-Signature").is_none());
    }
}

#[tokio::test]
async fn the_digest_previews_show_the_digest_sender() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.mail.senders.digest_from = Some(DIGEST_FROM.parse().unwrap());
    })
    .await;
    send_todays_digest(&app).await;
    let date = spacedigest::db::now() - chrono::TimeDelta::minutes(1);
    let date = date.date().to_string();
    let key = verifier::key_path("test_key_rsa_pkcs1.pem");
    let output = cli(
        &app,
        &["digest", "preview", "--date", &date, "--format", "eml"],
        &[
            ("SPACEDIGEST_FROM", "Space Daily <news@spacedigest.test>"),
            ("SPACEDIGEST_DIGEST_FROM", DIGEST_FROM),
            ("SPACEDIGEST_DKIM_KEY_PATH", &key),
            ("SPACEDIGEST_DKIM_SELECTOR", "sd2026"),
        ],
    )
    .await;
    let eml = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let from_line = eml.lines().find(|l| l.starts_with("From: ")).unwrap();
    assert_eq!(
        from_line,
        "From: \"Space Daily\" <daily@news.spacedigest.test>"
    );
    assert!(eml.contains("@news.spacedigest.test>"), "{eml}");
    // The preview is the real thing, signature included.
    let signed = verify(
        eml.as_bytes(),
        &verifier::public_key("test_key_rsa_pkcs1.pem"),
    )
    .unwrap();
    assert_eq!(signed.domain, "news.spacedigest.test");

    let console = Browser::logged_in(&app).await;
    let page = console
        .get(&format!(
            "/admin/digests/preview?newsletter=space-daily&date={date}"
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(
            "<dd id=\"preview-from\">Space Daily &#60;daily@news.spacedigest.test&#62;</dd>"
        ),
        "{}",
        page.body
    );
}
