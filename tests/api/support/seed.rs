//! Rows put straight into the database, for tests whose subject is what happens next:
//! the newsletter's time zone, stories, confirmed readers (the signup path has its own
//! tests), a queued issue.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;
use spacedigest::db::schema::{newsletters, stories, subscribers, subscriptions};
use spacedigest::digest::SendOutcome;

use super::app::TestApp;

/// Sets the `space-daily` newsletter's time zone (an IANA name).
pub async fn set_zone(app: &TestApp, zone: &'static str) {
    app.db(move |c| {
        diesel::update(newsletters::table.filter(newsletters::slug.eq("space-daily")))
            .set(newsletters::timezone.eq(zone))
            .execute(c)
    })
    .await;
}

/// Adds a story to `space-daily`, published at `published_at` (UTC); its link and guid
/// come from the title.
pub async fn add_story(
    app: &TestApp,
    title: &str,
    summary_html: &str,
    published_at: NaiveDateTime,
) {
    let title = title.to_owned();
    let summary_html = summary_html.to_owned();
    let guid = format!(
        "https://news.example.org/{}",
        title.to_lowercase().replace(' ', "-")
    );
    app.db(move |c| {
        let newsletter_id: i64 = newsletters::table
            .filter(newsletters::slug.eq("space-daily"))
            .select(newsletters::id)
            .first(c)?;
        diesel::insert_into(stories::table)
            .values((
                stories::newsletter_id.eq(newsletter_id),
                stories::guid.eq(&guid),
                stories::url.eq(&guid),
                stories::title.eq(&title),
                stories::summary_html.eq(&summary_html),
                stories::source.eq("Example Space News"),
                stories::published_at.eq(published_at),
                stories::created_at.eq(spacedigest::db::now()),
                stories::updated_at.eq(spacedigest::db::now()),
            ))
            .execute(c)
    })
    .await;
}

/// Confirmed readers, inserted in bulk (the signup path has its own tests).
pub async fn add_confirmed_readers(app: &TestApp, prefix: &'static str, n: usize) -> Vec<String> {
    let emails: Vec<String> = (0..n)
        .map(|i| format!("{prefix}-{i}@example.com"))
        .collect();
    let rows = emails.clone();
    app.db(move |c| {
        let now = spacedigest::db::now();
        let newsletter_id: i64 = newsletters::table
            .filter(newsletters::slug.eq("space-daily"))
            .select(newsletters::id)
            .first(c)?;
        for chunk in rows.chunks(1000) {
            let values: Vec<_> = chunk
                .iter()
                .map(|e| {
                    (
                        subscribers::email.eq(e.clone()),
                        subscribers::email_key.eq(e.clone()),
                        subscribers::created_at.eq(now),
                        subscribers::updated_at.eq(now),
                    )
                })
                .collect();
            // Multi-row inserts need the concrete backend.
            spacedigest::on_backend!(c, conn => diesel::insert_into(subscribers::table).values(values).execute(conn))?;
        }
        let ids: Vec<i64> = subscribers::table
            .filter(subscribers::email_key.like(format!("{prefix}-%")))
            .select(subscribers::id)
            .load(c)?;
        for chunk in ids.chunks(1000) {
            let values: Vec<_> = chunk
                .iter()
                .map(|id| {
                    (
                        subscriptions::subscriber_id.eq(*id),
                        subscriptions::newsletter_id.eq(newsletter_id),
                        subscriptions::status.eq("confirmed"),
                        subscriptions::created_at.eq(now),
                        subscriptions::confirmed_at.eq(now),
                        subscriptions::updated_at.eq(now),
                    )
                })
                .collect();
            spacedigest::on_backend!(c, conn => diesel::insert_into(subscriptions::table).values(values).execute(conn))?;
        }
        Ok(())
    })
    .await;
    emails
}

/// Queues `day`'s issue of `space-daily` to every confirmed reader, as `digest send` does,
/// for the app's own worker to deliver; what the fan-out did.
pub async fn queue_issue(app: &TestApp, day: NaiveDate) -> SendOutcome {
    let settings = app.settings.clone();
    app.db(move |c| {
        let newsletter =
            spacedigest::db::newsletters::by_slugs(c, &["space-daily".into()])?.remove(0);
        Ok(spacedigest::digest::send(c, &settings, &newsletter, day).expect("the issue is queued"))
    })
    .await
}
