//! The black-box harness: each test gets the app on port 0, its own database (a SQLite
//! file, or a fresh PostgreSQL database when `SPACEDIGEST_TEST_POSTGRES_URL` is set) and
//! its own real SMTP server on 127.0.0.1.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use diesel::prelude::*;
use spacedigest::app::Application;
use spacedigest::config::{DatabaseUrl, Settings, SmtpUrl};
use spacedigest::db::{self, Pool};

use crate::support::smtp_server::{ReceivedMessage, SmtpServer};

/// The variable naming the PostgreSQL server the suite may use.
pub const POSTGRES_URL_VAR: &str = "SPACEDIGEST_TEST_POSTGRES_URL";

/// Which backend this run of the suite uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

/// The second guard of a test for one backend only: such a test carries
/// `#[cfg_attr(not(spacedigest_test_backend = "…"), ignore = "…")]` (`build.rs` sets the
/// cfg from the same variable), so in the other backend's pass it reports as ignored. This
/// fails it, with the reason, when it runs there anyway: under `--include-ignored`, or a
/// test binary run by hand with another environment than it was built with.
pub fn require_backend(wanted: Backend) {
    let (only, how) = match wanted {
        Backend::Postgres => ("PostgreSQL", "set"),
        Backend::Sqlite => ("SQLite", "unset"),
    };
    assert_eq!(
        backend(),
        wanted,
        "this test applies to {only} only: run it with {POSTGRES_URL_VAR} {how}"
    );
}

/// A database of its own for one test, removed afterwards.
pub struct TestDatabase {
    pub url: DatabaseUrl,
    _dir: tempfile::TempDir,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub fn create() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        match backend() {
            Backend::Sqlite => Self {
                url: DatabaseUrl::Sqlite(dir.path().join("spacedigest.db")),
                _dir: dir,
                postgres: None,
            },
            Backend::Postgres => {
                let server = std::env::var(POSTGRES_URL_VAR).unwrap();
                let name = format!(
                    "spacedigest_test_{}",
                    hex::encode(&spacedigest::tokens::random_bytes()[..8])
                );
                let mut admin = PgConnection::establish(&server)
                    .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {server}: {e}"));
                diesel::sql_query(format!("CREATE DATABASE \"{name}\""))
                    .execute(&mut admin)
                    .expect("CREATE DATABASE");
                let mut url = url::Url::parse(&server).expect("a PostgreSQL URL");
                url.set_path(&name);
                Self {
                    url: DatabaseUrl::Postgres(url.to_string()),
                    _dir: dir,
                    postgres: Some((server, name)),
                }
            }
        }
    }

    pub fn dir(&self) -> PathBuf {
        self._dir.path().to_path_buf()
    }

    /// The URL in `SPACEDIGEST_DATABASE_URL` form.
    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => url.clone(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server, name)) = self.postgres.take() {
            if let Ok(mut admin) = PgConnection::establish(&server) {
                // FORCE ends the app's pooled connections, which outlive the test body.
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .execute(&mut admin);
            }
        }
    }
}

/// Where the app's mail goes.
pub enum Mail {
    /// A fresh SMTP server, started now.
    Server,
    /// SMTP on this port, where nothing listens yet.
    Port(u16),
}

pub struct TestApp {
    pub address: String,
    pub settings: Settings,
    pub pool: Pool,
    pub smtp: Option<SmtpServer>,
    pub client: reqwest::Client,
    handle: ServerHandle,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    // Dropped last: the database outlives the server that uses it.
    pub database: TestDatabase,
}

/// Settings every test starts from: fast retries, no per-IP limit unless a test sets one.
pub fn test_settings(database: &TestDatabase, smtp_port: u16) -> Settings {
    let mut settings = Settings::defaults();
    settings.database.url = database.url.clone();
    settings.database.pool_size = 4;
    settings.server.http_workers = 1;
    settings.mail.smtp_url = SmtpUrl::Smtp(format!("smtp://127.0.0.1:{smtp_port}"));
    settings.mail.from = "Space Daily <news@spacedigest.test>".parse().unwrap();
    settings.signup.rate_per_minute = 0;
    settings.delivery.retry_base = Duration::from_millis(500);
    settings.delivery.retry_max = Duration::from_secs(1);
    settings.delivery.smtp_timeout = Duration::from_secs(5);
    settings.delivery.lease = Duration::from_secs(10);
    settings.delivery.poll_interval = Duration::from_millis(100);
    // The tests serve feeds on 127.0.0.1; `abuse::fetch` shows what the default refuses.
    settings.fetch.allow_private = true;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Mail::Server, |_| {}).await
}

pub async fn spawn_app_with(mail: Mail, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_listening_on("127.0.0.1:0".parse().unwrap(), mail, configure).await
}

