//! The console shows a subscriber's bounces and complaints, the bounced mark and the
//! score, and lets the operator clear the mark (CSRF-checked, recorded in the history).

use serde_json::json;

use super::webhook::{TOKEN, app_with_webhook, post_reports};
use super::{events, standing, subscriber_id};
use crate::console::Browser;
use crate::support::add_confirmed_readers;

#[tokio::test]
async fn the_history_shows_bounces_and_complaints_and_the_mark_can_be_cleared() {
    let app = app_with_webhook().await;
    let readers = add_confirmed_readers(&app, "history", 2).await;
    let bearer = format!("Bearer {TOKEN}");
    let answer = post_reports(
        &app,
        Some(&bearer),
        &json!({"reports": [
            {"email": readers[0], "type": "soft", "reason": "452 mailbox full"},
            {"email": readers[0], "type": "hard", "reason": "550 5.1.1 <x> user unknown"},
            {"email": readers[1], "type": "complaint", "reason": "marked as spam"},
        ]}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let browser = Browser::logged_in(&app).await;
    let bounced = subscriber_id(&app, &readers[0]).await;
    let page = browser.get(&format!("/admin/subscribers/{bounced}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let panel = &page.body[page.body.find("id=\"bounces-title\"").expect("the panel")..];
    assert!(panel.contains(">bounced</span> since"), "{panel}");
    assert!(panel.contains("1.5 "), "score 1.5: {panel}");
    assert!(
        panel.contains("550 5.1.1 &#60;x&#62; user unknown"),
        "{panel}"
    );
    assert!(!panel.contains("<x>"), "the reason is escaped");
    assert!(panel.contains("452 mailbox full"), "{panel}");
    assert!(panel.contains("bounce webhook"), "{panel}");
    let dashboard = browser.get("/admin").await;
    assert!(
        dashboard
            .body
            .contains("id=\"people-bounced\">1 marked bounced"),
        "{}",
        dashboard.body
    );

    let complainer = subscriber_id(&app, &readers[1]).await;
    let page = browser
        .get(&format!("/admin/subscribers/{complainer}"))
        .await;
    assert!(page.body.contains(">complaint</span>"), "{}", page.body);
    assert!(page.body.contains("marked as spam"));
    assert!(
        page.body.contains(">unsubscribed</span>"),
        "the complaint unsubscribed them"
    );

    // Without the CSRF token nothing changes.
    let forged = browser
        .post_raw(&format!("/admin/subscribers/{bounced}/clear-bounce"), "")
        .await;
    assert!(
        forged.status == 403 || forged.status == 400,
        "{}",
        forged.status
    );
    assert!(standing(&app, &readers[0]).await.bounced_at.is_some());

    let cleared = browser
        .post_form(&format!("/admin/subscribers/{bounced}/clear-bounce"), &[])
        .await;
    assert_eq!(cleared.status, 303, "{}", cleared.body);
    let location = cleared.header("location").unwrap();
    let page = browser.get(&location).await;
    assert!(page.body.contains("Bounced mark cleared"), "{}", page.body);
    assert!(page.body.contains(">receiving</span>"), "{}", page.body);
    assert!(page.body.contains(">cleared</span>"), "{}", page.body);
    let after = standing(&app, &readers[0]).await;
    assert_eq!((after.bounced_at, after.hard, after.soft), (None, 0, 0));
    assert_eq!(
        events(&app).await.last().unwrap(),
        &(
            readers[0].clone(),
            "cleared".to_owned(),
            "console".to_owned()
        )
    );
}
