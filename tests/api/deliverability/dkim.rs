//! Every email is DKIM-signed, and the signature verifies against the public key.

use std::process::Output;

use super::verifier::{self, PublicKey, verify};
use super::{dkim_with, mail_to, send_todays_digest, sign_up_and_confirm};
use crate::support::app::{Mail, TestDatabase, spawn_app_with, unique_email};

/// Headers the signature must cover on every email.
const REQUIRED: &[&str] = &[
    "from",
    "subject",
    "date",
    "message-id",
    "to",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "mime-version",
    "content-type",
];

fn assert_covers_required_headers(signed: &[String]) {
    for name in REQUIRED {
        assert!(
            signed.iter().any(|s| s == name),
            "h= lacks {name}: {signed:?}"
        );
    }
}

/// `raw` with the first occurrence of `from` replaced.
fn tampered(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(raw.to_vec()).unwrap();
    assert!(text.contains(from), "{from:?} is not in the message");
    text.replacen(from, to, 1).into_bytes()
}

#[tokio::test]
async fn confirmation_welcome_and_digest_are_signed_and_verify_against_the_public_key() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.mail.dkim = Some(dkim_with("test_key_rsa_pkcs1.pem", "sd2026", None));
    })
    .await;
    let key = verifier::public_key("test_key_rsa_pkcs1.pem");
    let email = unique_email();
    sign_up_and_confirm(&app, app.smtp(), &email).await;
    send_todays_digest(&app).await;
    let mails = mail_to(app.smtp(), &email, 3).await;

    let subjects: Vec<String> = mails.iter().map(|m| m.subject()).collect();
    for mail in &mails {
        let verified = verify(&mail.data, &key)
            .unwrap_or_else(|e| panic!("{:?} does not verify: {e}", mail.subject()));
        // d= defaults to the From address's domain.
        assert_eq!(verified.domain, "spacedigest.test");
        assert_eq!(verified.selector, "sd2026");
        assert_covers_required_headers(&verified.signed_headers);
    }
    let digest = mails
        .iter()
        .find(|m| m.header("List-Id").is_some())
        .unwrap_or_else(|| panic!("no digest among {subjects:?}"));
    assert!(digest.header("List-Unsubscribe").is_some());

    // Changing a covered header or the body breaks the signature.
    let forged = tampered(&digest.data, "Subject: Space Daily", "Subject: Spam Daily");
    let error = verify(&forged, &key).unwrap_err();
    assert!(error.contains("signature does not verify"), "{error}");
    let forged = tampered(&digest.data, "/unsubscribe?token=", "/unsubscribe?token=x");
    let error = verify(&forged, &key).unwrap_err();
    assert!(error.contains("signature does not verify"), "{error}");
    let forged = tampered(
        &digest.data,
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "List-Unsubscribe-Post: List-Unsubscribe=Two-Clicks",
    );
    assert!(verify(&forged, &key).is_err());
    let forged = tampered(&digest.data, "It went", "It sank");
    let error = verify(&forged, &key).unwrap_err();
    assert!(error.contains("body hash"), "{error}");
    // A List-Unsubscribe added to a confirmation that had none is caught too.
    let confirmation = &mails[0];
    assert!(confirmation.header("List-Unsubscribe").is_none());
    let forged = tampered(
        &confirmation.data,
        "Subject: ",
        "List-Unsubscribe: <https://evil.example/u>\r\nSubject: ",
    );
    assert!(verify(&forged, &key).is_err());
}

#[tokio::test]
async fn an_ed25519_key_signs_with_ed25519_sha256() {
    let app = spawn_app_with(Mail::Server, |s| {
        s.mail.dkim = Some(dkim_with(
            "test_key_ed25519.pem",
            "ed1",
            Some("mail.spacedigest.test"),
        ));
    })
    .await;
    let key = verifier::public_key("test_key_ed25519.pem");
    assert!(matches!(key, PublicKey::Ed25519(_)));
    let email = unique_email();
    app.sign_up(&email).await;
    let confirmation = mail_to(app.smtp(), &email, 1).await.remove(0);
    let verified = verify(&confirmation.data, &key).unwrap();
    assert_eq!(verified.domain, "mail.spacedigest.test");
    assert!(
        String::from_utf8_lossy(&confirmation.data).contains("a=ed25519-sha256"),
        "{}",
        String::from_utf8_lossy(&confirmation.data)
    );
}

