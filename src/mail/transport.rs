//! Where messages go: an SMTP relay (plain, STARTTLS, implicit TLS) or a directory of
//! `.eml` files.
//!
//! Each delivery task owns one [`MailSession`] per relay ([`Sessions`]: the transactional
//! and the digest relay may differ), so a session is one SMTP connection reused for
//! message after message, with no pool to lock. Messages arrive already formatted, so
//! the digest's shared part is encoded once per issue rather than once per reader.

use std::sync::Arc;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};
use url::Url;

use crate::config::{DeliverySettings, MailStream, Settings, SmtpUrl};

/// A formatted message and its envelope.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// SMTP `MAIL FROM` and `RCPT TO`.
    pub envelope: Envelope,
    /// The RFC 5322 message, CRLF line endings.
    pub bytes: Vec<u8>,
}

impl Outgoing {
    /// The bytes and envelope of a lettre message.
    pub fn from_message(message: &lettre::Message) -> Self {
        Self {
            envelope: message.envelope().clone(),
            bytes: message.formatted(),
        }
    }
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later: the server is unreachable, timed out, or answered 4xx.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The server refused it for good (5xx); retrying would not help.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// How to reach the relay; shared by every session of a process.
#[derive(Clone)]
pub enum Mailer {
    /// Through an SMTP server.
    Smtp(Arc<SmtpEndpoint>),
    /// Into a directory, one `.eml` file per message.
    File(AsyncFileTransport<Tokio1Executor>),
}

impl Mailer {
    /// The transport for `url`, taken from the setting `variable`; the file transport's
    /// directory is created if missing.
    pub fn new(url: &SmtpUrl, delivery: &DeliverySettings, variable: &str) -> anyhow::Result<Self> {
        match url {
            SmtpUrl::Smtp(raw) => Ok(Self::Smtp(Arc::new(
                SmtpEndpoint::parse(raw, delivery.smtp_timeout)
                    .map_err(|e| anyhow::anyhow!("invalid setting {variable}: {e}"))?,
            ))),
            SmtpUrl::File(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("cannot create the mail directory {}: {e}", dir.display())
                })?;
                Ok(Self::File(AsyncFileTransport::new(dir)))
            }
        }
    }

    /// A session: one connection, opened on first use and reused until it fails.
    pub fn session(&self) -> MailSession {
        match self {
            Self::Smtp(endpoint) => MailSession::Smtp {
                endpoint: Arc::clone(endpoint),
                connection: None,
            },
            Self::File(transport) => MailSession::File(transport.clone()),
        }
    }
}

/// The relays of the two streams; a single one when both streams use the same URL.
#[derive(Clone)]
pub struct Mailers {
    transactional: Mailer,
    /// `None`: digests go through the transactional relay.
    digest: Option<Mailer>,
}

impl Mailers {
    /// The relays named by `SPACEDIGEST_TRANSACTIONAL_SMTP_URL` and
    /// `SPACEDIGEST_DIGEST_SMTP_URL` (each `SPACEDIGEST_SMTP_URL` when unset).
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let variable = |own: bool, name: &'static str| {
            if own { name } else { "SPACEDIGEST_SMTP_URL" }
        };
        let transactional_url = settings.mail.smtp_url_for(MailStream::Transactional);
        let digest_url = settings.mail.smtp_url_for(MailStream::Digest);
        let transactional = Mailer::new(
            transactional_url,
            &settings.delivery,
            variable(
                settings.mail.senders.transactional_smtp_url.is_some(),
                "SPACEDIGEST_TRANSACTIONAL_SMTP_URL",
            ),
        )?;
        let digest = if digest_url == transactional_url {
            None
        } else {
            Some(Mailer::new(
                digest_url,
                &settings.delivery,
                variable(
                    settings.mail.senders.digest_smtp_url.is_some(),
                    "SPACEDIGEST_DIGEST_SMTP_URL",
                ),
            )?)
        };
        Ok(Self {
            transactional,
            digest,
        })
    }

    /// One delivery task's sessions: a connection per relay, each opened on first use.
    pub fn sessions(&self) -> Sessions {
        Sessions {
            transactional: self.transactional.session(),
            digest: self.digest.as_ref().map(Mailer::session),
        }
    }
}