/// Like [`spawn_app_with`], listening on `listen` (e.g. `[::]:0`, dual-stack); the test
/// still reaches it, and its links point, at 127.0.0.1.
pub async fn spawn_app_listening_on(
    listen: SocketAddr,
    mail: Mail,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let database = TestDatabase::create();
    let (smtp, smtp_port) = match mail {
        Mail::Server => {
            let server = SmtpServer::start().await;
            let port = server.port();
            (Some(server), port)
        }
        Mail::Port(port) => (None, port),
    };
    let listener = spacedigest::app::listen(listen).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut settings = test_settings(&database, smtp_port);
    settings.server.listen = listener.local_addr().unwrap();
    settings.server.base_url = format!("http://127.0.0.1:{port}").parse().unwrap();
    configure(&mut settings);

    let app = Application::build_with_listener(settings.clone(), listener)
        .await
        .expect("the app starts");
    let handle = app.handle();
    let running = tokio::spawn(app.run());
    let pool = spacedigest::app::open_pool(&settings).unwrap();
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        settings,
        pool,
        smtp,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        handle,
        running: Some(running),
        database,
    }
}

/// Another `serve` process's worth of app on the same database and mail server, as when
/// several run behind a load balancer. Stops when dropped.
pub struct ExtraServer {
    /// Its base address, as `TestApp::address`.
    pub address: String,
    handle: ServerHandle,
}

impl Drop for ExtraServer {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

pub async fn spawn_app_on(app: &TestApp) -> ExtraServer {
    let listener = spacedigest::app::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener_address = listener.local_addr().unwrap();
    let mut settings = app.settings.clone();
    settings.server.listen = listener_address;
    let extra = Application::build_with_listener(settings, listener)
        .await
        .expect("another app starts");
    let handle = extra.handle();
    tokio::spawn(extra.run());
    ExtraServer {
        address: format!("http://{listener_address}"),
        handle,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command at once; the server winds down on its own threads.
        drop(self.handle.stop(false));
    }
}

/// A response's status, headers and body, read once.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub async fn from(response: reqwest::Response) -> Self {
        Self {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

impl TestApp {
    /// Stops the web server and its delivery worker, as SIGTERM would, and waits for both.
    /// Stops the app: gracefully, and forcefully should a graceful stop not finish within
    /// the server's own shutdown timeout and a margin (it says so on stderr: a graceful
    /// stop that never finished was seen once in a full run and is not explained yet).
    pub async fn stop(&mut self) {
        if tokio::time::timeout(Duration::from_secs(20), self.handle.stop(true))
            .await
            .is_err()
        {
            eprintln!("the app's graceful stop did not finish in 20 s; stopping it forcefully");
            self.handle.stop(false).await;
        }
        if let Some(running) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(30), running)
                .await
                .expect("the app stops within 30 s of its server")
                .expect("the app task")
                .expect("a clean stop");
        }
    }

    pub fn smtp(&self) -> &SmtpServer {
        self.smtp.as_ref().expect("this app has an SMTP server")
    }

    pub async fn get(&self, path_or_url: &str) -> Answer {
        let url = self.url(path_or_url);
        Answer::from(self.client.get(url).send().await.unwrap()).await
    }

    pub async fn head(&self, path_or_url: &str) -> Answer {
        let url = self.url(path_or_url);
        Answer::from(self.client.head(url).send().await.unwrap()).await
    }

    pub async fn post_raw(
        &self,
        path_or_url: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let mut request = self.client.post(self.url(path_or_url)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        Answer::from(request.send().await.unwrap()).await
    }

    /// `POST /subscriptions` as the HTML form sends it.
    pub async fn post_subscriptions(&self, body: &str) -> Answer {
        self.post_raw(
            "/subscriptions",
            Some("application/x-www-form-urlencoded"),
            body.to_owned(),
        )
        .await
    }

    /// `POST /subscriptions` as a script sends it.
    pub async fn post_subscriptions_json(&self, body: &serde_json::Value) -> Answer {
        self.post_raw("/subscriptions", Some("application/json"), body.to_string())
            .await
    }

    /// Signs `email` up through the form.
    pub async fn sign_up(&self, email: &str) -> Answer {
        let body = format!("email={}&name=Ada", urlencode(email));
        let answer = self.post_subscriptions(&body).await;
        assert_eq!(answer.status, 200, "signup failed: {}", answer.body);
        answer
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{}", self.address, path_or_url)
        }
    }

    /// The confirmation link in an email, checked to be built on the base URL.
    pub fn confirmation_link(&self, email: &ReceivedMessage) -> String {
        email.link_starting_with(&format!("{}/subscriptions/confirm?token=", self.address))
    }

    /// The reader's path through a confirmation link: open it, press the button.
    pub async fn confirm_via(&self, link: &str) -> Answer {
        let page = self.get(link).await;
        assert_eq!(page.status, 200, "the confirm page: {}", page.body);
        let token = hidden_field(&page.body, "token");
        self.post_raw(
            "/subscriptions/confirm",
            Some("application/x-www-form-urlencoded"),
            format!("token={}", urlencode(&token)),
        )
        .await
    }

