//! The console end to end in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), with JavaScript on, as an operator uses it. Also runs axe-core, an
//! automated accessibility checker, on every console page it passes.
//!
//! Needs Debian's `chromium` and `chromium-driver`, and axe-core from npm in
//! `tests/browser/node_modules` (`.ci/run` installs all three). The tests run when
//! `SPACEDIGEST_REQUIRE_BROWSER_TEST=1` (set by `.ci/run`), and then a missing tool fails
//! them; without it `cargo test` reports them as ignored, with that reason (`build.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::json;

use super::digests::{day_with_readers, send_now};
use super::{OPERATOR_EMAIL, OPERATOR_PASSWORD, create_operator};
use crate::support::app::{Mail, TestApp, spawn_app, spawn_app_with, unique_email};
use crate::support::smtp_server::{SmtpServer, free_port};

struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    axe: PathBuf,
}

fn find_program(variable: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(variable) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in candidates {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn find_tools() -> Result<Tools, String> {
    let chromium = find_program("SPACEDIGEST_CHROMIUM", &["chromium", "chromium-browser"])
        .ok_or("no chromium on PATH (Debian: apt-get install chromium)")?;
    let chromedriver = find_program("SPACEDIGEST_CHROMEDRIVER", &["chromedriver"])
        .ok_or("no chromedriver on PATH (Debian: apt-get install chromium-driver)")?;
    let axe = std::env::var("SPACEDIGEST_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/browser/node_modules/axe-core/axe.min.js")
        });
    if !axe.is_file() {
        return Err(format!(
            "no axe-core at {} (run: npm install --prefix tests/browser)",
            axe.display()
        ));
    }
    Ok(Tools {
        chromium,
        chromedriver,
        axe,
    })
}

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(tools: &Tools) -> Driver {
    let port = free_port();
    let child = Command::new(&tools.chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let status = format!("{}/status", driver.url);
    for _ in 0..100 {
        if reqwest::get(&status)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {}", driver.url);
}

async fn open_browser(tools: &Tools, driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": tools.chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--no-first-run", "--disable-extensions"],
        }),
    );
    // chromedriver is on 127.0.0.1: plain HTTP, no TLS stack needed.
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

/// A headless Chromium session for one test, with axe-core at hand.
struct Chrome {
    client: Client,
    axe: String,
    _driver: Driver,
}

/// Starts Chromium; fails the test, saying what is missing, when it cannot.
async fn chrome() -> Chrome {
    let tools =
        find_tools().unwrap_or_else(|reason| panic!("the browser test cannot run: {reason}"));
    let axe = std::fs::read_to_string(&tools.axe).expect("axe-core is readable");
    let driver = start_driver(&tools).await;
    let client = open_browser(&tools, &driver).await;
    Chrome {
        client,
        axe,
        _driver: driver,
    }
}

impl Chrome {
    /// Closes the browser whatever happened in `outcome`, then reports it.
    async fn finish(self, outcome: std::thread::Result<()>) {
        self.client.close().await.ok();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn shown(&self, css: &str) -> bool {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .is_displayed()
            .await
            .unwrap()
    }

    async fn type_into(&self, id: &str, text: &str) {
        self.client
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .send_keys(text)
            .await
            .unwrap();
    }

    async fn click(&self, locator: Locator<'_>) {
        self.client
            .find(locator)
            .await
            .unwrap_or_else(|e| panic!("nothing to click: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn log_in(&self, base: &str) {
        self.goto(&format!("{base}/admin/login")).await;
        self.type_into("email", OPERATOR_EMAIL).await;
        self.type_into("password", OPERATOR_PASSWORD).await;
        self.click(Locator::Css(
            "form[action='/admin/login'] button[type=submit]",
        ))
        .await;
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_url(&format!("{base}/admin").parse().unwrap())
            .await
            .expect("the dashboard after login");
    }

    /// Runs axe-core on the current page (WCAG 2.1 A and AA, plus landmark best
    /// practices) and fails with the violations listed.
    async fn assert_accessible(&self, page: &str) {
        self.client
            .execute(&format!("{}\nreturn true;", self.axe), vec![])
            .await
            .expect("axe-core loads");
        let result = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
               axe.run(document, {
                 runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }
               }).then(r => done(r.violations.map(v => ({
                 id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))
               })))).catch(e => done([{ id: 'axe-error', help: String(e), nodes: [] }]));"#,
                vec![],
            )
            .await
            .expect("axe-core runs");
        let violations = result.as_array().cloned().unwrap_or_default();
        assert!(
            violations.is_empty(),
            "accessibility violations on {page}:\n{}",
            serde_json::to_string_pretty(&violations).unwrap()
        );
        println!("axe: no violations on {page}");
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = artifacts_dir().join(name);
        std::fs::write(&path, png).expect("the screenshot is saved");
        println!("screenshot: {}", path.display());
    }

    /// Waits up to 20 s for `check`.
    async fn eventually<Fut: std::future::Future<Output = bool>>(
        &self,
        what: &str,
        mut check: impl FnMut() -> Fut,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn artifacts_dir() -> PathBuf {
    let dir = std::env::var("SPACEDIGEST_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts"));
    std::fs::create_dir_all(&dir).expect("the artifacts directory");
    dir
}

