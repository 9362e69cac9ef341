//! Fetching feeds over HTTP: through the guarded client (public addresses only, unless
//! the settings open others), a bounded body, a deadline, and conditional GET so an
//! unchanged feed costs one small request.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use url::Url;

use super::parse::MAX_FEED_BYTES;
use crate::config::FetchSettings;
use crate::fetch::{AddressPolicy, GuardedClient, Refused};

/// The whole exchange, body included, must finish within this.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Redirects followed, each checked like the first request.
const MAX_REDIRECTS: usize = 5;

/// Feed formats first, then anything: some servers label feeds `text/html`.
const ACCEPT_FEEDS: &str = "application/rss+xml, application/atom+xml, application/feed+json, \
     application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, \
     */*;q=0.5";

/// Validators from the last successful fetch, sent back so the server can answer 304.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    /// The stored `ETag`.
    pub etag: Option<String>,
    /// The stored `Last-Modified`.
    pub last_modified: Option<String>,
}

/// What a fetch brought back.
#[derive(Debug)]
pub enum Fetched {
    /// 304: nothing changed since the validators were issued.
    NotModified,
    /// The feed's bytes and the validators to send next time.
    Body {
        /// At most [`MAX_FEED_BYTES`].
        bytes: Vec<u8>,
        /// Validators for the next conditional GET.
        validators: Validators,
    },
}

/// Why a fetch failed, in words for the operator: no URL (it may hold credentials) and
/// nothing the server sent beyond its status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The address is not one fetches may reach; nothing was sent to it.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Not 2xx (or 304 to a conditional request).
    #[error("the server answered {0}")]
    Status(String),
    /// The body is over the limit.
    #[error("the feed is larger than 5 MiB")]
    TooLarge,
    /// No answer within [`FETCH_TIMEOUT`].
    #[error("no complete answer within {} seconds", FETCH_TIMEOUT.as_secs())]
    Timeout,
    /// Connection, TLS or protocol trouble.
    #[error("{0}")]
    Transport(String),
}

/// An HTTP client for feeds; cheap to clone, meant to be shared.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: GuardedClient,
}

impl Fetcher {
    /// A client with our User-Agent, timeouts, gzip and at most 5 redirects, reaching
    /// only the addresses `settings` allow.
    pub fn new(settings: &FetchSettings) -> Result<Self, FetchError> {
        let builder = reqwest::Client::builder()
            .user_agent(concat!("spacedigest/", env!("CARGO_PKG_VERSION")))
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT);
        let client = GuardedClient::build(builder, AddressPolicy::new(settings), MAX_REDIRECTS)
            .map_err(|e| FetchError::Transport(describe(&e)))?;
        Ok(Self { client })
    }

    /// GETs `url`, conditionally when `validators` hold anything, reading at most
    /// [`MAX_FEED_BYTES`] (after decompression) before giving up.
    pub async fn fetch(&self, url: &Url, validators: &Validators) -> Result<Fetched, FetchError> {
        let mut request = self.client.get(url)?.header(ACCEPT, ACCEPT_FEEDS);
        if let Some(etag) = &validators.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(last_modified) = &validators.last_modified {
            request = request.header(IF_MODIFIED_SINCE, last_modified);
        }
        let failed = |e| failure(url, e);
        let mut response = request.send().await.map_err(failed)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED
            && (validators.etag.is_some() || validators.last_modified.is_some())
        {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.to_string()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_FEED_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let validators = validators_of(response.headers());
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if bytes.len() + chunk.len() > MAX_FEED_BYTES {
                return Err(FetchError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body { bytes, validators })
    }
}

fn validators_of(headers: &HeaderMap) -> Validators {
    // Validators are echoed back verbatim; one that is not visible ASCII could not be
    // sent again, so it is not kept.
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 500)
            .map(str::to_owned)
    };
    Validators {
        etag: text(ETAG),
        last_modified: text(LAST_MODIFIED),
    }
}

fn failure(url: &Url, error: reqwest::Error) -> FetchError {
    if let Some(refused) = GuardedClient::refusal(url, &error) {
        FetchError::Refused(refused)
    } else if error.is_timeout() {
        FetchError::Timeout
    } else {
        FetchError::Transport(describe(&error))
    }
}

/// The error and its causes on one line, without the URL (it may carry credentials).
fn describe(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        // rustls names the certificate's subjects in its errors, which the server chose;
        // the log has the detail, the operator's message the kind of failure.
        if error.is_connect() && is_tls_failure(e) {
            tracing::debug!(error = %e, "TLS handshake failed");
            parts.push("the TLS handshake failed".to_owned());
            break;
        }
        let text = e.to_string();
        if !parts.iter().any(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    // reqwest names the URL in its own message; the causes never do.
    let mut line = parts.join(": ");
    if let Some(url) = error.url() {
        line = line.replace(&format!(" for url ({url})"), "");
        line = line.replace(url.as_str(), "the feed URL");
    }
    line
}

/// tokio-rustls reports a failed handshake as `InvalidData`, inside another I/O error
/// whose `source` skips it.
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut io = error.downcast_ref::<std::io::Error>();
    while let Some(e) = io {
        if e.kind() == std::io::ErrorKind::InvalidData {
            return true;
        }
        io = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<std::io::Error>());
    }
    false
}

/// A feed URL to register: absolute http(s), normalised (so the same feed written two
/// ways is one feed). The error says why, for the operator.
pub fn feed_url(raw: &str) -> Result<Url, String> {
    let raw = raw.trim();
    let mut url = Url::parse(raw).map_err(|e| format!("invalid feed URL \"{raw}\": {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "invalid feed URL \"{}\": only http and https URLs can be polled",
            display_url(raw)
        ));
    }
    // A fragment never reaches the server.
    url.set_fragment(None);
    Ok(url)
}

/// A URL as it may appear in logs and listings: no password, no query string (both
/// can hold secrets in private feed URLs).
pub fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            let had_query = parsed.query().is_some();
            parsed.set_query(None);
            parsed.set_fragment(None);
            let mut shown = parsed.to_string();
            if had_query {
                shown.push_str("?…");
            }
            shown
        }
        Err(_) => "(an invalid URL)".to_owned(),
    }
}

/// A URL as the operator's own commands show it: everything but a password.
pub fn display_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_credentials_and_queries() {
        assert_eq!(
            redacted("https://user:secret@feeds.example/rss?token=abc"),
            "https://feeds.example/rss?…"
        );
        assert_eq!(
            redacted("https://feeds.example/rss.xml"),
            "https://feeds.example/rss.xml"
        );
        assert_eq!(redacted("not a url"), "(an invalid URL)");
        assert_eq!(
            display_url("https://user:secret@feeds.example/rss?format=atom"),
            "https://user:***@feeds.example/rss?format=atom"
        );
        assert_eq!(
            display_url("https://feeds.example/?feed=rss2"),
            "https://feeds.example/?feed=rss2"
        );
    }
}