/// One delivery task's way out on each relay.
pub struct Sessions {
    transactional: MailSession,
    digest: Option<MailSession>,
}

impl Sessions {
    /// The session of the relay that carries `stream`.
    pub fn for_stream(&mut self, stream: MailStream) -> &mut MailSession {
        match (stream, &mut self.digest) {
            (MailStream::Digest, Some(digest)) => digest,
            _ => &mut self.transactional,
        }
    }
}

/// The parsed `SPACEDIGEST_SMTP_URL`, in lettre's URL forms: `smtp://host:port`,
/// `smtp://…?tls=required` or `?tls=opportunistic` (STARTTLS), `smtps://` (implicit TLS),
/// with optional `user:password@` and a `/helo-name` path.
pub struct SmtpEndpoint {
    host: String,
    port: u16,
    tls: Tls,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
}

enum Tls {
    None,
    Opportunistic(TlsParameters),
    Required(TlsParameters),
    Wrapper(TlsParameters),
}

impl SmtpEndpoint {
    fn parse(raw: &str, timeout: Duration) -> Result<Self, String> {
        let url = Url::parse(raw).map_err(|e| e.to_string())?;
        let host = url
            .host_str()
            .ok_or("the URL has no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let parameters = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
        let tls_mode = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let (tls, default_port) = match (url.scheme(), tls_mode.as_deref()) {
            ("smtp", None) => (Tls::None, 25),
            ("smtp", Some("required")) => (Tls::Required(parameters()?), 587),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(parameters()?), 587),
            ("smtps", _) => (Tls::Wrapper(parameters()?), 465),
            (scheme, tls) => {
                return Err(format!(
                    "unknown scheme {scheme:?} or tls parameter {tls:?} (use smtp://, smtps:// or ?tls=required)"
                ));
            }
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(std::borrow::Cow::into_owned)
                .map_err(|e| e.to_string())
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        let hello = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        Ok(Self {
            port: url.port().unwrap_or(default_port),
            host,
            tls,
            credentials,
            hello,
            timeout,
        })
    }

    /// Connects, says EHLO, upgrades to TLS and authenticates as configured.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let mut connection = match &self.tls {
            // lettre connects implicit TLS itself.
            Tls::Wrapper(parameters) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                Some(parameters.clone()),
                None,
            )
            .await
            .map_err(classify)?,
            _ => {
                // Our own socket, for TCP_NODELAY: lettre writes a message and its final
                // "." separately, and with Nagle's algorithm the second write waits for
                // the server's delayed ACK (40 ms per message on Linux).
                let unreachable = |e: std::io::Error| {
                    SendError::Transient(format!(
                        "cannot connect to {}:{}: {e}",
                        self.host, self.port
                    ))
                };
                let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(unreachable)?;
                stream.set_nodelay(true).map_err(unreachable)?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(classify)?
            }
        };
        match &self.tls {
            Tls::Required(parameters) => {
                connection
                    .starttls(parameters.clone(), &self.hello)
                    .await
                    .map_err(classify)?;
            }
            Tls::Opportunistic(parameters) if connection.can_starttls() => {
                connection
                    .starttls(parameters.clone(), &self.hello)
                    .await
                    .map_err(classify)?;
            }
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(classify)?;
        }
        Ok(connection)
    }
}

/// One delivery task's way out.
pub enum MailSession {
    /// A connection to the relay, opened lazily and replaced after any failure.
    Smtp {
        /// Where to connect.
        endpoint: Arc<SmtpEndpoint>,
        /// The open connection, if any.
        connection: Option<Box<AsyncSmtpConnection>>,
    },
    /// The `.eml` directory.
    File(AsyncFileTransport<Tokio1Executor>),
}

