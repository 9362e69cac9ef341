//! The console's newsletters pages: create, list, edit.

use spacedigest::db::newsletters::{self, Newsletter};

use super::{Browser, assert_sent_to_login};
use crate::support::app::{TestApp, spawn_app};

async fn by_slug(app: &TestApp, slug: &'static str) -> Option<Newsletter> {
    app.db(move |conn| newsletters::by_slugs(conn, &[slug.to_owned()]))
        .await
        .pop()
}

async fn count(app: &TestApp) -> usize {
    app.db(newsletters::all).await.len()
}

fn mars_weekly<'a>() -> Vec<(&'a str, &'a str)> {
    vec![
        ("slug", "mars-weekly"),
        ("title", "Mars Weekly"),
        ("description", "Everything about the red planet."),
        ("send_at", "06:30"),
        ("timezone", "Europe/Berlin"),
    ]
}

#[tokio::test]
async fn a_newsletter_is_created_listed_and_edited() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let list = browser.get("/admin/newsletters").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("space-daily"));

    let form = browser.get("/admin/newsletters/new").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("<datalist id=\"timezones\">"));
    assert!(form.body.contains("value=\"America/New_York\""));
    for id in ["slug", "title", "description", "send_at", "timezone"] {
        assert!(
            form.body.contains(&format!("for=\"{id}\"")),
            "no label for {id}"
        );
    }

    let created = browser
        .post_form("/admin/newsletters", &mars_weekly())
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert_eq!(
        created.header("location").unwrap(),
        "/admin/newsletters?done=created"
    );
    let stored = by_slug(&app, "mars-weekly").await.expect("created");
    assert_eq!(stored.title, "Mars Weekly");
    assert_eq!(stored.description, "Everything about the red planet.");
    assert_eq!(stored.send_at, "06:30");
    assert_eq!(stored.timezone, "Europe/Berlin");
    let list = browser.get("/admin/newsletters?done=created").await;
    assert!(list.body.contains("Newsletter created."));
    assert!(list.body.contains("Mars Weekly"));
    assert!(list.body.contains("Europe/Berlin"));

    // A confirmed reader shows in the count.
    let email = crate::support::app::unique_email();
    app.sign_up(&email).await;
    let mail = app.emails(1).await.remove(0);
    app.confirm_via(&app.confirmation_link(&mail)).await;
    let list = browser.get("/admin/newsletters").await;
    assert!(
        list.body.contains("<td class=\"num\">1</td>"),
        "{}",
        list.body
    );

    let edit = browser
        .get(&format!("/admin/newsletters/{}/edit", stored.id))
        .await;
    assert_eq!(edit.status, 200);
    assert!(edit.body.contains("value=\"Mars Weekly\""));
    assert!(!edit.body.contains("id=\"slug\""), "the slug is fixed");

    let saved = browser
        .post_form(
            &format!("/admin/newsletters/{}", stored.id),
            &[
                ("slug", "renamed"),
                ("title", "Mars Weekly"),
                ("description", ""),
                ("send_at", "18:05"),
                ("timezone", "America/Denver"),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let edited = by_slug(&app, "mars-weekly")
        .await
        .expect("the slug did not change");
    assert_eq!(edited.send_at, "18:05");
    assert_eq!(edited.timezone, "America/Denver");
    assert_eq!(edited.description, "");
    assert!(by_slug(&app, "renamed").await.is_none());

    // A bad time zone on edit: 400, unchanged.
    let bad = browser
        .post_form(
            &format!("/admin/newsletters/{}", stored.id),
            &[
                ("title", "Mars Weekly"),
                ("send_at", "07:00"),
                ("timezone", "Mars/Olympus_Mons"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("Unknown time zone"), "{}", bad.body);
    assert!(bad.body.contains("value=\"Mars/Olympus_Mons\""));
    let unchanged = by_slug(&app, "mars-weekly").await.unwrap();
    assert_eq!(unchanged.send_at, "18:05");
    assert_eq!(unchanged.timezone, "America/Denver");

    assert_eq!(
        browser.get("/admin/newsletters/999999/edit").await.status,
        404
    );
    assert_eq!(browser.get("/admin/newsletters/x/edit").await.status, 404);
}

#[tokio::test]
async fn bad_or_duplicate_newsletters_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let before = count(&app).await;

    let duplicate = browser
        .post_form(
            "/admin/newsletters",
            &[
                ("slug", "space-daily"),
                ("title", "Another Space Daily"),
                ("send_at", "07:00"),
                ("timezone", "UTC"),
            ],
        )
        .await;
    assert_eq!(duplicate.status, 400, "{}", duplicate.body);
    assert!(
        duplicate.body.contains("exists already"),
        "{}",
        duplicate.body
    );
    assert!(duplicate.body.contains("value=\"Another Space Daily\""));

    let long = "x".repeat(301);
    for (field, value, reason) in [
        ("slug", "Mars Weekly", "lower-case letters"),
        ("slug", "", "lower-case letters"),
        ("title", "", "Give the newsletter a title"),
        ("send_at", "25:00", "HH:MM"),
        ("send_at", "7pm", "HH:MM"),
        ("timezone", "Mars/Olympus_Mons", "Unknown time zone"),
        ("timezone", "", "Unknown time zone"),
        ("description", long.as_str(), "at most 300 characters"),
        ("description", "two\nlines", "on one line"),
    ] {
        let mut fields = mars_weekly();
        fields.retain(|(name, _)| *name != field);
        fields.push((field, value));
        let answer = browser.post_form("/admin/newsletters", &fields).await;
        assert_eq!(answer.status, 400, "{field}={value:?}: {}", answer.body);
        assert!(
            answer.body.contains(reason),
            "{field}={value:?}: {}",
            answer.body
        );
        assert!(answer.body.contains("Nothing was saved"));
    }
    assert_eq!(count(&app).await, before, "nothing stored");
}

#[tokio::test]
async fn every_newsletters_form_refuses_a_missing_or_wrong_csrf_token() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let default = by_slug(&app, "space-daily").await.unwrap();
    let create = "slug=forged&title=Forged&send_at=07%3A00&timezone=UTC";
    let edit = "title=Forged&send_at=09%3A00&timezone=Asia%2FTokyo";
    for (path, fields) in [
        ("/admin/newsletters".to_owned(), create),
        (format!("/admin/newsletters/{}", default.id), edit),
    ] {
        for token in [None, Some("wrong-token")] {
            let body = match token {
                Some(t) => format!("csrf_token={t}&{fields}"),
                None => fields.to_owned(),
            };
            let answer = browser.post_raw(&path, &body).await;
            assert_eq!(answer.status, 403, "{path} with {token:?}: {}", answer.body);
        }
    }
    assert!(by_slug(&app, "forged").await.is_none());
    let after = by_slug(&app, "space-daily").await.unwrap();
    assert_eq!(
        (after.title, after.send_at, after.timezone),
        (default.title, default.send_at, default.timezone)
    );
}

#[tokio::test]
async fn the_newsletters_pages_need_a_session() {
    let app = spawn_app().await;
    let browser = Browser::new(&app);
    for path in [
        "/admin/newsletters",
        "/admin/newsletters/new",
        "/admin/newsletters/1/edit",
    ] {
        assert_sent_to_login(&browser.get(path).await, path);
    }
}
