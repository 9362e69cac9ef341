//! Header and SMTP injection: line breaks (CR/LF, bare LF, bare CR), encoded-words that
//! decode to line breaks, and a `\r\n.\r\n` that would end DATA early, put into every
//! field a reader or an operator fills in and that reaches an email: the address, the
//! name, story titles (which the digest's Subject carries) and summaries, from the CLI,
//! the console and a feed import. A refused input must leave nothing behind; an accepted
//! one must reach the SMTP server without adding a header line or an SMTP command.

mod inspect;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use spacedigest::db::schema::stories;

use crate::console::Browser;
use crate::support::app::{TestApp, spawn_app, urlencode};
use crate::support::smtp_server::ReceivedMessage;
use crate::support::{add_confirmed_readers, cli};
use inspect::{header_problems, injected_commands, kind_of};

/// What an injected header would be called; no real header of ours starts so.
const INJECTED: &str = "X-Injected";

/// Every hostile shape, each ending in what would be a new header (or, after the dot, a
/// new SMTP transaction) if a line break got through.
fn payloads() -> Vec<(&'static str, String)> {
    let smuggled = format!("{INJECTED}: yes");
    vec![
        ("crlf", format!("Orbit report\r\n{smuggled}")),
        ("bare-lf", format!("Orbit report\n{smuggled}")),
        ("bare-cr", format!("Orbit report\r{smuggled}")),
        // "\r\nX-Injected: yes" in base64, as one encoded-word.
        (
            "encoded-b",
            "Orbit report =?utf-8?b?DQpYLUluamVjdGVkOiB5ZXM=?=".to_owned(),
        ),
        (
            "encoded-q",
            "Orbit report =?utf-8?q?=0D=0AX-Injected:_yes?=".to_owned(),
        ),
        (
            "encoded-q-alone",
            "=?UTF-8?Q?=0D=0A?= Orbit report".to_owned(),
        ),
        (
            "end-of-data",
            "Orbit report\r\n.\r\nMAIL FROM:<evil@evil.example>\r\nRCPT TO:<victim@evil.example>\r\nDATA\r\nX-Injected: yes\r\n\r\nspam\r\n.\r\n".to_owned(),
        ),
        (
            "line-separators",
            format!("Orbit report\u{2028}{smuggled}\u{2029}{smuggled}"),
        ),
        ("next-line", format!("Orbit report\u{85}{smuggled}")),
    ]
}

/// Addresses with the same shapes. Those with a raw line break must be refused; the
/// encoded-word ones are valid addresses, and are then mailed like any other.
fn hostile_addresses() -> Vec<String> {
    let mut addresses = Vec::new();
    for (i, (_, payload)) in payloads().into_iter().enumerate() {
        addresses.push(format!("reader{i}@example.com{payload}"));
        addresses.push(format!("{payload}reader{i}@example.com"));
    }
    addresses.extend(
        [
            "reader@example.com\r\nBcc: victim@evil.example",
            "reader@example.com\nBcc: victim@evil.example",
            "reader@example.com\rBcc: victim@evil.example",
            "reader\r\n.\r\n@example.com",
            "reader@example.com\r\n.\r\nMAIL FROM:<evil@evil.example>",
            "\"reader\r\nX-Injected: yes\"@example.com",
            "=?utf-8?q?=0D=0A?=@example.com",
            "=?utf-8?b?DQpYLUluamVjdGVkOiB5ZXM=?=@example.com",
            "reader%0D%0AX-Injected@example.com",
        ]
        .map(str::to_owned),
    );
    addresses
}

fn form_body(email: &str, name: &str) -> String {
    format!("email={}&name={}", urlencode(email), urlencode(name))
}

fn rss_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\r', "&#13;")
        .replace('\n', "&#10;")
}

/// A feed with one item per (day, title, summary).
fn hostile_feed(items: &[(NaiveDate, String, String)]) -> Vec<u8> {
    let mut feed = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel>\
         <title>Hostile Wire</title><link>https://wire.example.org/</link>\
         <description>Hostile</description>",
    );
    for (i, (day, title, summary)) in items.iter().enumerate() {
        let published = day.and_hms_opt(12, 0, 0).unwrap().and_utc().to_rfc2822();
        feed.push_str(&format!(
            "<item><title>{}</title><link>https://wire.example.org/item-{i}</link>\
             <guid>https://wire.example.org/item-{i}</guid><pubDate>{published}</pubDate>\
             <description>{}</description></item>",
            rss_escape(title),
            rss_escape(summary)
        ));
    }
    feed.push_str("</channel></rss>");
    feed.into_bytes()
}

