//! Settings: `spacedigest.toml` (or `--config FILE`) overlaid by `SPACEDIGEST_*` variables,
//! parsed once at start into typed values. A bad or unknown setting stops the program with
//! a message that names the variable, so an operator never runs half-configured.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use ipnet::IpNet;
use lettre::message::Mailbox;
use serde::Deserialize;
use url::Url;

mod deliverability;
pub use deliverability::{DkimKey, DkimSettings, MailStream, Senders};
mod fetch;
pub use fetch::FetchSettings;
mod http;
pub use http::HttpSettings;

/// Prefix of every environment variable the program reads as a setting.
pub const ENV_PREFIX: &str = "SPACEDIGEST_";

/// Read from the working directory when present and no `--config` is given.
const DEFAULT_CONFIG_FILE: &str = "spacedigest.toml";

/// Variables with the prefix that are not settings: read by a single command or by tests.
const NOT_SETTINGS: &[&str] = &[
    "admin_password",
    "test_postgres_url",
    // Read by the fault and abuse tests and the scripts that run them.
    "test_full",
    "test_figures_file",
    "test_seed",
    // Read by the browser test and CI only.
    "require_browser_test",
    "artifacts_dir",
    "chromium",
    "chromedriver",
    "axe_js",
];

/// A setting that could not be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {variable}: {reason}")]
pub struct ConfigError {
    /// The environment variable name of the setting, e.g. `SPACEDIGEST_LISTEN`.
    pub variable: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ConfigError {
    fn new(key: &str, reason: impl Into<String>) -> Self {
        Self {
            variable: variable_name(key),
            reason: reason.into(),
        }
    }
}

fn variable_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// Where the data lives, chosen by the URL scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// Embedded SQLite file.
    Sqlite(PathBuf),
    /// PostgreSQL server, the full libpq URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH` or `postgres://…` / `postgresql://…`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(path) = raw.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://spacedigest.db".into());
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Url::parse(raw).map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
            Ok(Self::Postgres(raw.to_owned()))
        } else {
            Err("use sqlite://PATH or postgres://USER@HOST/DB".into())
        }
    }

    /// A description safe for logs: no password.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(raw) => match Url::parse(raw) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    url.to_string()
                }
                Err(_) => "postgres://…".into(),
            },
        }
    }
}

/// How outgoing mail leaves the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpUrl {
    /// An SMTP relay, as a URL lettre understands (`smtp://`, `smtps://`, `?tls=required`).
    Smtp(String),
    /// Write each message as an `.eml` file into this directory.
    File(PathBuf),
}

impl SmtpUrl {
    /// Parses the `SPACEDIGEST_SMTP_URL` forms of the contract.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(dir) = raw.strip_prefix("file://") {
            if dir.is_empty() {
                return Err("file:// needs a directory, e.g. file://outbox".into());
            }
            return Ok(Self::File(PathBuf::from(dir)));
        }
        let url = Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
        match url.scheme() {
            "smtp" | "smtps" => {}
            other => {
                return Err(format!(
                    "unsupported scheme {other:?}; use smtp://, smtps:// or file://"
                ));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL needs a host, e.g. smtp://mail.example.com:587".into());
        }
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "required" | "opportunistic") => {}
                ("tls", other) => {
                    return Err(format!(
                        "tls={other} is not supported; use tls=required or tls=opportunistic"
                    ));
                }
                (other, _) => return Err(format!("unknown URL parameter {other:?}")),
            }
        }
        Ok(Self::Smtp(raw.to_owned()))
    }

    /// A description safe for logs: no password.
    pub fn redacted(&self) -> String {
        match self {
            Self::File(dir) => format!("file://{}", dir.display()),
            Self::Smtp(raw) => match Url::parse(raw) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    url.to_string()
                }
                Err(_) => "smtp://…".into(),
            },
        }
    }
}

/// SQLite's `synchronous` pragma: FULL survives power loss, NORMAL may lose the last commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// fsync on every commit (the default: an accepted signup is never lost).
    Full,
    /// fsync at checkpoints only; faster, and WAL keeps the file consistent.
    Normal,
}

