//! The operator console, driven over HTTP as a browser would (cookies, forms, CSRF
//! tokens read from the pages), plus the journeys in a real headless Chromium.

mod auth;
mod browser;
mod dashboard;
mod digests;
mod feeds;
mod newsletters;
mod routes;
mod stories;
mod subscribers;

use spacedigest::console::OperatorPassword;
use spacedigest::db::{self, operators};

use crate::support::app::{Answer, TestApp, hidden_field, urlencode};

/// The operator every console test logs in as.
pub const OPERATOR_EMAIL: &str = "ops@spacedigest.test";
/// Their password.
pub const OPERATOR_PASSWORD: &str = "orbital tangerine lighthouse 47";

/// Creates an operator account directly in the database.
pub async fn create_operator(app: &TestApp, email: &'static str, password: &'static str) {
    let hash = OperatorPassword::parse(password, email)
        .expect("a strong test password")
        .hash()
        .await
        .expect("a turn to hash");
    app.db(move |conn| operators::create(conn, email, &hash, db::now()).map(|_| ()))
        .await;
}

/// A browser: its own cookie jar, no automatic redirects.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub client: reqwest::Client,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            // A fresh connection per request: the server closes a connection whose
            // request body it did not read (a POST refused before its body), and an idle
            // one after its keep-alive; reusing either races that close.
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    /// A browser logged in as the test operator (created first if needed).
    pub async fn logged_in(app: &'a TestApp) -> Self {
        let exists = app
            .db(|conn| operators::find_by_email(conn, OPERATOR_EMAIL))
            .await
            .is_some();
        if !exists {
            create_operator(app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
        }
        let browser = Self::new(app);
        let answer = browser.log_in(OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
        assert_eq!(answer.status, 303, "login failed: {}", answer.body);
        assert_eq!(answer.header("location").as_deref(), Some("/admin"));
        browser
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.app.address, path)
    }

    pub async fn get(&self, path: &str) -> Answer {
        Answer::from(self.client.get(self.url(path)).send().await.unwrap()).await
    }

    /// Posts a urlencoded form exactly as given (no token added).
    pub async fn post_raw(&self, path: &str, body: &str) -> Answer {
        Answer::from(
            self.client
                .post(self.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.to_owned())
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts `fields` with the session's CSRF token added, as the page's form would.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let token = self.csrf_token().await;
        let mut body = format!("csrf_token={}", urlencode(&token));
        for (name, value) in fields {
            body.push_str(&format!("&{}={}", urlencode(name), urlencode(value)));
        }
        self.post_raw(path, &body).await
    }

    /// Posts a multipart form (fields, then one file) with the CSRF token first.
    pub async fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, &str, Vec<u8>)>,
    ) -> Answer {
        let token = self.csrf_token().await;
        let mut form = reqwest::multipart::Form::new().text("csrf_token", token);
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        if let Some((name, filename, data)) = file {
            form = form.part(
                name.to_owned(),
                reqwest::multipart::Part::bytes(data).file_name(filename.to_owned()),
            );
        }
        Answer::from(
            self.client
                .post(self.url(path))
                .multipart(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The session's CSRF token, as the account page's form carries it.
    pub async fn csrf_token(&self) -> String {
        let page = self.get("/admin/account").await;
        assert_eq!(page.status, 200, "the account page: {}", page.body);
        hidden_field(&page.body, "csrf_token")
    }

    /// Opens the login page and submits it.
    pub async fn log_in(&self, email: &str, password: &str) -> Answer {
        let page = self.get("/admin/login").await;
        assert_eq!(page.status, 200, "the login page: {}", page.body);
        let token = hidden_field(&page.body, "csrf_token");
        self.post_raw(
            "/admin/login",
            &format!(
                "csrf_token={}&email={}&password={}",
                urlencode(&token),
                urlencode(email),
                urlencode(password)
            ),
        )
        .await
    }
}

/// Asserts that a GET ended at the login page (no session).
pub fn assert_sent_to_login(answer: &Answer, what: &str) {
    assert_eq!(answer.status, 303, "{what}: {}", answer.body);
    assert_eq!(
        answer.header("location").as_deref(),
        Some("/admin/login"),
        "{what}"
    );
}
