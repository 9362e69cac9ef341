//! The dashboard: counts, the 30-day chart, queue health and the latest digests.

use diesel::prelude::*;
use spacedigest::db::outbound::{self, NewOutboundEmail};
use spacedigest::db::schema::outbound_emails;
use spacedigest::db::states::{EmailKind, EmailStatus};
use spacedigest::db::{self, subscribers, subscriptions};

use super::{Browser, assert_sent_to_login};
use crate::support::app::{TestApp, spawn_app, unique_email};
use crate::support::{add_story, cli};

async fn queue_row(app: &TestApp, status: EmailStatus, attempts: i32, finished: bool) {
    app.db(move |conn| {
        let now = db::now();
        let id = outbound::enqueue(
            conn,
            &NewOutboundEmail {
                kind: EmailKind::Confirmation,
                subscriber_id: None,
                recipient_email: "queue-test@example.com",
                recipient_name: None,
                subject: "Queue test",
                body_text: "",
                body_html: "",
                list_unsubscribe: None,
                message_id: &format!("queue-test-{status}-{attempts}@spacedigest.test"),
                status,
                // Far ahead, so the worker leaves it alone during the test.
                next_attempt_at: now + chrono::Duration::days(30),
                created_at: now - chrono::Duration::minutes(90),
            },
        )?;
        diesel::update(outbound_emails::table.find(id))
            .set((
                outbound_emails::attempts.eq(attempts),
                outbound_emails::finished_at.eq(finished.then_some(now)),
            ))
            .execute(conn)
            .map(|_| ())
    })
    .await;
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let at = body
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {body}"));
    let rest = &body[at + start.len()..];
    &rest[..rest.find(end).unwrap()]
}

#[tokio::test]
async fn the_dashboard_shows_counts_the_chart_the_queue_and_the_latest_digests() {
    let app = spawn_app().await;
    assert_sent_to_login(&Browser::new(&app).get("/admin").await, "the dashboard");

    // Three readers sign up; two confirm; one of those leaves again.
    let emails: Vec<String> = (0..3).map(|_| unique_email()).collect();
    for email in &emails {
        app.sign_up(email).await;
    }
    let confirmations = app.emails(3).await;
    for email in &emails[..2] {
        let mail = confirmations
            .iter()
            .find(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(email)))
            .expect("a confirmation email");
        let answer = app.confirm_via(&app.confirmation_link(mail)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let key = emails[1].clone();
    app.db(move |conn| {
        let subscriber = subscribers::find_by_key(conn, &key)?.unwrap();
        subscriptions::unsubscribe_all(conn, subscriber.id, db::now())
    })
    .await;
    // The first also awaits confirmation of a second newsletter: still one person.
    app.add_newsletter("mars-weekly", "Mars Weekly").await;
    let key = emails[0].clone();
    app.db(move |conn| {
        let subscriber = subscribers::find_by_key(conn, &key)?.unwrap();
        let mars = db::newsletters::by_slugs(conn, &["mars-weekly".to_owned()])?;
        crate::support::rows::insert_pending(conn, subscriber.id, mars[0].id, db::now())
    })
    .await;
    app.wait_until_queue_settles().await;

    // A digest goes out to the one remaining reader.
    let today = chrono::Utc::now().naive_utc();
    add_story(&app, "Launch window opens", "<p>Go for launch.</p>", today).await;
    let out = cli(&app, &["digest", "send"], &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // And the queue holds one of each state the dashboard counts.
    queue_row(&app, EmailStatus::Pending, 0, false).await;
    queue_row(&app, EmailStatus::Pending, 2, false).await;
    queue_row(&app, EmailStatus::Paused, 0, false).await;
    queue_row(&app, EmailStatus::Failed, 5, true).await;

    let browser = Browser::logged_in(&app).await;
    let page = browser.get("/admin").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    assert!(body.contains(r#"id="people-total">3<"#), "{body}");
    assert!(body.contains(r#"id="people-confirmed">1<"#), "{body}");
    assert!(body.contains(r#"id="people-pending">1<"#), "{body}");
    assert!(body.contains(r#"id="people-unsubscribed">1<"#), "{body}");
    let by_newsletter = between(body, r#"id="by-newsletter""#, "</table>");
    assert!(by_newsletter.contains("Space Daily"));
    assert!(
        by_newsletter.contains(
            r#"<th scope="row">Mars Weekly</th>
          <td class="num">0</td>
          <td class="num">1</td>
          <td class="num">0</td>
          <td class="num">1</td>"#
        ),
        "{by_newsletter}"
    );
    assert!(
        by_newsletter.contains(
            r#"<td class="num">1</td>
          <td class="num">1</td>
          <td class="num">1</td>
          <td class="num">3</td>"#
        ),
        "{by_newsletter}"
    );

    // The chart: an image with a title and description, one bar group per day.
    let svg = between(body, "<svg class=\"chart\"", "</svg>");
    assert!(svg.contains(r#"role="img""#));
    assert!(svg.contains(r#"aria-labelledby="chart-title chart-desc""#));
    assert_eq!(svg.matches(r#"<g class="chart__day""#).count(), 30);
    assert_eq!(svg.matches("bar--signups").count(), 30);
    assert_eq!(svg.matches("bar--unsubs").count(), 30);
    let day = today.format("%Y-%m-%d").to_string();
    assert!(
        svg.contains(&format!("{day}: 4 signups, 1 unsubscribe<")),
        "{svg}"
    );
    // The same figures as a table, for screen readers.
    let table = between(body, r#"id="movement-table""#, "</table>");
    assert!(table.contains(&format!(
        r#"<th scope="row" class="nowrap">{day}</th><td class="num">4</td><td class="num">1</td>"#
    )));
    assert!(
        !body.contains("style="),
        "inline styles break the console's CSP"
    );

    for (id, expected) in [
        ("queue-queued", "1"),
        ("queue-retrying", "1"),
        ("queue-paused", "1"),
        ("queue-failed-recent", "1"),
        ("queue-failed-total", "1"),
    ] {
        assert!(
            body.contains(&format!(r#"id="{id}">{expected}<"#)),
            "{id}: {body}"
        );
    }
    let oldest = between(body, r#"id="queue-oldest">"#, "<");
    assert!(oldest.starts_with("1 h 3"), "oldest pending: {oldest}");

    let digests = between(body, r#"id="recent-digests""#, "</table>");
    assert!(digests.contains("href=\"/admin/digests/"), "{digests}");
    assert!(digests.contains(&day));
}
