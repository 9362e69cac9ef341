//! Deliverability: DKIM signatures that verify, and separate senders for transactional
//! mail and the digest.

mod dkim;
mod senders;
mod verifier;

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use spacedigest::config::DkimSettings;

use crate::support::app::TestApp;
use crate::support::smtp_server::{ReceivedMessage, SmtpServer};
use crate::support::{add_story, queue_issue};

/// DKIM settings for a key file beside this module.
pub fn dkim_with(file: &str, selector: &str, domain: Option<&str>) -> DkimSettings {
    DkimSettings::load(Path::new(&verifier::key_path(file)), selector, domain)
        .expect("the test key loads")
}

/// Waits for `n` messages to `email` at `smtp`.
pub async fn mail_to(smtp: &SmtpServer, email: &str, n: usize) -> Vec<ReceivedMessage> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let mails = smtp.messages_to(email);
        if mails.len() >= n {
            return mails;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {n} mails to {email}; got {}",
            mails.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Signs `email` up and confirms through the link in the confirmation that `smtp` got.
pub async fn sign_up_and_confirm(app: &TestApp, smtp: &SmtpServer, email: &str) {
    app.sign_up(email).await;
    let confirmation = mail_to(smtp, email, 1).await.remove(0);
    let link = app.confirmation_link(&confirmation);
    let answer = app.confirm_via(&link).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// Adds a story published a minute ago and queues that day's digest of the default
/// newsletter (unless the app's scheduler, past the send time, got there first).
pub async fn send_todays_digest(app: &TestApp) {
    let published = spacedigest::db::now() - chrono::TimeDelta::minutes(1);
    add_story(
        app,
        "Probe reaches orbit",
        "<p>It went <b>well</b>.</p>",
        published,
    )
    .await;
    let date: NaiveDate = published.date();
    let outcome = queue_issue(app, date).await;
    assert!(
        matches!(
            outcome,
            spacedigest::digest::SendOutcome::Queued { .. }
                | spacedigest::digest::SendOutcome::AlreadyQueued { .. }
        ),
        "{outcome:?}"
    );
}
