//! Where links and tokens may end up: every emailed link is built on
//! `SPACEDIGEST_BASE_URL` whatever host a request names; a database dump holds no token
//! that works (`links/dump.rs`); logs hold no token, password or reader's address
//! (`links/logs.rs`), not even inside a mail server's reply (`links/replies.rs`).

mod dump;
mod logs;
mod replies;

use crate::console::Browser;
use crate::support::add_confirmed_readers;
use crate::support::app::{Answer, Mail, spawn_app_with, unique_email, urlencode};
use crate::support::smtp_server::ReceivedMessage;

/// Where every emailed link must point, and not where the request says it came to.
const BASE_URL: &str = "http://news.spacedigest.example:8443";
const FORGED_HOST: &str = "evil.example";

/// Every header a proxy or a client could use to name another host.
fn forge(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    request
        .header("host", FORGED_HOST)
        .header("x-forwarded-host", FORGED_HOST)
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-server", FORGED_HOST)
        .header("x-host", FORGED_HOST)
        .header(
            "forwarded",
            format!("for=198.51.100.7;host={FORGED_HOST};proto=https"),
        )
}

/// The value of every `href="…"` in an HTML body.
pub fn html_links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|link| link.replace("&amp;", "&").replace("&#38;", "&"))
        .collect()
}

/// Every link a message carries: text body, HTML body and `List-Unsubscribe`.
pub fn all_links(message: &ReceivedMessage) -> Vec<String> {
    let mut links = message.links();
    if let Some(html) = message.try_html_body() {
        links.extend(html_links(&html));
    }
    if let Some(header) = message.header("List-Unsubscribe") {
        links.push(header.trim_matches(['<', '>']).to_owned());
    }
    links
}

/// The `token` query parameter of a link.
pub fn token_of(link: &str) -> String {
    let url = url::Url::parse(link).unwrap_or_else(|e| panic!("{link}: {e}"));
    url.query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no token in {link}"))
}

#[tokio::test]
async fn every_emailed_link_uses_the_base_url_whatever_host_the_request_names() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.server.base_url = BASE_URL.parse().unwrap();
        // A trusted proxy is where forwarded headers would be believed, if anywhere.
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let reader = unique_email();
    let signup = forge(app.client.post(format!("{}/subscriptions", app.address)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email={}&name=Ada", urlencode(&reader)))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 200);
    let confirmation = app.emails(1).await.remove(0);
    let confirm_link = confirmation
        .links()
        .into_iter()
        .find(|l| l.contains("/subscriptions/confirm?token="))
        .expect("a confirmation link");
    let confirmed = Answer::from(
        forge(
            app.client
                .post(format!("{}/subscriptions/confirm", app.address)),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", urlencode(&token_of(&confirm_link))))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let welcome = app.emails(2).await.remove(1);

    // The digest, queued from the console by a request naming the forged host.
    add_confirmed_readers(&app, "base-url", 2).await;
    let browser = Browser::logged_in(&app).await;
    let csrf = browser.csrf_token().await;
    let story = forge(
        browser
            .client
            .post(format!("{}/admin/stories", app.address)),
    )
    .form(&[
        ("csrf_token", csrf.as_str()),
        ("newsletter", "space-daily"),
        ("title", "Europa Clipper passes Mars"),
        ("url", "https://news.example.org/clipper"),
        ("summary", "<p>A gravity assist.</p>"),
        ("published_at", "2026-11-20T09:00"),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(story.status(), 303);
    let sent = forge(
        browser
            .client
            .post(format!("{}/admin/digests/send", app.address)),
    )
    .form(&[
        ("csrf_token", csrf.as_str()),
        ("newsletter", "space-daily"),
        ("date", "2026-11-20"),
    ])
    .send()
    .await
    .unwrap();
    assert_eq!(sent.status(), 303);
    let digests: Vec<ReceivedMessage> = app
        .emails(5)
        .await
        .into_iter()
        .filter(|m| m.header("List-Id").is_some())
        .collect();
    assert_eq!(digests.len(), 3);

    let mut checked = 0;
    let mut off_base = Vec::new();
    let mut emails = vec![confirmation, welcome];
    emails.extend(digests);
    for email in &emails {
        for link in all_links(email) {
            if link.starts_with("https://news.example.org/") {
                continue; // the story's own link
            }
            checked += 1;
            if !link.starts_with(&format!("{BASE_URL}/")) || link.contains(FORGED_HOST) {
                off_base.push(format!("{}: {link}", email.subject()));
            }
        }
    }
    let unsubscribe_headers = emails
        .iter()
        .filter(|m| m.header("List-Unsubscribe").is_some())
        .count();
    crate::support::figures::report(
        "links-base-url",
        &format!(
            "{checked} links in {} emails (confirmation, welcome, {} digests; {unsubscribe_headers} \
             List-Unsubscribe headers) with Host, X-Forwarded-Host and Forwarded naming \
             {FORGED_HOST}: {} not on BASE_URL",
            emails.len(),
            emails.len() - 2,
            off_base.len()
        ),
    );
    assert!(off_base.is_empty(), "links off the base URL: {off_base:#?}");
    assert_eq!(unsubscribe_headers, 4, "the welcome email and each digest");
    assert!(checked >= 4 * 3, "too few links checked: {checked}");
}
