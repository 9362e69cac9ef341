//! The settings' own tests; `load_with` is shared with the sections' tests.

// figment's Jail dictates the closure's error type.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use super::*;

/// `Settings::load` with exactly `vars` in the environment (also used by submodules' tests).
pub(super) fn load_with(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut result = None;
    figment::Jail::expect_with(|jail| {
        for (k, v) in vars {
            jail.set_env(k, v);
        }
        result = Some(Settings::load(None));
        Ok(())
    });
    result.expect("the jail ran")
}

/// Every key the sections' raw structs accept, as serde derives them:
/// taken from the structs themselves, so a new setting is in this list without anyone
/// remembering to add it.
fn keys() -> Vec<&'static str> {
    setting_keys().collect()
}

/// The variables that `docs/configuration.md` gives a table row of their own.
fn documented_variables() -> Vec<&'static str> {
    include_str!("../../docs/configuration.md")
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split_once('`'))
        .map(|(variable, _)| variable)
        .filter(|variable| variable.starts_with(ENV_PREFIX))
        .collect()
}

#[test]
fn each_key_belongs_to_one_section() {
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<&str> = keys()
        .into_iter()
        .filter(|key| !seen.insert(*key))
        .collect();
    assert!(twice.is_empty(), "keys read by two sections: {twice:?}");
}

#[test]
fn every_setting_has_a_row_in_docs_configuration_md() {
    let keys = keys();
    assert!(
        keys.contains(&"database_url") && keys.contains(&"dkim_domain"),
        "the key list comes from the sections: {keys:?}"
    );
    let documented = documented_variables();
    let missing: Vec<String> = keys
        .iter()
        .map(|key| variable_name(key))
        .filter(|variable| !documented.contains(&variable.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "settings without a row (variable, default, meaning) in docs/configuration.md: {missing:?}"
    );
}

#[test]
fn docs_configuration_md_lists_only_real_settings_once() {
    let keys: Vec<String> = keys().iter().map(|k| variable_name(k)).collect();
    let documented = documented_variables();
    let unknown: Vec<&str> = documented
        .iter()
        .copied()
        .filter(|variable| !keys.iter().any(|k| k == variable))
        .collect();
    assert!(
        unknown.is_empty(),
        "docs/configuration.md has rows for variables the program would refuse: {unknown:?}"
    );
    let mut seen = std::collections::HashSet::new();
    let twice: Vec<&str> = documented
        .iter()
        .copied()
        .filter(|variable| !seen.insert(*variable))
        .collect();
    assert!(
        twice.is_empty(),
        "rows given twice in docs/configuration.md: {twice:?}"
    );
}

#[test]
fn defaults_match_the_contract() {
    let s = Settings::defaults();
    assert_eq!(s.database.url, DatabaseUrl::Sqlite("spacedigest.db".into()));
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.server.link("/x"), "http://127.0.0.1:8080/x");
    assert_eq!(s.mail.smtp_url, SmtpUrl::File("outbox".into()));
    assert_eq!(
        s.mail.from.to_string(),
        "Space Daily <newsletter@localhost>"
    );
    assert_eq!(s.signup.rate_per_minute, 10);
    assert_eq!(s.signup.confirmation_ttl, Duration::from_secs(48 * 3600));
}

#[test]
fn environment_overrides_and_bad_values_name_the_variable() {
    let s = load_with(&[("SPACEDIGEST_LISTEN", "0.0.0.0:9000")]).unwrap();
    assert_eq!(s.server.listen.port(), 9000);

    let err = load_with(&[("SPACEDIGEST_LISTEN", "nowhere")]).unwrap_err();
    assert_eq!(err.variable, "SPACEDIGEST_LISTEN");
    let err = load_with(&[("SPACEDIGEST_DATABASE_URL", "mysql://x")]).unwrap_err();
    assert_eq!(err.variable, "SPACEDIGEST_DATABASE_URL");
    let err = load_with(&[("SPACEDIGEST_SIGNUP_RATE_PER_MINUTE", "lots")]).unwrap_err();
    assert_eq!(err.variable, "SPACEDIGEST_SIGNUP_RATE_PER_MINUTE");
    let err = load_with(&[("SPACEDIGEST_SMTP_URL", "http://mail")]).unwrap_err();
    assert_eq!(err.variable, "SPACEDIGEST_SMTP_URL");
    let err = load_with(&[("SPACEDIGEST_LISTN", "1")]).unwrap_err();
    assert_eq!(err.variable, "SPACEDIGEST_LISTN");
    assert!(err.to_string().contains("unknown setting"));
    let err = load_with(&[("SPACEDIGEST_SECRET_KEY", "short")]).unwrap_err();
    assert_eq!(err.variable, "SPACEDIGEST_SECRET_KEY");
}