/// How the delivery worker talks to the mail server and retries.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// SMTP sessions per worker, each sending one message at a time.
    pub concurrency: usize,
    /// Most messages a worker may have sent without having recorded them yet: what a crash
    /// can at worst send twice. Outcomes are committed in groups, so this also bounds how
    /// far sending may run ahead of the database.
    pub in_flight: usize,
    /// How long one SMTP command may take before the attempt counts as failed.
    pub smtp_timeout: Duration,
    /// How long a claimed email stays invisible to other workers.
    pub lease: Duration,
    /// First retry delay after a transient failure; it doubles per attempt.
    pub retry_base: Duration,
    /// Longest delay between two attempts.
    pub retry_max: Duration,
    /// After this long since an email was queued, a transient failure becomes final.
    pub give_up_after: Duration,
    /// How often an idle worker looks for due email (it is also woken on new email).
    pub poll_interval: Duration,
    /// At most this many messages per second per worker (0 = no limit), for relay quotas.
    pub rate_per_second: u32,
    /// At most this many messages per hour per worker (0 = no limit).
    pub rate_per_hour: u32,
}

/// Every setting, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `SPACEDIGEST_DATABASE_URL`.
    pub database_url: DatabaseUrl,
    /// `SPACEDIGEST_DB_POOL_SIZE`: connections per process.
    pub db_pool_size: u32,
    /// `SPACEDIGEST_SQLITE_SYNCHRONOUS`: `full` or `normal`.
    pub sqlite_synchronous: SqliteSynchronous,
    /// `SPACEDIGEST_LISTEN`.
    pub listen: SocketAddr,
    /// `SPACEDIGEST_HTTP_WORKERS`: HTTP worker threads.
    pub http_workers: usize,
    /// `SPACEDIGEST_HTTP_*`: deadlines for slow clients and the connection cap.
    pub http: HttpSettings,
    /// `SPACEDIGEST_BASE_URL`, without a trailing slash.
    pub base_url: Url,
    /// `SPACEDIGEST_SMTP_URL`.
    pub smtp_url: SmtpUrl,
    /// `SPACEDIGEST_FROM`.
    pub from: Mailbox,
    /// `SPACEDIGEST_SECRET_KEY`; when absent one is generated and kept in the database.
    pub secret_key: Option<String>,
    /// `SPACEDIGEST_SIGNUP_RATE_PER_MINUTE` (0 = off).
    pub signup_rate_per_minute: u32,
    /// `SPACEDIGEST_TRUSTED_PROXIES`: comma-separated addresses or CIDR ranges.
    pub trusted_proxies: Vec<IpNet>,
    /// `SPACEDIGEST_CONFIRMATION_TTL_HOURS`: how long a confirmation link works.
    pub confirmation_ttl: Duration,
    /// `SPACEDIGEST_CONFIRMATION_RESEND_MINUTES`: at most one confirmation email per address per this.
    pub confirmation_resend_interval: Duration,
    /// `SPACEDIGEST_CONFIRMATIONS_PER_DAY`: at most this many confirmation emails per address a day.
    pub confirmations_per_day: u32,
    /// Delivery worker settings (`SPACEDIGEST_SEND_CONCURRENCY`, `SPACEDIGEST_SMTP_TIMEOUT_SECONDS`,
    /// `SPACEDIGEST_DELIVERY_LEASE_SECONDS`, `SPACEDIGEST_RETRY_BASE_SECONDS`,
    /// `SPACEDIGEST_RETRY_MAX_SECONDS`, `SPACEDIGEST_RETRY_GIVE_UP_HOURS`,
    /// `SPACEDIGEST_SEND_RATE_PER_SECOND`, `SPACEDIGEST_SEND_RATE_PER_HOUR`).
    pub delivery: DeliverySettings,
    /// `SPACEDIGEST_POSTAL_ADDRESS`: the sender's postal address in every digest's footer.
    pub postal_address: String,
    /// `SPACEDIGEST_FEED_POLL_MINUTES`: how often `serve` polls registered feeds.
    pub feed_poll_interval: Duration,
    /// `SPACEDIGEST_LOG`: a tracing filter such as `info` or `spacedigest=debug`.
    pub log: String,
    /// `SPACEDIGEST_ADMIN_SESSION_IDLE_MINUTES`: a console session unused this long ends.
    pub admin_session_idle: Duration,
    /// `SPACEDIGEST_ADMIN_SESSION_MAX_HOURS`: a console session ends this long after login.
    pub admin_session_max: Duration,
    /// `SPACEDIGEST_METRICS_TOKEN`, `SPACEDIGEST_METRICS_LISTEN`, `SPACEDIGEST_LOG_FORMAT`.
    pub observability: ObservabilitySettings,
    /// When a subscriber counts as bounced, and the bounce webhook's token.
    pub bounces: BounceSettings,
    /// Separate senders (`SPACEDIGEST_TRANSACTIONAL_*`, `SPACEDIGEST_DIGEST_*`); see
    /// [`Settings::from_for`] and [`Settings::smtp_url_for`].
    pub senders: Senders,
    /// `SPACEDIGEST_DKIM_KEY_PATH`, `SPACEDIGEST_DKIM_SELECTOR`, `SPACEDIGEST_DKIM_DOMAIN`.
    pub dkim: Option<DkimSettings>,
    /// Where server-side fetches may connect (`SPACEDIGEST_FETCH_ALLOW_PRIVATE`,
    /// `SPACEDIGEST_FETCH_ALLOWED_NETWORKS`).
    pub fetch: FetchSettings,
}

