//! Logs hold ids, never tokens, passwords, session ids or readers' addresses: the real
//! `spacedigest serve` binary through a reader's and an operator's whole journey, and
//! `digest send` from the command line, with every crate ours or not at trace (which
//! shows everything `debug` shows, and more).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::{all_links, token_of};
use crate::support::app::{Answer, TestDatabase, hidden_field, unique_email, urlencode};
use crate::support::smtp_server::{ReceivedMessage, SmtpServer, free_port};
use crate::support::{stop_with_sigterm, wait_until_answering};

pub(super) const LOG_FILTER: &str = "trace";
pub(super) const OPERATOR: &str = "flight-director@spacedigest.test";
pub(super) const PASSWORD: &str = "kepler umbrella satellite 93";

/// The binary with only the settings this test gives it.
pub(super) fn binary(
    database: &TestDatabase,
    smtp: &SmtpServer,
    base_url: &str,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_spacedigest"));
    command
        .current_dir(database.dir())
        .env_clear()
        .env("SPACEDIGEST_DATABASE_URL", database.url_string())
        .env("SPACEDIGEST_SMTP_URL", smtp.url())
        .env("SPACEDIGEST_BASE_URL", base_url)
        .env("SPACEDIGEST_LOG", LOG_FILTER)
        .kill_on_drop(true);
    command
}

