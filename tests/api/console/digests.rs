//! The console's digests pages: preview, "Send now", live progress, pause, resume,
//! cancel, and each send's recipients.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use spacedigest::db::schema::{digest_issues, outbound_emails};

use super::{Browser, assert_sent_to_login};
use crate::support::app::{Answer, Mail, TestApp, spawn_app, spawn_app_with, urlencode};
use crate::support::smtp_server::{Behaviour, SmtpServer, free_port};
use crate::support::{add_confirmed_readers, add_story, cli};

const DAY: &str = "2026-11-20";
pub(super) const DAY_QUERY: &str = "newsletter=space-daily&date=2026-11-20";
const EMPTY_DAY_QUERY: &str = "newsletter=space-daily&date=2026-11-21";

fn noon(day: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(&format!("{day} 12:00"), "%Y-%m-%d %H:%M").unwrap()
}

/// Two stories on `DAY` and `readers` confirmed readers.
pub(super) async fn day_with_readers(
    app: &TestApp,
    prefix: &'static str,
    readers: usize,
) -> Vec<String> {
    add_story(
        app,
        "Lunar rover wakes up",
        "<p>After a long night.</p>",
        noon(DAY),
    )
    .await;
    add_story(
        app,
        "Comet visible at dusk",
        "<p>Look west.</p>",
        noon(DAY) + chrono::Duration::hours(2),
    )
    .await;
    add_confirmed_readers(app, prefix, readers).await
}