/// When repeated bounces mark a subscriber bounced (`SPACEDIGEST_BOUNCE_*`).
#[derive(Debug, Clone)]
pub struct BounceSettings {
    /// `SPACEDIGEST_BOUNCE_HARD_LIMIT`: hard bounces within the window that mark a subscriber bounced.
    pub hard_limit: u32,
    /// `SPACEDIGEST_BOUNCE_SCORE_LIMIT`: the score (hard 1, soft 0.5) within the window that does.
    pub score_limit: f64,
    /// `SPACEDIGEST_BOUNCE_WINDOW_DAYS`: how long a bounce counts.
    pub window: Duration,
    /// `SPACEDIGEST_BOUNCE_WEBHOOK_TOKEN`: the bearer token of `POST /webhooks/bounces`;
    /// `None` turns the webhook off.
    pub webhook_token: Option<WebhookToken>,
}

/// A shared secret, kept out of `Debug` output (and so out of logs).
#[derive(Clone)]
pub struct WebhookToken(pub String);

impl std::fmt::Debug for WebhookToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookToken(..)")
    }
}

/// The settings as written, before validation. Unknown keys are refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default = "defaults::database_url")]
    database_url: String,
    #[serde(default = "defaults::db_pool_size")]
    db_pool_size: u32,
    #[serde(default = "defaults::sqlite_synchronous")]
    sqlite_synchronous: String,
    #[serde(default = "defaults::listen")]
    listen: String,
    #[serde(default)]
    http_workers: Option<usize>,
    #[serde(default = "http::defaults::http_head_timeout_seconds")]
    http_head_timeout_seconds: u64,
    #[serde(default = "http::defaults::http_body_timeout_seconds")]
    http_body_timeout_seconds: u64,
    #[serde(default = "http::defaults::http_body_min_bytes_per_second")]
    http_body_min_bytes_per_second: u64,
    #[serde(default = "http::defaults::http_disconnect_timeout_seconds")]
    http_disconnect_timeout_seconds: u64,
    #[serde(default = "http::defaults::http_max_connections")]
    http_max_connections: usize,
    #[serde(default = "defaults::base_url")]
    base_url: String,
    #[serde(default = "defaults::smtp_url")]
    smtp_url: String,
    #[serde(default = "defaults::from")]
    from: String,
    #[serde(default)]
    secret_key: Option<String>,
    #[serde(default = "defaults::signup_rate_per_minute")]
    signup_rate_per_minute: u32,
    #[serde(default)]
    trusted_proxies: String,
    #[serde(default = "defaults::confirmation_ttl_hours")]
    confirmation_ttl_hours: u64,
    #[serde(default = "defaults::confirmation_resend_minutes")]
    confirmation_resend_minutes: u64,
    #[serde(default = "defaults::confirmations_per_day")]
    confirmations_per_day: u32,
    #[serde(default = "defaults::send_concurrency")]
    send_concurrency: usize,
    #[serde(default)]
    send_in_flight: Option<usize>,
    #[serde(default = "defaults::smtp_timeout_seconds")]
    smtp_timeout_seconds: u64,
    #[serde(default = "defaults::delivery_lease_seconds")]
    delivery_lease_seconds: u64,
    #[serde(default = "defaults::retry_base_seconds")]
    retry_base_seconds: u64,
    #[serde(default = "defaults::retry_max_seconds")]
    retry_max_seconds: u64,
    #[serde(default = "defaults::retry_give_up_hours")]
    retry_give_up_hours: u64,
    #[serde(default)]
    postal_address: String,
    #[serde(default = "defaults::feed_poll_minutes")]
    feed_poll_minutes: u64,
    #[serde(default)]
    send_rate_per_second: u32,
    #[serde(default)]
    send_rate_per_hour: u32,
    #[serde(default = "defaults::log")]
    log: String,
    #[serde(default = "defaults::admin_session_idle_minutes")]
    admin_session_idle_minutes: u64,
    #[serde(default = "defaults::admin_session_max_hours")]
    admin_session_max_hours: u64,
    #[serde(default)]
    metrics_token: Option<String>,
    #[serde(default)]
    metrics_listen: Option<String>,
    #[serde(default = "defaults::log_format")]
    log_format: String,
    #[serde(default = "defaults::bounce_hard_limit")]
    bounce_hard_limit: u32,
    #[serde(default = "defaults::bounce_score_limit")]
    bounce_score_limit: f64,
    #[serde(default = "defaults::bounce_window_days")]
    bounce_window_days: u64,
    #[serde(default)]
    bounce_webhook_token: Option<String>,
    // Deliverability (see `deliverability`).
    #[serde(default)]
    transactional_from: Option<String>,
    #[serde(default)]
    transactional_smtp_url: Option<String>,
    #[serde(default)]
    digest_from: Option<String>,
    #[serde(default)]
    digest_smtp_url: Option<String>,
    #[serde(default)]
    dkim_key_path: Option<String>,
    #[serde(default)]
    dkim_selector: Option<String>,
    #[serde(default)]
    dkim_domain: Option<String>,
    // Server-side fetches (see `fetch`).
    #[serde(default)]
    fetch_allow_private: bool,
    #[serde(default)]
    fetch_allowed_networks: String,
}