#[test]
fn observability_settings_are_checked_and_the_token_never_printed() {
    let s = load_with(&[]).unwrap();
    assert_eq!(s.observability.log_format, LogFormat::Text);
    assert_eq!(s.observability.metrics_token, None);
    assert_eq!(s.observability.metrics_listen, None);
    let s = load_with(&[
        ("SPACEDIGEST_LOG_FORMAT", "JSON"),
        ("SPACEDIGEST_METRICS_TOKEN", "a-long-enough-scrape-token"),
        ("SPACEDIGEST_METRICS_LISTEN", "127.0.0.1:9187"),
    ])
    .unwrap();
    assert_eq!(s.observability.log_format, LogFormat::Json);
    assert_eq!(s.observability.metrics_listen.unwrap().port(), 9187);
    assert!(!format!("{s:?}").contains("a-long-enough-scrape-token"));
    for (variable, value) in [
        ("SPACEDIGEST_LOG_FORMAT", "yaml"),
        ("SPACEDIGEST_METRICS_TOKEN", "short"),
        ("SPACEDIGEST_METRICS_TOKEN", "has a space in it, sadly"),
        ("SPACEDIGEST_METRICS_LISTEN", "localhost"),
    ] {
        let err = load_with(&[(variable, value)]).unwrap_err();
        assert_eq!(err.variable, variable, "{value}");
    }
}

#[test]
fn config_file_is_read_and_environment_wins() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "spacedigest.toml",
            "listen = \"127.0.0.1:7000\"\nbase_url = \"https://news.example.com/\"\n",
        )?;
        let s = Settings::load(None).unwrap();
        assert_eq!(s.server.listen.port(), 7000);
        assert_eq!(s.server.link("/a"), "https://news.example.com/a");
        jail.set_env("SPACEDIGEST_LISTEN", "127.0.0.1:7001");
        assert_eq!(Settings::load(None).unwrap().server.listen.port(), 7001);
        jail.create_file("spacedigest.toml", "colour = \"red\"\n")?;
        assert_eq!(
            Settings::load(None).unwrap_err().variable,
            "SPACEDIGEST_COLOUR"
        );
        Ok(())
    });
}

#[test]
fn smtp_urls_of_the_contract_parse() {
    assert!(SmtpUrl::parse("smtp://127.0.0.1:2525").is_ok());
    assert!(SmtpUrl::parse("smtp://u:p@mail.example.com:587?tls=required").is_ok());
    assert!(SmtpUrl::parse("smtps://mail.example.com").is_ok());
    assert!(SmtpUrl::parse("file:///var/spool/x").is_ok());
    assert!(SmtpUrl::parse("smtp://host?tls=maybe").is_err());
    assert!(SmtpUrl::parse("smtp://").is_err());
    let redacted = SmtpUrl::parse("smtp://u:secret@h:25").unwrap().redacted();
    assert!(!redacted.contains("secret"));
}

#[test]
fn bounce_settings_default_and_refuse_nonsense_by_name() {
    let s = Settings::defaults();
    assert_eq!(s.bounces.hard_limit, 1);
    assert!((s.bounces.score_limit - 3.0).abs() < f64::EPSILON);
    assert_eq!(s.bounces.window, Duration::from_secs(30 * 24 * 3600));
    assert!(s.bounces.webhook_token.is_none());
    for (variable, value) in [
        ("SPACEDIGEST_BOUNCE_HARD_LIMIT", "0"),
        ("SPACEDIGEST_BOUNCE_SCORE_LIMIT", "2.7"),
        ("SPACEDIGEST_BOUNCE_SCORE_LIMIT", "many"),
        ("SPACEDIGEST_BOUNCE_WINDOW_DAYS", "0"),
        ("SPACEDIGEST_BOUNCE_WEBHOOK_TOKEN", "short"),
    ] {
        let err = load_with(&[(variable, value)]).unwrap_err();
        assert_eq!(err.variable, variable, "{value}");
    }
    let token = "t".repeat(40);
    let s = load_with(&[("SPACEDIGEST_BOUNCE_WEBHOOK_TOKEN", &token)]).unwrap();
    let kept = s.bounces.webhook_token.clone().expect("the token is kept");
    assert_eq!(kept.0, token);
    assert!(!format!("{:?}", s.bounces).contains(&token));
}