/// Presses "Send now" on the confirmation page; returns the answer and the issue's id.
pub(super) async fn send_now(browser: &Browser<'_>) -> (Answer, i64) {
    let answer = browser
        .post_form(
            "/admin/digests/send",
            &[("newsletter", "space-daily"), ("date", DAY)],
        )
        .await;
    assert_eq!(answer.status, 303, "send: {}", answer.body);
    let location = answer.header("location").unwrap();
    let id = location
        .trim_start_matches("/admin/digests/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("not a progress page: {location}"));
    (answer, id)
}

async fn progress(browser: &Browser<'_>, id: i64) -> serde_json::Value {
    let answer = browser
        .get(&format!("/admin/digests/{id}/progress.json"))
        .await;
    assert_eq!(answer.status, 200, "progress.json: {}", answer.body);
    answer.json()
}

async fn wait_for_status(browser: &Browser<'_>, id: i64, status: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let p = progress(browser, id).await;
        if p["status"] == status {
            return p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the send never became {status}: {p}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every digest delivery's status, in row order.
async fn delivery_statuses(app: &TestApp) -> Vec<String> {
    app.db(|c| {
        outbound_emails::table
            .filter(outbound_emails::kind.eq("digest"))
            .order(outbound_emails::id)
            .select(outbound_emails::status)
            .load(c)
    })
    .await
}

async fn issue_count(app: &TestApp) -> i64 {
    app.db(|c| digest_issues::table.count().get_result(c)).await
}

/// Waits until every digest delivery has been tried at least once (SMTP is down).
async fn wait_until_tried(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let attempts: Vec<i32> = app
            .db(|c| {
                outbound_emails::table
                    .filter(outbound_emails::kind.eq("digest"))
                    .select(outbound_emails::attempts)
                    .load(c)
            })
            .await;
        if !attempts.is_empty() && attempts.iter().all(|a| *a > 0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never tried: {attempts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn send_now_twice_sends_each_reader_one_digest() {
    let app = spawn_app().await;
    day_with_readers(&app, "twice", 3).await;
    let browser = Browser::logged_in(&app).await;

    let confirm = browser
        .get(&format!("/admin/digests/send?{DAY_QUERY}"))
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm
            .body
            .contains("Send Space Daily for 20 November 2026 to 3 readers?"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("id=\"confirm-send\""));
    assert!(confirm.body.contains("Send to 3 readers"));
    assert_eq!(
        issue_count(&app).await,
        0,
        "the confirmation page sends nothing"
    );

    let (first, id) = send_now(&browser).await;
    assert_eq!(
        first.header("location").as_deref(),
        Some(format!("/admin/digests/{id}?done=queued").as_str())
    );
    let (second, again) = send_now(&browser).await;
    assert_eq!(again, id);
    let location = second.header("location").unwrap();
    let page = browser.get(&location).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("This digest was already sent; nothing new was queued."),
        "{}",
        page.body
    );

    let mails = app.emails(3).await;
    assert_eq!(mails.len(), 3);
    app.smtp()
        .assert_no_more_messages(3, Duration::from_secs(1))
        .await;
    let mut recipients: Vec<String> = mails.iter().map(|m| m.rcpt_to[0].clone()).collect();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 3, "one each");
    assert_eq!(delivery_statuses(&app).await.len(), 3);

    // Asking again shows that it went, rather than offering to send it.
    let confirm = browser
        .get(&format!("/admin/digests/send?{DAY_QUERY}"))
        .await;
    assert!(
        confirm.body.contains("was already sent"),
        "{}",
        confirm.body
    );
    assert!(!confirm.body.contains("id=\"confirm-send\""));
    assert!(confirm.body.contains(&format!("/admin/digests/{id}\"")));

    let list = browser.get("/admin/digests").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&format!("href=\"/admin/digests/{id}\"")));
    assert!(list.body.contains("20 November 2026"));
}

#[tokio::test]
async fn the_preview_shows_the_days_digest_in_a_locked_down_frame() {
    let app = spawn_app().await;
    day_with_readers(&app, "preview", 3).await;
    let browser = Browser::logged_in(&app).await;

    let list = browser.get("/admin/digests").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("action=\"/admin/digests/preview\""));
    assert!(
        list.body
            .contains("<select id=\"digest-newsletter\" name=\"newsletter\">")
    );
    assert!(list.body.contains("type=\"date\""));
    assert!(list.body.contains("No digest has been sent yet."));
    for bad in ["page=0", "page=x", "page=1&page=2", "page=%zz"] {
        let answer = browser.get(&format!("/admin/digests?{bad}")).await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
    }
    let beyond = browser.get("/admin/digests?page=2").await;
    assert_eq!(beyond.status, 200);
    assert!(beyond.body.contains("There are no issues on this page."));

    let page = browser
        .get(&format!("/admin/digests/preview?{DAY_QUERY}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    for needle in [
        "Lunar rover wakes up",
        "Comet visible at dusk",
        "Space Daily — 20 November 2026: Lunar rover wakes up",
        "3 readers",
        "<iframe id=\"digest-preview\"",
        "title=\"Digest preview\"",
        "src=\"/admin/digests/preview.html?newsletter=space-daily&#38;date=2026-11-20\"",
        " sandbox>",
        "<details",
        "href=\"/admin/digests/send?newsletter=space-daily&#38;date=2026-11-20\"",
        "Send now…",
    ] {
        assert!(
            page.body.contains(needle),
            "{needle} missing: {}",
            page.body
        );
    }
    assert!(
        !page.body.contains("urn:spacedigest"),
        "the placeholder leaked"
    );
    assert!(
        !page
            .body
            .contains("method=\"post\" action=\"/admin/digests/send\"")
    );

    let frame = browser
        .get(&format!("/admin/digests/preview.html?{DAY_QUERY}"))
        .await;
    assert_eq!(frame.status, 200);
    assert_eq!(
        frame.header("content-security-policy").as_deref(),
        Some(
            "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; frame-ancestors 'self'; sandbox"
        )
    );
    assert_eq!(
        frame.header("x-frame-options").as_deref(),
        Some("SAMEORIGIN")
    );
    assert!(
        frame
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(frame.body.contains("Lunar rover wakes up"));
    assert!(frame.body.contains("/unsubscribe?token=PREVIEW"));
    assert!(!frame.body.contains("urn:spacedigest"));

    // The console's own pages keep the console's policy.
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    let empty = browser
        .get(&format!("/admin/digests/preview?{EMPTY_DAY_QUERY}"))
        .await;
    assert_eq!(empty.status, 200);
    assert!(
        empty
            .body
            .contains("No stories for this day; nothing would be sent."),
        "{}",
        empty.body
    );
    assert!(!empty.body.contains("Send now"));
    assert!(!empty.body.contains("digest-preview"));
    let empty_confirm = browser
        .get(&format!("/admin/digests/send?{EMPTY_DAY_QUERY}"))
        .await;
    assert!(!empty_confirm.body.contains("confirm-send"));
    let empty_send = browser
        .post_form(
            "/admin/digests/send",
            &[("newsletter", "space-daily"), ("date", "2026-11-21")],
        )
        .await;
    assert_eq!(empty_send.status, 400);
    assert!(
        empty_send.body.contains("nothing was sent"),
        "{}",
        empty_send.body
    );

    for (query, why) in [
        ("newsletter=space-daily&date=20-11-2026", "not a day"),
        ("newsletter=space-daily&date=2026-02-30", "not a day"),
        ("newsletter=nope&date=2026-11-20", "no newsletter"),
        ("newsletter=space-daily&date=%zz", "cannot be read"),
    ] {
        for path in ["preview", "preview.html", "send"] {
            let answer = browser.get(&format!("/admin/digests/{path}?{query}")).await;
            assert_eq!(answer.status, 400, "{path}?{query}: {}", answer.body);
            assert!(answer.body.contains(why), "{path}?{query}: {}", answer.body);
        }
    }
    let bad_post = browser
        .post_form(
            "/admin/digests/send",
            &[("newsletter", "space-daily"), ("date", "tomorrow")],
        )
        .await;
    assert_eq!(bad_post.status, 400);
    assert_eq!(issue_count(&app).await, 0, "previews create no issue");
    app.smtp()
        .assert_no_more_messages(0, Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn progress_reaches_delivered_and_the_recipients_show_the_servers_refusal() {
    let app = spawn_app().await;
    let readers = day_with_readers(&app, "refused", 3).await;
    let refused = readers[1].clone();
    app.smtp().set_behaviour(Behaviour::RejectRcptTo {
        address: refused.clone(),
        code: 550,
        text: "5.1.1 no such user here".into(),
    });
    let browser = Browser::logged_in(&app).await;
    let (_, id) = send_now(&browser).await;

    let done = wait_for_status(&browser, id, "Delivered").await;
    assert_eq!(done["sent"], 2, "{done}");
    assert_eq!(done["failed"], 1, "{done}");
    assert_eq!(done["remaining"], 0);
    assert_eq!(done["paused"], 0);
    assert_eq!(done["cancelled"], 0);
    assert_eq!(done["skipped"], 0);
    assert_eq!(done["total"], 3);
    assert_eq!(done["percent"], 100);
    assert!(done["rate_per_minute"].as_i64().unwrap() >= 3, "{done}");

    let page = browser.get(&format!("/admin/digests/{id}")).await;
    assert_eq!(page.status, 200);
    for needle in [
        ">Delivered</span>",
        "<span id=\"progress-percent\">100%</span>",
        "<progress id=\"send-progress\" max=\"3\" value=\"3\"",
        "<dd id=\"progress-sent\">2</dd>",
        "<dd id=\"progress-failed\">1</dd>",
        "<dd id=\"progress-remaining\">0</dd>",
        "id=\"progress-rate\"",
        "aria-live=\"polite\"",
        "id=\"progress-refresh\"",
        "<script src=\"/static/admin.js\" defer></script>",
    ] {
        assert!(
            page.body.contains(needle),
            "{needle} missing: {}",
            page.body
        );
    }
    // Over: nothing to pause or cancel.
    assert!(page.body.contains("id=\"pause-form\" hidden"));
    assert!(page.body.contains("id=\"resume-form\" hidden"));
    assert!(page.body.contains("/cancel\" hidden"));
    for reader in &readers {
        assert!(page.body.contains(reader.as_str()), "{reader} not listed");
    }

    let failed = browser
        .get(&format!("/admin/digests/{id}?status=failed"))
        .await;
    assert_eq!(failed.status, 200);
    assert!(failed.body.contains(&refused));
    assert!(
        failed.body.contains("5.1.1 no such user here"),
        "{}",
        failed.body
    );
    assert!(failed.body.contains("badge--danger\">Failed"));
    for reader in readers.iter().filter(|r| **r != refused) {
        assert!(!failed.body.contains(reader.as_str()));
    }
    let sent = browser
        .get(&format!("/admin/digests/{id}?status=sent"))
        .await;
    assert!(!sent.body.contains(&refused));
    assert_eq!(
        browser
            .get(&format!("/admin/digests/{id}?status=bogus"))
            .await
            .status,
        400
    );
    assert_eq!(
        browser
            .get(&format!("/admin/digests/{id}?after=x"))
            .await
            .status,
        400
    );

    // A finished send cannot be paused, resumed or cancelled.
    for action in ["pause", "resume", "cancel"] {
        let answer = browser
            .post_form(&format!("/admin/digests/{id}/{action}"), &[])
            .await;
        assert_eq!(answer.status, 409, "{action}: {}", answer.body);
    }
    let cancel_page = browser.get(&format!("/admin/digests/{id}/cancel")).await;
    assert_eq!(cancel_page.status, 200);
    assert!(!cancel_page.body.contains("confirm-cancel"));

    let list = browser.get("/admin/digests").await;
    assert!(list.body.contains("badge--ok\">Delivered"), "{}", list.body);

    for missing in ["999999", "abc", "-1"] {
        assert_eq!(
            browser
                .get(&format!("/admin/digests/{missing}"))
                .await
                .status,
            404
        );
        assert_eq!(
            browser
                .get(&format!("/admin/digests/{missing}/progress.json"))
                .await
                .status,
            404
        );
    }
}

/// The `href` of the link whose text is `text`.
fn link_to(body: &str, text: &str) -> String {
    let end = body
        .find(&format!(">{text}</a>"))
        .unwrap_or_else(|| panic!("no link {text:?} in {body}"));
    let start = body[..end].rfind("href=\"").unwrap() + "href=\"".len();
    let href = &body[start..];
    href[..href.find('"').unwrap()]
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

fn listed(body: &str) -> Vec<String> {
    body.split("<th scope=\"row\" data-address>")
        .skip(1)
        .map(|row| row[..row.find('<').unwrap()].to_owned())
        .collect()
}

#[tokio::test]
async fn recipients_are_listed_a_hundred_to_a_page() {
    // Nothing listens on the SMTP port: every delivery stays queued.
    let app = spawn_app_with(Mail::Port(free_port()), |_| {}).await;
    day_with_readers(&app, "paged", 230).await;
    let browser = Browser::logged_in(&app).await;
    let (_, id) = send_now(&browser).await;

    let first = browser.get(&format!("/admin/digests/{id}")).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let first_rows = listed(&first.body);
    assert_eq!(first_rows.len(), 100);
    assert!(!first.body.contains("Previous 100"));
    assert!(first.body.contains("data-filter-count=\"all\">230</span>"));
    let second = browser.get(&link_to(&first.body, "Next 100")).await;
    let second_rows = listed(&second.body);
    assert_eq!(second_rows.len(), 100);
    let third = browser.get(&link_to(&second.body, "Next 100")).await;
    let third_rows = listed(&third.body);
    assert_eq!(third_rows.len(), 30);
    assert!(!third.body.contains("Next 100"));
    let mut everyone: Vec<String> = [&first_rows, &second_rows, &third_rows]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    everyone.sort();
    everyone.dedup();
    assert_eq!(everyone.len(), 230, "every reader once");
    let back = browser.get(&link_to(&third.body, "Previous 100")).await;
    assert_eq!(listed(&back.body), second_rows);
    let start = browser.get(&link_to(&back.body, "First page")).await;
    assert_eq!(listed(&start.body), first_rows);

    // Filters keep to their rows across pages.
    let remaining = browser
        .get(&format!("/admin/digests/{id}?status=remaining"))
        .await;
    assert_eq!(listed(&remaining.body).len(), 100);
    assert!(link_to(&remaining.body, "Next 100").contains("status=remaining&after="));
    let sent = browser
        .get(&format!("/admin/digests/{id}?status=sent"))
        .await;
    assert!(sent.body.contains("No recipients to show here."));
}

#[tokio::test]
async fn pausing_holds_the_send_back_until_it_is_resumed() {
    let port = free_port();
    let app = spawn_app_with(Mail::Port(port), |_| {}).await;
    let readers = day_with_readers(&app, "paused", 3).await;
    let browser = Browser::logged_in(&app).await;
    let (_, id) = send_now(&browser).await;
    wait_until_tried(&app).await;

    let sending = progress(&browser, id).await;
    assert_eq!(sending["status"], "Sending", "{sending}");
    assert_eq!(sending["remaining"], 3);
    let page = browser.get(&format!("/admin/digests/{id}")).await;
    assert!(
        page.body
            .contains("<form method=\"post\" action=\"/admin/digests/")
    );
    assert!(page.body.contains(&format!(
        "action=\"/admin/digests/{id}/pause\" id=\"pause-form\">"
    )));
    assert!(page.body.contains("id=\"resume-form\" hidden"));
    assert!(page.body.contains("id=\"pause-send\""));

    let paused = browser
        .post_form(&format!("/admin/digests/{id}/pause"), &[])
        .await;
    assert_eq!(paused.status, 303, "{}", paused.body);
    assert_eq!(
        paused.header("location").as_deref(),
        Some(format!("/admin/digests/{id}?done=paused").as_str())
    );
    assert_eq!(delivery_statuses(&app).await, vec!["paused"; 3]);
    let json = progress(&browser, id).await;
    assert_eq!(json["status"], "Paused", "{json}");
    assert_eq!(json["paused"], 3);
    assert_eq!(json["remaining"], 0);
    assert_eq!(json["percent"], 0);
    let page = browser
        .get(&format!("/admin/digests/{id}?done=paused"))
        .await;
    assert!(page.body.contains(">Paused</span>"));
    assert!(page.body.contains("id=\"pause-form\" hidden"));
    assert!(page.body.contains(&format!(
        "action=\"/admin/digests/{id}/resume\" id=\"resume-form\">"
    )));
    assert!(page.body.contains("Sending is paused:"), "{}", page.body);

    // Pausing again changes nothing.
    let again = browser
        .post_form(&format!("/admin/digests/{id}/pause"), &[])
        .await;
    assert_eq!(again.status, 303);
    assert!(
        again
            .header("location")
            .unwrap()
            .ends_with("done=already-paused")
    );

    // The mail server comes up; the worker still sends none of the paused copies.
    let smtp = SmtpServer::start_on(port).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(smtp.message_count(), 0, "a paused send went out");
    assert_eq!(delivery_statuses(&app).await, vec!["paused"; 3]);

    let resumed = browser
        .post_form(&format!("/admin/digests/{id}/resume"), &[])
        .await;
    assert_eq!(resumed.status, 303, "{}", resumed.body);
    assert!(
        resumed
            .header("location")
            .unwrap()
            .ends_with("done=resumed")
    );
    let mails = smtp.wait_for_messages(3, Duration::from_secs(15)).await;
    let mut to: Vec<String> = mails.iter().map(|m| m.rcpt_to[0].clone()).collect();
    to.sort();
    let mut expected = readers.clone();
    expected.sort();
    assert_eq!(to, expected);
    let done = wait_for_status(&browser, id, "Delivered").await;
    assert_eq!(done["sent"], 3);
    smtp.assert_no_more_messages(3, Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn a_cancelled_send_never_goes_out() {
    let port = free_port();
    let app = spawn_app_with(Mail::Port(port), |_| {}).await;
    day_with_readers(&app, "cancelled", 3).await;
    let browser = Browser::logged_in(&app).await;
    let (_, id) = send_now(&browser).await;
    wait_until_tried(&app).await;

    let confirm = browser.get(&format!("/admin/digests/{id}/cancel")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("3 readers"), "{}", confirm.body);
    assert!(confirm.body.contains("id=\"confirm-cancel\""));
    assert_eq!(
        delivery_statuses(&app).await,
        vec!["pending"; 3],
        "asking changes nothing"
    );

    let cancelled = browser
        .post_form(&format!("/admin/digests/{id}/cancel"), &[])
        .await;
    assert_eq!(cancelled.status, 303, "{}", cancelled.body);
    assert!(
        cancelled
            .header("location")
            .unwrap()
            .ends_with("done=cancelled")
    );
    assert_eq!(delivery_statuses(&app).await, vec!["cancelled"; 3]);
    let finished: Vec<Option<NaiveDateTime>> = app
        .db(|c| {
            outbound_emails::table
                .select(outbound_emails::finished_at)
                .load(c)
        })
        .await;
    assert!(finished.iter().all(Option::is_some));

    let json = progress(&browser, id).await;
    assert_eq!(json["status"], "Cancelled", "{json}");
    assert_eq!(json["cancelled"], 3);
    assert_eq!(json["percent"], 100);
    let page = browser.get(&format!("/admin/digests/{id}")).await;
    assert!(
        page.body.contains(
            "<span id=\"progress-status\" class=\"badge badge--danger\">Cancelled</span>"
        )
    );
    assert!(page.body.contains("/cancel\" hidden"));

    let smtp = SmtpServer::start_on(port).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(smtp.message_count(), 0, "a cancelled send went out");
    assert_eq!(delivery_statuses(&app).await, vec!["cancelled"; 3]);

    let again = browser
        .post_form(&format!("/admin/digests/{id}/cancel"), &[])
        .await;
    assert_eq!(again.status, 303);
    assert!(
        again
            .header("location")
            .unwrap()
            .ends_with("done=already-cancelled")
    );
    for action in ["pause", "resume"] {
        let answer = browser
            .post_form(&format!("/admin/digests/{id}/{action}"), &[])
            .await;
        assert_eq!(answer.status, 409, "{action}");
        assert!(answer.body.contains("it was cancelled"), "{}", answer.body);
    }
    // "Send now" again queues nothing new.
    let (resend, again_id) = send_now(&browser).await;
    assert_eq!(again_id, id);
    assert!(
        resend
            .header("location")
            .unwrap()
            .ends_with("done=already-sent")
    );
    assert_eq!(delivery_statuses(&app).await, vec!["cancelled"; 3]);
}

#[tokio::test]
async fn the_cli_stops_with_a_reason_when_the_console_paused_or_cancelled_the_send() {
    let port = free_port();
    let app = spawn_app_with(Mail::Port(port), |_| {}).await;
    day_with_readers(&app, "cliwatch", 3).await;
    let browser = Browser::logged_in(&app).await;
    let (_, id) = send_now(&browser).await;
    let paused = browser
        .post_form(&format!("/admin/digests/{id}/pause"), &[])
        .await;
    assert_eq!(paused.status, 303);
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let env = [("SPACEDIGEST_SMTP_URL", smtp_url.as_str())];

    let out = tokio::time::timeout(
        Duration::from_secs(30),
        cli(&app, &["digest", "send", "--date", DAY], &env),
    )
    .await
    .expect("`digest send` does not wait on a paused send");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("paused from the console: 3 not yet sent; resume it there or run `digest send` again later"),
        "{stderr}"
    );
    let status = cli(&app, &["digest", "status", "--date", DAY], &env).await;
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("3 paused"), "{stdout}");
    assert!(stdout.contains("State: Paused"), "{stdout}");

    let cancelled = browser
        .post_form(&format!("/admin/digests/{id}/cancel"), &[])
        .await;
    assert_eq!(cancelled.status, 303);
    let out = cli(&app, &["digest", "send", "--date", DAY], &env).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cancelled from the console: 3 not sent"),
        "{stderr}"
    );
    let status = cli(&app, &["digest", "status", "--date", DAY], &env).await;
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("3 cancelled"), "{stdout}");
    assert!(stdout.contains("State: Cancelled"), "{stdout}");
}

#[tokio::test]
async fn forged_digest_actions_are_refused_and_change_nothing() {
    let app = spawn_app_with(Mail::Port(free_port()), |_| {}).await;
    day_with_readers(&app, "forged", 3).await;
    let browser = Browser::logged_in(&app).await;
    let fields = format!("newsletter=space-daily&date={DAY}");
    let forgeries = |path: &str| {
        [
            (path.to_owned(), fields.clone()),
            (path.to_owned(), format!("csrf_token=forged&{fields}")),
            (
                path.to_owned(),
                format!("{fields}&csrf_token={}", urlencode("A".repeat(43).as_str())),
            ),
        ]
    };
    for (path, body) in forgeries("/admin/digests/send") {
        let answer = browser.post_raw(&path, &body).await;
        assert_eq!(answer.status, 403, "{path} {body}: {}", answer.body);
    }
    assert_eq!(issue_count(&app).await, 0, "a forged send created an issue");
    assert!(delivery_statuses(&app).await.is_empty());

    let (_, id) = send_now(&browser).await;
    for action in ["pause", "cancel", "resume"] {
        for (path, body) in forgeries(&format!("/admin/digests/{id}/{action}")) {
            let answer = browser.post_raw(&path, &body).await;
            assert_eq!(answer.status, 403, "{path} {body}: {}", answer.body);
        }
        assert_eq!(
            delivery_statuses(&app).await,
            vec!["pending"; 3],
            "a forged {action} changed the send"
        );
    }
    // Paused for real: a forged resume or cancel leaves it paused.
    assert_eq!(
        browser
            .post_form(&format!("/admin/digests/{id}/pause"), &[])
            .await
            .status,
        303
    );
    for action in ["resume", "cancel"] {
        for (path, body) in forgeries(&format!("/admin/digests/{id}/{action}")) {
            assert_eq!(browser.post_raw(&path, &body).await.status, 403);
        }
        assert_eq!(delivery_statuses(&app).await, vec!["paused"; 3]);
    }
}

#[tokio::test]
async fn digest_pages_need_a_session_and_progress_json_answers_401() {
    let app = spawn_app_with(Mail::Port(free_port()), |_| {}).await;
    day_with_readers(&app, "nosession", 1).await;
    let browser = Browser::logged_in(&app).await;
    let (_, id) = send_now(&browser).await;

    let stranger = Browser::new(&app);
    for path in [
        "/admin/digests".to_owned(),
        format!("/admin/digests/preview?{DAY_QUERY}"),
        format!("/admin/digests/preview.html?{DAY_QUERY}"),
        format!("/admin/digests/send?{DAY_QUERY}"),
        format!("/admin/digests/{id}"),
        format!("/admin/digests/{id}?status=failed"),
        format!("/admin/digests/{id}/cancel"),
    ] {
        assert_sent_to_login(&stranger.get(&path).await, &path);
    }
    let json = stranger
        .get(&format!("/admin/digests/{id}/progress.json"))
        .await;
    assert_eq!(json.status, 401, "{}", json.body);
    assert!(
        json.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(json.json()["error"], "login_required");
    assert!(json.header("location").is_none());
    // Posts without a session are refused the same way (to the login page).
    for action in ["pause", "resume", "cancel"] {
        let answer = stranger
            .post_raw(&format!("/admin/digests/{id}/{action}"), "csrf_token=x")
            .await;
        assert_sent_to_login(&answer, action);
    }
    assert_eq!(delivery_statuses(&app).await, vec!["pending"]);
}

#[tokio::test]
async fn a_pause_stops_copies_the_worker_already_holds_within_a_moment() {
    // Two slow SMTP sessions: the worker claims chunks of 32 ahead of them, so most of
    // the list sits in its queue when the operator pauses.
    let app = spawn_app_with(Mail::Server, |s| {
        s.delivery.concurrency = 2;
        s.delivery.in_flight = 2;
    })
    .await;
    app.smtp()
        .set_behaviour(Behaviour::SlowDataReply(Duration::from_millis(100)));
    day_with_readers(&app, "held", 150).await;
    let browser = Browser::logged_in(&app).await;
    let (_, id) = send_now(&browser).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while app.smtp().message_count() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "nothing was sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let paused = browser
        .post_form(&format!("/admin/digests/{id}/pause"), &[])
        .await;
    assert_eq!(paused.status, 303, "{}", paused.body);
    let at_pause = app.smtp().message_count();
    // What was on the wire finishes; nothing queued behind it goes out.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = app.smtp().message_count();
    assert!(
        after - at_pause <= 16,
        "{} copies went out after the pause ({at_pause} before)",
        after - at_pause
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        app.smtp().message_count(),
        after,
        "sending went on while paused"
    );
    let json = progress(&browser, id).await;
    assert_eq!(json["status"], "Paused", "{json}");
    assert_eq!(json["sent"].as_u64().unwrap() as usize, after, "{json}");

    // Resumed: the held copies go out promptly (they were given back, not leased away),
    // each exactly once.
    app.smtp().set_behaviour(Behaviour::Accept);
    let resumed = browser
        .post_form(&format!("/admin/digests/{id}/resume"), &[])
        .await;
    assert_eq!(resumed.status, 303);
    let done = wait_for_status(&browser, id, "Delivered").await;
    assert_eq!(done["sent"], 150, "{done}");
    let mails = app.emails(150).await;
    let unique: std::collections::HashSet<_> = mails.iter().map(|m| m.rcpt_to[0].clone()).collect();
    assert_eq!(unique.len(), 150, "a reader got two copies");
}
