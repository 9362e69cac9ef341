//! Bounces and complaints: SMTP refusals and exhausted retries counted against a
//! subscriber, the bounced mark that stops their mail, the bounce webhook, and the
//! console's history of it all.

mod console;
mod smtp;
mod webhook;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use spacedigest::db::bounces::{self, Standing};
use spacedigest::db::schema::{bounce_events, subscribers};

use crate::support::app::TestApp;
use crate::support::{add_story, queue_issue};

/// The first day the tests send; later days follow it.
fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() + chrono::Days::new(u64::from(n))
}

fn noon(day: NaiveDate) -> NaiveDateTime {
    day.and_hms_opt(12, 0, 0).unwrap()
}

/// Adds a story on `day` and queues that day's issue to every reader, as `digest send`
/// does, for the app's own worker to deliver.
async fn send_digest_on(app: &TestApp, day: NaiveDate) {
    add_story(app, &format!("Launch report {day}"), "", noon(day)).await;
    let outcome = queue_issue(app, day).await;
    assert!(
        matches!(outcome, spacedigest::digest::SendOutcome::Queued { .. }),
        "nothing was queued: {outcome:?}"
    );
}

/// The subscriber's id.
async fn subscriber_id(app: &TestApp, email: &str) -> i64 {
    let key = email.to_lowercase();
    app.db(move |c| {
        subscribers::table
            .filter(subscribers::email_key.eq(key))
            .select(subscribers::id)
            .first(c)
    })
    .await
}

/// Where the subscriber stands now, as the console computes it.
async fn standing(app: &TestApp, email: &str) -> Standing {
    let id = subscriber_id(app, email).await;
    let rules = &app.settings.bounces;
    let limits = bounces::Limits {
        hard_limit: rules.hard_limit,
        score_limit: rules.score_limit,
        window: rules.window,
    };
    app.db(move |c| bounces::standing(c, &limits, id, spacedigest::db::now()))
        .await
}

/// Every bounce event, as (subscriber address, kind, source).
async fn events(app: &TestApp) -> Vec<(String, String, String)> {
    app.db(|c| {
        bounce_events::table
            .inner_join(subscribers::table)
            .order(bounce_events::id)
            .select((
                subscribers::email,
                bounce_events::kind,
                bounce_events::source,
            ))
            .load(c)
    })
    .await
}

/// Digests the SMTP server accepted for `email`.
fn digests_to(app: &TestApp, email: &str) -> usize {
    app.smtp()
        .messages_to(email)
        .iter()
        .filter(|m| m.subject().starts_with("Space Daily — "))
        .count()
}
