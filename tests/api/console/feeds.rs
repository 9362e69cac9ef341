//! The console's feeds page: add, list, poll now, remove.

use spacedigest::db::feeds::{self, Feed};

use super::stories::{FixtureServer, dead_url};
use super::{Browser, assert_sent_to_login};
use crate::support::app::{TestApp, spawn_app, urlencode};

async fn all_feeds(app: &TestApp) -> Vec<Feed> {
    app.db(feeds::all).await
}

#[tokio::test]
async fn a_feed_is_added_listed_polled_and_removed() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let empty = browser.get("/admin/feeds").await;
    assert_eq!(empty.status, 200);
    assert!(empty.body.contains("No feeds registered yet"));

    let dead = dead_url();
    let added = browser
        .post_form(
            "/admin/feeds",
            &[
                ("url", &format!("{dead}#top")),
                ("newsletter", "space-daily"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    assert_eq!(added.header("location").unwrap(), "/admin/feeds?done=added");
    let stored = all_feeds(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].url, dead, "normalised, without the fragment");
    let listed = browser.get("/admin/feeds?done=added").await;
    assert!(listed.body.contains("Feed added."));
    assert!(listed.body.contains(&dead), "{}", listed.body);
    assert!(listed.body.contains("Not polled yet"));

    // The same feed again, and URLs that cannot be polled, are refused with the reason.
    for (url, reason) in [
        (dead.as_str(), "already registered"),
        ("ftp://example.com/feed.xml", "only http and https"),
        ("not a url", "invalid feed URL"),
    ] {
        let answer = browser
            .post_form(
                "/admin/feeds",
                &[("url", url), ("newsletter", "space-daily")],
            )
            .await;
        assert_eq!(answer.status, 400, "{url}: {}", answer.body);
        assert!(answer.body.contains(reason), "{url}: {}", answer.body);
    }
    let unknown = browser
        .post_form(
            "/admin/feeds",
            &[
                ("url", "https://example.com/feed.xml"),
                ("newsletter", "nope"),
            ],
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(all_feeds(&app).await.len(), 1);

    // Poll now: the failure is recorded like the poller records it, and shown.
    let id = stored[0].id;
    let polled = browser
        .post_form(&format!("/admin/feeds/{id}/poll"), &[])
        .await;
    assert_eq!(polled.status, 303);
    let location = polled.header("location").unwrap();
    assert_eq!(location, format!("/admin/feeds?done=poll-failed&feed={id}"));
    let feed = all_feeds(&app).await.remove(0);
    assert!(feed.last_polled_at.is_some());
    assert!(feed.last_success_at.is_none());
    let error = feed.last_error.expect("the reason is recorded");
    assert!(error.contains("onnect"), "{error}");
    let page = browser.get(&location).await;
    assert!(page.body.contains("The poll failed"), "{}", page.body);
    assert!(page.body.contains("Failing"));
    assert!(page.body.contains("role=\"alert\""));
    assert!(page.body.contains(&error.replace('\'', "&#39;")) || page.body.contains("onnect"));

    // A working feed: polled now, its stories stored, the counts shown.
    let server = FixtureServer::serving("rss2.xml").await;
    assert_eq!(
        browser
            .post_form(
                "/admin/feeds",
                &[("url", &server.url), ("newsletter", "space-daily")]
            )
            .await
            .status,
        303
    );
    let good = all_feeds(&app).await.remove(1);
    let polled = browser
        .post_form(&format!("/admin/feeds/{}/poll", good.id), &[])
        .await;
    let location = polled.header("location").unwrap();
    assert!(location.contains("done=polled"), "{location}");
    let page = browser.get(&location).await;
    assert!(
        page.body.contains("Polled: 4 new, 0 updated, 0 unchanged."),
        "{}",
        page.body
    );
    assert!(page.body.contains("badge--ok"));
    let good = all_feeds(&app).await.remove(1);
    assert!(good.last_success_at.is_some() && good.last_error.is_none());
    let count = app
        .db(|conn| {
            use diesel::prelude::*;
            spacedigest::db::schema::stories::table
                .count()
                .get_result::<i64>(conn)
        })
        .await;
    assert_eq!(count, 4);

    let removed = browser
        .post_form(&format!("/admin/feeds/{id}/delete"), &[])
        .await;
    assert_eq!(removed.status, 303);
    assert_eq!(
        removed.header("location").unwrap(),
        "/admin/feeds?done=removed"
    );
    let left = all_feeds(&app).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, good.id);
    assert_eq!(
        browser
            .post_form(&format!("/admin/feeds/{id}/delete"), &[])
            .await
            .status,
        404
    );
    assert_eq!(
        browser
            .post_form(&format!("/admin/feeds/{id}/poll"), &[])
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn every_feeds_form_refuses_a_missing_or_wrong_csrf_token() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let dead = dead_url();
    assert_eq!(
        browser
            .post_form(
                "/admin/feeds",
                &[("url", &dead), ("newsletter", "space-daily")]
            )
            .await
            .status,
        303
    );
    let before = all_feeds(&app).await;
    let id = before[0].id;
    let add = format!(
        "url={}&newsletter=space-daily",
        urlencode("https://example.com/other.xml")
    );
    for (path, fields) in [
        ("/admin/feeds".to_owned(), add),
        (format!("/admin/feeds/{id}/poll"), String::new()),
        (format!("/admin/feeds/{id}/delete"), String::new()),
    ] {
        for token in [None, Some("wrong-token")] {
            let body = match token {
                Some(t) => format!("csrf_token={t}&{fields}"),
                None => fields.clone(),
            };
            let answer = browser.post_raw(&path, &body).await;
            assert_eq!(answer.status, 403, "{path} with {token:?}: {}", answer.body);
        }
    }
    assert_eq!(
        all_feeds(&app).await,
        before,
        "nothing changed, nothing polled"
    );
}

#[tokio::test]
async fn the_feeds_page_needs_a_session() {
    let app = spawn_app().await;
    assert_sent_to_login(
        &Browser::new(&app).get("/admin/feeds").await,
        "/admin/feeds",
    );
}
