//! `POST /admin/login`: an unknown address and a known one with a wrong password get the
//! same answer in the same time.
//!
//! The login rate limits (5 failures per account and IP, 20 per IP, 100 per account in 15
//! minutes) must not step in: each trial comes from an IP of its own (`X-Forwarded-For`
//! through a trusted proxy), and the known accounts are enough that none reaches 100. The
//! unknown addresses are as many and take as many failures each, so both sides count the
//! same rows.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;

use super::{MEASURING, Timings, Verdict, ms, rng, trials, visible};
use spacedigest::console::OperatorPassword;
use spacedigest::db::{self, operators};

use crate::support::app::{Answer, Mail, TestApp, hidden_field, spawn_app_with, urlencode};

/// Known and unknown addresses have the same length, so the page that shows the
/// address typed back has the same length too; only that address differs.
fn known(i: usize) -> String {
    format!("operator-{i:02}@spacedigest.test")
}

fn unknown(i: usize) -> String {
    format!("stranger-{i:02}@spacedigest.test")
}

const PASSWORD: &str = "correct horse orbital staple 61";
const WRONG: &str = "not the password, sorry 0000";

/// The login form's double-submit token and cookie, fetched once: every attempt sends
/// the same, as a browser that keeps the page open would.
async fn login_form(app: &TestApp) -> (String, String) {
    let page = app.get("/admin/login").await;
    let token = hidden_field(&page.body, "csrf_token");
    let cookie = page
        .header("set-cookie")
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .expect("the login cookie");
    (token, cookie)
}

async fn timed_login(
    app: &TestApp,
    form: &(String, String),
    email: &str,
    ip: &str,
) -> (Answer, Duration) {
    let request = app
        .client
        .post(format!("{}/admin/login", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &form.1)
        .header("x-forwarded-for", ip)
        .body(format!(
            "csrf_token={}&email={}&password={}",
            urlencode(&form.0),
            urlencode(email),
            urlencode(WRONG)
        ));
    let started = Instant::now();
    let response = request.send().await.unwrap();
    let answer = Answer::from(response).await;
    (answer, started.elapsed())
}

#[tokio::test]
async fn login_answers_and_their_timing_do_not_tell_whether_an_account_exists() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let n = trials(40);
    // At most 80 failures per account, under the per-account limit of 100.
    let accounts = n.div_ceil(80);
    for i in 0..accounts {
        let email = known(i);
        let hash = OperatorPassword::parse(PASSWORD, &email)
            .expect("a strong password")
            .hash()
            .await
            .expect("a turn to hash");
        app.db(move |conn| operators::create(conn, &email, &hash, db::now()).map(|_| ()))
            .await;
    }
    let form = login_form(&app).await;
    let measuring = MEASURING.lock().await;
    const NAMES: [&str; 2] = ["unknown address", "wrong password"];
    let mut timings = [Timings::default(), Timings::default()];
    let mut answers = Vec::new();
    let mut order = [0, 1];
    let mut rng = rng(0x5167_0002);
    for i in 0..2 {
        let ip = format!("192.0.2.{i}");
        timed_login(&app, &form, &unknown(99), &ip).await;
    }
    for trial in 0..n {
        let ip = format!(
            "10.{}.{}.{}",
            100 + trial / 65536,
            (trial / 256) % 256,
            trial % 256
        );
        order.shuffle(&mut rng);
        for &category in &order {
            let email = match category {
                0 => unknown(trial % accounts),
                _ => known(trial % accounts),
            };
            let (answer, took) = timed_login(&app, &form, &email, &ip).await;
            timings[category].0.push(took);
            let (status, headers, body) = visible(&answer);
            // The form shows the address typed back: the one value that differs by input.
            answers.push((
                NAMES[category],
                (status, headers, body.replace(&email, "EMAIL")),
            ));
        }
    }
    drop(measuring);

    let verdict = Verdict::of(&NAMES, &timings, 0x5167_0004);
    let differing = answers.iter().filter(|(_, a)| *a != answers[0].1).count();
    crate::support::figures::report(
        "enumeration-login",
        &format!(
            "{n} trials per category, interleaved, over {accounts} accounts: {}; \
             difference of medians {:.2} ms (bound {:.2} ms); answers differing from the \
             first: {differing} of {}",
            verdict.figures,
            ms(verdict.spread),
            ms(verdict.bound),
            answers.len()
        ),
    );
    assert_eq!(answers[0].1.0, 401, "{}", answers[0].1.2);
    for (category, answer) in &answers {
        assert_eq!(
            answer, &answers[0].1,
            "a login with an {category} answered differently"
        );
    }
    assert!(
        verdict.spread < verdict.bound,
        "medians differ by {:.2} ms: {}",
        ms(verdict.spread),
        verdict.figures
    );
}
