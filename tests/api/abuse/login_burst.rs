//! Login bursts against the real `spacedigest serve`: the login limits hold when every
//! attempt arrives at once, in two processes sharing one database, and checking many
//! passwords at once does not take the process's memory with it.
//!
//! Each argon2id check fills 19 MiB. The attempts are sent all at once (each on its own
//! connection), through a trusted proxy whose `X-Forwarded-For` names the client, and
//! the peak resident memory of the process is read from `/proc/PID/status` (`VmHWM`).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use diesel::prelude::*;
use futures_util::future::join_all;
use spacedigest::db::schema::login_failures;

use crate::console::{OPERATOR_EMAIL, OPERATOR_PASSWORD, create_operator};
use crate::support::app::{Answer, TestApp, hidden_field, spawn_app, urlencode};
use crate::support::smtp_server::free_port;

/// Attempts in each burst, as in the issue that measured 770 MiB.
const BURST: usize = 40;
/// Failures of one account from one IP that the limits allow within their window.
const PER_ACCOUNT_AND_IP: usize = 5;
/// The bound on the process's peak resident memory.
const MAX_PEAK_RSS_MIB: u64 = 256;
const WRONG: &str = "not the password, sorry 0000";

/// A `spacedigest serve` process on the test's database, behind a "proxy" at 127.0.0.1.
struct Serve {
    child: tokio::process::Child,
    address: String,
}