mod defaults {
    pub fn database_url() -> String {
        "sqlite://spacedigest.db".into()
    }
    pub fn db_pool_size() -> u32 {
        8
    }
    pub fn sqlite_synchronous() -> String {
        "full".into()
    }
    pub fn listen() -> String {
        "127.0.0.1:8080".into()
    }
    pub fn base_url() -> String {
        "http://127.0.0.1:8080".into()
    }
    pub fn smtp_url() -> String {
        "file://outbox".into()
    }
    pub fn from() -> String {
        "Space Daily <newsletter@localhost>".into()
    }
    pub fn signup_rate_per_minute() -> u32 {
        10
    }
    pub fn confirmation_ttl_hours() -> u64 {
        48
    }
    pub fn confirmation_resend_minutes() -> u64 {
        10
    }
    pub fn confirmations_per_day() -> u32 {
        5
    }
    pub fn send_concurrency() -> usize {
        16
    }
    /// Enough that group commits keep the sessions busy, small enough that a crash
    /// repeats little.
    pub fn send_in_flight(concurrency: usize) -> usize {
        (8 * concurrency).max(128)
    }
    pub fn smtp_timeout_seconds() -> u64 {
        30
    }
    pub fn delivery_lease_seconds() -> u64 {
        120
    }
    // Postfix's schedule: 5 minutes, doubling to about 67 minutes, for 5 days.
    pub fn retry_base_seconds() -> u64 {
        300
    }
    pub fn retry_max_seconds() -> u64 {
        4000
    }
    pub fn retry_give_up_hours() -> u64 {
        120
    }
    pub fn feed_poll_minutes() -> u64 {
        30
    }
    pub fn log() -> String {
        "info".into()
    }
    // OWASP suggests 15 to 30 minutes of idleness for a low-risk application, and an
    // absolute limit of a working day.
    pub fn admin_session_idle_minutes() -> u64 {
        30
    }
    pub fn admin_session_max_hours() -> u64 {
        12
    }
    pub fn log_format() -> String {
        "text".into()
    }
    // One permanent refusal means the mailbox does not exist; soft bounces (0.5 each)
    // need six within a month.
    pub fn bounce_hard_limit() -> u32 {
        1
    }
    pub fn bounce_score_limit() -> f64 {
        3.0
    }
    pub fn bounce_window_days() -> u64 {
        30
    }
}

