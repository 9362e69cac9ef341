//! Oversized bodies, written whole before the answer is read: every route with a body
//! limit answers 413 with its reason, readable, and closes the connection; nothing is
//! stored.

use std::sync::Arc;

use super::{Got, chunked, head, socket_address, tally, write_whole_then_read};
use crate::console::{OPERATOR_EMAIL, OPERATOR_PASSWORD, create_operator};
use crate::support::app::{Mail, TestApp, hidden_field, spawn_app, spawn_app_with, urlencode};

const KIB: usize = 1024;
/// The signup limit is 16 KiB; the largest still fits what the server reads to answer.
const SIGNUP_SIZES: [usize; 5] = [17 * KIB, 64 * KIB, 256 * KIB, 1024 * KIB, 3 * 1024 * KIB];
const POSTS: usize = 30;
const OTHER_SIZES: [usize; 3] = [300 * KIB, 1024 * KIB, 3 * 1024 * KIB];
const OTHER_POSTS: usize = 12;

fn form_body(size: usize) -> Vec<u8> {
    let mut body = b"email=reader%40example.com&name=".to_vec();
    body.resize(size, b'x');
    body
}

fn json_body(size: usize) -> Vec<u8> {
    let start = br#"{"email": "reader@example.com", "name": ""#;
    let mut body = start.to_vec();
    body.resize(size - 2, b'x');
    body.extend_from_slice(br#""}"#);
    body
}

/// The head and body of a POST of `body`.
fn request(
    path: &str,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let mut headers = vec![("Content-Type", content_type), ("Connection", "close")];
    headers.extend_from_slice(extra);
    (
        head("POST", path, &headers, Some(body.len())).into_bytes(),
        body.to_vec(),
    )
}

/// Posts it as urllib would: head, body, then the answer.
async fn post(address: &str, (head, body): (Vec<u8>, Vec<u8>)) -> Got {
    write_whole_then_read(address, &head, &body).await
}

/// True for a readable 413 that closes the connection and whose body contains `reason`.
fn refused_readably(got: &Got, reason: &str) -> bool {
    matches!(got, Got::Answer { status: 413, closes: true, body } if body.contains(reason))
}

#[tokio::test]
async fn thirty_oversized_form_and_json_signups_written_whole_each_get_a_readable_413() {
    let app = spawn_app().await;
    let address = socket_address(&app);
    let mut form = Vec::new();
    let mut json = Vec::new();
    let mut form_chunked = Vec::new();
    for i in 0..POSTS {
        let size = SIGNUP_SIZES[i % SIGNUP_SIZES.len()];
        let body = form_body(size);
        form.push(
            post(
                &address,
                request(
                    "/subscriptions",
                    "application/x-www-form-urlencoded",
                    &[],
                    &body,
                ),
            )
            .await,
        );
        json.push(
            post(
                &address,
                request("/subscriptions", "application/json", &[], &json_body(size)),
            )
            .await,
        );
        // Without a length the server finds out only after 16 KiB, mid-body.
        let without_length = head(
            "POST",
            "/subscriptions",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Transfer-Encoding", "chunked"),
            ],
            None,
        );
        form_chunked.push(
            write_whole_then_read(
                &address,
                without_length.as_bytes(),
                &chunked(&body, 4 * KIB),
            )
            .await,
        );
    }
    let readable = |answers: &[Got], reason: &str| {
        answers
            .iter()
            .filter(|got| refused_readably(got, reason))
            .count()
    };
    let stored = app.count_subscribers().await;
    let queued = app.outbound().await.len();
    crate::support::figures::report(
        "oversized-signups",
        &format!(
            "{POSTS} posts of each kind, 17 KiB to 3 MiB, each written whole (head, 20 ms, \
             body) before the answer is read: form {} readable 413s of {POSTS} {}, JSON {} of \
             {POSTS} {}, chunked form {} of {POSTS} {}; subscribers stored {stored}, emails \
             queued {queued}",
            readable(&form, "16 KiB"),
            tally(&form),
            readable(&json, "body_too_large"),
            tally(&json),
            readable(&form_chunked, "16 KiB"),
            tally(&form_chunked),
        ),
    );
    for (kind, answers, reason) in [
        ("form", &form, "16 KiB"),
        ("JSON", &json, "body_too_large"),
        ("chunked form", &form_chunked, "16 KiB"),
    ] {
        for (i, got) in answers.iter().enumerate() {
            assert!(
                refused_readably(got, reason),
                "{kind} post {i} ({} bytes): {got:?}",
                SIGNUP_SIZES[i % SIGNUP_SIZES.len()]
            );
        }
    }
    assert_eq!(stored, 0);
    assert_eq!(queued, 0);
}

