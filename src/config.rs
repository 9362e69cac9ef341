//! Settings: `spacedigest.toml` (or `--config FILE`) overlaid by `SPACEDIGEST_*` variables,
//! parsed once at start into typed values. A bad or unknown setting stops the program with
//! a message that names the variable, so an operator never runs half-configured.
//!
//! Each section is one file: its settings as written (a `Raw…` struct whose fields are the
//! flat keys, each with its doc and default) and the typed section it checks them into.
//! Every section reads the same figment; unknown keys are refused once, against the union
//! of the sections' keys.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

mod bounces;
pub use bounces::{BounceSettings, WebhookToken};
mod console;
pub use console::ConsoleSettings;
mod database;
pub use database::{DatabaseSettings, DatabaseUrl, SqliteSynchronous};
mod default;
mod deliverability;
pub use deliverability::{DkimKey, DkimSettings, MailStream, Senders};
mod delivery;
pub use delivery::DeliverySettings;
mod digest;
pub use digest::DigestSettings;
mod fetch;
pub use fetch::FetchSettings;
mod http;
pub use http::HttpSettings;
mod keys;
mod mail;
pub use mail::{MailSettings, SmtpUrl};
mod observability;
pub use observability::{LogFormat, ObservabilitySettings};
mod server;
pub use server::{ServerSettings, link};
mod signup;
mod values;
pub use signup::SignupSettings;

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

/// Every setting, validated, by section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the web server listens and what it believes about its clients.
    pub server: ServerSettings,
    /// Where the data lives and how many connections open to it.
    pub database: DatabaseSettings,
    /// Senders, relays and the DKIM key.
    pub mail: MailSettings,
    /// Per-IP and per-address limits of the signup path.
    pub signup: SignupSettings,
    /// The console's sessions.
    pub console: ConsoleSettings,
    /// The digest's footer and the feeds it is made from.
    pub digest: DigestSettings,
    /// How the delivery worker talks to the mail server and retries.
    pub delivery: DeliverySettings,
    /// When a subscriber counts as bounced, and the bounce webhook's token.
    pub bounces: BounceSettings,
    /// Where server-side fetches may connect.
    pub fetch: FetchSettings,
    /// Logs and metrics.
    pub observability: ObservabilitySettings,
}

/// Every key a section accepts, from the sections' raw structs themselves, so a new
/// setting is known (and documented, see the tests) without a list to keep.
fn setting_keys() -> impl Iterator<Item = &'static str> {
    [
        keys::of::<server::RawServer>(),
        keys::of::<http::RawHttp>(),
        keys::of::<database::RawDatabase>(),
        keys::of::<mail::RawMail>(),
        keys::of::<deliverability::RawDeliverability>(),
        keys::of::<signup::RawSignup>(),
        keys::of::<console::RawConsole>(),
        keys::of::<digest::RawDigest>(),
        keys::of::<delivery::RawDelivery>(),
        keys::of::<bounces::RawBounces>(),
        keys::of::<fetch::RawFetch>(),
        keys::of::<observability::RawObservability>(),
    ]
    .into_iter()
    .flatten()
    .copied()
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
        Self::from_figment(&figment)
    }

    /// The defaults, as a fresh checkout runs: for tests and examples.
    pub fn defaults() -> Self {
        Self::from_figment(&Figment::new()).expect("the built-in defaults are valid")
    }

    fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        refuse_unknown_keys(figment)?;
        let bounces = read::<bounces::RawBounces>(figment)?.validate()?;
        let database = read::<database::RawDatabase>(figment)?.validate()?;
        let http = read::<http::RawHttp>(figment)?.validate()?;
        let server = read::<server::RawServer>(figment)?.validate(http)?;
        let mail = read::<mail::RawMail>(figment)?
            .validate(read::<deliverability::RawDeliverability>(figment)?)?;
        let signup = read::<signup::RawSignup>(figment)?.validate()?;
        let delivery = read::<delivery::RawDelivery>(figment)?.validate()?;
        let observability = read::<observability::RawObservability>(figment)?.validate()?;
        let digest = read::<digest::RawDigest>(figment)?.validate()?;
        let console = read::<console::RawConsole>(figment)?.validate()?;
        let fetch = read::<fetch::RawFetch>(figment)?.validate()?;
        Ok(Self {
            server,
            database,
            mail,
            signup,
            console,
            digest,
            delivery,
            bounces,
            fetch,
            observability,
        })
    }
}

/// One section's settings as written.
fn read<'de, T: Deserialize<'de>>(figment: &Figment) -> Result<T, ConfigError> {
    figment.extract().map_err(from_figment)
}

/// A key no section reads is a typo or a setting of another version: refused by name.
fn refuse_unknown_keys(figment: &Figment) -> Result<(), ConfigError> {
    let given: figment::value::Dict = figment.extract().map_err(from_figment)?;
    match given
        .keys()
        .find(|key| !setting_keys().any(|known| known == key.as_str()))
    {
        Some(unknown) => Err(ConfigError {
            variable: variable_name(unknown),
            reason: "unknown setting".into(),
        }),
        None => Ok(()),
    }
}

fn from_figment(err: figment::Error) -> ConfigError {
    match err.path.last() {
        Some(key) => ConfigError::new(key, err.kind.to_string()),
        None => ConfigError {
            variable: "configuration".into(),
            reason: err.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