impl MailSession {
    /// Sends one message under the SMTP deadline and classifies any failure.
    ///
    /// lettre's own timeout covers connecting, not waiting for replies, so the whole
    /// attempt runs under a deadline. After a failure or a deadline the connection is
    /// dropped: a conversation cut off mid-way would answer the next command with the
    /// late reply.
    pub async fn send(&mut self, message: &Outgoing) -> Result<(), SendError> {
        match self {
            Self::File(transport) => transport
                .send_raw(&message.envelope, &message.bytes)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Transient(e.to_string())),
            Self::Smtp {
                endpoint,
                connection,
            } => {
                let timeout = endpoint.timeout;
                let attempt = async {
                    let mut open = match connection.take() {
                        Some(open) if !open.has_broken() => open,
                        _ => Box::new(endpoint.connect().await?),
                    };
                    transfer(&mut open, message).await.map_err(classify)?;
                    *connection = Some(open);
                    Ok(())
                };
                match tokio::time::timeout(timeout, attempt).await {
                    Ok(result) => result,
                    Err(_) => Err(SendError::Transient(format!(
                        "no reply from the mail server within {} s",
                        timeout.as_secs()
                    ))),
                }
            }
        }
    }
}

/// One SMTP transaction on an open connection.
///
/// lettre's `send` dot-stuffs the message a byte at a time, which was a fifth of the
/// worker's CPU. An ASCII message to ASCII addresses (every message we build: lettre and
/// [`super::PreparedBody`] encode bodies and headers) is stuffed here with a vectorised
/// search and written in one piece; anything else takes lettre's path, which also
/// negotiates 8BITMIME and SMTPUTF8.
async fn transfer(
    connection: &mut AsyncSmtpConnection,
    message: &Outgoing,
) -> Result<(), lettre::transport::smtp::Error> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    let ascii_addresses = message
        .envelope
        .from()
        .into_iter()
        .chain(message.envelope.to())
        .all(|address: &lettre::Address| AsRef::<str>::as_ref(address).is_ascii());
    if !ascii_addresses || !message.bytes.is_ascii() {
        return connection
            .send(&message.envelope, &message.bytes)
            .await
            .map(|_| ());
    }
    connection
        .command(Mail::new(message.envelope.from().cloned(), Vec::new()))
        .await?;
    for recipient in message.envelope.to() {
        connection
            .command(Rcpt::new(recipient.clone(), Vec::new()))
            .await?;
    }
    connection.command(Data).await?;
    connection.command(DataBody(&message.bytes)).await?;
    Ok(())
}

/// A message as it goes over the wire after `DATA`: CRLF line ends, a dot doubled at
/// the start of any line, and the closing `.` line.
struct DataBody<'a>(&'a [u8]);

impl std::fmt::Display for DataBody<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only ever built from ASCII (checked by the caller).
        let text = std::str::from_utf8(self.0).map_err(|_| std::fmt::Error)?;
        if text.starts_with('.') {
            f.write_str(".")?;
        }
        let mut rest = text;
        while let Some(at) = memchr::memmem::find(rest.as_bytes(), b"\n.") {
            // Up to and including the dot, then the dot again.
            f.write_str(&rest[..at + 2])?;
            f.write_str(".")?;
            rest = &rest[at + 2..];
        }
        f.write_str(rest)?;
        if !text.ends_with("\r\n") {
            f.write_str("\r\n")?;
        }
        f.write_str(".\r\n")
    }
}

/// 5xx is final; 4xx, refused connections and TLS trouble may pass, so the email waits
/// rather than being lost.
fn classify(error: lettre::transport::smtp::Error) -> SendError {
    if error.is_permanent() {
        SendError::Permanent(error.to_string())
    } else {
        SendError::Transient(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::DataBody;

    #[test]
    fn the_data_body_doubles_leading_dots_and_ends_with_a_dot_line() {
        assert_eq!(
            DataBody(b".a\r\nb\r\n..c\r\n.\r\nd").to_string(),
            "..a\r\nb\r\n...c\r\n..\r\nd\r\n.\r\n"
        );
        assert_eq!(DataBody(b"x\r\n").to_string(), "x\r\n.\r\n");
    }
}
