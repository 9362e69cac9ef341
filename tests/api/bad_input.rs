//! Malformed and hostile signups: each gets a 4xx with a reason, and nothing is stored
//! or sent.

use std::time::Duration;

use crate::support::app::{spawn_app, urlencode};

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
const JSON: Option<&str> = Some("application/json");

struct Case {
    what: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// A phrase the answer must contain, so the client learns why.
    reason: &'static str,
}

fn case(
    what: &'static str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    status: u16,
    reason: &'static str,
) -> Case {
    Case {
        what,
        content_type,
        body: body.into(),
        status,
        reason,
    }
}

fn cases() -> Vec<Case> {
    let long_local = "a".repeat(250);
    vec![
        case("empty body", FORM, "", 400, "Enter your email"),
        case(
            "empty email",
            FORM,
            "email=&name=Ann",
            400,
            "Enter your email",
        ),
        case("no at sign", FORM, "email=not-an-email", 400, "doesn"),
        case(
            "two at signs",
            FORM,
            "email=a%40b%40example.com",
            400,
            "doesn",
        ),
        case(
            "dotless domain",
            FORM,
            "email=reader%40localhost",
            400,
            "full domain",
        ),
        case(
            "IP literal",
            FORM,
            "email=reader%40%5B127.0.0.1%5D",
            400,
            "IP address",
        ),
        case(
            "bare IP domain",
            FORM,
            "email=reader%4010.0.0.1",
            400,
            "IP address",
        ),
        case(
            "overlong email",
            FORM,
            format!("email={long_local}%40example.com"),
            400,
            "too long",
        ),
        case(
            "overlong name",
            FORM,
            format!("email=ok%40example.com&name={}", "n".repeat(101)),
            400,
            "100 characters",
        ),
        case(
            "CRLF in email",
            FORM,
            "email=a%40example.com%0D%0ABcc%3A+victim%40example.org",
            400,
            "line breaks",
        ),
        case(
            "bare LF in email",
            FORM,
            "email=a%40example.com%0ABcc%3Av%40example.org",
            400,
            "line breaks",
        ),
        case(
            "CRLF in name",
            FORM,
            "email=a%40example.com&name=Ann%0D%0ABcc%3A+victim%40example.org",
            400,
            "line breaks",
        ),
        case(
            "NUL in name",
            FORM,
            "email=a%40example.com&name=A%00nn",
            400,
            "control",
        ),
        case(
            "bidi override in name",
            FORM,
            "email=a%40example.com&name=%E2%80%AEnnA",
            400,
            "invisible",
        ),
        case(
            "unknown newsletter",
            FORM,
            "email=a%40example.com&newsletters=no-such-list",
            400,
            "no-such-list",
        ),
        case(
            "broken percent-encoding",
            FORM,
            "email=a%zz%40example.com",
            400,
            "percent-encoding",
        ),
        case(
            "invalid UTF-8 after decoding",
            FORM,
            "email=a%40example.com&name=%C3%28",
            400,
            "UTF-8",
        ),
        case(
            "raw invalid UTF-8",
            FORM,
            b"email=a%40example.com&name=\xff\xfe".to_vec(),
            400,
            "UTF-8",
        ),
        case(
            "email given twice",
            FORM,
            "email=a%40example.com&email=b%40example.com",
            400,
            "more than once",
        ),
        case(
            "JSON email as a number",
            JSON,
            r#"{"email": 5}"#,
            400,
            "must be a string",
        ),
        case(
            "JSON name as an object",
            JSON,
            r#"{"email": "a@example.com", "name": {"x": 1}}"#,
            400,
            "must be a string",
        ),
        case(
            "JSON newsletters as numbers",
            JSON,
            r#"{"email": "a@example.com", "newsletters": [1, 2]}"#,
            400,
            "list of newsletter",
        ),
        case(
            "JSON empty newsletter list",
            JSON,
            r#"{"email": "a@example.com", "newsletters": []}"#,
            400,
            "at least one",
        ),
        case(
            "JSON array body",
            JSON,
            r#"["a@example.com"]"#,
            400,
            "JSON object",
        ),
        case(
            "malformed JSON",
            JSON,
            r#"{"email": "a@example.com""#,
            400,
            "not valid JSON",
        ),
        case(
            "JSON invalid UTF-8",
            JSON,
            b"{\"email\": \"a\xff@example.com\"}".to_vec(),
            400,
            "not valid JSON",
        ),
        case(
            "JSON CRLF in email",
            JSON,
            r#"{"email": "a@example.com\r\nBcc: v@example.org"}"#,
            400,
            "line breaks",
        ),
        case(
            "oversized body",
            FORM,
            format!("email=a%40example.com&name=x&pad={}", "x".repeat(17 * 1024)),
            413,
            "16 KiB",
        ),
        case(
            "wrong content type",
            Some("text/plain"),
            "email=a%40example.com",
            415,
            "x-www-form-urlencoded",
        ),
        case(
            "multipart body",
            Some("multipart/form-data; boundary=x"),
            "--x--",
            415,
            "x-www-form-urlencoded",
        ),
        case(
            "no content type",
            None,
            "email=a%40example.com",
            415,
            "x-www-form-urlencoded",
        ),
    ]
}