impl Settings {
    /// Reads `config_file` (or `spacedigest.toml` when present) and the environment.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        match config_file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError {
                        variable: "--config".into(),
                        reason: format!("{} is not a readable file", path.display()),
                    });
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            // A missing default file is simply no settings.
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        let env = Env::prefixed(ENV_PREFIX).filter(|key| {
            !NOT_SETTINGS
                .iter()
                .any(|n| key.as_str().eq_ignore_ascii_case(n))
        });
        figment = figment.merge(env);
        let raw: RawSettings = figment.extract().map_err(from_figment)?;
        raw.validate()
    }

    /// The defaults, as a fresh checkout runs: for tests and examples.
    pub fn defaults() -> Self {
        let raw: RawSettings = Figment::new()
            .extract()
            .expect("the built-in defaults are valid");
        raw.validate().expect("the built-in defaults are valid")
    }
}

fn from_figment(err: figment::Error) -> ConfigError {
    let key = err.path.last().cloned();
    let reason = match &err.kind {
        figment::error::Kind::UnknownField(field, _) => {
            return ConfigError {
                variable: variable_name(field),
                reason: "unknown setting".into(),
            };
        }
        kind => kind.to_string(),
    };
    match key {
        Some(key) => ConfigError::new(&key, reason),
        None => ConfigError {
            variable: "configuration".into(),
            reason: err.to_string(),
        },
    }
}