fn run(db: &TestDatabase, env: &[(&str, &str)]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_spacedigest"))
        .args(["newsletter", "list"])
        .current_dir(db.dir())
        .env_clear()
        .env("SPACEDIGEST_DATABASE_URL", db.url_string())
        .env("SPACEDIGEST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

fn fails_naming(output: &Output, words: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "it started: {stderr}");
    for word in words {
        assert!(stderr.contains(word), "{word:?} not in {stderr:?}");
    }
    stderr
}

#[test]
fn dkim_settings_are_both_or_neither_and_a_bad_key_stops_the_program() {
    let db = TestDatabase::create();
    let key = verifier::key_path("test_key_rsa_pkcs1.pem");
    fails_naming(
        &run(&db, &[("SPACEDIGEST_DKIM_KEY_PATH", &key)]),
        &["SPACEDIGEST_DKIM_SELECTOR"],
    );
    fails_naming(
        &run(&db, &[("SPACEDIGEST_DKIM_SELECTOR", "sd2026")]),
        &["SPACEDIGEST_DKIM_KEY_PATH"],
    );
    let missing = db.dir().join("no-such-key.pem");
    fails_naming(
        &run(
            &db,
            &[
                ("SPACEDIGEST_DKIM_KEY_PATH", missing.to_str().unwrap()),
                ("SPACEDIGEST_DKIM_SELECTOR", "sd2026"),
            ],
        ),
        &["SPACEDIGEST_DKIM_KEY_PATH", "no-such-key.pem"],
    );
    let garbled = db.dir().join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecretbutbroken\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let stderr = fails_naming(
        &run(
            &db,
            &[
                ("SPACEDIGEST_DKIM_KEY_PATH", garbled.to_str().unwrap()),
                ("SPACEDIGEST_DKIM_SELECTOR", "sd2026"),
            ],
        ),
        &["SPACEDIGEST_DKIM_KEY_PATH", "garbled.pem"],
    );
    assert!(!stderr.contains("MIIEsecret"), "{stderr}");
    let small = verifier::key_path("test_key_rsa_512.pem");
    fails_naming(
        &run(
            &db,
            &[
                ("SPACEDIGEST_DKIM_KEY_PATH", &small),
                ("SPACEDIGEST_DKIM_SELECTOR", "sd2026"),
            ],
        ),
        &["SPACEDIGEST_DKIM_KEY_PATH", "512 bits"],
    );
    // With both, it runs.
    let output = run(
        &db,
        &[
            ("SPACEDIGEST_DKIM_KEY_PATH", &key),
            ("SPACEDIGEST_DKIM_SELECTOR", "sd2026"),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_signed_digest_reaches_every_reader_once_and_every_copy_verifies() {
    let readers = if crate::support::figures::full() {
        2000
    } else {
        300
    };
    let app = spawn_app_with(Mail::Server, |s| {
        s.mail.dkim = Some(dkim_with("test_key_rsa_pkcs1.pem", "sd2026", None));
    })
    .await;
    let key = verifier::public_key("test_key_rsa_pkcs1.pem");
    let emails = crate::support::add_confirmed_readers(&app, "signed", readers).await;
    let started = std::time::Instant::now();
    send_todays_digest(&app).await;
    let mails = app
        .smtp()
        .wait_for_messages(readers, std::time::Duration::from_secs(120))
        .await;
    let elapsed = started.elapsed();
    let failures: Vec<String> = mails
        .iter()
        .filter_map(|m| verify(&m.data, &key).err())
        .collect();
    crate::support::figures::report(
        "dkim-digest",
        &format!(
            "{readers} signed digests (RSA 2048) in {:.2} s ({:.0}/s, debug build); {} failed verification",
            elapsed.as_secs_f64(),
            readers as f64 / elapsed.as_secs_f64(),
            failures.len()
        ),
    );
    assert!(
        failures.is_empty(),
        "{:?}",
        &failures[..failures.len().min(3)]
    );
    let mut recipients: Vec<String> = mails.iter().flat_map(|m| m.rcpt_to.clone()).collect();
    recipients.sort();
    let mut expected = emails;
    expected.sort();
    assert_eq!(recipients, expected, "every reader exactly once");
    app.smtp()
        .assert_no_more_messages(readers, std::time::Duration::from_millis(300))
        .await;
}
