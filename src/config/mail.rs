//! Mail: the relay and the sender every email uses unless its stream has its own (see
//! `deliverability`), and the DKIM key that signs them.

use std::path::PathBuf;
use std::str::FromStr;

use lettre::message::Mailbox;
use serde::Deserialize;
use url::Url;

use super::deliverability::RawDeliverability;
use super::{ConfigError, DkimSettings, MailStream, Senders};

/// Senders, relays and the DKIM key.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `SPACEDIGEST_SMTP_URL`.
    pub smtp_url: SmtpUrl,
    /// `SPACEDIGEST_FROM`.
    pub from: Mailbox,
    /// Separate senders (`SPACEDIGEST_TRANSACTIONAL_*`, `SPACEDIGEST_DIGEST_*`); see
    /// [`MailSettings::from_for`] and [`MailSettings::smtp_url_for`].
    pub senders: Senders,
    /// `SPACEDIGEST_DKIM_KEY_PATH`, `SPACEDIGEST_DKIM_SELECTOR`, `SPACEDIGEST_DKIM_DOMAIN`.
    pub dkim: Option<DkimSettings>,
}

impl MailSettings {
    /// The `From` of a stream's emails.
    pub fn from_for(&self, stream: MailStream) -> &Mailbox {
        let chosen = match stream {
            MailStream::Transactional => self.senders.transactional_from.as_ref(),
            MailStream::Digest => self.senders.digest_from.as_ref(),
        };
        chosen.unwrap_or(&self.from)
    }

    /// The relay of a stream's emails.
    pub fn smtp_url_for(&self, stream: MailStream) -> &SmtpUrl {
        let chosen = match stream {
            MailStream::Transactional => self.senders.transactional_smtp_url.as_ref(),
            MailStream::Digest => self.senders.digest_smtp_url.as_ref(),
        };
        chosen.unwrap_or(&self.smtp_url)
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

/// The relay and sender as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawMail {
    #[serde(default = "default_smtp_url")]
    smtp_url: String,
    #[serde(default = "default_from")]
    from: String,
}

fn default_smtp_url() -> String {
    "file://outbox".into()
}

fn default_from() -> String {
    "Space Daily <newsletter@localhost>".into()
}

impl RawMail {
    pub(super) fn validate(self, streams: RawDeliverability) -> Result<MailSettings, ConfigError> {
        let smtp_url =
            SmtpUrl::parse(&self.smtp_url).map_err(|e| ConfigError::new("smtp_url", e))?;
        let from = Mailbox::from_str(&self.from).map_err(|e| {
            ConfigError::new(
                "from",
                format!("not a valid sender ({e}); use e.g. Space Daily <news@example.com>"),
            )
        })?;
        let (senders, dkim) = streams.validate()?;
        Ok(MailSettings {
            smtp_url,
            from,
            senders,
            dkim,
        })
    }
}