impl RawSettings {
    fn validate(self) -> Result<Settings, ConfigError> {
        let bounces = self.bounce_settings()?;
        let database_url = DatabaseUrl::parse(&self.database_url)
            .map_err(|e| ConfigError::new("database_url", e))?;
        if self.db_pool_size == 0 {
            return Err(ConfigError::new("db_pool_size", "must be at least 1"));
        }
        let sqlite_synchronous = match self.sqlite_synchronous.to_ascii_lowercase().as_str() {
            "full" => SqliteSynchronous::Full,
            "normal" => SqliteSynchronous::Normal,
            _ => {
                return Err(ConfigError::new("sqlite_synchronous", "use full or normal"));
            }
        };
        let listen = SocketAddr::from_str(&self.listen).map_err(|_| {
            ConfigError::new(
                "listen",
                "use HOST:PORT with an IP address, e.g. 127.0.0.1:8080",
            )
        })?;
        let http_workers = match self.http_workers {
            Some(0) => return Err(ConfigError::new("http_workers", "must be at least 1")),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let http = http::RawHttp {
            head_timeout_seconds: self.http_head_timeout_seconds,
            body_timeout_seconds: self.http_body_timeout_seconds,
            body_min_bytes_per_second: self.http_body_min_bytes_per_second,
            disconnect_timeout_seconds: self.http_disconnect_timeout_seconds,
            max_connections: self.http_max_connections,
        }
        .validate()?;
        let base_url = parse_base_url(&self.base_url)?;
        let smtp_url =
            SmtpUrl::parse(&self.smtp_url).map_err(|e| ConfigError::new("smtp_url", e))?;
        let from = Mailbox::from_str(&self.from).map_err(|e| {
            ConfigError::new(
                "from",
                format!("not a valid sender ({e}); use e.g. Space Daily <news@example.com>"),
            )
        })?;
        let secret_key = match self.secret_key {
            Some(key) if key.len() < 32 => {
                return Err(ConfigError::new(
                    "secret_key",
                    "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
                ));
            }
            other => other,
        };
        let trusted_proxies = parse_trusted_proxies(&self.trusted_proxies)?;
        let positive = |key: &str, value: u64| {
            if value == 0 {
                Err(ConfigError::new(key, "must be at least 1"))
            } else {
                Ok(value)
            }
        };
        let within = |key: &str, value: u64, most: u64| {
            if value == 0 || value > most {
                Err(ConfigError::new(
                    key,
                    format!("must be between 1 and {most}"),
                ))
            } else {
                Ok(value)
            }
        };
        let confirmation_ttl_hours =
            positive("confirmation_ttl_hours", self.confirmation_ttl_hours)?;
        let smtp_timeout = positive("smtp_timeout_seconds", self.smtp_timeout_seconds)?;
        let lease = positive("delivery_lease_seconds", self.delivery_lease_seconds)?;
        if lease < 2 * smtp_timeout {
            return Err(ConfigError::new(
                "delivery_lease_seconds",
                format!(
                    "must be at least twice SPACEDIGEST_SMTP_TIMEOUT_SECONDS ({}), or a slow send could be sent twice",
                    2 * smtp_timeout
                ),
            ));
        }
        let retry_base = positive("retry_base_seconds", self.retry_base_seconds)?;
        let retry_max = positive("retry_max_seconds", self.retry_max_seconds)?;
        if retry_max < retry_base {
            return Err(ConfigError::new(
                "retry_max_seconds",
                "must not be less than SPACEDIGEST_RETRY_BASE_SECONDS",
            ));
        }
        let give_up = positive("retry_give_up_hours", self.retry_give_up_hours)?;
        if self.send_concurrency == 0 || self.send_concurrency > 1024 {
            return Err(ConfigError::new(
                "send_concurrency",
                "must be between 1 and 1024",
            ));
        }
        let in_flight = self
            .send_in_flight
            .unwrap_or_else(|| defaults::send_in_flight(self.send_concurrency));
        if in_flight < self.send_concurrency || in_flight > 65536 {
            return Err(ConfigError::new(
                "send_in_flight",
                "must be at least SPACEDIGEST_SEND_CONCURRENCY and at most 65536",
            ));
        }
        if self.confirmations_per_day == 0 {
            return Err(ConfigError::new(
                "confirmations_per_day",
                "must be at least 1",
            ));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| ConfigError::new("log", format!("not a valid log filter: {e}")))?;
        let observability = ObservabilitySettings::parse(
            self.metrics_token.as_deref(),
            self.metrics_listen.as_deref(),
            &self.log_format,
        )?;
        let (senders, dkim) = deliverability::RawDeliverability {
            transactional_from: self.transactional_from,
            transactional_smtp_url: self.transactional_smtp_url,
            digest_from: self.digest_from,
            digest_smtp_url: self.digest_smtp_url,
            dkim_key_path: self.dkim_key_path,
            dkim_selector: self.dkim_selector,
            dkim_domain: self.dkim_domain,
        }
        .validate()?;

        Ok(Settings {
            database_url,
            db_pool_size: self.db_pool_size,
            sqlite_synchronous,
            listen,
            http_workers,
            http,
            base_url,
            smtp_url,
            from,
            secret_key,
            signup_rate_per_minute: self.signup_rate_per_minute,
            trusted_proxies,
            confirmation_ttl: Duration::from_secs(confirmation_ttl_hours * 3600),
            confirmation_resend_interval: Duration::from_secs(
                self.confirmation_resend_minutes * 60,
            ),
            confirmations_per_day: self.confirmations_per_day,
            delivery: DeliverySettings {
                concurrency: self.send_concurrency,
                in_flight,
                smtp_timeout: Duration::from_secs(smtp_timeout),
                lease: Duration::from_secs(lease),
                retry_base: Duration::from_secs(retry_base),
                retry_max: Duration::from_secs(retry_max),
                give_up_after: Duration::from_secs(give_up * 3600),
                poll_interval: Duration::from_secs(1),
                rate_per_second: self.send_rate_per_second,
                rate_per_hour: self.send_rate_per_hour,
            },
            postal_address: self.postal_address.trim().to_owned(),
            feed_poll_interval: Duration::from_secs(
                positive("feed_poll_minutes", self.feed_poll_minutes)? * 60,
            ),
            log: self.log,
            admin_session_idle: Duration::from_secs(
                within(
                    "admin_session_idle_minutes",
                    self.admin_session_idle_minutes,
                    7 * 24 * 60,
                )? * 60,
            ),
            admin_session_max: Duration::from_secs(
                within(
                    "admin_session_max_hours",
                    self.admin_session_max_hours,
                    30 * 24,
                )? * 3600,
            ),
            observability,
            bounces,
            senders,
            dkim,
            fetch: FetchSettings::parse(self.fetch_allow_private, &self.fetch_allowed_networks)?,
        })
    }

    fn bounce_settings(&self) -> Result<BounceSettings, ConfigError> {
        if self.bounce_hard_limit == 0 || self.bounce_hard_limit > 1000 {
            return Err(ConfigError::new(
                "bounce_hard_limit",
                "must be between 1 and 1000",
            ));
        }
        // Scores move in steps of 0.5: a limit that is not a multiple would be reached
        // at the next step up anyway, and says something the operator did not mean.
        let score = self.bounce_score_limit;
        if !(0.5..=1000.0).contains(&score) || (score * 2.0).fract() != 0.0 {
            return Err(ConfigError::new(
                "bounce_score_limit",
                "must be a multiple of 0.5 between 0.5 and 1000 (a hard bounce counts 1, a soft one 0.5)",
            ));
        }
        if self.bounce_window_days == 0 || self.bounce_window_days > 3650 {
            return Err(ConfigError::new(
                "bounce_window_days",
                "must be between 1 and 3650",
            ));
        }
        let webhook_token = match self.bounce_webhook_token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(token) if token.len() < 32 => {
                return Err(ConfigError::new(
                    "bounce_webhook_token",
                    "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
                ));
            }
            Some(token) if !token.chars().all(|c| c.is_ascii_graphic()) => {
                return Err(ConfigError::new(
                    "bounce_webhook_token",
                    "must be printable ASCII without spaces",
                ));
            }
            Some(token) => Some(WebhookToken(token.to_owned())),
        };
        Ok(BounceSettings {
            hard_limit: self.bounce_hard_limit,
            score_limit: score,
            window: Duration::from_secs(self.bounce_window_days * 24 * 3600),
            webhook_token,
        })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| {
        ConfigError::new(
            "base_url",
            format!("not a URL ({e}); use e.g. https://news.example.com"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::new(
            "base_url",
            "use an http:// or https:// URL",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(
            "base_url",
            "must not have a query or fragment",
        ));
    }
    Ok(url)
}

fn parse_trusted_proxies(raw: &str) -> Result<Vec<IpNet>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            IpNet::from_str(item)
                .or_else(|_| std::net::IpAddr::from_str(item).map(IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "trusted_proxies",
                        format!("{item:?} is not an IP address or CIDR range"),
                    )
                })
        })
        .collect()
}

