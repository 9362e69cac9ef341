//! The console's sessions: how long one may sit unused, and how long it lasts at most.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, default};

/// The console's sessions.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// `SPACEDIGEST_ADMIN_SESSION_IDLE_MINUTES`: a console session unused this long ends.
    pub session_idle: Duration,
    /// `SPACEDIGEST_ADMIN_SESSION_MAX_HOURS`: a console session ends this long after login.
    pub session_max: Duration,
}

/// The console settings as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawConsole {
    // OWASP suggests 15 to 30 minutes of idleness for a low-risk application, and an
    // absolute limit of a working day.
    #[serde(default = "default::u64::<30>")]
    admin_session_idle_minutes: u64,
    #[serde(default = "default::u64::<12>")]
    admin_session_max_hours: u64,
}

impl RawConsole {
    pub(super) fn validate(self) -> Result<ConsoleSettings, ConfigError> {
        let within = |key: &str, value: u64, most: u64| {
            if value == 0 || value > most {
                Err(ConfigError::new(
                    key,
                    format!("must be between 1 and {most}"),
                ))
            } else {
                Ok(value)
            }
        };
        Ok(ConsoleSettings {
            session_idle: Duration::from_secs(
                within(
                    "admin_session_idle_minutes",
                    self.admin_session_idle_minutes,
                    7 * 24 * 60,
                )? * 60,
            ),
            session_max: Duration::from_secs(
                within(
                    "admin_session_max_hours",
                    self.admin_session_max_hours,
                    30 * 24,
                )? * 3600,
            ),
        })
    }
}