#[tokio::test]
async fn every_kind_of_bad_input_gets_a_4xx_with_a_reason_and_nothing_is_stored_or_sent() {
    let app = spawn_app().await;
    let cases = cases();
    assert!(cases.len() >= 15);
    for case in &cases {
        let answer = app
            .post_raw("/subscriptions", case.content_type, case.body.clone())
            .await;
        assert_eq!(answer.status, case.status, "{}: {}", case.what, answer.body);
        assert!(
            answer.body.contains(case.reason),
            "{}: the answer should say {:?}: {}",
            case.what,
            case.reason,
            answer.body
        );
        assert_eq!(
            app.count_subscribers().await,
            0,
            "{}: a subscriber was stored",
            case.what
        );
        assert!(
            app.outbound().await.is_empty(),
            "{}: an email was queued",
            case.what
        );
    }
    app.smtp()
        .assert_no_more_messages(0, Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn an_oversized_body_without_a_length_is_cut_off() {
    let app = spawn_app().await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b'x'; 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let answer = app.post_raw("/subscriptions", FORM, body).await;
    assert_eq!(answer.status, 413);
    assert_eq!(app.count_subscribers().await, 0);
}

#[tokio::test]
async fn the_form_comes_back_with_messages_and_the_entered_values() {
    let app = spawn_app().await;
    let answer = app
        .post_subscriptions(&format!(
            "email={}&name={}",
            urlencode("bad\"<b>@x"),
            urlencode("<Ann>")
        ))
        .await;
    assert_eq!(answer.status, 400);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        answer
            .body
            .contains("Subscribe Free To Our Daily Newsletters")
    );
    assert!(answer.body.contains("doesn"), "{}", answer.body);
    // The values are shown again, escaped.
    assert!(
        answer.body.contains("bad&#34;&#60;b&#62;@x")
            || answer.body.contains("bad&quot;&lt;b&gt;@x"),
        "{}",
        answer.body
    );
    assert!(answer.body.contains("&#60;Ann&#62;") || answer.body.contains("&lt;Ann&gt;"));
    assert!(!answer.body.contains("<b>@x"));
}

#[tokio::test]
async fn json_clients_get_field_errors() {
    let app = spawn_app().await;
    let answer = app
        .post_subscriptions_json(&serde_json::json!({"email": "reader@localhost", "name": "x".repeat(101), "newsletters": ["nope"]}))
        .await;
    assert_eq!(answer.status, 400);
    let body = answer.json();
    assert_eq!(body["error"], "invalid_input");
    assert!(
        body["fields"]["email"][0]
            .as_str()
            .unwrap()
            .contains("domain")
    );
    assert!(body["fields"]["name"][0].as_str().unwrap().contains("100"));
    assert!(
        body["fields"]["newsletters"][0]
            .as_str()
            .unwrap()
            .contains("nope")
    );
    assert_eq!(app.count_subscribers().await, 0);
}
