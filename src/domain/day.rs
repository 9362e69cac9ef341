//! Calendar days in a newsletter's time zone, as UTC intervals the database can compare.

use chrono::{Days, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

/// The UTC half-open interval `[start, end)` of `date` in `tz`.
///
/// A day is 23 or 25 hours long across a DST change. Where local midnight does not exist
/// (clocks jump from 23:59 to 01:00, as in America/Santiago or Asia/Beirut), the day starts
/// at the earliest instant that does; where midnight happens twice, at the first. A date a
/// zone skipped entirely (Pacific/Kiritimati, 1994-12-31) is an empty interval.
pub fn day_bounds_utc(date: NaiveDate, tz: Tz) -> (NaiveDateTime, NaiveDateTime) {
    let start = start_of_day_utc(date, tz);
    // The day after the last representable date has no start; such a date is far beyond
    // any story, so its day simply runs to the end of time.
    let end = date
        .checked_add_days(Days::new(1))
        .map_or(NaiveDateTime::MAX, |next| start_of_day_utc(next, tz));
    (start, end)
}

/// Today's date in `tz`.
pub fn today_in(tz: Tz) -> NaiveDate {
    Utc::now().with_timezone(&tz).date_naive()
}

/// The earliest instant whose local time in `tz` is `date` 00:00 or later.
fn start_of_day_utc(date: NaiveDate, tz: Tz) -> NaiveDateTime {
    let midnight = date.and_time(NaiveTime::MIN);
    if let Some(start) = tz.from_local_datetime(&midnight).earliest() {
        return start.naive_utc();
    }
    // Midnight falls into a gap. The first local time after the gap is the transition
    // itself: step forward by minutes (every transition in the database sits on a whole
    // minute; the longest gap, a skipped day, is 24 hours), then back by seconds in case
    // one does not.
    let minute = TimeDelta::minutes(1);
    let mut local = midnight;
    for _ in 0..=(26 * 60) {
        local += minute;
        if tz.from_local_datetime(&local).earliest().is_some() {
            let second = TimeDelta::seconds(1);
            while local - second > midnight
                && tz
                    .from_local_datetime(&(local - second))
                    .earliest()
                    .is_some()
            {
                local -= second;
            }
            if let Some(start) = tz.from_local_datetime(&local).earliest() {
                return start.naive_utc();
            }
        }
    }
    // No zone has a gap this long; reading midnight with the offset of the day before
    // is the best remaining answer.
    let offset = tz
        .offset_from_utc_datetime(&(midnight - TimeDelta::days(1)))
        .fix()
        .local_minus_utc();
    midnight - TimeDelta::seconds(i64::from(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_utc_day_is_midnight_to_midnight() {
        assert_eq!(
            day_bounds_utc(date("2026-11-25"), Tz::UTC),
            (utc("2026-11-25 00:00"), utc("2026-11-26 00:00"))
        );
    }

    #[test]
    fn berlin_in_winter_and_summer() {
        assert_eq!(
            day_bounds_utc(date("2026-01-15"), Tz::Europe__Berlin),
            (utc("2026-01-14 23:00"), utc("2026-01-15 23:00"))
        );
        assert_eq!(
            day_bounds_utc(date("2026-07-15"), Tz::Europe__Berlin),
            (utc("2026-07-14 22:00"), utc("2026-07-15 22:00"))
        );
    }

    #[test]
    fn berlin_spring_forward_day_has_23_hours() {
        let (start, end) = day_bounds_utc(date("2026-03-29"), Tz::Europe__Berlin);
        assert_eq!(start, utc("2026-03-28 23:00"));
        assert_eq!(end, utc("2026-03-29 22:00"));
        assert_eq!(end - start, TimeDelta::hours(23));
    }

    #[test]
    fn berlin_fall_back_day_has_25_hours() {
        let (start, end) = day_bounds_utc(date("2026-10-25"), Tz::Europe__Berlin);
        assert_eq!(start, utc("2026-10-24 22:00"));
        assert_eq!(end, utc("2026-10-25 23:00"));
        assert_eq!(end - start, TimeDelta::hours(25));
    }

    #[test]
    fn kiritimati_is_fourteen_hours_ahead() {
        assert_eq!(
            day_bounds_utc(date("2026-06-01"), Tz::Pacific__Kiritimati),
            (utc("2026-05-31 10:00"), utc("2026-06-01 10:00"))
        );
    }

    #[test]
    fn a_skipped_day_is_empty() {
        // Kiritimati moved from UTC-10 to UTC+14 and never had 1994-12-31.
        let (start, end) = day_bounds_utc(date("1994-12-31"), Tz::Pacific__Kiritimati);
        assert_eq!(start, end);
        assert_eq!(start, utc("1994-12-31 10:00"));
        let (prev_start, prev_end) = day_bounds_utc(date("1994-12-30"), Tz::Pacific__Kiritimati);
        assert_eq!(prev_end, start);
        assert_eq!(prev_end - prev_start, TimeDelta::hours(24));
    }

    #[test]
    fn a_missing_midnight_starts_the_day_at_the_transition() {
        // Santiago: 2022-09-10 24:00 -04 became 2022-09-11 01:00 -03.
        let (start, end) = day_bounds_utc(date("2022-09-11"), Tz::America__Santiago);
        assert_eq!(start, utc("2022-09-11 04:00"));
        assert_eq!(end, utc("2022-09-12 03:00"));
        assert_eq!(end - start, TimeDelta::hours(23));
        // Beirut: 2024-03-31 00:00 +02 became 01:00 +03.
        let (start, end) = day_bounds_utc(date("2024-03-31"), Tz::Asia__Beirut);
        assert_eq!(start, utc("2024-03-30 22:00"));
        assert_eq!(end, utc("2024-03-31 21:00"));
    }

    #[test]
    fn a_doubled_midnight_starts_the_day_at_its_first_occurrence() {
        // Havana: 2023-11-05 01:00 -04 fell back to 00:00 -05, so midnight came twice.
        let (start, end) = day_bounds_utc(date("2023-11-05"), Tz::America__Havana);
        assert_eq!(start, utc("2023-11-05 04:00"));
        assert_eq!(end, utc("2023-11-06 05:00"));
        assert_eq!(end - start, TimeDelta::hours(25));
        let (_, previous_end) = day_bounds_utc(date("2023-11-04"), Tz::America__Havana);
        assert_eq!(previous_end, start);
    }

    #[test]
    fn today_is_a_date_near_the_utc_date() {
        let utc_today = Utc::now().date_naive();
        for tz in [Tz::UTC, Tz::Pacific__Kiritimati, Tz::Pacific__Pago_Pago] {
            let today = today_in(tz);
            assert!((today - utc_today).num_days().abs() <= 1, "{tz}: {today}");
        }
    }

    proptest! {
        #[test]
        fn consecutive_days_tile_time(
            days in 0i64..40_000,
            zone in 0usize..chrono_tz::TZ_VARIANTS.len(),
        ) {
            let tz = chrono_tz::TZ_VARIANTS[zone];
            let day = date("1970-01-01") + TimeDelta::days(days);
            let (start, end) = day_bounds_utc(day, tz);
            let (next_start, _) = day_bounds_utc(day + TimeDelta::days(1), tz);
            prop_assert_eq!(end, next_start);
            prop_assert!(end >= start);
            prop_assert!(end - start <= TimeDelta::hours(27), "{} {}: {} .. {}", tz, day, start, end);
            // Every instant inside the interval is on that date in the zone.
            if end > start {
                prop_assert_eq!(Utc.from_utc_datetime(&start).with_timezone(&tz).date_naive(), day);
                let last = end - TimeDelta::seconds(1);
                prop_assert_eq!(Utc.from_utc_datetime(&last).with_timezone(&tz).date_naive(), day);
            }
        }
    }
}