impl Settings {
    /// `BASE_URL` joined with an absolute path such as `/subscriptions/confirm`.
    pub fn link(&self, path_and_query: &str) -> String {
        let base = self.base_url.as_str().trim_end_matches('/');
        format!("{base}{path_and_query}")
    }
}

// ------------------------------------------------------------------ observability

/// How logs are written: text for people (the default) or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; colours only when stderr is a terminal.
    Text,
    /// One JSON object per line, with the current span and its parents.
    Json,
}

/// Who may read `/metrics`, and the log format.
#[derive(Clone, PartialEq, Eq)]
pub struct ObservabilitySettings {
    /// `SPACEDIGEST_METRICS_TOKEN`: the bearer token `/metrics` on the main listener asks
    /// for; without one that route answers 404.
    pub metrics_token: Option<String>,
    /// `SPACEDIGEST_METRICS_LISTEN`: a separate address serving only `/metrics`, without a token.
    pub metrics_listen: Option<SocketAddr>,
    /// `SPACEDIGEST_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
}

// The token is a secret: never printed, not even in a Debug dump of the settings.
impl std::fmt::Debug for ObservabilitySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservabilitySettings")
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("metrics_listen", &self.metrics_listen)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// A shorter bearer token is refused: it would be guessable.
const METRICS_TOKEN_MIN_LEN: usize = 16;

