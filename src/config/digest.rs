//! The digest: the postal address in its footer, and how often the feeds it is made
//! from are polled.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::values::Minutes;

/// The digest's footer and the feeds it is made from.
#[derive(Debug, Clone)]
pub struct DigestSettings {
    /// `SPACEDIGEST_POSTAL_ADDRESS`: the sender's postal address in every digest's footer.
    pub postal_address: String,
    /// `SPACEDIGEST_FEED_POLL_MINUTES`: how often `serve` polls registered feeds.
    pub feed_poll_interval: Duration,
}

/// The digest settings as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawDigest {
    #[serde(default)]
    postal_address: String,
    #[serde(default = "Minutes::of::<30>")]
    feed_poll_minutes: Minutes,
}

impl RawDigest {
    pub(super) fn validate(self) -> Result<DigestSettings, ConfigError> {
        Ok(DigestSettings {
            postal_address: self.postal_address.trim().to_owned(),
            feed_poll_interval: self.feed_poll_minutes.duration(),
        })
    }
}
