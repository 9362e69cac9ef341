//! One pooled lettre transport per process: SMTP (plain, STARTTLS, implicit TLS) or a
//! directory of `.eml` files.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{DeliverySettings, SmtpUrl};

/// Sends messages; cheap to clone (the SMTP pool is shared).
#[derive(Clone)]
pub enum Mailer {
    /// Through an SMTP server, over pooled connections.
    Smtp(SmtpMailer),
    /// Into a directory, one `.eml` file per message.
    File(AsyncFileTransport<Tokio1Executor>),
}

/// The SMTP transport with a whole-send deadline.
///
/// lettre's own timeout covers connecting, not waiting for replies, so each send runs
/// under a deadline. A send cut off mid-conversation would leave its pooled connection
/// out of step (the late reply answers the next command), so after a timeout the whole
/// pool is replaced.
#[derive(Clone)]
pub struct SmtpMailer {
    url: String,
    concurrency: usize,
    timeout: Duration,
    transport: Arc<RwLock<AsyncSmtpTransport<Tokio1Executor>>>,
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

impl SmtpMailer {
    fn build(
        url: &str,
        concurrency: usize,
        timeout: Duration,
    ) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
        let pool = PoolConfig::new().max_size(u32::try_from(concurrency).unwrap_or(u32::MAX));
        Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("invalid setting SPACEDIGEST_SMTP_URL: {e}"))?
            .timeout(Some(timeout))
            .pool_config(pool)
            .build())
    }

    async fn send(&self, message: Message) -> Result<(), SendError> {
        let transport = self
            .transport
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match tokio::time::timeout(self.timeout, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            // 4xx, refused connections, TLS trouble: the server or the network may
            // recover, so the email waits rather than being lost.
            Ok(Err(e)) => Err(SendError::Transient(e.to_string())),
            Err(_) => {
                if let Ok(fresh) = Self::build(&self.url, self.concurrency, self.timeout) {
                    *self
                        .transport
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
                }
                Err(SendError::Transient(format!(
                    "no reply from the mail server within {} s",
                    self.timeout.as_secs()
                )))
            }
        }
    }
}

impl Mailer {
    /// The transport for `url`; the file transport's directory is created if missing.
    pub fn new(url: &SmtpUrl, delivery: &DeliverySettings) -> anyhow::Result<Self> {
        match url {
            SmtpUrl::Smtp(raw) => {
                let transport =
                    SmtpMailer::build(raw, delivery.concurrency, delivery.smtp_timeout)?;
                Ok(Self::Smtp(SmtpMailer {
                    url: raw.clone(),
                    concurrency: delivery.concurrency,
                    timeout: delivery.smtp_timeout,
                    transport: Arc::new(RwLock::new(transport)),
                }))
            }
            SmtpUrl::File(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("cannot create the mail directory {}: {e}", dir.display())
                })?;
                Ok(Self::File(AsyncFileTransport::new(dir)))
            }
        }
    }

    /// Sends one message and classifies any failure.
    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Self::Smtp(smtp) => smtp.send(message).await,
            Self::File(transport) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| SendError::Transient(e.to_string())),
        }
    }
}
