//! Setting values that check themselves as they are read: serde refuses a value out of
//! range with the reason, and figment names the setting it was read for. A section's raw
//! struct declares a setting's type, bounds and default in one field, and its `validate`
//! keeps only the rules that tie two settings together.

use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{Deserialize, Deserializer, Error};

/// Why a whole number is out of `MIN..=MAX` (`MAX == u64::MAX`: no upper bound).
fn out_of_range(min: u64, max: u64) -> String {
    if max == u64::MAX {
        format!("must be at least {min}")
    } else {
        format!("must be between {min} and {max}")
    }
}

fn whole_number_within<'de, D: Deserializer<'de>>(
    deserializer: D,
    min: u64,
    max: u64,
) -> Result<u64, D::Error> {
    let value = u64::deserialize(deserializer)?;
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(D::Error::custom(out_of_range(min, max)))
    }
}

/// A whole number of units of `UNIT` seconds, from `MIN` to `MAX`: a setting written as
/// `*_SECONDS` (`UNIT` 1), `*_MINUTES` (60), `*_HOURS` (3600) or `*_DAYS` (86400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span<const UNIT: u64, const MIN: u64, const MAX: u64>(u64);

impl<const UNIT: u64, const MIN: u64, const MAX: u64> Span<UNIT, MIN, MAX> {
    /// `N` units, as a setting's default.
    pub(super) const fn of<const N: u64>() -> Self {
        Self(N)
    }

    /// How many units were written.
    pub(super) const fn units(self) -> u64 {
        self.0
    }

    /// The span as a duration.
    pub(super) const fn duration(self) -> Duration {
        Duration::from_secs(self.0 * UNIT)
    }
}

impl<'de, const UNIT: u64, const MIN: u64, const MAX: u64> Deserialize<'de>
    for Span<UNIT, MIN, MAX>
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        whole_number_within(deserializer, MIN, MAX).map(Self)
    }
}

/// Seconds, at least one.
pub(super) type Seconds = Span<1, 1, { u64::MAX }>;
/// Minutes, at least one.
pub(super) type Minutes = Span<60, 1, { u64::MAX }>;
/// Hours, at least one.
pub(super) type Hours = Span<3600, 1, { u64::MAX }>;

/// A count from `MIN` to `MAX`, such as a pool size or a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Count<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Count<MIN, MAX> {
    /// `N`, as a setting's default.
    pub(super) const fn of<const N: u64>() -> Self {
        Self(N)
    }

    /// The count, for a setting whose `MAX` fits a `u32`.
    pub(super) fn as_u32(self) -> u32 {
        u32::try_from(self.0).unwrap_or(u32::MAX)
    }

    /// The count, for a setting whose `MAX` fits a `usize`.
    pub(super) fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Count<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        whole_number_within(deserializer, MIN, MAX).map(Self)
    }
}

/// A count of at least one that fits a `u32`.
pub(super) type Positive = Count<1, { u32::MAX as u64 }>;

/// A comma-separated list of IP addresses and CIDR ranges (an address is its own /32 or
/// /128); blank items are left out, so an empty setting is an empty list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Networks(pub(super) Vec<IpNet>);

impl FromStr for Networks {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                IpNet::from_str(item)
                    .or_else(|_| std::net::IpAddr::from_str(item).map(IpNet::from))
                    .map_err(|_| format!("{item:?} is not an IP address or CIDR range"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for Networks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Raw {
        minutes: Span<60, 1, 10>,
        count: Count<2, { u64::MAX }>,
        networks: Networks,
    }

    fn read(minutes: i64, count: i64, networks: &str) -> Result<Raw, String> {
        figment::Figment::new()
            .merge(figment::providers::Serialized::defaults(
                serde_json::json!({
                    "minutes": minutes, "count": count, "networks": networks,
                }),
            ))
            .extract::<Raw>()
            .map_err(|e| format!("{}: {}", e.path.join("."), e.kind))
    }

    #[test]
    fn values_in_range_are_read_in_their_units() {
        let raw = read(10, 2, " 10.0.0.0/8, ::1 ,").unwrap();
        assert_eq!(raw.minutes.duration(), Duration::from_secs(600));
        assert_eq!(raw.minutes.units(), 10);
        assert_eq!(raw.count.as_usize(), 2);
        let shown: Vec<String> = raw.networks.0.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "::1/128"]);
    }

    #[test]
    fn values_out_of_range_are_refused_with_the_setting_and_the_reason() {
        assert_eq!(
            read(0, 2, "").unwrap_err(),
            "minutes: must be between 1 and 10"
        );
        assert_eq!(
            read(11, 2, "").unwrap_err(),
            "minutes: must be between 1 and 10"
        );
        assert_eq!(read(1, 1, "").unwrap_err(), "count: must be at least 2");
        assert_eq!(
            read(1, 2, "10.0.0.0/33").unwrap_err(),
            "networks: \"10.0.0.0/33\" is not an IP address or CIDR range"
        );
        assert!(read(-1, 2, "").is_err());
    }
}
