//! The web server: where it listens, how many workers, the public URL every link starts
//! with, whose `X-Forwarded-For` it believes, and the key that signs links.

use std::net::SocketAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;
use url::Url;

use super::values::{Count, Networks};
use super::{ConfigError, HttpSettings};

/// Where the web server listens and what it believes about its clients.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `SPACEDIGEST_LISTEN`.
    pub listen: SocketAddr,
    /// `SPACEDIGEST_HTTP_WORKERS`: HTTP worker threads.
    pub http_workers: usize,
    /// `SPACEDIGEST_HTTP_*`: deadlines for slow clients and the connection cap.
    pub http: HttpSettings,
    /// `SPACEDIGEST_BASE_URL`, without a trailing slash.
    pub base_url: Url,
    /// `SPACEDIGEST_TRUSTED_PROXIES`: comma-separated addresses or CIDR ranges.
    pub trusted_proxies: Vec<IpNet>,
    /// `SPACEDIGEST_SECRET_KEY`; when absent one is generated and kept in the database.
    pub secret_key: Option<String>,
}

impl ServerSettings {
    /// `BASE_URL` joined with an absolute path such as `/subscriptions/confirm`.
    pub fn link(&self, path_and_query: &str) -> String {
        link(&self.base_url, path_and_query)
    }
}

/// `base` joined with an absolute path such as `/subscriptions/confirm`.
pub fn link(base: &Url, path_and_query: &str) -> String {
    let base = base.as_str().trim_end_matches('/');
    format!("{base}{path_and_query}")
}

/// The server settings as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawServer {
    /// `HOST:PORT` with an IP address.
    #[serde(default = "default_listen")]
    listen: String,
    /// Unset: one per core.
    #[serde(default)]
    http_workers: Option<Count<1, { u32::MAX as u64 }>>,
    #[serde(default = "default_base_url")]
    base_url: String,
    #[serde(default)]
    trusted_proxies: Networks,
    /// Unset: generated and kept in the database.
    #[serde(default)]
    secret_key: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_base_url() -> String {
    "http://127.0.0.1:8080".into()
}

impl RawServer {
    pub(super) fn validate(self, http: HttpSettings) -> Result<ServerSettings, ConfigError> {
        let listen = SocketAddr::from_str(&self.listen).map_err(|_| {
            ConfigError::new(
                "listen",
                "use HOST:PORT with an IP address, e.g. 127.0.0.1:8080",
            )
        })?;
        let http_workers = match self.http_workers {
            Some(n) => n.as_usize(),
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let base_url = parse_base_url(&self.base_url)?;
        let secret_key = match self.secret_key {
            Some(key) if key.len() < 32 => {
                return Err(ConfigError::new(
                    "secret_key",
                    "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
                ));
            }
            other => other,
        };
        let trusted_proxies = self.trusted_proxies.0;
        Ok(ServerSettings {
            listen,
            http_workers,
            http,
            base_url,
            trusted_proxies,
            secret_key,
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