impl Serve {
    async fn start(app: &TestApp) -> Self {
        let port = free_port();
        let address = format!("http://127.0.0.1:{port}");
        let child = tokio::process::Command::from(crate::support::binary(app))
            .arg("serve")
            .env("SPACEDIGEST_LISTEN", format!("127.0.0.1:{port}"))
            .env("SPACEDIGEST_BASE_URL", &address)
            .env("SPACEDIGEST_TRUSTED_PROXIES", "127.0.0.1/32")
            .env("SPACEDIGEST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("serve starts");
        let serve = Self { child, address };
        crate::support::wait_until_answering(&serve.address, Duration::from_secs(60)).await;
        serve
    }

    /// The process's peak resident memory so far, in MiB.
    fn peak_rss_mib(&self) -> u64 {
        let pid = self.child.id().expect("serve is running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib / 1024
    }
}

/// The login form's double-submit token and cookie; any page's pair works anywhere.
async fn login_form(serve: &Serve) -> (String, String) {
    let page = reqwest::get(format!("{}/admin/login", serve.address))
        .await
        .unwrap();
    let cookie = page
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("the login cookie")
        .to_owned();
    let token = hidden_field(&page.text().await.unwrap(), "csrf_token");
    (token, cookie)
}

/// One login attempt on a connection of its own.
async fn attempt(
    serve: &Serve,
    form: &(String, String),
    ip: &str,
    email: &str,
    password: &str,
) -> Answer {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/admin/login", serve.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &form.1)
        .header("x-forwarded-for", ip)
        .body(format!(
            "csrf_token={}&email={}&password={}",
            urlencode(&form.0),
            urlencode(email),
            urlencode(password)
        ))
        .send()
        .await
        .unwrap();
    Answer::from(response).await
}

/// How a burst was answered: 401 (the password was checked), 429 (refused by the
/// limits), 503 (no turn to check it), anything else; and answers lacking `Retry-After`.
#[derive(Debug, Default)]
struct Tally {
    by_status: BTreeMap<u16, usize>,
    refusals_without_retry_after: usize,
}

impl Tally {
    fn of<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> Self {
        let mut tally = Self::default();
        for answer in answers {
            *tally.by_status.entry(answer.status).or_default() += 1;
            if matches!(answer.status, 429 | 503) && answer.header("retry-after").is_none() {
                tally.refusals_without_retry_after += 1;
            }
        }
        tally
    }

    fn count(&self, status: u16) -> usize {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}

#[tokio::test]
async fn a_burst_of_logins_is_limited_in_the_database_and_hashes_in_bounded_memory() {
    let mut app = spawn_app().await;
    app.stop().await; // the two processes below serve this database
    create_operator(&app, OPERATOR_EMAIL, OPERATOR_PASSWORD).await;
    let (first, second) = tokio::join!(Serve::start(&app), Serve::start(&app));
    let start_rss = first.peak_rss_mib();
    let form = login_form(&first).await;

    // One account from one IP, all at once, half to each process.
    let burst = (0..BURST).map(|i| {
        let serve = if i % 2 == 0 { &first } else { &second };
        attempt(serve, &form, "203.0.113.9", OPERATOR_EMAIL, WRONG)
    });
    let one_key = Tally::of(&join_all(burst).await);

    // From as many IPs, so no limit applies: every one asks for a password check.
    let (serve, form_ref) = (&first, &form);
    let burst = (0..BURST).map(|i| async move {
        let ip = format!("198.51.100.{}", 10 + i);
        attempt(serve, form_ref, &ip, OPERATOR_EMAIL, WRONG).await
    });
    let many_keys = Tally::of(&join_all(burst).await);
    let peak_rss = first.peak_rss_mib().max(second.peak_rss_mib());

    let counted: i64 = app
        .db(|conn| login_failures::table.count().get_result(conn))
        .await;
    // The operator, from their own address, is not locked out by any of it.
    let operator = attempt(
        &second,
        &form,
        "192.0.2.44",
        OPERATOR_EMAIL,
        OPERATOR_PASSWORD,
    )
    .await;

    let (tried, refused, busy) = (one_key.count(401), one_key.count(429), one_key.count(503));
    let (many_tried, many_busy) = (many_keys.count(401), many_keys.count(503));
    crate::support::figures::report(
        "login-burst",
        &format!(
            "{BURST} simultaneous wrong passwords for one account from one IP over 2 serve \
             processes: {tried} tried, {refused} × 429, {busy} × 503 (answers {:?}); \
             {BURST} from {BURST} IPs at one process: {many_tried} tried, {many_busy} × 503 \
             (answers {:?}); 429/503 without Retry-After: {}; attempts counted in the \
             database: {counted}; peak RSS of serve {peak_rss} MiB (at start {start_rss} \
             MiB; bound {MAX_PEAK_RSS_MIB} MiB)",
            one_key.by_status,
            many_keys.by_status,
            one_key.refusals_without_retry_after + many_keys.refusals_without_retry_after,
        ),
    );
    assert!(
        tried <= PER_ACCOUNT_AND_IP,
        "{tried} passwords checked for one account from one IP, limit {PER_ACCOUNT_AND_IP}"
    );
    assert_eq!(
        tried + busy,
        PER_ACCOUNT_AND_IP,
        "the attempts the limit allows were not all made"
    );
    assert_eq!(
        refused,
        BURST - PER_ACCOUNT_AND_IP,
        "{:?}",
        one_key.by_status
    );
    assert_eq!(
        many_tried + many_busy,
        BURST,
        "answers other than 401 or 503: {:?}",
        many_keys.by_status
    );
    assert!(
        many_tried >= 1,
        "no password of the second burst was checked"
    );
    assert_eq!(
        one_key.refusals_without_retry_after + many_keys.refusals_without_retry_after,
        0,
        "a 429 or 503 without Retry-After"
    );
    assert_eq!(
        counted,
        i64::try_from(tried + many_tried).unwrap(),
        "the database counts an attempt that was refused or never checked"
    );
    assert_eq!(operator.status, 303, "{}", operator.body);
    assert!(
        peak_rss < MAX_PEAK_RSS_MIB,
        "serve peaked at {peak_rss} MiB through a burst of {BURST} logins"
    );
}

#[tokio::test]
async fn when_every_password_check_is_taken_a_login_waits_briefly_then_gets_503_uncounted() {
    use spacedigest::console::hashing;
    let mut app = spawn_app().await;
    app.stop().await;
    // An account whose stored hash costs more passes than ours (as after the parameters
    // were raised), so that each check holds its turn well past the wait. Only wrong
    // passwords are tried, so no password needs to give this output.
    let passes = passes_lasting(hashing::WAIT * 3 / 2);
    let slow = format!(
        "$argon2id$v=19$m=19456,t={passes},p=1$c3BhY2VkaWdlc3Qtc2xvdw$\
         AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    );
    app.db(move |conn| {
        spacedigest::db::operators::create(conn, OPERATOR_EMAIL, &slow, spacedigest::db::now())
            .map(|_| ())
    })
    .await;
    let serve = Serve::start(&app).await;
    let form = login_form(&serve).await;
    // The process has as many turns as this one: the same machine, the same rule.
    let turns = hashing::turns();
    let (serve, form) = (&serve, &form);
    let burst = (0..turns + 2).map(|i| async move {
        let started = std::time::Instant::now();
        let ip = format!("198.51.100.{}", 10 + i);
        let answer = attempt(serve, form, &ip, OPERATOR_EMAIL, WRONG).await;
        (answer, started.elapsed())
    });
    let answers = join_all(burst).await;
    let counted: i64 = app
        .db(|conn| login_failures::table.count().get_result(conn))
        .await;

    let tally = Tally::of(answers.iter().map(|(answer, _)| answer));
    let slowest = |status: u16| {
        answers
            .iter()
            .filter(|(a, _)| a.status == status)
            .map(|(_, took)| took.as_secs_f64())
            .fold(0.0, f64::max)
    };
    let retry_after: Vec<String> = answers
        .iter()
        .filter_map(|(a, _)| (a.status == 503).then(|| a.header("retry-after")).flatten())
        .collect();
    crate::support::figures::report(
        "login-hash-busy",
        &format!(
            "{turns} turns, a stored hash of {passes} passes; {} logins at once: answers \
             {:?}, the checked ones in {:.1} s, the 503s in {:.1} s (wait {} s) with \
             Retry-After {retry_after:?}; attempts counted in the database: {counted}",
            turns + 2,
            tally.by_status,
            slowest(401),
            slowest(503),
            hashing::WAIT.as_secs(),
        ),
    );
    assert_eq!(tally.count(401), turns, "{:?}", tally.by_status);
    assert_eq!(tally.count(503), 2, "{:?}", tally.by_status);
    assert_eq!(tally.refusals_without_retry_after, 0);
    let busy = answers.iter().find(|(a, _)| a.status == 503).unwrap();
    assert!(
        busy.0.body.contains("try again in a few seconds"),
        "{}",
        busy.0.body
    );
    assert!(
        busy.1 >= hashing::WAIT && busy.1 < hashing::WAIT * 2,
        "a 503 after {:?}",
        busy.1
    );
    assert_eq!(
        counted,
        i64::try_from(turns).unwrap(),
        "a login turned away unchecked was counted against the limits"
    );
}

/// Argon2id passes over 19 MiB that take at least `target` on this machine: the fastest
/// of a few probes in memory already touched, so a loaded machine only makes it longer.
fn passes_lasting(target: Duration) -> u32 {
    use argon2::{Algorithm, Argon2, Block, Params, Version};
    let probe = 4;
    let params = Params::new(19_456, probe, 1, None).unwrap();
    let mut memory = vec![Block::new(); params.block_count()];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let per_pass = (0..4)
        .map(|_| {
            let started = std::time::Instant::now();
            argon2
                .hash_password_into_with_memory(
                    b"probe",
                    b"sixteen byte salt",
                    &mut [0; 32],
                    &mut memory,
                )
                .unwrap();
            started.elapsed() / probe
        })
        .min()
        .unwrap();
    u32::try_from(target.as_nanos().div_ceil(per_pass.as_nanos().max(1)))
        .unwrap_or(u32::MAX)
        .max(probe)
}
