//! The signup path's limits: per client IP, and per address for confirmation emails.

use std::time::Duration;

use serde::Deserialize;

use super::values::{Hours, Positive, Span};
use super::{ConfigError, default};

/// Per-IP and per-address limits of the signup path.
#[derive(Debug, Clone)]
pub struct SignupSettings {
    /// `SPACEDIGEST_SIGNUP_RATE_PER_MINUTE` (0 = off).
    pub rate_per_minute: u32,
    /// `SPACEDIGEST_CONFIRMATION_TTL_HOURS`: how long a confirmation link works.
    pub confirmation_ttl: Duration,
    /// `SPACEDIGEST_CONFIRMATION_RESEND_MINUTES`: at most one confirmation email per address per this.
    pub confirmation_resend_interval: Duration,
    /// `SPACEDIGEST_CONFIRMATIONS_PER_DAY`: at most this many confirmation emails per address a day.
    pub confirmations_per_day: u32,
}

/// The signup limits as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawSignup {
    #[serde(default = "default::u32::<10>")]
    signup_rate_per_minute: u32,
    #[serde(default = "Hours::of::<48>")]
    confirmation_ttl_hours: Hours,
    #[serde(default = "Span::of::<10>")]
    confirmation_resend_minutes: Span<60, 0, { u64::MAX }>,
    #[serde(default = "Positive::of::<5>")]
    confirmations_per_day: Positive,
}

impl RawSignup {
    pub(super) fn validate(self) -> Result<SignupSettings, ConfigError> {
        Ok(SignupSettings {
            rate_per_minute: self.signup_rate_per_minute,
            confirmation_ttl: self.confirmation_ttl_hours.duration(),
            confirmation_resend_interval: self.confirmation_resend_minutes.duration(),
            confirmations_per_day: self.confirmations_per_day.as_u32(),
        })
    }
}
