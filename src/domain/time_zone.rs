use std::fmt;

use chrono_tz::Tz;
use serde::{Serialize, Serializer};

/// The IANA time zone a newsletter's send time is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NewsletterTimeZone(Tz);

/// Why a time zone name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeZoneError {
    /// The name is not in the IANA database that chrono-tz ships.
    #[error("Unknown time zone \"{0}\": use an IANA name such as Europe/Berlin or UTC.")]
    Unknown(String),
}

impl NewsletterTimeZone {
    /// Looks up an IANA name such as `Europe/Berlin` or `UTC` (case-sensitive).
    pub fn parse(raw: &str) -> Result<NewsletterTimeZone, TimeZoneError> {
        let name = raw.trim();
        name.parse::<Tz>()
            .map(NewsletterTimeZone)
            .map_err(|_| TimeZoneError::Unknown(name.to_owned()))
    }

    /// The chrono-tz zone, for converting send times.
    pub fn tz(&self) -> Tz {
        self.0
    }

    /// The IANA name, e.g. `Europe/Berlin`.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for NewsletterTimeZone {
    /// UTC, because a server has no business guessing where its readers live.
    fn default() -> Self {
        NewsletterTimeZone(Tz::UTC)
    }
}

impl fmt::Display for NewsletterTimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for NewsletterTimeZone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl TryFrom<&str> for NewsletterTimeZone {
    type Error = TimeZoneError;

    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl TryFrom<String> for NewsletterTimeZone {
    type Error = TimeZoneError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_iana_names_and_utc() {
        for raw in [
            "Europe/Berlin",
            "UTC",
            "America/Argentina/Buenos_Aires",
            "Asia/Kolkata",
            " Pacific/Auckland ",
        ] {
            let zone = NewsletterTimeZone::parse(raw).unwrap();
            assert_eq!(zone.name(), raw.trim());
            assert_eq!(zone.to_string(), raw.trim());
        }
        assert_eq!(NewsletterTimeZone::parse("UTC").unwrap().tz(), Tz::UTC);
    }

    #[test]
    fn every_shipped_zone_round_trips() {
        for tz in chrono_tz::TZ_VARIANTS {
            let zone = NewsletterTimeZone::parse(tz.name()).unwrap();
            assert_eq!(zone.tz(), tz);
            assert_eq!(zone.name(), tz.name());
        }
    }

    #[test]
    fn rejects_unknown_names_and_quotes_them() {
        for raw in [
            "",
            "Berlin",
            "europe/berlin",
            "Mars/Olympus_Mons",
            "+02:00",
            "CEST",
        ] {
            assert_eq!(
                NewsletterTimeZone::parse(raw),
                Err(TimeZoneError::Unknown(raw.to_owned())),
                "{raw:?}"
            );
        }
        assert_eq!(
            NewsletterTimeZone::parse("Mars/Base")
                .unwrap_err()
                .to_string(),
            "Unknown time zone \"Mars/Base\": use an IANA name such as Europe/Berlin or UTC."
        );
    }

    #[test]
    fn default_is_utc() {
        assert_eq!(NewsletterTimeZone::default().tz(), Tz::UTC);
        assert_eq!(NewsletterTimeZone::default().name(), "UTC");
    }

    proptest! {
        #[test]
        fn accepted_names_are_echoed_exactly(raw in prop_oneof![any::<String>(), "[A-Za-z_/]{1,20}"]) {
            if let Ok(zone) = NewsletterTimeZone::parse(&raw) {
                prop_assert_eq!(zone.name(), raw.trim());
            }
        }
    }
}