/// Reads a child's pipe to the end in the background.
pub(super) fn collect(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut pipe = pipe;
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes).await;
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// `serve` on `port` with its output collected, once it answers its health check.
pub(super) async fn start_serve(
    database: &TestDatabase,
    smtp: &SmtpServer,
    base: &str,
    port: u16,
) -> (
    tokio::process::Child,
    tokio::task::JoinHandle<String>,
    tokio::task::JoinHandle<String>,
) {
    let mut serve = binary(database, smtp, base)
        .arg("serve")
        .env("SPACEDIGEST_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = collect(serve.stdout.take().unwrap());
    let stderr = collect(serve.stderr.take().unwrap());
    wait_until_answering(base, Duration::from_secs(60)).await;
    (serve, stdout, stderr)
}

/// An HTTP client keeping cookies by hand, so the test knows every value it was given.
pub(super) struct Visitor {
    pub(super) client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Visitor {
    pub(super) fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = if cookie.is_empty() {
            request
        } else {
            request.header("cookie", cookie)
        };
        let answer = Answer::from(request.send().await.unwrap()).await;
        for set in answer.headers.get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() && !set.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        answer
    }

    pub(super) async fn get(&mut self, path: &str) -> Answer {
        let request = self.client.get(self.url(path));
        self.send(request).await
    }

    pub(super) async fn post(&mut self, path: &str, body: String) -> Answer {
        let request = self
            .client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// A log line without its terminal colours.
pub(super) fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn wait_for(smtp: &SmtpServer, n: usize) -> Vec<ReceivedMessage> {
    smtp.wait_for_messages(n, Duration::from_secs(30)).await
}

#[tokio::test]
async fn no_token_password_session_id_or_address_reaches_the_logs() {
    let database = TestDatabase::create();
    let smtp = SmtpServer::start().await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut secrets: Vec<(&'static str, String)> = vec![("operator password", PASSWORD.into())];
    let mut outputs: Vec<(&'static str, String)> = Vec::new();

    let created = binary(&database, &smtp, &base)
        .args(["admin", "create", OPERATOR])
        .env("SPACEDIGEST_ADMIN_PASSWORD", PASSWORD)
        .output()
        .await
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    // Its stdout is the command's answer to the operator ("Created operator …").
    outputs.push((
        "admin create (stderr)",
        String::from_utf8_lossy(&created.stderr).into(),
    ));

    let (mut serve, stdout, stderr) = start_serve(&database, &smtp, &base, port).await;
    let mut reader = Visitor::new(&base);

    // The reader: signs up, confirms through the link, later leaves.
    let email = unique_email();
    secrets.push(("reader's address", email.clone()));
    secrets.push(("reader's address, encoded", urlencode(&email)));
    let signup = reader
        .post(
            "/subscriptions",
            format!("email={}&name=Ada", urlencode(&email)),
        )
        .await;
    assert_eq!(signup.status, 200, "{}", signup.body);
    let confirmation = wait_for(&smtp, 1).await.remove(0);
    let link = confirmation
        .links()
        .into_iter()
        .find(|l| l.contains("/subscriptions/confirm?token="))
        .unwrap();
    secrets.push(("confirmation token", token_of(&link)));
    assert_eq!(reader.get(&link).await.status, 200);
    let confirmed = reader
        .post(
            "/subscriptions/confirm",
            format!("token={}", urlencode(&token_of(&link))),
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let welcome = wait_for(&smtp, 2).await.remove(1);

    // The operator: a failed login, a login, a story added, a digest sent, logout.
    let mut operator = Visitor::new(&base);
    let page = operator.get("/admin/login").await;
    let login_token = hidden_field(&page.body, "csrf_token");
    secrets.push(("login form token", login_token.clone()));
    let wrong = operator
        .post(
            "/admin/login",
            format!(
                "csrf_token={}&email={}&password={}",
                urlencode(&login_token),
                urlencode(OPERATOR),
                urlencode("not the password at all 12")
            ),
        )
        .await;
    assert_eq!(wrong.status, 401);
    secrets.push(("wrong password", "not the password at all 12".into()));
    let login = operator
        .post(
            "/admin/login",
            format!(
                "csrf_token={}&email={}&password={}",
                urlencode(&login_token),
                urlencode(OPERATOR),
                urlencode(PASSWORD)
            ),
        )
        .await;
    assert_eq!(login.status, 303, "{}", login.body);
    secrets.push((
        "session id",
        operator.cookie("spacedigest_session").expect("a session"),
    ));
    let account = operator.get("/admin/account").await;
    let csrf = hidden_field(&account.body, "csrf_token");
    secrets.push(("CSRF token", csrf.clone()));
    let story = operator
        .post(
            "/admin/stories",
            format!(
                "csrf_token={}&newsletter=space-daily&title=Webb+sees+a+new+moon&url={}&summary=Tiny.&published_at=2026-11-20T08:00",
                urlencode(&csrf),
                urlencode("https://news.example.org/webb-moon")
            ),
        )
        .await;
    assert_eq!(story.status, 303, "{}", story.body);
    let send = operator
        .post(
            "/admin/digests/send",
            format!(
                "csrf_token={}&newsletter=space-daily&date=2026-11-20",
                urlencode(&csrf)
            ),
        )
        .await;
    assert_eq!(send.status, 303, "{}", send.body);
    let digest = wait_for(&smtp, 3).await.remove(2);
    let next_day = operator
        .post(
            "/admin/stories",
            format!(
                "csrf_token={}&newsletter=space-daily&title=Psyche+nears+its+asteroid&url={}&summary=Soon.&published_at=2026-11-21T08:00",
                urlencode(&csrf),
                urlencode("https://news.example.org/psyche")
            ),
        )
        .await;
    assert_eq!(next_day.status, 303, "{}", next_day.body);
    let logout = operator
        .post("/admin/logout", format!("csrf_token={}", urlencode(&csrf)))
        .await;
    assert_eq!(logout.status, 303);

    // The next day's digest, sent from the command line (which shows its progress).
    let cli_send = binary(&database, &smtp, &base)
        .args(["digest", "send", "--date", "2026-11-21"])
        .output()
        .await
        .unwrap();
    assert!(
        cli_send.status.success(),
        "{}",
        String::from_utf8_lossy(&cli_send.stderr)
    );
    outputs.push((
        "digest send (stdout)",
        String::from_utf8_lossy(&cli_send.stdout).into(),
    ));
    outputs.push((
        "digest send (stderr)",
        String::from_utf8_lossy(&cli_send.stderr).into(),
    ));
    let next_digest = wait_for(&smtp, 4).await.remove(3);

    // The reader leaves with the digest's one-click link.
    for mail in [&welcome, &digest, &next_digest] {
        for link in all_links(mail) {
            if link.contains("/unsubscribe?token=") {
                secrets.push(("unsubscribe token", token_of(&link)));
            }
        }
    }
    let one_click = digest.header("List-Unsubscribe").unwrap();
    let page = reader.get(one_click.trim_matches(['<', '>'])).await;
    assert_eq!(page.status, 200);
    let left = reader
        .post(
            one_click.trim_matches(['<', '>']),
            "List-Unsubscribe=One-Click".into(),
        )
        .await;
    assert_eq!(left.status, 200, "{}", left.body);

    // Stopped as systemd would, so everything it logs on the way out is in.
    stop_with_sigterm(&mut serve).await;
    outputs.push(("serve (stdout)", stdout.await.unwrap()));
    outputs.push(("serve (stderr)", stderr.await.unwrap()));

    let lines: usize = outputs.iter().map(|(_, text)| text.lines().count()).sum();
    // Every line holding a secret, named by what it holds and which target logged it.
    let mut leaks = Vec::new();
    for (source, text) in &outputs {
        for line in text.lines() {
            let lower = line.to_lowercase();
            for (what, secret) in &secrets {
                if lower.contains(&secret.to_lowercase()) {
                    let shown: String = strip_ansi(line).chars().take(240).collect();
                    leaks.push(format!("{what} in {source}: {shown}"));
                }
            }
        }
    }
    crate::support::figures::report(
        "tokens-in-logs",
        &format!(
            "{lines} log lines (serve and digest send, SPACEDIGEST_LOG={LOG_FILTER}) searched for \
             {} secrets (tokens, session id, CSRF tokens, passwords, the reader's address): {} found",
            secrets.len(),
            leaks.len()
        ),
    );
    assert!(
        lines > 20,
        "too little was logged to mean anything: {outputs:#?}"
    );
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));
}
