//! The console's stories pages: a day's list, adding, editing, deleting, importing.

use std::path::PathBuf;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use spacedigest::db::newsletters::{self, NewNewsletter};
use spacedigest::db::schema::stories as stories_table;
use spacedigest::db::stories::{self, Story};
use spacedigest::db::{self};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Browser, assert_sent_to_login};
use crate::support::app::{Answer, TestApp, spawn_app};
use crate::support::smtp_server::free_port;

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/feeds")
            .join(name),
    )
    .unwrap()
}

fn utc(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

/// A tiny HTTP server on 127.0.0.1 that answers every request with one fixture file.
pub struct FixtureServer {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl FixtureServer {
    pub async fn serving(file: &str) -> Self {
        let body = fixture(file);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/feed.xml", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self { url, task }
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A URL on 127.0.0.1 where nothing listens.
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}/feed.xml", free_port())
}

async fn all_stories(app: &TestApp) -> Vec<Story> {
    app.db(|conn| {
        stories_table::table
            .order(stories_table::id.asc())
            .select(Story::as_select())
            .load(conn)
    })
    .await
}

async fn newsletter_id(app: &TestApp, slug: &'static str) -> i64 {
    app.db(move |conn| newsletters::by_slugs(conn, &[slug.to_owned()]))
        .await
        .remove(0)
        .id
}

async fn add_tokyo_newsletter(app: &TestApp) {
    app.db(|conn| {
        newsletters::create(
            conn,
            &NewNewsletter {
                slug: "tokyo-orbit",
                title: "Tokyo Orbit",
                description: "",
                send_at: "07:00",
                timezone: "Asia/Tokyo",
                created_at: db::now(),
            },
        )
        .map(|_| ())
    })
    .await;
}

async fn add_story(browser: &Browser<'_>, title: &str, url: &str, published_at: &str) -> Answer {
    browser
        .post_form(
            "/admin/stories",
            &[
                ("newsletter", "space-daily"),
                ("title", title),
                ("url", url),
                ("summary", "A summary."),
                ("published_at", published_at),
            ],
        )
        .await
}

/// Posts a multipart upload with the given CSRF field (or none).
async fn post_upload(browser: &Browser<'_>, token: Option<&str>, file: &str) -> Answer {
    let mut form = reqwest::multipart::Form::new();
    if let Some(token) = token {
        form = form.text("csrf_token", token.to_owned());
    }
    form = form.text("newsletter", "space-daily").part(
        "file",
        reqwest::multipart::Part::bytes(fixture(file)).file_name(file.to_owned()),
    );
    Answer::from(
        browser
            .client
            .post(format!(
                "{}/admin/stories/import/upload",
                browser.app.address
            ))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_story_added_through_the_form_is_listed_on_its_day() {
    let app = spawn_app().await;
    add_tokyo_newsletter(&app).await;
    let browser = Browser::logged_in(&app).await;

    let form = browser.get("/admin/stories/new").await;
    assert_eq!(form.status, 200, "{}", form.body);
    for id in ["title", "url", "summary", "published_at", "newsletter"] {
        assert!(form.body.contains(&format!("id=\"{id}\"")), "no #{id}");
        assert!(
            form.body.contains(&format!("for=\"{id}\"")),
            "no label for #{id}"
        );
    }
    assert!(form.body.contains(">Add story</button>"));
    assert!(form.body.contains("value=\"tokyo-orbit\""));

    let added = browser
        .post_form(
            "/admin/stories",
            &[
                ("newsletter", "tokyo-orbit"),
                ("title", "  Hayabusa <b>returns</b> "),
                ("url", "https://www.example.com/hayabusa"),
                (
                    "summary",
                    "<p>Samples <script>alert(1)</script>from <a href=\"/ryugu\" onclick=\"x()\">Ryugu</a>.</p>",
                ),
                // 00:30 in Tokyo is 15:30 the day before in UTC.
                ("published_at", "2026-11-20T00:30"),
            ],
        )
        .await;
    assert_eq!(added.status, 303, "{}", added.body);
    let location = added.header("location").unwrap();
    assert_eq!(
        location,
        "/admin/stories?newsletter=tokyo-orbit&date=2026-11-20&done=added"
    );

    let day = browser.get(&location).await;
    assert_eq!(day.status, 200);
    assert!(day.body.contains("Story added."), "{}", day.body);
    assert!(day.body.contains("Hayabusa returns"), "{}", day.body);
    assert!(day.body.contains("00:30"), "{}", day.body);
    assert!(day.body.contains("https://www.example.com/hayabusa"));
    assert!(day.body.contains("example.com"), "the source");
    assert!(!day.body.contains("<script>alert"), "{}", day.body);

    let id = newsletter_id(&app, "tokyo-orbit").await;
    let listed = app
        .db(move |conn| {
            stories::list(
                conn,
                id,
                Some((utc("2026-11-19 15:00"), utc("2026-11-20 15:00"))),
            )
        })
        .await;
    assert_eq!(listed.len(), 1);
    let story = &listed[0];
    assert_eq!(story.title, "Hayabusa returns");
    assert_eq!(story.url, "https://www.example.com/hayabusa");
    assert_eq!(
        story.guid, story.url,
        "a hand-added story is known by its link"
    );
    assert_eq!(story.source, "example.com");
    assert_eq!(story.published_at, utc("2026-11-19 15:30"));
    assert!(
        !story.summary_html.contains("script"),
        "{}",
        story.summary_html
    );
    assert!(
        !story.summary_html.contains("onclick"),
        "{}",
        story.summary_html
    );
    assert!(
        story.summary_html.contains("https://www.example.com/ryugu"),
        "relative links resolve against the story: {}",
        story.summary_html
    );

    // Not on the neighbouring days; the pager links to them.
    assert!(day.body.contains("date=2026-11-19"));
    assert!(day.body.contains("date=2026-11-21"));
    let before = browser
        .get("/admin/stories?newsletter=tokyo-orbit&date=2026-11-19")
        .await;
    assert_eq!(before.status, 200);
    assert!(!before.body.contains("Hayabusa returns"));
    assert!(before.body.contains("No stories on this day"));

    // Adding the same link again updates the story instead of doubling it.
    let again = browser
        .post_form(
            "/admin/stories",
            &[
                ("newsletter", "tokyo-orbit"),
                ("title", "Hayabusa is back"),
                ("url", "https://www.example.com/hayabusa"),
                ("published_at", "2026-11-20T00:30"),
            ],
        )
        .await;
    assert_eq!(again.status, 303);
    assert!(again.header("location").unwrap().ends_with("done=existing"));
    let stored = all_stories(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].title, "Hayabusa is back");
}

#[tokio::test]
async fn the_list_defaults_to_today_and_refuses_a_bad_date_or_newsletter() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M").to_string();
    assert_eq!(
        add_story(&browser, "Launch today", "https://example.com/t", &now)
            .await
            .status,
        303
    );
    let page = browser.get("/admin/stories").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Launch today"), "{}", page.body);
    assert!(page.body.contains("today"));

    let bad = browser.get("/admin/stories?date=2026-13-40").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("YYYY-MM-DD"), "{}", bad.body);
    let unknown = browser.get("/admin/stories?newsletter=nope").await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.contains("nope"));
}

