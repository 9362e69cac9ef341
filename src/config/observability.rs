//! Observability: the log filter and format, and who may read `/metrics`.

use std::net::SocketAddr;
use std::str::FromStr;

use serde::Deserialize;

use super::ConfigError;

/// How logs are written: text for people (the default) or one JSON object per line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; colours only when stderr is a terminal.
    Text,
    /// One JSON object per line, with the current span and its parents.
    Json,
}

/// Logs and metrics: the log filter and format, and who may read `/metrics`.
#[derive(Clone, PartialEq, Eq)]
pub struct ObservabilitySettings {
    /// `SPACEDIGEST_LOG`: a tracing filter such as `info` or `spacedigest=debug`.
    pub log: String,
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
            .field("log", &self.log)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .field("metrics_listen", &self.metrics_listen)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// A shorter bearer token is refused: it would be guessable.
const METRICS_TOKEN_MIN_LEN: usize = 16;

/// The observability settings as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawObservability {
    #[serde(default = "default_log")]
    log: String,
    #[serde(default = "default_log_format")]
    log_format: String,
    #[serde(default)]
    metrics_token: Option<String>,
    #[serde(default)]
    metrics_listen: Option<String>,
}

fn default_log() -> String {
    "info".into()
}

fn default_log_format() -> String {
    "text".into()
}

impl RawObservability {
    pub(super) fn validate(self) -> Result<ObservabilitySettings, ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.log)
            .map_err(|e| ConfigError::new("log", format!("not a valid log filter: {e}")))?;
        let token = self.metrics_token.as_deref();
        let listen = self.metrics_listen.as_deref();
        let format = &self.log_format;
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
        Ok(ObservabilitySettings {
            log: self.log,
            metrics_token,
            metrics_listen,
            log_format,
        })
    }
}
