//! A failed fetch repeats nothing the server sent beyond its status code: answers with a
//! marker in them (an error page, unknown elements and end tags, a JSON Feed with a
//! made-up version or wrong values, a made-up encoding or content type) are refused
//! with a reason that leaves it out, in the console's pages, the feed's recorded error
//! and the command's output; a failed TLS handshake is named as such. Otherwise a
//! console session could read an answer back through the error it causes.

use std::net::{IpAddr, Ipv4Addr};

use spacedigest::db::feeds;

use crate::console::Browser;
use crate::support::app::spawn_app;
use crate::support::http_server::{HttpServer, Reply};

const MARKER: &str = "zq7innerdata";

/// Each path, its answer, and what the operator is told instead.
fn hostile_answers() -> Vec<(&'static str, Reply, &'static str)> {
    let m = MARKER;
    vec![
        (
            "/status",
            Reply::status(500, format!("<html><body>{m}</body></html>")),
            "the server answered 500",
        ),
        (
            "/root",
            Reply::ok(format!("<?xml version=\"1.0\"?><{m}><item/></{m}>")),
            "not a feed",
        ),
        (
            "/truncated",
            Reply::ok(format!("<?xml version=\"1.0\"?><{m}><item>")),
            "truncated feed",
        ),
        (
            "/version",
            Reply::ok(format!(
                "{{\"version\": \"https://jsonfeed.org/version/{m}\", \"title\": \"x\", \"items\": []}}"
            )),
            "unsupported JSON Feed version",
        ),
        (
            "/json-type",
            Reply::ok(format!(
                "{{\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"x\", \"items\": \"{m}\"}}"
            )),
            "not a JSON Feed",
        ),
        (
            "/end-tag",
            Reply::ok(format!(
                "<rss version=\"2.0\"><channel><title>x</{m}></channel></rss>"
            )),
            "malformed XML",
        ),
        (
            "/encoding",
            Reply::ok(format!(
                "<?xml version=\"1.0\" encoding=\"iso-8859-{m}\"?><rss version=\"2.0\"><channel>\
                 <title>Caf\u{e9}</title></channel></rss>"
            )),
            "wrong encoding",
        ),
        (
            "/content-type",
            Reply::ok(format!(
                "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title type=\"{m}\">x</title>\
                 <id>urn:x</id><updated>2026-11-20T06:00:00Z</updated></feed>"
            )),
            "malformed feed",
        ),
    ]
}

#[tokio::test]
async fn a_failed_fetch_repeats_nothing_the_server_sent() {
    let answers = hostile_answers();
    let server = HttpServer::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        &[],
        answers
            .iter()
            .map(|(path, reply, _)| (*path, reply.clone()))
            .collect(),
    )
    .await;
    // The harness lets fetches reach 127.0.0.1, where this server is.
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    let mut messages: Vec<(String, &str, String)> = Vec::new();
    // Answers other than a refusal (or a registered feed), checked after the figure.
    let mut unexpected = Vec::new();

    for (path, _, reason) in &answers {
        let url = server.url("127.0.0.1", path);
        let imported = browser
            .post_form(
                "/admin/stories/import",
                &[("url", url.as_str()), ("newsletter", "space-daily")],
            )
            .await;
        if imported.status != 400 {
            unexpected.push(format!("console import {path}: {}", imported.status));
        }
        messages.push((format!("console import {path}"), reason, imported.body));

        let cli = crate::support::cli(
            &app,
            &["stories", "import", &url],
            &[("SPACEDIGEST_FETCH_ALLOW_PRIVATE", "true")],
        )
        .await;
        if cli.status.success() {
            unexpected.push(format!("stories import {path} succeeded"));
        }
        messages.push((
            format!("stories import {path}"),
            reason,
            format!(
                "{}{}",
                String::from_utf8_lossy(&cli.stdout),
                String::from_utf8_lossy(&cli.stderr)
            ),
        ));

        let added = browser
            .post_form(
                "/admin/feeds",
                &[("url", url.as_str()), ("newsletter", "space-daily")],
            )
            .await;
        if added.status != 303 {
            unexpected.push(format!("feed add {path}: {}", added.status));
        }
    }
    // TLS to a server that speaks plain HTTP: rustls's own words can quote the server
    // (a certificate's names), so the operator is told the kind of failure only.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = format!("https://{}/status", plain.local_addr().unwrap());
    let answering = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut stream, _)) = plain.accept().await {
            let answer = format!("HTTP/1.1 400 Bad Request\r\n\r\n{MARKER}");
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    let imported = browser
        .post_form(
            "/admin/stories/import",
            &[("url", tls.as_str()), ("newsletter", "space-daily")],
        )
        .await;
    messages.push((
        "console import over TLS".into(),
        "the TLS handshake failed",
        imported.body,
    ));
    answering.abort();

    let registered = app.db(feeds::all).await;
    for feed in &registered {
        browser
            .post_form(&format!("/admin/feeds/{}/poll", feed.id), &[])
            .await;
    }
    let page = browser.get("/admin/feeds").await;
    for feed in app.db(feeds::all).await {
        let (path, _, reason) = answers
            .iter()
            .find(|(path, _, _)| feed.url.ends_with(path))
            .expect("a feed of the answers");
        messages.push((
            format!("poll now {path}"),
            reason,
            feed.last_error.unwrap_or_default(),
        ));
    }
    messages.push(("the feeds page".into(), "failing", page.body));

    let echoed: Vec<&String> = messages
        .iter()
        .filter(|(_, _, text)| text.to_lowercase().contains(MARKER))
        .map(|(what, _, _)| what)
        .collect();
    let unexplained: Vec<String> = messages
        .iter()
        .filter(|(_, reason, text)| !text.to_lowercase().contains(&reason.to_lowercase()))
        .map(|(what, reason, text)| format!("{what}: no {reason:?} in {text}"))
        .collect();
    crate::support::figures::report(
        "fetch-echo",
        &format!(
            "{} answers carrying a marker (an error page, unknown elements and end tags, a \
             made-up JSON Feed version, encoding and content type, a wrong JSON value) through \
             the console import, `stories import` and Poll now, the feeds page, and a TLS \
             handshake with a plain-HTTP server: \
             {} of {} messages hold the server's text; {} name their kind of failure",
            answers.len(),
            echoed.len(),
            messages.len(),
            messages.len() - unexplained.len()
        ),
    );
    assert!(echoed.is_empty(), "the server's text in: {echoed:?}");
    assert!(unexplained.is_empty(), "{unexplained:#?}");
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert_eq!(registered.len(), answers.len());
}
