//! A misbehaving mail server: each fault for a while, then recovery.

use std::time::Duration;

use chrono::NaiveDateTime;
use spacedigest::db::outbound::EmailRecord;

use crate::helpers::TestApp;

/// The day every fault test's issue is for.
pub const DAY: &str = "2026-11-20";

/// A publication time within [`DAY`].
pub fn story_time() -> NaiveDateTime {
    NaiveDateTime::parse_from_str(&format!("{DAY} 09:00"), "%Y-%m-%d %H:%M").unwrap()
}

/// Queues the [`DAY`] issue for every confirmed reader, as `digest send` does, for the
/// app's own worker to deliver; returns the issue's id.
pub async fn queue_digest(app: &TestApp) -> i64 {
    let settings = app.settings.clone();
    let outcome = app
        .db(move |c| {
            let newsletter =
                spacedigest::db::newsletters::by_slugs(c, &["space-daily".into()])?.remove(0);
            let date = chrono::NaiveDate::parse_from_str(DAY, "%Y-%m-%d").unwrap();
            Ok(spacedigest::digest::send(c, &settings, &newsletter, date)
                .expect("the issue is queued"))
        })
        .await;
    match outcome {
        spacedigest::digest::SendOutcome::Queued { issue_id, .. } => issue_id,
        other => panic!("nothing was queued: {other:?}"),
    }
}

/// Waits, up to `within`, until no queued email is still pending; returns every row.
pub async fn wait_until_settled(app: &TestApp, within: Duration) -> Vec<EmailRecord> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let records = app.outbound().await;
        if records.iter().all(|r| r.status != "pending") {
            return records;
        }
        let pending = records.iter().filter(|r| r.status == "pending").count();
        assert!(
            tokio::time::Instant::now() < deadline,
            "the queue did not settle within {within:?}: {pending} still pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
