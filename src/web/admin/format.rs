//! How every console page writes and reads the values it shows: times, counts, and the
//! ids in its addresses. Pages share these, so one rule holds across the console.

use chrono::NaiveDateTime;

use super::ConsoleError;

/// A stored UTC time as the console shows it: "2026-11-26 14:05 UTC".
pub fn format_time(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// 1234567 → "1,234,567": big counts read at a glance.
pub fn thousands_separated(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A numeric id from the path; anything else is simply not found.
pub fn path_id(raw: &str, what: &str) -> Result<i64, ConsoleError> {
    positive_id(raw).ok_or_else(|| ConsoleError::NotFound(format!("There is no such {what}.")))
}

/// The subscriber id in a `/admin/subscribers/{id}` address.
pub fn subscriber_id(raw: &str) -> Result<i64, ConsoleError> {
    positive_id(raw)
        .ok_or_else(|| ConsoleError::NotFound("There is no subscriber at this address.".into()))
}

/// Ids are positive: "0", "-3" and "abc" name nothing.
fn positive_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_counts_get_thousands_separators() {
        assert_eq!(thousands_separated(0), "0");
        assert_eq!(thousands_separated(999), "999");
        assert_eq!(thousands_separated(1_000), "1,000");
        assert_eq!(thousands_separated(1_234_567), "1,234,567");
        assert_eq!(thousands_separated(-12_345), "-12,345");
    }
}
