//! The subscribers pages: search, history, unsubscribe, erase, CSV export and import, and
//! the same export and import from the command line.

use std::collections::BTreeSet;
use std::time::Duration;

use diesel::prelude::*;
use spacedigest::db::outbound::{self, NewOutboundEmail};
use spacedigest::db::schema::{confirmation_tokens, outbound_emails, subscribers, subscriptions};
use spacedigest::db::states::{EmailKind, EmailStatus};
use spacedigest::db::{self, subscribers as stored, subscriptions as stored_subscriptions};

use super::{Browser, assert_sent_to_login};
use crate::support::app::{Answer, TestApp, spawn_app, unique_email};
use crate::support::{add_confirmed_readers, cli};

/// A reader who signed up through the form and confirmed; returns their id.
async fn confirmed_reader(app: &TestApp, email: &str, mails_so_far: usize) -> i64 {
    app.sign_up(email).await;
    let mails = app.emails(mails_so_far + 1).await;
    let mail = mails
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(email)))
        .expect("a confirmation email");
    let answer = app.confirm_via(&app.confirmation_link(mail)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    subscriber_id(app, email)
        .await
        .expect("the reader is stored")
}

async fn subscriber_id(app: &TestApp, email: &str) -> Option<i64> {
    let key = email.to_lowercase();
    app.db(move |conn| stored::find_by_key(conn, &key))
        .await
        .map(|s| s.id)
}

/// The CSV rows as (email, name, newsletter, status), header checked.
fn csv_rows(body: &str) -> BTreeSet<(String, String, String, String)> {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "email",
            "name",
            "newsletter",
            "status",
            "subscribed_at",
            "confirmed_at",
            "unsubscribed_at",
            "signup_ip",
            "consent_note"
        ]
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (
                r[0].to_owned(),
                r[1].to_owned(),
                r[2].to_owned(),
                r[3].to_owned(),
            )
        })
        .collect()
}

