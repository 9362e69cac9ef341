//! The public pages themselves.

use crate::support::app::spawn_app;

#[tokio::test]
async fn the_signup_page_has_the_form_and_security_headers() {
    let app = spawn_app().await;
    let page = app.get("/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("Subscribe Free To Our Daily Newsletters")
    );
    for needle in [
        "action=\"/subscriptions\"",
        "name=\"email\"",
        "name=\"name\"",
        "name=\"newsletters\"",
        "Space Daily",
        "name=\"website\"",
        "viewport",
    ] {
        assert!(page.body.contains(needle), "missing {needle}");
    }
    assert!(!page.body.contains("<script"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(
        page.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert!(page.header("referrer-policy").is_some());

    let css = app.get("/static/style.css").await;
    assert_eq!(css.status, 200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert!(css.body.contains("@media"), "the page is responsive");
}

#[tokio::test]
async fn health_check_and_unknown_pages() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health_check").await.status, 200);
    let missing = app.get("/no/such/page").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("href=\"/\""));
}

#[tokio::test]
async fn scripts_on_other_sites_may_post_signups() {
    let app = spawn_app().await;
    let preflight = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/subscriptions", app.address),
        )
        .header("origin", "https://news.example.org")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight
        .headers()
        .get("access-control-allow-origin")
        .unwrap();
    assert!(allowed == "*" || allowed == "https://news.example.org");
    assert!(
        preflight
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
}
