//! Double opt-in cannot be bypassed: a confirmation link confirms exactly the
//! subscriptions its email asked about. A stranger who signs a reader's address up for
//! other newsletters while the reader's own confirmation is pending gets the ordinary
//! answer, and no email goes out (the mailbox has had its email for now); that signup
//! then changes nothing, so the reader's click confirms only what they asked for.
//!
//! Time passes without waiting: the test moves the queued confirmation emails'
//! `created_at` back, which is what the per-mailbox limits read.

use crate::support::app::{TestApp, spawn_app, unique_email, urlencode};

/// Signs `email` up for these newsletters (slugs), through the form.
async fn sign_up_for(app: &TestApp, email: &str, newsletters: &[&str]) {
    let mut body = format!("email={}&name=Ada", urlencode(email));
    for slug in newsletters {
        body.push_str(&format!("&newsletters={slug}"));
    }
    let answer = app.post_subscriptions(&body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

/// The titles listed on the confirm page behind `link`.
async fn listed_on_the_confirm_page(app: &TestApp, link: &str) -> Vec<String> {
    let page = app.get(link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let Some(start) = page.body.find("<ul class=\"pill-list\">") else {
        return Vec::new();
    };
    let list = &page.body[start..];
    let list = &list[..list.find("</ul>").unwrap()];
    list.split("<li>")
        .skip(1)
        .map(|item| item[..item.find("</li>").unwrap()].trim().to_owned())
        .collect()
}

async fn with_three_newsletters() -> TestApp {
    let app = spawn_app().await;
    app.add_newsletter("mars-weekly", "Mars Weekly").await;
    app.add_newsletter("moon-monthly", "Moon Monthly").await;
    app
}

#[tokio::test]
async fn a_stranger_cannot_add_newsletters_to_a_readers_pending_confirmation() {
    let app = with_three_newsletters().await;
    let reader = unique_email();
    // The reader once read Moon Monthly and left it.
    sign_up_for(&app, &reader, &["moon-monthly"]).await;
    app.confirm_via(&app.confirmation_link(&app.emails(1).await[0]))
        .await;
    let welcome = app.emails(2).await.remove(1);
    let leave = welcome.header("List-Unsubscribe").unwrap();
    assert_eq!(
        app.post_raw(leave.trim_matches(['<', '>']), None, "")
            .await
            .status,
        200
    );
    app.age_confirmations(60).await;

    // Now they sign up for Space Daily; at once a stranger signs the same address up for
    // Mars Weekly and Moon Monthly, in another spelling of it too.
    sign_up_for(&app, &reader, &["space-daily"]).await;
    sign_up_for(&app, &reader, &["mars-weekly", "moon-monthly"]).await;
    sign_up_for(&app, &reader.to_uppercase(), &["mars-weekly"]).await;
    let confirmation = app.emails(3).await.remove(2);
    app.smtp()
        .assert_no_more_messages(3, std::time::Duration::from_millis(800))
        .await;
    let link = app.confirmation_link(&confirmation);
    let listed = listed_on_the_confirm_page(&app, &link).await;
    assert_eq!(app.confirm_via(&link).await.status, 200);
    let statuses = app.subscription_statuses(&reader).await;
    let welcome = app.emails(4).await.remove(3);
    crate::support::figures::report(
        "optin-bypass",
        &format!(
            "the reader asked for Space Daily (after leaving Moon Monthly); a stranger then \
             asked for Mars Weekly and Moon Monthly: the confirm page listed {listed:?}; after \
             the click the subscriptions are {statuses:?}; emails sent 4"
        ),
    );
    assert_eq!(listed, vec!["Space Daily".to_owned()]);
    assert_eq!(
        statuses,
        vec![
            ("space-daily".into(), "confirmed".into()),
            ("moon-monthly".into(), "unsubscribed".into()),
        ],
        "the reader is on the list they asked for and no other"
    );
    let text = welcome.text_body();
    assert!(text.contains("Space Daily"), "{text}");
    assert!(
        !text.contains("Mars Weekly") && !text.contains("Moon Monthly"),
        "{text}"
    );
}

#[tokio::test]
async fn asking_for_more_after_the_resend_interval_sends_a_link_for_the_new_set() {
    let app = with_three_newsletters().await;
    let reader = unique_email();
    sign_up_for(&app, &reader, &["space-daily"]).await;
    let first = app.confirmation_link(&app.emails(1).await[0]);
    app.age_confirmations(11).await;

    sign_up_for(&app, &reader, &["mars-weekly"]).await;
    let second = app.emails(2).await.remove(1);
    // The email lists everything that awaits confirmation, and its link confirms that.
    let text = second.text_body();
    assert!(
        text.contains("Space Daily") && text.contains("Mars Weekly"),
        "{text}"
    );
    assert!(!text.contains("Moon Monthly"), "{text}");
    let link = app.confirmation_link(&second);
    assert_eq!(
        listed_on_the_confirm_page(&app, &link).await,
        vec!["Space Daily".to_owned(), "Mars Weekly".to_owned()]
    );
    assert_eq!(
        app.get(&first).await.status,
        404,
        "the first link was replaced"
    );
    assert_eq!(app.confirm_via(&link).await.status, 200);
    assert_eq!(
        app.subscription_statuses(&reader).await,
        vec![
            ("space-daily".into(), "confirmed".into()),
            ("mars-weekly".into(), "confirmed".into()),
        ]
    );
}

#[tokio::test]
async fn the_confirm_page_names_exactly_the_newsletters_its_button_confirms() {
    let app = with_three_newsletters().await;
    let reader = unique_email();
    sign_up_for(&app, &reader, &["moon-monthly", "space-daily"]).await;
    let link = app.confirmation_link(&app.emails(1).await[0]);
    assert_eq!(
        listed_on_the_confirm_page(&app, &link).await,
        vec!["Space Daily".to_owned(), "Moon Monthly".to_owned()]
    );
    // Showing the page changed nothing; the button confirms just those.
    assert_eq!(
        app.subscription_statuses(&reader).await,
        vec![
            ("space-daily".into(), "pending".into()),
            ("moon-monthly".into(), "pending".into()),
        ]
    );
    app.confirm_via(&link).await;
    assert_eq!(
        app.subscription_statuses(&reader).await,
        vec![
            ("space-daily".into(), "confirmed".into()),
            ("moon-monthly".into(), "confirmed".into()),
        ]
    );
}
