//! A mail server's refusal quotes the reader's address (`550 5.1.1 <reader@…> User
//! unknown`): the real `serve` at trace logs the refusal with the address redacted, and
//! the console still shows the operator the whole reply.

use std::time::Duration;

use super::logs::{LOG_FILTER, OPERATOR, PASSWORD, Visitor, binary, start_serve, strip_ansi};
use crate::support::app::{TestDatabase, hidden_field, unique_email, urlencode};
use crate::support::smtp_server::{Behaviour, SmtpServer, free_port};

#[tokio::test]
async fn a_refusal_that_quotes_the_address_is_logged_without_it_and_shown_whole_in_the_console() {
    let database = TestDatabase::create();
    let smtp = SmtpServer::start().await;
    let email = unique_email();
    let reply = format!("5.1.1 <{email}> User unknown");
    smtp.set_behaviour(Behaviour::RejectRcptTo {
        address: email.clone(),
        code: 550,
        text: reply.clone(),
    });
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

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
    let (mut serve, stdout, stderr) = start_serve(&database, &smtp, &base, port).await;
    let mut reader = Visitor::new(&base);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);

    // The reader signs up; the server refuses the confirmation for good.
    let signup = reader
        .post("/subscriptions", format!("email={}", urlencode(&email)))
        .await;
    assert_eq!(signup.status, 200, "{}", signup.body);

    // The operator finds the reader in the console, once the refusal is recorded.
    let mut operator = Visitor::new(&base);
    let page = operator.get("/admin/login").await;
    let login = operator
        .post(
            "/admin/login",
            format!(
                "csrf_token={}&email={}&password={}",
                urlencode(&hidden_field(&page.body, "csrf_token")),
                urlencode(OPERATOR),
                urlencode(PASSWORD)
            ),
        )
        .await;
    assert_eq!(login.status, 303, "{}", login.body);
    let found = operator
        .get(&format!("/admin/subscribers?q={}", urlencode(&email)))
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    // The reader's row links to their page: /admin/subscribers/ID.
    let link = found
        .body
        .split("href=\"")
        .filter_map(|rest| rest.split('"').next())
        .find(|href| {
            href.strip_prefix("/admin/subscribers/")
                .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        })
        .unwrap_or_else(|| panic!("the reader is not listed: {}", found.body))
        .to_owned();
    let detail = loop {
        let detail = operator.get(&link).await;
        assert_eq!(detail.status, 200, "{}", detail.body);
        if detail.body.contains("User unknown") {
            break detail;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refusal never reached the console: {}",
            detail.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    crate::support::stop_with_sigterm(&mut serve).await;
    let output = format!("{}\n{}", stdout.await.unwrap(), stderr.await.unwrap());

    let lower = email.to_lowercase();
    let leaks: Vec<String> = output
        .lines()
        .filter(|line| line.to_lowercase().contains(&lower))
        .map(|line| strip_ansi(line).chars().take(240).collect())
        .collect();
    let refusal_lines: Vec<String> = output
        .lines()
        .map(strip_ansi)
        .filter(|line| line.contains("User unknown"))
        .collect();
    let shown_whole = detail.body.contains(&email) && detail.body.contains("550");
    crate::support::figures::report(
        "replies-in-logs",
        &format!(
            "the relay refused with `550 {reply_shape}`; serve at SPACEDIGEST_LOG={LOG_FILTER}: \
             {} log lines, {} with the reply, {} with the reader's address ({}); the console's \
             subscriber page shows the whole reply: {shown_whole}",
            output.lines().count(),
            refusal_lines.len(),
            leaks.len(),
            refusal_lines
                .first()
                .and_then(|line| {
                    let from = line.find("5.1.1")?;
                    let to = line.find("User unknown")? + "User unknown".len();
                    line.get(from..to)
                        .map(|reply| format!("logged as `{reply}`"))
                })
                .unwrap_or_else(|| "none logged".into()),
            reply_shape = "5.1.1 <reader@…> User unknown",
        ),
    );
    assert!(
        !refusal_lines.is_empty(),
        "the refusal was not logged at all, so nothing was checked:\n{output}"
    );
    assert!(
        leaks.is_empty(),
        "the address reached the logs:\n{}",
        leaks.join("\n")
    );
    assert!(
        refusal_lines
            .iter()
            .all(|line| line.contains("<[address]>")),
        "{refusal_lines:#?}"
    );
    assert!(shown_whole, "the console lost the reply: {}", detail.body);
}
