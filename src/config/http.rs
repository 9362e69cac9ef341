//! How long the web server waits for slow clients and how many it serves at once
//! (`SPACEDIGEST_HTTP_*`): a client that trickles its request must not hold a connection,
//! or enough of them a file descriptor each, for as long as it likes.

use std::time::Duration;

use serde::Deserialize;

use super::values::Count;
use super::{ConfigError, default};

/// The web server's deadlines and connection cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// `SPACEDIGEST_HTTP_HEAD_TIMEOUT_SECONDS`: a request's head (line and headers) must
    /// arrive within this of the connection opening; else 408 and the connection closes.
    pub head_timeout: Duration,
    /// `SPACEDIGEST_HTTP_BODY_TIMEOUT_SECONDS`: a request's body must arrive within this of
    /// its head, plus one second per [`HttpSettings::body_min_rate`] bytes received.
    pub body_timeout: Duration,
    /// `SPACEDIGEST_HTTP_BODY_MIN_BYTES_PER_SECOND`: bytes of body that earn one more second,
    /// so a large upload at a decent speed finishes while a trickle does not; 0 = none.
    pub body_min_rate: u64,
    /// `SPACEDIGEST_HTTP_DISCONNECT_TIMEOUT_SECONDS`: how long closing a connection may take
    /// before it is dropped; 0 = drop at once.
    pub disconnect_timeout: Duration,
    /// `SPACEDIGEST_HTTP_MAX_CONNECTIONS`: open connections for the whole process; further
    /// clients wait in the listen queue until one closes.
    pub max_connections: usize,
}

impl HttpSettings {
    /// The per-worker cap actix-web takes, so that all workers together stay within
    /// [`HttpSettings::max_connections`].
    pub fn max_connections_per_worker(&self, workers: usize) -> usize {
        (self.max_connections / workers.max(1)).max(1)
    }
}

/// The HTTP settings as written.
#[derive(Debug, Deserialize)]
pub(super) struct RawHttp {
    // actix-web's own defaults, said out loud.
    #[serde(default = "default::u64::<5>")]
    http_head_timeout_seconds: u64,
    // A signup form is a few hundred bytes: ten seconds is ample on any link.
    #[serde(default = "default::u64::<10>")]
    http_body_timeout_seconds: u64,
    // 64 KiB/s (half a megabit): the console's 16 MiB upload may take four minutes.
    #[serde(default = "default::u64::<65_536>")]
    http_body_min_bytes_per_second: u64,
    #[serde(default = "default::u64::<1>")]
    http_disconnect_timeout_seconds: u64,
    // Each connection is a file descriptor; systemd's default soft limit is 1024, and the
    // database pool, SMTP sessions and files need some of them too.
    #[serde(default = "Count::of::<512>")]
    http_max_connections: Count<1, 1_000_000>,
}

impl RawHttp {
    pub(super) fn validate(self) -> Result<HttpSettings, ConfigError> {
        let seconds = |key: &str, value: u64, least: u64, most: u64| {
            if (least..=most).contains(&value) {
                Ok(Duration::from_secs(value))
            } else {
                Err(ConfigError::new(
                    key,
                    format!("must be between {least} and {most} seconds"),
                ))
            }
        };
        Ok(HttpSettings {
            head_timeout: seconds(
                "http_head_timeout_seconds",
                self.http_head_timeout_seconds,
                1,
                300,
            )?,
            body_timeout: seconds(
                "http_body_timeout_seconds",
                self.http_body_timeout_seconds,
                1,
                3600,
            )?,
            body_min_rate: self.http_body_min_bytes_per_second,
            disconnect_timeout: seconds(
                "http_disconnect_timeout_seconds",
                self.http_disconnect_timeout_seconds,
                0,
                60,
            )?,
            max_connections: self.http_max_connections.as_usize(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::super::tests::load_with;
    use super::*;

    #[test]
    fn defaults_are_actix_webs_deadlines_and_a_cap_below_the_usual_descriptor_limit() {
        let s = load_with(&[]).unwrap().server.http;
        assert_eq!(s.head_timeout, Duration::from_secs(5));
        assert_eq!(s.body_timeout, Duration::from_secs(10));
        assert_eq!(s.body_min_rate, 65_536);
        assert_eq!(s.disconnect_timeout, Duration::from_secs(1));
        assert_eq!(s.max_connections, 512);
        assert_eq!(s.max_connections_per_worker(2), 256);
        assert_eq!(s.max_connections_per_worker(1000), 1);
    }

    #[test]
    fn each_setting_is_read_and_nonsense_is_refused_by_name() {
        let s = load_with(&[
            ("SPACEDIGEST_HTTP_HEAD_TIMEOUT_SECONDS", "2"),
            ("SPACEDIGEST_HTTP_BODY_TIMEOUT_SECONDS", "30"),
            ("SPACEDIGEST_HTTP_BODY_MIN_BYTES_PER_SECOND", "0"),
            ("SPACEDIGEST_HTTP_DISCONNECT_TIMEOUT_SECONDS", "0"),
            ("SPACEDIGEST_HTTP_MAX_CONNECTIONS", "100"),
        ])
        .unwrap()
        .server
        .http;
        assert_eq!(s.head_timeout, Duration::from_secs(2));
        assert_eq!(s.body_timeout, Duration::from_secs(30));
        assert_eq!(s.body_min_rate, 0);
        assert_eq!(s.disconnect_timeout, Duration::ZERO);
        assert_eq!(s.max_connections, 100);
        for (variable, value) in [
            ("SPACEDIGEST_HTTP_HEAD_TIMEOUT_SECONDS", "0"),
            ("SPACEDIGEST_HTTP_BODY_TIMEOUT_SECONDS", "0"),
            ("SPACEDIGEST_HTTP_BODY_TIMEOUT_SECONDS", "3601"),
            ("SPACEDIGEST_HTTP_BODY_MIN_BYTES_PER_SECOND", "fast"),
            ("SPACEDIGEST_HTTP_DISCONNECT_TIMEOUT_SECONDS", "61"),
            ("SPACEDIGEST_HTTP_MAX_CONNECTIONS", "0"),
        ] {
            let err = load_with(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{value}");
        }
    }
}