async fn confirmed_reader(app: &TestApp, already: usize) -> String {
    let email = unique_email();
    app.sign_up(&email).await;
    let mails = app.emails(already + 1).await;
    let confirmation = mails
        .iter()
        .find(|m| m.recipients().contains(&email))
        .expect("the confirmation email");
    let link = app.confirmation_link(confirmation);
    assert_eq!(app.confirm_via(&link).await.status, 200);
    email
}

#[tokio::test]
#[cfg_attr(
    not(spacedigest_browser_test),
    ignore = "needs Chromium, chromedriver and axe-core: runs when \
              SPACEDIGEST_REQUIRE_BROWSER_TEST=1 (as .ci/run sets it)"
)]
async fn an_operator_logs_in_adds_a_story_previews_and_sends_the_digest_in_a_browser() {
    let chrome = chrome().await;
    let app = spawn_app().await;
    create_operator(&app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    // Two confirmed readers: each got a confirmation and a welcome email.
    let first = confirmed_reader(&app, 0).await;
    app.emails(2).await;
    let second = confirmed_reader(&app, 2).await;
    app.emails(4).await;
    let base = app.address.clone();

    let b = &chrome;
    let outcome = std::panic::AssertUnwindSafe(async move {
        // The public page passes the same check.
        b.goto(&format!("{base}/")).await;
        b.assert_accessible("/").await;

        // Log in.
        b.goto(&format!("{base}/admin")).await;
        assert_eq!(b.client.current_url().await.unwrap().path(), "/admin/login");
        b.assert_accessible("/admin/login").await;
        b.log_in(&base).await;
        assert!(b.text("h1").await.contains("Dashboard"));
        b.assert_accessible("/admin").await;
        b.screenshot("dashboard.png").await;

        // Every other console page passes the accessibility check too.
        for path in [
            "/admin/stories",
            "/admin/stories/new",
            "/admin/stories/import",
            "/admin/feeds",
            "/admin/digests",
            "/admin/subscribers",
            "/admin/subscribers/import",
            "/admin/newsletters",
            "/admin/newsletters/new",
            "/admin/account",
        ] {
            b.goto(&format!("{base}{path}")).await;
            assert_eq!(b.client.current_url().await.unwrap().path(), path);
            let heading = b.text("h1").await;
            assert!(
                !heading.to_lowercase().contains("not found"),
                "{path}: {heading}"
            );
            b.assert_accessible(path).await;
        }

        // Add a story (published now, so it is in today's digest).
        b.goto(&format!("{base}/admin/stories/new")).await;
        let title = "Europa Clipper returns its first close-up of the ice shell";
        b.type_into("title", title).await;
        b.type_into("url", "https://science.example.com/europa-clipper-ice")
            .await;
        b.type_into(
            "summary",
            "The spacecraft's radar sounded the ice to a depth of 30 km.",
        )
        .await;
        b.click(Locator::XPath("//button[normalize-space()='Add story']"))
            .await;
        b.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath(&format!("//*[contains(text(), '{title}')]")))
            .await
            .expect("the new story is listed");

        // Preview today's digest.
        b.goto(&format!("{base}/admin/digests")).await;
        b.click(Locator::Css(
            "form[action='/admin/digests/preview'] button[type=submit]",
        ))
        .await;
        let frame = b
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("digest-preview"))
            .await
            .expect("the preview frame");
        b.assert_accessible("/admin/digests/preview").await;
        b.screenshot("digest-preview.png").await;
        frame.enter_frame().await.unwrap();
        let in_frame = b.text("body").await;
        assert!(
            in_frame.contains(title),
            "the preview shows the story: {in_frame}"
        );
        b.client.enter_parent_frame().await.unwrap();

        // Send it, confirming first.
        b.click(Locator::Css("a[href^='/admin/digests/send']"))
            .await;
        let confirm = b
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("confirm-send"))
            .await
            .expect("the confirmation step");
        assert!(
            confirm.text().await.unwrap().contains('2'),
            "it says 2 readers"
        );
        b.assert_accessible("/admin/digests/send").await;
        confirm.click().await.unwrap();
        b.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("progress-percent"))
            .await
            .expect("the progress view");
        // A marker that a full page load would wipe: the figures must update in place.
        b.client
            .execute("window.spacedigestMarker = 42; return true;", vec![])
            .await
            .unwrap();
        b.eventually("the progress never reached 100% Delivered", || async {
            b.text("#progress-percent").await.trim() == "100%"
                && b.text("#progress-status").await.trim() == "Delivered"
        })
        .await;
        let marker = b
            .client
            .execute("return window.spacedigestMarker;", vec![])
            .await
            .unwrap();
        assert_eq!(marker, json!(42), "the page reloaded instead of updating");
        assert_eq!(b.text("#progress-sent").await.trim(), "2");
        b.assert_accessible("/admin/digests/{id}").await;
        b.screenshot("send-progress.png").await;
    })
    .catch_unwind()
    .await;
    chrome.finish(outcome).await;

    // The test's SMTP server received the digest, once per reader.
    let mails = app.emails(6).await;
    for reader in [&first, &second] {
        let digests: Vec<_> = mails
            .iter()
            .filter(|m| m.recipients().contains(reader.as_str()))
            .filter(|m| m.html_body().contains("Europa Clipper"))
            .collect();
        assert_eq!(digests.len(), 1, "digests to {reader}");
        assert!(digests[0].header("List-Unsubscribe-Post").is_some());
    }
    app.smtp()
        .assert_no_more_messages(6, Duration::from_millis(500))
        .await;
}