#[tokio::test]
async fn bad_story_input_is_refused_with_reasons_and_nothing_is_stored() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;

    let refused = browser
        .post_form(
            "/admin/stories",
            &[
                ("newsletter", "space-daily"),
                ("title", "   <b></b> "),
                ("url", "javascript:alert(1)"),
                ("summary", "Kept <em>as typed</em>"),
                ("published_at", "yesterday-ish"),
            ],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("Nothing was saved"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("id=\"title-error\""));
    assert!(refused.body.contains("id=\"url-error\""));
    assert!(refused.body.contains("absolute http or https"));
    assert!(refused.body.contains("id=\"published_at-error\""));
    assert!(refused.body.contains("yesterday-ish"), "the value is kept");
    assert!(refused.body.contains("as typed"), "the summary is kept");
    assert!(!refused.body.contains("<em>as typed"), "and escaped");
    assert!(refused.body.contains(">Add story</button>"));

    // One bad field at a time: each alone is enough to refuse.
    for (field, value, reason) in [
        ("title", "", "Give the story a title"),
        ("url", "not a url", "absolute http or https"),
        ("url", "ftp://example.com/x", "absolute http or https"),
        ("published_at", "2026-02-30T10:00", "is not a date and time"),
        ("published_at", "", "Give the publication date"),
        ("newsletter", "no-such-thing", "There is no newsletter"),
    ] {
        let mut fields = vec![
            ("newsletter", "space-daily"),
            ("title", "Fine title"),
            ("url", "https://example.com/fine"),
            ("published_at", "2026-11-20T10:00"),
        ];
        fields.retain(|(name, _)| *name != field);
        fields.push((field, value));
        let answer = browser.post_form("/admin/stories", &fields).await;
        assert_eq!(answer.status, 400, "{field}={value}: {}", answer.body);
        assert!(
            answer.body.contains(reason),
            "{field}={value}: {}",
            answer.body
        );
    }

    // A local time that the clocks skip (Berlin, spring forward) is refused too.
    app.db(|conn| {
        newsletters::create(
            conn,
            &NewNewsletter {
                slug: "berlin-brief",
                title: "Berlin Brief",
                description: "",
                send_at: "07:00",
                timezone: "Europe/Berlin",
                created_at: db::now(),
            },
        )
        .map(|_| ())
    })
    .await;
    let skipped = browser
        .post_form(
            "/admin/stories",
            &[
                ("newsletter", "berlin-brief"),
                ("title", "In the gap"),
                ("url", "https://example.com/gap"),
                ("published_at", "2026-03-29T02:30"),
            ],
        )
        .await;
    assert_eq!(skipped.status, 400);
    assert!(
        skipped.body.contains("does not exist in Europe/Berlin"),
        "{}",
        skipped.body
    );

    assert!(all_stories(&app).await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn a_story_can_be_edited_and_deleted() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    assert_eq!(
        add_story(
            &browser,
            "Artemis update",
            "https://example.com/artemis",
            "2026-11-20T08:00"
        )
        .await
        .status,
        303
    );
    let story = all_stories(&app).await.remove(0);

    let edit = browser
        .get(&format!("/admin/stories/{}/edit", story.id))
        .await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    assert!(edit.body.contains("value=\"Artemis update\""));
    assert!(edit.body.contains("value=\"2026-11-20T08:00\""));
    assert!(
        edit.body.contains("does not change a sent issue"),
        "{}",
        edit.body
    );

    // A bad edit changes nothing.
    let bad = browser
        .post_form(
            &format!("/admin/stories/{}", story.id),
            &[
                ("title", "Artemis II slips"),
                ("url", "javascript:void(0)"),
                ("summary", ""),
                ("published_at", "2026-11-21T09:45"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("value=\"Artemis II slips\""),
        "the value is kept"
    );
    assert_eq!(all_stories(&app).await[0], story);

    let saved = browser
        .post_form(
            &format!("/admin/stories/{}", story.id),
            &[
                ("title", "Artemis II slips"),
                ("url", "https://news.example.org/artemis-2"),
                ("summary", "New <strong>date</strong>."),
                ("published_at", "2026-11-21T09:45"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    assert_eq!(
        saved.header("location").unwrap(),
        "/admin/stories?newsletter=space-daily&date=2026-11-21&done=updated"
    );
    let edited = all_stories(&app).await.remove(0);
    assert_eq!(edited.id, story.id);
    assert_eq!(edited.title, "Artemis II slips");
    assert_eq!(edited.url, "https://news.example.org/artemis-2");
    assert_eq!(
        edited.source, "news.example.org",
        "a host-named source follows the link"
    );
    assert_eq!(edited.summary_html, "New <strong>date</strong>.");
    assert_eq!(edited.published_at, utc("2026-11-21 09:45"));
    assert_eq!(edited.guid, story.guid, "the identity stays");
    let listed = browser
        .get("/admin/stories?newsletter=space-daily&date=2026-11-21&done=updated")
        .await;
    assert!(listed.body.contains("Story saved."));
    assert!(listed.body.contains("Artemis II slips"));

    let confirm = browser
        .get(&format!("/admin/stories/{}/delete", story.id))
        .await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Delete this story?"));
    assert!(confirm.body.contains("Artemis II slips"));
    assert_eq!(
        all_stories(&app).await.len(),
        1,
        "the confirm page deletes nothing"
    );
    let deleted = browser
        .post_form(&format!("/admin/stories/{}/delete", story.id), &[])
        .await;
    assert_eq!(deleted.status, 303);
    assert_eq!(
        deleted.header("location").unwrap(),
        "/admin/stories?newsletter=space-daily&date=2026-11-21&done=deleted"
    );
    assert!(all_stories(&app).await.is_empty());

    for path in [
        format!("/admin/stories/{}/edit", story.id),
        format!("/admin/stories/{}/delete", story.id),
        "/admin/stories/abc/edit".to_owned(),
    ] {
        assert_eq!(browser.get(&path).await.status, 404, "{path}");
    }
    let gone = browser
        .post_form(&format!("/admin/stories/{}/delete", story.id), &[])
        .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn a_feed_is_imported_by_url_and_importing_again_adds_nothing() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let page = browser.get("/admin/stories/import").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("enctype=\"multipart/form-data\""));

    let server = FixtureServer::serving("rss2.xml").await;
    let first = browser
        .post_form(
            "/admin/stories/import",
            &[("url", server.url.as_str()), ("newsletter", "space-daily")],
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first
            .body
            .contains("Imported 4 stories from Spaceflight Now: 4 new, 0 updated, 0 unchanged"),
        "{}",
        first.body
    );
    assert!(
        first.body.contains("<dt>Added</dt><dd>4</dd>"),
        "{}",
        first.body
    );
    assert!(
        first.body.contains("See the stories of 2026-11-"),
        "a link to the newest day imported: {}",
        first.body
    );
    assert_eq!(all_stories(&app).await.len(), 4);

    let second = browser
        .post_form(
            "/admin/stories/import",
            &[("url", server.url.as_str()), ("newsletter", "space-daily")],
        )
        .await;
    assert_eq!(second.status, 200);
    assert!(
        second.body.contains("0 new, 0 updated, 4 unchanged"),
        "{}",
        second.body
    );
    assert!(second.body.contains("<dt>Added</dt><dd>0</dd>"));
    assert!(second.body.contains("See today"), "nothing written: today");
    assert_eq!(all_stories(&app).await.len(), 4);

    // Failures say why, keep the URL typed, and store nothing.
    let dead = dead_url();
    for (url, reason) in [
        ("ftp://example.com/feed.xml", "is not an http or https URL"),
        ("feeds.example.com/rss", "is not an http or https URL"),
        (dead.as_str(), "onnect"),
    ] {
        let answer = browser
            .post_form(
                "/admin/stories/import",
                &[("url", url), ("newsletter", "space-daily")],
            )
            .await;
        assert_eq!(answer.status, 400, "{url}: {}", answer.body);
        assert!(answer.body.contains(reason), "{url}: {}", answer.body);
        assert!(answer.body.contains(&format!("value=\"{url}\"")), "{url}");
    }
    let unknown = browser
        .post_form(
            "/admin/stories/import",
            &[("url", server.url.as_str()), ("newsletter", "nope")],
        )
        .await;
    assert_eq!(unknown.status, 400);
    assert_eq!(all_stories(&app).await.len(), 4);
}

#[tokio::test]
async fn a_feed_file_is_imported_by_upload_and_a_page_that_is_not_a_feed_is_refused() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;

    let imported = browser
        .post_multipart(
            "/admin/stories/import/upload",
            &[("newsletter", "space-daily")],
            Some(("file", "atom.xml", fixture("atom.xml"))),
        )
        .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert!(
        imported
            .body
            .contains("Imported 3 stories from Orbital Index: 3 new, 0 updated, 0 unchanged"),
        "{}",
        imported.body
    );
    assert_eq!(all_stories(&app).await.len(), 3);

    let html = browser
        .post_multipart(
            "/admin/stories/import/upload",
            &[("newsletter", "space-daily")],
            Some(("file", "not-a-feed.html", fixture("not-a-feed.html"))),
        )
        .await;
    assert_eq!(html.status, 400, "{}", html.body);
    assert!(html.body.contains("not a feed"), "{}", html.body);
    assert!(html.body.contains("not-a-feed.html"), "names the file");

    let none = browser
        .post_multipart(
            "/admin/stories/import/upload",
            &[("newsletter", "space-daily")],
            None,
        )
        .await;
    assert_eq!(none.status, 400);
    assert!(none.body.contains("Choose a feed file"));

    let mut huge = b"<rss version=\"2.0\"><channel><title>Huge</title>".to_vec();
    huge.resize(6 * 1024 * 1024, b' ');
    let too_large = browser
        .post_multipart(
            "/admin/stories/import/upload",
            &[("newsletter", "space-daily")],
            Some(("file", "huge.xml", huge)),
        )
        .await;
    assert_eq!(too_large.status, 400);
    assert!(
        too_large.body.contains("larger than 5 MiB"),
        "{}",
        too_large.body
    );
    assert_eq!(all_stories(&app).await.len(), 3);
}

#[tokio::test]
async fn every_stories_form_refuses_a_missing_or_wrong_csrf_token() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    assert_eq!(
        add_story(
            &browser,
            "Keep me",
            "https://example.com/keep",
            "2026-11-20T08:00"
        )
        .await
        .status,
        303
    );
    let before = all_stories(&app).await;
    let id = before[0].id;
    let server = FixtureServer::serving("rss2.xml").await;
    let import = format!(
        "url={}&newsletter=space-daily",
        crate::support::app::urlencode(&server.url)
    );
    let story = "newsletter=space-daily&title=Forged&url=https%3A%2F%2Fexample.com%2Fforged&published_at=2026-11-20T09%3A00";

    for (path, fields) in [
        ("/admin/stories".to_owned(), story.to_owned()),
        (format!("/admin/stories/{id}"), story.to_owned()),
        (format!("/admin/stories/{id}/delete"), String::new()),
        ("/admin/stories/import".to_owned(), import.clone()),
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
    for token in [None, Some("wrong-token")] {
        let answer = post_upload(&browser, token, "atom.xml").await;
        assert_eq!(answer.status, 403, "upload with {token:?}: {}", answer.body);
    }
    assert_eq!(all_stories(&app).await, before, "nothing changed");
}

#[tokio::test]
async fn the_stories_pages_need_a_session() {
    let app = spawn_app().await;
    let browser = Browser::new(&app);
    for path in [
        "/admin/stories",
        "/admin/stories?newsletter=space-daily&date=2026-11-20",
        "/admin/stories/new",
        "/admin/stories/import",
        "/admin/stories/1/edit",
        "/admin/stories/1/delete",
    ] {
        assert_sent_to_login(&browser.get(path).await, path);
    }
}

#[tokio::test]
async fn a_story_of_a_day_already_sent_says_the_sent_issue_keeps_its_copy() {
    use spacedigest::db::digests::{self, NewIssue};
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    assert_eq!(
        add_story(
            &browser,
            "Sent already",
            "https://example.com/sent",
            "2026-11-20T08:00"
        )
        .await
        .status,
        303
    );
    let story = all_stories(&app).await.remove(0);
    let newsletter = story.newsletter_id;
    app.db(move |conn| {
        let issue = digests::create_if_absent(
            conn,
            &NewIssue {
                newsletter_id: newsletter,
                issue_date: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
                subject: "Space Daily, 20 November",
                body_text: "",
                body_html: "",
                story_count: 1,
                stories_json: "[]",
                created_at: db::now(),
            },
        )?;
        digests::fan_out(conn, issue.id, db::now()).map(|_| ())
    })
    .await;

    let edit = browser
        .get(&format!("/admin/stories/{}/edit", story.id))
        .await;
    assert!(
        edit.body
            .contains("The digest of 2026-11-20 was already sent with this story"),
        "{}",
        edit.body
    );
    let day = browser
        .get("/admin/stories?newsletter=space-daily&date=2026-11-20")
        .await;
    assert!(day.body.contains("digest was sent at"), "{}", day.body);
    let other_day = browser
        .get("/admin/stories?newsletter=space-daily&date=2026-11-21")
        .await;
    assert!(!other_day.body.contains("digest was sent at"));
}