    /// Waits for `n` emails in total at the app's SMTP server.
    pub async fn emails(&self, n: usize) -> Vec<ReceivedMessage> {
        self.smtp()
            .wait_for_messages(n, Duration::from_secs(15))
            .await
    }

    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut db::DbConnection) -> QueryResult<T> + Send + 'static,
    ) -> T {
        db::run(&self.pool, f).await.expect("a database query")
    }

    /// Moves every queued confirmation email `minutes` into the past, as if that much time
    /// had gone by for the per-mailbox limits.
    pub async fn age_confirmations(&self, minutes: i64) {
        use spacedigest::db::schema::outbound_emails;
        self.db(move |conn| {
            let rows: Vec<(i64, chrono::NaiveDateTime)> = outbound_emails::table
                .filter(outbound_emails::kind.eq("confirmation"))
                .select((outbound_emails::id, outbound_emails::created_at))
                .load(conn)?;
            for (id, created_at) in rows {
                diesel::update(outbound_emails::table.find(id))
                    .set(
                        outbound_emails::created_at
                            .eq(created_at - chrono::Duration::minutes(minutes)),
                    )
                    .execute(conn)?;
            }
            Ok(())
        })
        .await;
    }

    /// Status of each subscription of `email`, as (newsletter slug, status).
    pub async fn subscription_statuses(&self, email: &str) -> Vec<(String, String)> {
        use spacedigest::db::schema::{newsletters, subscribers, subscriptions};
        let key = email.to_lowercase();
        self.db(move |conn| {
            subscriptions::table
                .inner_join(subscribers::table)
                .inner_join(newsletters::table)
                .filter(subscribers::email_key.eq(key))
                .order(newsletters::id)
                .select((newsletters::slug, subscriptions::status))
                .load(conn)
        })
        .await
    }

    pub async fn count_subscribers(&self) -> i64 {
        use spacedigest::db::schema::subscribers;
        self.db(|conn| subscribers::table.count().get_result(conn))
            .await
    }

    pub async fn count_subscriptions(&self) -> i64 {
        use spacedigest::db::schema::subscriptions;
        self.db(|conn| subscriptions::table.count().get_result(conn))
            .await
    }

    pub async fn outbound(&self) -> Vec<crate::support::rows::EmailRecord> {
        self.db(crate::support::rows::all_records).await
    }

    /// Waits until every queued email has a final state.
    pub async fn wait_until_queue_settles(&self) -> Vec<crate::support::rows::EmailRecord> {
        self.wait_until_settled(Duration::from_secs(15)).await
    }

    /// Waits, up to `within`, until no queued email is still pending; returns every row.
    pub async fn wait_until_settled(
        &self,
        within: Duration,
    ) -> Vec<crate::support::rows::EmailRecord> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let records = self.outbound().await;
            let pending: Vec<_> = records
                .iter()
                .filter(|r| r.status.as_str() == "pending")
                .collect();
            if pending.is_empty() {
                return records;
            }
            // A large send's rows would drown the message: the first few pending ones.
            assert!(
                tokio::time::Instant::now() < deadline,
                "the queue did not settle within {within:?}: {} still pending, first {:?}",
                pending.len(),
                &pending[..pending.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Adds a newsletter directly.
    pub async fn add_newsletter(&self, slug: &'static str, title: &'static str) {
        self.db(move |conn| {
            spacedigest::db::newsletters::create(
                conn,
                &spacedigest::db::newsletters::NewNewsletter {
                    slug,
                    title,
                    description: "A test newsletter",
                    send_at: "07:00",
                    timezone: "UTC",
                    created_at: db::now(),
                },
            )
            .map(|_| ())
        })
        .await;
    }
}

/// Waits for `n` emails to `email`.
pub async fn mail_to(app: &TestApp, email: &str, n: usize) -> Vec<ReceivedMessage> {
    mail_to_within(app, email, n, Duration::from_secs(15)).await
}

/// Waits, up to `within`, for `n` emails to `email`.
pub async fn mail_to_within(
    app: &TestApp,
    email: &str,
    n: usize,
    within: Duration,
) -> Vec<ReceivedMessage> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mails = app.smtp().messages_to(email);
        if mails.len() >= n {
            return mails;
        }
        assert!(tokio::time::Instant::now() < deadline, "no mail to {email}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of `<input ... name="NAME" value="...">` in a page.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in: {html}"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag_end = at + html[at..].find('>').unwrap();
    let tag = &html[tag_start..tag_end];
    let value_at = tag.find("value=\"").expect("a value attribute") + 7;
    let value_end = value_at + tag[value_at..].find('"').unwrap();
    tag[value_at..value_end].to_owned()
}

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A unique address for a test.
pub fn unique_email() -> String {
    format!(
        "reader-{}@example.com",
        hex::encode(&spacedigest::tokens::random_bytes()[..6])
    )
}
