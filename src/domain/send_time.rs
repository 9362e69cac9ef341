use std::fmt;

use chrono::{NaiveTime, Timelike};
use serde::{Serialize, Serializer};

/// The local time of day a digest goes out, to the minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SendTime(NaiveTime);

/// Why a send time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendTimeError {
    /// The text is not `HH:MM` between 00:00 and 23:59.
    #[error("A send time is HH:MM in 24-hour time, like 07:00.")]
    Invalid,
}

impl SendTime {
    /// Parses exactly `HH:MM`, 00:00 to 23:59, ignoring surrounding whitespace.
    pub fn parse(raw: &str) -> Result<SendTime, SendTimeError> {
        // Hand-rolled because chrono's `%H:%M` also takes "7:00" and a trailing ":00",
        // and a leap second "23:60"; one spelling keeps config and forms unambiguous.
        let [h1, h2, b':', m1, m2] = raw.trim().as_bytes() else {
            return Err(SendTimeError::Invalid);
        };
        let digits = [*h1, *h2, *m1, *m2];
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(SendTimeError::Invalid);
        }
        let [h1, h2, m1, m2] = digits.map(|d| u32::from(d - b'0'));
        NaiveTime::from_hms_opt(h1 * 10 + h2, m1 * 10 + m2, 0)
            .map(SendTime)
            .ok_or(SendTimeError::Invalid)
    }

    /// The time of day, seconds always zero.
    pub fn time(&self) -> NaiveTime {
        self.0
    }
}

impl Default for SendTime {
    /// 07:00, early enough to read with breakfast.
    fn default() -> Self {
        SendTime(NaiveTime::from_hms_opt(7, 0, 0).expect("07:00 is a valid time"))
    }
}

impl fmt::Display for SendTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0.hour(), self.0.minute())
    }
}

impl Serialize for SendTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl TryFrom<&str> for SendTime {
    type Error = SendTimeError;

    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        Self::parse(raw)
    }
}

impl TryFrom<String> for SendTime {
    type Error = SendTimeError;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_whole_day() {
        for (raw, h, m) in [
            ("00:00", 0, 0),
            ("07:00", 7, 0),
            ("12:30", 12, 30),
            ("23:59", 23, 59),
            (" 09:05\n", 9, 5),
        ] {
            let t = SendTime::parse(raw).unwrap();
            assert_eq!(t.time(), NaiveTime::from_hms_opt(h, m, 0).unwrap());
        }
    }

    #[test]
    fn rejects_everything_else() {
        for raw in [
            "", "7:00", "07:0", "0700", "07.00", "07:00:00", "24:00", "23:60", "99:99", "-1:00",
            "７:00", "07:00 am", "+7:00", "07 :00", "a7:00",
        ] {
            assert_eq!(SendTime::parse(raw), Err(SendTimeError::Invalid), "{raw:?}");
        }
    }

    #[test]
    fn default_is_seven_and_displays_padded() {
        assert_eq!(SendTime::default(), SendTime::parse("07:00").unwrap());
        assert_eq!(SendTime::default().to_string(), "07:00");
        assert_eq!(SendTime::parse("00:05").unwrap().to_string(), "00:05");
    }

    #[test]
    fn orders_by_time_of_day() {
        assert!(SendTime::parse("06:59").unwrap() < SendTime::parse("07:00").unwrap());
    }

    proptest! {
        #[test]
        fn display_round_trips(h in 0u32..24, m in 0u32..60) {
            let raw = format!("{h:02}:{m:02}");
            let t = SendTime::parse(&raw).unwrap();
            prop_assert_eq!(t.time(), NaiveTime::from_hms_opt(h, m, 0).unwrap());
            prop_assert_eq!(t.to_string(), raw);
        }

        #[test]
        fn out_of_range_is_rejected(h in 24u32..100, m in 60u32..100) {
            let hour = format!("{h:02}:00");
            prop_assert!(SendTime::parse(&hour).is_err());
            let minute = format!("00:{m:02}");
            prop_assert!(SendTime::parse(&minute).is_err());
        }

        #[test]
        fn accepted_text_is_exactly_what_display_prints(raw in prop_oneof![any::<String>(), "[0-9:]{4,6}"]) {
            if let Ok(t) = SendTime::parse(&raw) {
                prop_assert_eq!(t.to_string(), raw.trim());
            }
        }
    }
}