async fn stored_stories(app: &TestApp) -> Vec<(String, String, NaiveDateTime)> {
    use diesel::prelude::*;
    app.db(|conn| {
        stories::table
            .select((stories::title, stories::summary_html, stories::published_at))
            .load(conn)
    })
    .await
}

#[tokio::test]
async fn line_breaks_in_any_field_add_no_header_and_no_smtp_command() {
    let app = spawn_app().await;
    let payloads = payloads();
    let has_line_break = |s: &str| s.contains(['\r', '\n']);

    // 1. Addresses: a line break is refused, nothing stored; anything else that is
    //    accepted is a reader like any other.
    let mut refused = 0;
    let mut readers: BTreeSet<String> = BTreeSet::new();
    let mut accepted_signups = 0;
    for email in hostile_addresses() {
        for json in [false, true] {
            let answer = if json {
                app.post_subscriptions_json(&serde_json::json!({ "email": email }))
                    .await
            } else {
                app.post_subscriptions(&form_body(&email, "")).await
            };
            if answer.status == 200 && !has_line_break(&email) {
                readers.insert(email.to_ascii_lowercase());
                accepted_signups += 1;
            } else {
                assert_eq!(answer.status, 400, "{email:?}: {}", answer.body);
                refused += 1;
            }
        }
    }
    let subscribers_after_addresses = app.count_subscribers().await;
    assert_eq!(
        subscribers_after_addresses,
        i64::try_from(readers.len()).unwrap(),
        "only accepted addresses are stored"
    );

    // 2. Names: the same, on an ordinary address each.
    let mut named = Vec::new();
    for (i, (label, payload)) in payloads.iter().enumerate() {
        let email = format!("named{i}@example.com");
        let answer = app.post_subscriptions(&form_body(&email, payload)).await;
        let json = app
            .post_subscriptions_json(&serde_json::json!({ "email": email, "name": payload }))
            .await;
        if payload.chars().any(char::is_control) {
            assert_eq!(answer.status, 400, "{label}: {}", answer.body);
            assert_eq!(json.status, 400, "{label}: {}", json.body);
            refused += 2;
        } else {
            assert_eq!(answer.status, 200, "{label}: {}", answer.body);
            assert_eq!(json.status, 200, "{label}: {}", json.body);
            readers.insert(email.clone());
            named.push(email);
            accepted_signups += 2;
        }
    }
    assert!(
        named.len() >= 3,
        "the encoded-word names are accepted: {named:?}"
    );
    // A refused name stored nothing either.
    assert_eq!(
        app.count_subscribers().await,
        i64::try_from(readers.len()).unwrap()
    );

    // Confirming sends the welcome email, with the name and its unsubscribe headers.
    let confirmations = app.emails(readers.len()).await;
    for email in &named {
        let mail = confirmations
            .iter()
            .find(|m| m.rcpt_to == vec![email.clone()])
            .unwrap_or_else(|| panic!("no confirmation to {email}"));
        let confirmed = app.confirm_via(&app.confirmation_link(mail)).await;
        assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    }

    // 3. Stories: each payload as a title and a summary, from the CLI, the console and a
    //    feed, each story alone on its day, so that its title leads that day's Subject.
    let reader = add_confirmed_readers(&app, "injection", 1).await.remove(0);
    readers.insert(reader.clone());
    let browser = Browser::logged_in(&app).await;
    let first_day = NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    let mut days = Vec::new();
    let mut feed_items = Vec::new();
    for (i, (label, payload)) in payloads.iter().enumerate() {
        let title = payload.clone();
        let summary = format!("Before the break {payload} after the break");
        let base = i * 3;
        // The CLI.
        let day = first_day + chrono::Duration::days(i64::try_from(base).unwrap());
        let published = format!("{day}T12:00:00Z");
        let url = format!("https://cli.example.org/story-{i}");
        let out = cli(
            &app,
            &[
                "stories",
                "add",
                "--title",
                &title,
                "--url",
                &url,
                "--summary",
                &summary,
                "--published-at",
                &published,
            ],
            &[],
        )
        .await;
        assert!(
            out.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        days.push(day);
        // The console.
        let day = first_day + chrono::Duration::days(i64::try_from(base + 1).unwrap());
        let added = browser
            .post_form(
                "/admin/stories",
                &[
                    ("newsletter", "space-daily"),
                    ("title", &title),
                    ("url", &format!("https://console.example.org/story-{i}")),
                    ("summary", &summary),
                    ("published_at", &format!("{day}T12:00")),
                ],
            )
            .await;
        assert_eq!(added.status, 303, "{label}: {}", added.body);
        days.push(day);
        // The feed.
        let day = first_day + chrono::Duration::days(i64::try_from(base + 2).unwrap());
        feed_items.push((day, title, summary));
        days.push(day);
    }
    let imported = browser
        .post_multipart(
            "/admin/stories/import/upload",
            &[("newsletter", "space-daily")],
            Some(("file", "hostile.xml", hostile_feed(&feed_items))),
        )
        .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    let stored = stored_stories(&app).await;
    assert_eq!(stored.len(), days.len(), "{stored:?}");
    for (title, _, _) in &stored {
        assert!(!title.contains(['\r', '\n']), "a stored title: {title:?}");
    }
    for day in &days {
        let sent = browser
            .post_form(
                "/admin/digests/send",
                &[("newsletter", "space-daily"), ("date", &day.to_string())],
            )
            .await;
        assert_eq!(sent.status, 303, "{day}: {}", sent.body);
    }

    // Every email: one confirmation per accepted address, the welcomes, and one digest per
    // day for each confirmed reader.
    let confirmed_readers = 1 + named.len();
    let expected_messages = readers.len() - 1 + named.len() + days.len() * confirmed_readers;
    let messages = app.emails(expected_messages).await;
    app.wait_until_queue_settles().await;
    app.smtp()
        .assert_no_more_messages(expected_messages, Duration::from_secs(1))
        .await;

    let mut problems = Vec::new();
    for message in &messages {
        problems.extend(header_problems(message));
    }
    let digests: Vec<&ReceivedMessage> =
        messages.iter().filter(|m| kind_of(m) == "digest").collect();
    // The whole title is in the Subject, on one line, and the digest's body still has the
    // summary's words on either side of the break.
    for digest in &digests {
        assert!(
            digest.subject().contains("Orbit report"),
            "{}",
            digest.subject()
        );
        let text = digest.text_body();
        assert!(text.contains("Before the break"), "{text}");
        assert!(text.contains("after the break"), "{text}");
    }
    let sender = app.settings.mail.from.email.to_string();
    let injected = injected_commands(&app.smtp().commands(), &sender, &readers);
    let data_commands = app
        .smtp()
        .commands()
        .iter()
        .filter(|c| c.verb() == "DATA")
        .count();

    // The summary's "\r\n.\r\n" reached DATA as a line holding only a dot (the HTML part
    // keeps the summary's line breaks), so the end of DATA was really put to the test.
    let lone_dots = messages
        .iter()
        .filter(|m| m.data.windows(5).any(|w| w == b"\r\n.\r\n"))
        .count();

    let extra_headers = problems.len();
    crate::support::figures::report(
        "injection",
        &format!(
            "extra headers {extra_headers}, SMTP commands injected {}; {} hostile inputs refused \
             with 400, {accepted_signups} signups accepted; {} messages checked ({} digests), \
             {data_commands} DATA commands for {} messages, {lone_dots} with a line of a lone dot",
            injected.len(),
            refused,
            messages.len(),
            digests.len(),
            messages.len()
        ),
    );
    assert!(
        problems.is_empty(),
        "header problems:\n{}",
        problems.join("\n")
    );
    assert!(
        injected.is_empty(),
        "injected SMTP commands:\n{}",
        injected.join("\n")
    );
    assert_eq!(data_commands, messages.len(), "one DATA per message");
    assert!(lone_dots > 0, "no message carried a lone dot line");
    assert_eq!(digests.len(), days.len() * confirmed_readers);
}
