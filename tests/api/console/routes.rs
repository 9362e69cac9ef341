//! Rules every console route keeps, checked over the whole list of routes: pages need a
//! session, state changes need the CSRF token, and only the live progress uses script.
//! Each area's own tests check that a refused request changed nothing.

use super::{Browser, assert_sent_to_login};
use crate::support::app::spawn_app;

/// Every console page (GET), with ids that exist in the test below.
const PAGES: &[&str] = &[
    "/admin",
    "/admin/account",
    "/admin/stories",
    "/admin/stories/new",
    "/admin/stories/import",
    "/admin/stories/{story}/edit",
    "/admin/feeds",
    "/admin/digests",
    "/admin/digests/preview?newsletter=space-daily",
    "/admin/digests/preview.html?newsletter=space-daily",
    "/admin/digests/send?newsletter=space-daily",
    "/admin/digests/{issue}",
    "/admin/subscribers",
    "/admin/subscribers/{subscriber}",
    "/admin/subscribers/{subscriber}/erase",
    "/admin/subscribers/import",
    "/admin/subscribers/export.csv",
    "/admin/newsletters",
    "/admin/newsletters/new",
    "/admin/newsletters/{newsletter}/edit",
];

/// Every state-changing console route (POST), login excepted (it has its own test).
const ACTIONS: &[&str] = &[
    "/admin/logout",
    "/admin/account/password",
    "/admin/stories",
    "/admin/stories/{story}",
    "/admin/stories/{story}/delete",
    "/admin/stories/import",
    "/admin/stories/import/upload",
    "/admin/feeds",
    "/admin/feeds/{feed}/delete",
    "/admin/feeds/{feed}/poll",
    "/admin/digests/send",
    "/admin/digests/{issue}/pause",
    "/admin/digests/{issue}/resume",
    "/admin/digests/{issue}/cancel",
    "/admin/subscribers/{subscriber}/unsubscribe",
    "/admin/subscribers/{subscriber}/erase",
    "/admin/subscribers/import",
    "/admin/newsletters",
    "/admin/newsletters/{newsletter}",
];

fn fill(path: &str) -> String {
    path.replace("{story}", "1")
        .replace("{feed}", "1")
        .replace("{issue}", "1")
        .replace("{subscriber}", "1")
        .replace("{newsletter}", "1")
}

#[tokio::test]
async fn every_console_page_needs_a_session() {
    let app = spawn_app().await;
    let stranger = Browser::new(&app);
    for page in PAGES {
        let path = fill(page);
        assert_sent_to_login(&stranger.get(&path).await, &path);
    }
    for action in ACTIONS {
        let path = fill(action);
        let answer = stranger.post_raw(&path, "csrf_token=x").await;
        assert!(
            answer.status == 303 || answer.status == 403,
            "{path} without a session: {}",
            answer.status
        );
    }
}

#[tokio::test]
async fn every_state_changing_console_route_refuses_a_missing_or_wrong_csrf_token() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    for action in ACTIONS {
        let path = fill(action);
        for body in [
            "",
            "csrf_token=",
            "csrf_token=not-the-token",
            "title=x&email=a%40b.c",
        ] {
            let answer = browser.post_raw(&path, body).await;
            assert_eq!(answer.status, 403, "{path} with {body:?}: {}", answer.body);
        }
        let multipart = reqwest::multipart::Form::new()
            .text("csrf_token", "not-the-token")
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"email\na@b.c\n".to_vec()).file_name("x.csv"),
            );
        let answer = browser
            .client
            .post(format!("{}{path}", app.address))
            .multipart(multipart)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{path} with a forged multipart form");
    }
    // Still logged in: none of that ended the session.
    assert_eq!(browser.get("/admin/account").await.status, 200);
}

#[tokio::test]
async fn console_pages_use_no_script_except_the_live_progress() {
    let app = spawn_app().await;
    let browser = Browser::logged_in(&app).await;
    for page in PAGES {
        if page.contains('{') || page.ends_with(".csv") || page.contains("preview.html") {
            continue;
        }
        let answer = browser.get(page).await;
        assert_eq!(answer.status, 200, "{page}: {}", answer.body);
        assert!(
            !answer.body.contains("<script"),
            "{page} uses script; only the progress view may"
        );
        assert!(
            !answer.body.contains(" style=\""),
            "{page} has inline style"
        );
    }
}
