//! The console's sessions: how long one may sit unused, and how long it lasts at most.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::values::Span;

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
    #[serde(default = "Span::of::<30>")]
    admin_session_idle_minutes: Span<60, 1, { 7 * 24 * 60 }>,
    #[serde(default = "Span::of::<12>")]
    admin_session_max_hours: Span<3600, 1, { 30 * 24 }>,
}

impl RawConsole {
    pub(super) fn validate(self) -> Result<ConsoleSettings, ConfigError> {
        Ok(ConsoleSettings {
            session_idle: self.admin_session_idle_minutes.duration(),
            session_max: self.admin_session_max_hours.duration(),
        })
    }
}