async fn post_multipart_with_token(browser: &Browser<'_>, token: Option<&str>) -> Answer {
    let mut form = reqwest::multipart::Form::new();
    if let Some(token) = token {
        form = form.text("csrf_token", token.to_owned());
    }
    let form = form
        .text("newsletter", "space-daily")
        .text("mode", "confirm")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"email\nforged@example.com\n".to_vec())
                .file_name("list.csv"),
        );
    Answer::from(
        browser
            .client
            .post(format!("{}/admin/subscribers/import", browser.app.address))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn every_subscribers_page_requires_a_login() {
    let app = spawn_app().await;
    let browser = Browser::new(&app);
    for path in [
        "/admin/subscribers",
        "/admin/subscribers?q=a",
        "/admin/subscribers/1",
        "/admin/subscribers/1/erase",
        "/admin/subscribers/import",
        "/admin/subscribers/export.csv",
    ] {
        assert_sent_to_login(&browser.get(path).await, path);
    }
}

#[tokio::test]
async fn search_finds_any_part_of_the_address_in_any_case_and_pages_by_fifty() {
    let app = spawn_app().await;
    add_confirmed_readers(&app, "findme", 60).await;
    add_confirmed_readers(&app, "other_one", 2).await;
    let browser = Browser::logged_in(&app).await;

    let page = browser.get("/admin/subscribers?q=FINDME-1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    // findme-1 and findme-10 … findme-19.
    assert!(
        page.body.contains("11 subscribers whose address contains"),
        "{}",
        page.body
    );
    assert_eq!(
        page.body
            .matches("<th scope=\"row\"><a href=\"/admin/subscribers/")
            .count(),
        11
    );
    assert!(page.body.contains("findme-13@example.com"));
    assert!(page.body.contains("Space Daily: confirmed"));

    // LIKE's wildcards are searched for as themselves.
    let page = browser.get("/admin/subscribers?q=%25").await;
    assert!(page.body.contains("0 subscribers whose"), "{}", page.body);
    let page = browser.get("/admin/subscribers?q=r_o").await;
    assert!(page.body.contains("2 subscribers whose"), "{}", page.body);

    let first = browser.get("/admin/subscribers").await;
    assert!(first.body.contains("62 subscribers, newest first"));
    assert_eq!(first.body.matches("<th scope=\"row\"><a href=").count(), 50);
    assert!(first.body.contains("href=\"/admin/subscribers?page=2\""));
    let second = browser.get("/admin/subscribers?page=2").await;
    assert_eq!(
        second.body.matches("<th scope=\"row\"><a href=").count(),
        12
    );

    let bad = browser.get("/admin/subscribers?page=abc").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("not a page number"));
    assert_eq!(browser.get("/admin/subscribers/999999").await.status, 404);
    assert_eq!(browser.get("/admin/subscribers/nope").await.status, 404);
}

#[tokio::test]
async fn a_subscribers_page_shows_their_history_and_the_operator_can_unsubscribe_them() {
    let app = spawn_app().await;
    let email = unique_email();
    let id = confirmed_reader(&app, &email, 0).await;
    app.wait_until_queue_settles().await;
    let browser = Browser::logged_in(&app).await;

    let page = browser.get(&format!("/admin/subscribers/{id}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&email));
    assert!(page.body.contains("Ada"));
    assert!(page.body.contains("127.0.0.1"), "the signup IP");
    assert!(
        page.body
            .contains("<span class=\"badge badge--ok\">confirmed</span>")
    );
    let deliveries = &page.body[page.body.find("id=\"deliveries\"").unwrap()..];
    assert!(deliveries.contains("confirmation"));
    assert!(deliveries.contains("welcome"));
    assert!(deliveries.contains("sent"));

    // Forged or stale forms change nothing.
    let path = format!("/admin/subscribers/{id}/unsubscribe");
    for body in [
        "newsletter=space-daily",
        "csrf_token=wrong&newsletter=space-daily",
    ] {
        let answer = browser.post_raw(&path, body).await;
        assert_eq!(answer.status, 403, "{body}");
    }
    assert_eq!(
        app.subscription_statuses(&email).await,
        [("space-daily".to_owned(), "confirmed".to_owned())]
    );

    let answer = browser
        .post_form(&path, &[("newsletter", "space-daily")])
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let back = answer.header("location").unwrap();
    assert_eq!(back, format!("/admin/subscribers/{id}?done=unsubscribed"));
    assert_eq!(
        app.subscription_statuses(&email).await,
        [("space-daily".to_owned(), "unsubscribed".to_owned())]
    );
    let page = browser.get(&back).await;
    assert!(page.body.contains("Unsubscribed."));
    assert!(page.body.contains("badge--muted\">unsubscribed"));

    let again = browser.post_form(&path, &[("newsletter", "all")]).await;
    assert_eq!(
        again.header("location").unwrap(),
        format!("/admin/subscribers/{id}?done=already-unsubscribed")
    );
    let unknown = browser
        .post_form(&path, &[("newsletter", "no-such-list")])
        .await;
    assert_eq!(unknown.status, 400);
}

#[tokio::test]
async fn erasing_a_subscriber_removes_every_trace_including_queued_email() {
    let app = spawn_app().await;
    let email = unique_email();
    let id = confirmed_reader(&app, &email, 0).await;
    app.wait_until_queue_settles().await;
    // Email still queued for them: one linked to them, one only by (differently cased) address.
    let (linked, by_address) = (email.clone(), email.to_uppercase());
    app.db(move |conn| {
        let now = db::now();
        for (subscriber_id, address) in [(Some(id), linked), (None, by_address)] {
            outbound::enqueue(
                conn,
                &NewOutboundEmail {
                    kind: EmailKind::Confirmation,
                    subscriber_id,
                    recipient_email: &address,
                    recipient_name: Some("Ada"),
                    subject: "Queued for later",
                    body_text: "text",
                    body_html: "<p>html</p>",
                    list_unsubscribe: None,
                    message_id: &format!(
                        "{}@spacedigest.test",
                        spacedigest::tokens::new_confirmation_token().1
                    ),
                    status: EmailStatus::Pending,
                    next_attempt_at: now + chrono::Duration::days(1),
                    created_at: now,
                },
            )?;
        }
        Ok(())
    })
    .await;
    let other = unique_email();
    confirmed_reader(&app, &other, 2).await;

    let browser = Browser::logged_in(&app).await;
    let confirm = browser.get(&format!("/admin/subscribers/{id}/erase")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("cannot be undone"));

    let path = format!("/admin/subscribers/{id}/erase");
    for body in ["", "csrf_token=wrong"] {
        assert_eq!(browser.post_raw(&path, body).await.status, 403, "{body:?}");
    }
    assert_eq!(
        subscriber_id(&app, &email).await,
        Some(id),
        "a forged erase changed something"
    );

    let answer = browser.post_form(&path, &[]).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(
        answer.header("location").as_deref(),
        Some("/admin/subscribers?done=erased")
    );
    assert!(
        browser
            .get("/admin/subscribers?done=erased")
            .await
            .body
            .contains("Erased.")
    );
    assert_eq!(
        browser
            .get(&format!("/admin/subscribers/{id}"))
            .await
            .status,
        404
    );

    let pattern = format!("%{}%", email.to_lowercase());
    let traces = app
        .db(move |conn| {
            let subscribers: i64 = subscribers::table
                .filter(
                    subscribers::id
                        .eq(id)
                        .or(subscribers::email_key.like(&pattern)),
                )
                .count()
                .get_result(conn)?;
            let subscriptions: i64 = subscriptions::table
                .filter(subscriptions::subscriber_id.eq(id))
                .count()
                .get_result(conn)?;
            let tokens: i64 = confirmation_tokens::table
                .filter(confirmation_tokens::subscriber_id.eq(id))
                .count()
                .get_result(conn)?;
            let emails: i64 = outbound_emails::table
                .filter(
                    outbound_emails::subscriber_id.eq(id).or(diesel::dsl::sql::<
                        diesel::sql_types::Bool,
                    >(
                        "LOWER(recipient_email || subject || body_text || body_html) LIKE ",
                    )
                    .bind::<diesel::sql_types::Text, _>(&pattern)),
                )
                .count()
                .get_result(conn)?;
            Ok((subscribers, subscriptions, tokens, emails))
        })
        .await;
    assert_eq!(traces, (0, 0, 0, 0));
    // The other reader is untouched.
    assert!(subscriber_id(&app, &other).await.is_some());
    assert_eq!(app.smtp().messages_to(&other).len(), 2);

    // Nothing queued for the erased reader goes out later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.smtp().messages_to(&email).len() <= 2);
    assert_eq!(browser.post_form(&path, &[]).await.status, 404);
}

const FILE_WITH_BAD_ROWS: &str = "email,name\n\
good-one@example.com,Good One\n\
not-an-address,Bad\n\
good-two@example.com,\n\
good-three@example.com,NAME_TOO_LONG\n\
good-four@example.com,Four\n";

fn file_with_bad_rows() -> Vec<u8> {
    FILE_WITH_BAD_ROWS
        .replace("NAME_TOO_LONG", &"x".repeat(101))
        .into_bytes()
}

fn assert_bad_rows_reported(body: &str) {
    assert!(body.contains(r#"id="imported">3<"#), "{body}");
    assert!(body.contains(r#"id="bad-rows">2<"#), "{body}");
    let table = &body[body.find("id=\"bad-rows-table\"").unwrap()..];
    assert!(table.contains(
        r#"<th scope="row" class="num">3</th><td><code>not-an-address</code></td><td>not an email address</td>"#
    ), "{table}");
    assert!(table.contains(
        r#"<th scope="row" class="num">5</th><td><code>good-three@example.com</code></td><td>the name is longer than 100 characters</td>"#
    ), "{table}");
}

#[tokio::test]
async fn an_import_in_confirm_mode_mails_the_good_rows_and_reports_the_bad_ones_by_line() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let form = browser.get("/admin/subscribers/import").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("100000 rows"));
    assert!(form.body.contains(r#"<label for="file">"#));

    let answer = browser
        .post_multipart(
            "/admin/subscribers/import",
            &[("newsletter", "space-daily"), ("mode", "confirm")],
            Some(("file", "list.csv", file_with_bad_rows())),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_bad_rows_reported(&answer.body);

    let mails = app.emails(3).await;
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "good-four@example.com",
            "good-one@example.com",
            "good-two@example.com"
        ]
    );
    for mail in &mails {
        app.confirmation_link(mail);
    }
    assert_eq!(
        app.subscription_statuses("good-one@example.com").await,
        [("space-daily".to_owned(), "pending".to_owned())]
    );
    assert_eq!(app.count_subscribers().await, 3);

    // Importing the same file again adds no one and mails no one.
    let again = browser
        .post_multipart(
            "/admin/subscribers/import",
            &[("newsletter", "space-daily"), ("mode", "confirm")],
            Some(("file", "list.csv", file_with_bad_rows())),
        )
        .await;
    assert!(again.body.contains(r#"id="imported">0<"#), "{}", again.body);
    assert!(again.body.contains(r#"id="already-subscribed">3<"#));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.smtp().message_count(), 3);
}

#[tokio::test]
async fn an_import_as_confirmed_needs_a_consent_note_and_sends_nothing() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let refused = browser
        .post_multipart(
            "/admin/subscribers/import",
            &[
                ("newsletter", "space-daily"),
                ("mode", "confirmed"),
                ("consent_note", "  "),
            ],
            Some(("file", "list.csv", file_with_bad_rows())),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused
            .body
            .contains("explain how these readers gave their consent")
    );
    assert_eq!(app.count_subscribers().await, 0);

    for (fields, why) in [
        (
            vec![("newsletter", "no-such-list"), ("mode", "confirm")],
            "Choose the newsletter",
        ),
        (
            vec![("newsletter", "space-daily"), ("mode", "sideways")],
            "Choose how",
        ),
    ] {
        let answer = browser
            .post_multipart(
                "/admin/subscribers/import",
                &fields,
                Some(("file", "list.csv", file_with_bad_rows())),
            )
            .await;
        assert_eq!(answer.status, 400, "{fields:?}");
        assert!(answer.body.contains(why), "{}", answer.body);
    }
    let no_file = browser
        .post_multipart(
            "/admin/subscribers/import",
            &[("mode", "confirm"), ("newsletter", "space-daily")],
            None,
        )
        .await;
    assert_eq!(no_file.status, 400);
    let not_csv = browser
        .post_multipart(
            "/admin/subscribers/import",
            &[("newsletter", "space-daily"), ("mode", "confirm")],
            Some((
                "file",
                "list.csv",
                b"address,who\nx@example.com,X\n".to_vec(),
            )),
        )
        .await;
    assert_eq!(not_csv.status, 400);
    assert!(
        not_csv.body.contains("no &#34;email&#34; column")
            || not_csv.body.contains("no \"email\" column")
            || not_csv.body.contains("no &quot;email&quot; column"),
        "{}",
        not_csv.body
    );
    assert_eq!(app.count_subscribers().await, 0);

    let note = "Signed up on the paper form at the launch party";
    let answer = browser
        .post_multipart(
            "/admin/subscribers/import",
            &[
                ("newsletter", "space-daily"),
                ("mode", "confirmed"),
                ("consent_note", note),
            ],
            Some(("file", "list.csv", file_with_bad_rows())),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_bad_rows_reported(&answer.body);
    for email in [
        "good-one@example.com",
        "good-two@example.com",
        "good-four@example.com",
    ] {
        assert_eq!(
            app.subscription_statuses(email).await,
            [("space-daily".to_owned(), "confirmed".to_owned())]
        );
    }
    let notes: Vec<Option<String>> = app
        .db(|conn| {
            subscribers::table
                .select(subscribers::consent_note)
                .load(conn)
        })
        .await;
    assert_eq!(notes, vec![Some(note.to_owned()); 3]);
    let id = subscriber_id(&app, "good-one@example.com").await.unwrap();
    let page = browser.get(&format!("/admin/subscribers/{id}")).await;
    assert!(page.body.contains(note));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        app.outbound().await.is_empty(),
        "an import as confirmed queued email"
    );
    assert_eq!(app.smtp().message_count(), 0);
}

#[tokio::test]
async fn a_forged_import_is_refused_before_anything_is_read() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    for token in [None, Some("wrong")] {
        let answer = post_multipart_with_token(&browser, token).await;
        assert_eq!(answer.status, 403, "{token:?}");
    }
    assert_eq!(app.count_subscribers().await, 0);
    assert!(app.outbound().await.is_empty());
}

#[tokio::test]
async fn an_export_imports_into_a_fresh_install_as_it_was() {
    let app = spawn_app().await;
    let emails = add_confirmed_readers(&app, "roundtrip", 3).await;
    // A name a spreadsheet would run as a formula, and a reader who left.
    let key = emails[0].clone();
    app.db(move |conn| {
        diesel::update(subscribers::table.filter(subscribers::email_key.eq(key)))
            .set(subscribers::name.eq("=HYPERLINK(\"http://evil.example\")"))
            .execute(conn)
    })
    .await;
    let left = emails[2].clone();
    app.db(move |conn| {
        let id = stored::find_by_key(conn, &left)?.unwrap().id;
        stored_subscriptions::unsubscribe_all(conn, id, db::now())
    })
    .await;

    let browser = Browser::logged_in(&app).await;
    let export = browser.get("/admin/subscribers/export.csv").await;
    assert_eq!(export.status, 200);
    assert!(
        export
            .header("content-type")
            .unwrap()
            .starts_with("text/csv")
    );
    let today = chrono::Utc::now().format("%Y-%m-%d");
    assert_eq!(
        export.header("content-disposition").unwrap(),
        format!("attachment; filename=\"spacedigest-subscribers-{today}.csv\"")
    );
    assert!(
        export
            .body
            .contains("\"'=HYPERLINK(\"\"http://evil.example\"\")\""),
        "{}",
        export.body
    );
    let before = csv_rows(&export.body);
    assert_eq!(before.len(), 3);

    // The command line writes the same file.
    let out = cli(&app, &["subscribers", "export"], &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), export.body);

    let fresh = spawn_app().await;
    let browser = Browser::logged_in(&fresh).await;
    let answer = browser
        .post_multipart(
            "/admin/subscribers/import",
            &[
                ("newsletter", "space-daily"),
                ("mode", "confirmed"),
                ("consent_note", "Moved from the old server"),
            ],
            Some(("file", "export.csv", export.body.clone().into_bytes())),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer.body.contains(r#"id="imported">2<"#),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("1 marked unsubscribed"));
    let after = csv_rows(&browser.get("/admin/subscribers/export.csv").await.body);
    let expected: BTreeSet<_> = before
        .into_iter()
        .filter(|r| r.3 != "unsubscribed")
        .collect();
    assert_eq!(after, expected);
    assert!(
        after
            .iter()
            .any(|r| r.1 == "'=HYPERLINK(\"http://evil.example\")")
    );
}

#[tokio::test]
async fn the_command_line_imports_a_file_and_reports_bad_lines_on_stderr() {
    let app = spawn_app().await;
    let file = app.database.dir().join("list.csv");
    std::fs::write(&file, file_with_bad_rows()).unwrap();
    let path = file.to_str().unwrap();

    let out = cli(&app, &["subscribers", "import", path, "--confirmed"], &[]).await;
    assert!(!out.status.success(), "--confirmed without a consent note");
    assert_eq!(app.count_subscribers().await, 0);

    let out = cli(&app, &["subscribers", "import", "/no/such/file.csv"], &[]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    let out = cli(&app, &["subscribers", "import", path], &[]).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Imported 3 into Space Daily"), "{stdout}");
    assert!(stdout.contains("2 bad rows"), "{stdout}");
    assert!(
        stderr.contains("line 3: not an email address: not-an-address"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5: the name is longer than 100 characters"),
        "{stderr}"
    );
    // The app's worker sends the confirmations the import queued.
    assert_eq!(app.emails(3).await.len(), 3);

    app.add_newsletter("mars-weekly", "Mars Weekly").await;
    let out = cli(
        &app,
        &[
            "subscribers",
            "import",
            path,
            "--newsletter",
            "mars-weekly",
            "--confirmed",
            "--consent-note",
            "Asked in person",
        ],
        &[],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        app.subscription_statuses("good-two@example.com").await,
        [
            ("space-daily".to_owned(), "pending".to_owned()),
            ("mars-weekly".to_owned(), "confirmed".to_owned())
        ]
    );
}
