//! The console's fetches: the story import, and feeds added and polled with "Poll now".

use diesel::prelude::*;
use spacedigest::db::{self, feeds};

use super::{Tally, Targets, all_feeds, described, story_count, strict_fetches};
use crate::console::Browser;
use crate::support::app::{Mail, spawn_app_with};

#[tokio::test]
async fn the_console_fetches_no_private_address() {
    let targets = Targets::start().await;
    let app = spawn_app_with(Mail::Server, |s| s.fetch = strict_fetches()).await;
    let browser = Browser::logged_in(&app).await;
    let cases = targets.cases();
    let mut tally = Tally::default();
    let mut statuses = Vec::new();

    // The story import.
    for case in &cases {
        let answer = browser
            .post_form(
                "/admin/stories/import",
                &[("url", case.url.as_str()), ("newsletter", "space-daily")],
            )
            .await;
        statuses.push(answer.status);
        tally.record("console import", case, &answer.body);
    }
    let stored_by_import = story_count(&app.pool).await;

    // Feeds: an address known to be refused is refused when added; the rest, and feeds
    // registered while private addresses were allowed, fail when polled.
    let mut added = Vec::new();
    for case in &cases {
        let answer = browser
            .post_form(
                "/admin/feeds",
                &[("url", case.url.as_str()), ("newsletter", "space-daily")],
            )
            .await;
        if !case.redirect {
            statuses.push(answer.status);
            tally.record("console feed add", case, &answer.body);
        }
        added.push(answer.status == 303);
    }
    let refused_at_add = added.iter().filter(|a| !**a).count();
    let newsletter_id = app
        .db(|conn| {
            spacedigest::db::schema::newsletters::table
                .select(spacedigest::db::schema::newsletters::id)
                .first::<i64>(conn)
        })
        .await;
    for (case, added) in cases.iter().zip(&added) {
        if !added {
            let url = url::Url::parse(&case.url).unwrap().to_string();
            app.db(move |conn| feeds::add(conn, newsletter_id, &url, db::now()))
                .await;
        }
    }
    let registered = all_feeds(&app.pool).await;
    let mut polls_not_failed = Vec::new();
    for feed in &registered {
        let polled = browser
            .post_form(&format!("/admin/feeds/{}/poll", feed.id), &[])
            .await;
        let failed = format!("/admin/feeds?done=poll-failed&feed={}", feed.id);
        if polled.header("location") != Some(failed) {
            polls_not_failed.push(feed.url.clone());
        }
    }
    let page = browser.get("/admin/feeds").await;
    let mut errors_not_shown = Vec::new();
    for feed in all_feeds(&app.pool).await {
        let case = cases
            .iter()
            .find(|c| url::Url::parse(&c.url).unwrap().as_str() == feed.url)
            .expect("a feed of the cases");
        let error = feed.last_error.unwrap_or_default();
        tally.record("console poll now", case, &error);
        if !page.body.contains(&error.replace('\'', "&#39;")) {
            errors_not_shown.push(error);
        }
    }
    let connections = targets.local_connections();
    let stored = story_count(&app.pool).await;

    // The control: the allowed host is fetched, and still nothing reaches 127.0.0.1.
    let control = browser
        .post_form(
            "/admin/stories/import",
            &[
                ("url", targets.allowed_url().as_str()),
                ("newsletter", "space-daily"),
            ],
        )
        .await;
    let control_stored = story_count(&app.pool).await;

    crate::support::figures::report(
        "fetch-private-console",
        &format!(
            "{} through the story import, feed add and Poll now: connections to the local \
             listeners ({}) {connections}, stories stored {stored}, refusals naming the address \
             and its kind {} of {}; control: the allow-listed 127.0.0.2 imported {} stories",
            described(&cases),
            targets.listeners(),
            tally.explained,
            tally.checked,
            control_stored - stored
        ),
    );
    assert_eq!(connections, 0, "refused fetches reached this machine");
    assert_eq!(stored_by_import, 0);
    assert_eq!(stored, 0);
    assert!(tally.unexplained.is_empty(), "{:#?}", tally.unexplained);
    assert!(statuses.iter().all(|s| *s == 400), "{statuses:?}");
    assert_eq!(
        refused_at_add,
        cases.iter().filter(|c| !c.redirect).count(),
        "every address known before a lookup"
    );
    assert_eq!(registered.len(), cases.len());
    assert!(polls_not_failed.is_empty(), "{polls_not_failed:?}");
    assert!(
        errors_not_shown.is_empty(),
        "not on the page: {errors_not_shown:?}"
    );
    assert_eq!(control.status, 200, "{}", control.body);
    assert_eq!(control_stored, 3);
    assert_eq!(targets.local_connections(), 0);
}