/// A logged-in operator as a raw client needs them: the cookie header and a CSRF token.
async fn operator_session(app: &TestApp) -> (String, String) {
    create_operator(app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(Arc::clone(&jar))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(format!("{}/admin/login", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let login = client
        .post(format!("{}/admin/login", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf_token={}&email={}&password={}",
            urlencode(&hidden_field(&page, "csrf_token")),
            urlencode(OPERATOR_EMAIL),
            urlencode(OPERATOR_PASSWORD)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303, "the operator logs in");
    let account = client
        .get(format!("{}/admin/account", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let url = app.address.parse().unwrap();
    let cookies = reqwest::cookie::CookieStore::cookies(jar.as_ref(), &url)
        .expect("the session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    (cookies, hidden_field(&account, "csrf_token"))
}

fn multipart(csrf: &str, field: &str, file: &str, size: usize) -> (String, Vec<u8>) {
    let boundary = "spacedigest-test-boundary-4f1c";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"newsletter\"\r\n\r\nspace-daily\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    let data_starts = body.len();
    body.resize(data_starts + size, b'a');
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn oversized_webhook_posts_console_forms_and_uploads_get_a_readable_413() {
    let token = "bounce-webhook-token-0123456789abcdef";
    let app = spawn_app_with(Mail::Server, |s| {
        s.bounces.webhook_token = Some(spacedigest::config::WebhookToken(token.into()));
    })
    .await;
    let address = socket_address(&app);
    let (cookie, csrf) = operator_session(&app).await;
    let bearer = format!("Bearer {token}");

    let mut webhook = Vec::new();
    let mut form = Vec::new();
    for i in 0..OTHER_POSTS {
        // Past the webhook's 256 KiB and the console's 256 KiB.
        let size = OTHER_SIZES[i % OTHER_SIZES.len()];
        let reports = json_body(size);
        webhook.push(
            post(
                &address,
                request(
                    "/webhooks/bounces",
                    "application/json",
                    &[("Authorization", &bearer)],
                    &reports,
                ),
            )
            .await,
        );
        let mut story = format!(
            "csrf_token={}&newsletter=space-daily&title=Huge&url=https%3A%2F%2Fnews.example.org%2Fa&summary=",
            urlencode(&csrf)
        )
        .into_bytes();
        story.resize(size, b'x');
        form.push(
            post(
                &address,
                request(
                    "/admin/stories",
                    "application/x-www-form-urlencoded",
                    &[("Cookie", &cookie)],
                    &story,
                ),
            )
            .await,
        );
    }
    let mut uploads = Vec::new();
    for (path, field, file) in [
        ("/admin/subscribers/import", "file", "readers.csv"),
        ("/admin/stories/import/upload", "file", "feed.xml"),
    ] {
        for _ in 0..2 {
            // One MiB past the 16 MiB upload limit.
            let (content_type, body) = multipart(&csrf, field, file, 17 * 1024 * KIB);
            uploads.push(
                post(
                    &address,
                    request(path, &content_type, &[("Cookie", &cookie)], &body),
                )
                .await,
            );
        }
    }
    let readable = |answers: &[Got], reason: &str| {
        answers
            .iter()
            .filter(|got| refused_readably(got, reason))
            .count()
    };
    let stories: i64 = app
        .db(|conn| {
            use diesel::prelude::*;
            spacedigest::db::schema::stories::table
                .count()
                .get_result(conn)
        })
        .await;
    crate::support::figures::report(
        "oversized-other-routes",
        &format!(
            "written whole (head, 20 ms, body) before reading: bounce webhook 300 KiB to 3 MiB \
             {} readable 413s of {OTHER_POSTS} {}; console form 300 KiB to 3 MiB {} of \
             {OTHER_POSTS} {}; console uploads (CSV import, feed file) 17 MiB {} of 4 {}; \
             stories stored {stories}, subscribers stored {}",
            readable(&webhook, "256 KiB"),
            tally(&webhook),
            readable(&form, "256 KiB"),
            tally(&form),
            readable(&uploads, "16 MiB"),
            tally(&uploads),
            app.count_subscribers().await,
        ),
    );
    for (kind, answers, reason) in [
        ("webhook", &webhook, "256 KiB"),
        ("console form", &form, "256 KiB"),
        ("console upload", &uploads, "16 MiB"),
    ] {
        for (i, got) in answers.iter().enumerate() {
            assert!(refused_readably(got, reason), "{kind} {i}: {got:?}");
        }
    }
    assert_eq!(stories, 0);
    assert_eq!(app.count_subscribers().await, 0);
}