impl ObservabilitySettings {
    fn parse(token: Option<&str>, listen: Option<&str>, format: &str) -> Result<Self, ConfigError> {
        let metrics_token = match token.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) if t.len() < METRICS_TOKEN_MIN_LEN => {
                return Err(ConfigError::new(
                    "metrics_token",
                    format!(
                        "must be at least {METRICS_TOKEN_MIN_LEN} characters (e.g. `openssl rand -hex 32`)"
                    ),
                ));
            }
            Some(t) if !t.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(ConfigError::new(
                    "metrics_token",
                    "use printable ASCII without spaces: it travels in an Authorization header",
                ));
            }
            other => other.map(str::to_owned),
        };
        let metrics_listen = match listen.map(str::trim).filter(|l| !l.is_empty()) {
            None => None,
            Some(l) => Some(SocketAddr::from_str(l).map_err(|_| {
                ConfigError::new(
                    "metrics_listen",
                    "use HOST:PORT with an IP address, e.g. 127.0.0.1:9187",
                )
            })?),
        };
        let log_format = match format.trim().to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(ConfigError::new("log_format", "use text or json")),
        };
        Ok(Self {
            metrics_token,
            metrics_listen,
            log_format,
        })
    }
}

#[cfg(test)]
// figment's Jail dictates the closure's error type.
#[allow(clippy::result_large_err)]
mod tests {
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

    /// Every key `RawSettings` accepts, as serde lists them when it refuses an unknown one:
    /// taken from the struct itself, so a new setting is in this list without anyone
    /// remembering to add it.
    fn setting_keys() -> &'static [&'static str] {
        let refused = Figment::from(("surely_not_a_setting", 1))
            .extract::<RawSettings>()
            .expect_err("an unknown key is refused");
        match refused.kind {
            figment::error::Kind::UnknownField(_, expected) => expected,
            other => panic!("expected an unknown-field error, got {other}"),
        }
    }

    /// The variables that `docs/configuration.md` gives a table row of their own.
    fn documented_variables() -> Vec<&'static str> {
        include_str!("../docs/configuration.md")
            .lines()
            .filter_map(|line| line.strip_prefix("| `")?.split_once('`'))
            .map(|(variable, _)| variable)
            .filter(|variable| variable.starts_with(ENV_PREFIX))
            .collect()
    }

    #[test]
    fn every_setting_has_a_row_in_docs_configuration_md() {
        let keys = setting_keys();
        assert!(
            keys.contains(&"database_url") && keys.contains(&"dkim_domain"),
            "the key list comes from RawSettings: {keys:?}"
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
        let keys: Vec<String> = setting_keys().iter().map(|k| variable_name(k)).collect();
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
        assert_eq!(s.database_url, DatabaseUrl::Sqlite("spacedigest.db".into()));
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.link("/x"), "http://127.0.0.1:8080/x");
        assert_eq!(s.smtp_url, SmtpUrl::File("outbox".into()));
        assert_eq!(s.from.to_string(), "Space Daily <newsletter@localhost>");
        assert_eq!(s.signup_rate_per_minute, 10);
        assert_eq!(s.confirmation_ttl, Duration::from_secs(48 * 3600));
    }

    #[test]
    fn environment_overrides_and_bad_values_name_the_variable() {
        let s = load_with(&[("SPACEDIGEST_LISTEN", "0.0.0.0:9000")]).unwrap();
        assert_eq!(s.listen.port(), 9000);

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
            assert_eq!(s.listen.port(), 7000);
            assert_eq!(s.link("/a"), "https://news.example.com/a");
            jail.set_env("SPACEDIGEST_LISTEN", "127.0.0.1:7001");
            assert_eq!(Settings::load(None).unwrap().listen.port(), 7001);
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
}