#[tokio::test]
#[cfg_attr(
    not(spacedigest_browser_test),
    ignore = "needs Chromium, chromedriver and axe-core: runs when \
              SPACEDIGEST_REQUIRE_BROWSER_TEST=1 (as .ci/run sets it)"
)]
async fn an_open_progress_page_follows_a_paused_send_to_delivered_without_a_reload() {
    let chrome = chrome().await;
    let port = free_port();
    let app = spawn_app_with(Mail::Port(port), |_| {}).await;
    day_with_readers(&app, "live", 3).await;
    let operator = super::Browser::logged_in(&app).await;
    let (_, id) = send_now(&operator).await;
    operator
        .post_form(&format!("/admin/digests/{id}/pause"), &[])
        .await;
    let base = app.address.clone();

    let b = &chrome;
    let outcome = std::panic::AssertUnwindSafe(async move {
        b.log_in(&base).await;
        b.goto(&format!("{base}/admin/digests/{id}")).await;
        b.client
            .execute("window.samePage = true; return null;", vec![])
            .await
            .unwrap();
        b.eventually("the script never ran", || async {
            !b.shown("#progress-refresh").await
        })
        .await;
        assert_eq!(b.text("#progress-status").await, "Paused");
        assert!(b.shown("#resume-send").await);
        assert!(!b.shown("#pause-send").await);
        assert!(b.shown("#cancel-send").await);
        b.assert_accessible("/admin/digests/{id} (paused)").await;
        b.screenshot("send-progress-paused.png").await;

        // Resumed elsewhere and delivered: the open page follows without a reload.
        let smtp = SmtpServer::start_on(port).await;
        operator
            .post_form(&format!("/admin/digests/{id}/resume"), &[])
            .await;
        smtp.wait_for_messages(3, Duration::from_secs(15)).await;
        b.eventually("the page never showed Delivered", || async {
            b.text("#progress-status").await == "Delivered"
        })
        .await;
        assert_eq!(b.text("#progress-percent").await, "100%");
        assert_eq!(b.text("#progress-sent").await, "3");
        assert_eq!(b.text("#progress-remaining").await, "0");
        assert!(!b.shown("#pause-send").await);
        assert!(!b.shown("#resume-send").await);
        assert!(!b.shown("#cancel-send").await);
        assert!(
            b.shown("#recipients-stale").await,
            "the stale list is not pointed out"
        );
        let state = b
            .client
            .execute(
                "var p = document.getElementById('send-progress'); \
                     return [window.samePage === true, p.value, p.max];",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            state,
            json!([true, 3, 3]),
            "the page reloaded, or the bar is off"
        );
        b.screenshot("send-progress-delivered.png").await;
    })
    .catch_unwind()
    .await;
    chrome.finish(outcome).await;
}
