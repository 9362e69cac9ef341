//! Bounces: when repeated refusals mark a subscriber bounced, and the token of the
//! webhook that reports them.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::values::{Count, Span};

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

/// The bounce settings as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawBounces {
    // One permanent refusal means the mailbox does not exist; soft bounces (0.5 each)
    // need six within a month.
    #[serde(default = "Count::of::<1>")]
    bounce_hard_limit: Count<1, 1000>,
    #[serde(default = "default_score_limit")]
    bounce_score_limit: f64,
    #[serde(default = "Span::of::<30>")]
    bounce_window_days: Span<86400, 1, 3650>,
    /// Unset: the webhook is off.
    #[serde(default)]
    bounce_webhook_token: Option<String>,
}

fn default_score_limit() -> f64 {
    3.0
}

impl RawBounces {
    pub(super) fn validate(self) -> Result<BounceSettings, ConfigError> {
        // Scores move in steps of 0.5: a limit that is not a multiple would be reached
        // at the next step up anyway, and says something the operator did not mean.
        let score = self.bounce_score_limit;
        if !(0.5..=1000.0).contains(&score) || (score * 2.0).fract() != 0.0 {
            return Err(ConfigError::new(
                "bounce_score_limit",
                "must be a multiple of 0.5 between 0.5 and 1000 (a hard bounce counts 1, a soft one 0.5)",
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
            hard_limit: self.bounce_hard_limit.as_u32(),
            score_limit: score,
            window: self.bounce_window_days.duration(),
            webhook_token,
        })
    }
}
