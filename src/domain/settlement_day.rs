//! Which settlement day a payment belongs to, and which instants a settlement day covers.
//!
//! A settlement day is named by a date in the configured time zone and ends at the cut-off
//! on that date (local time): a payment whose instant, read on the local clock, is at or past
//! the cut-off counts on the next day. A cut-off of `00:00` means midnight at the end of the
//! date, so the day is the plain local date (the default, UTC 00:00, is the UTC date).
//!
//! Daylight saving time: a day ends at the first instant the local clock shows the cut-off.
//! Where the clocks jump over it (spring forward), the day ends at the jump, the first instant
//! after the skipped hour; where the clocks show it twice (fall back), the day ends at the
//! first of the two. So a settlement day lasts 23, 24 or 25 hours, and every instant belongs
//! to exactly one day.

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::clock::Clock;

/// The day definition: an IANA time zone and a cut-off in its local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettlementDay {
    pub zone: Tz,
    pub cut_off: NaiveTime,
}

impl Default for SettlementDay {
    /// UTC days, midnight to midnight.
    fn default() -> Self {
        Self {
            zone: Tz::UTC,
            cut_off: NaiveTime::MIN,
        }
    }
}

impl SettlementDay {
    pub fn new(zone: Tz, cut_off: NaiveTime) -> Self {
        Self { zone, cut_off }
    }

    /// The instant settlement day `day` ends (and the next one starts).
    pub fn end_of(&self, day: NaiveDate) -> DateTime<Utc> {
        // A cut-off of midnight closes the date at its end, not at its start.
        let (date, time) = if self.cut_off == NaiveTime::MIN {
            (day.succ_opt().unwrap_or(day), NaiveTime::MIN)
        } else {
            (day, self.cut_off)
        };
        self.first_instant_at_or_after(date.and_time(time))
    }

    /// The instants `[start, end)` of settlement day `day`, to query by.
    pub fn bounds(&self, day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = day.pred_opt().map_or_else(
            || self.end_of(day) - Duration::days(1),
            |before| self.end_of(before),
        );
        (start, self.end_of(day))
    }

    /// The settlement day an instant belongs to.
    pub fn day_of(&self, at: DateTime<Utc>) -> NaiveDate {
        let local = at.with_timezone(&self.zone).date_naive();
        // The day is the local date or the next; the one before only where a DST jump moved
        // the previous day's end past this instant. Decide by the bounds themselves, so that
        // `day_of` and `bounds` can never disagree.
        let candidates = [local.pred_opt(), Some(local), local.succ_opt()];
        for day in candidates.into_iter().flatten() {
            let (start, end) = self.bounds(day);
            if start <= at && at < end {
                return day;
            }
        }
        local
    }

    /// The settlement day it is now, by the clock.
    pub fn today(&self, clock: &dyn Clock) -> NaiveDate {
        self.day_of(clock.now())
    }

    /// The zone's IANA name, e.g. `Africa/Johannesburg`.
    pub fn zone_name(&self) -> &'static str {
        self.zone.name()
    }

    /// The cut-off as `HH:MM`.
    pub fn cut_off_text(&self) -> String {
        self.cut_off.format("%H:%M").to_string()
    }

    /// The first instant whose local time is `local` or, where the clocks skip it, the first
    /// instant after the skip.
    fn first_instant_at_or_after(&self, local: NaiveDateTime) -> DateTime<Utc> {
        let mut probe = local;
        // Transitions fall on whole minutes and no zone has skipped more than a day, so two
        // days of minutes always find the end of a gap.
        for _ in 0..=2 * 24 * 60 {
            match self.zone.from_local_datetime(&probe) {
                LocalResult::Single(t) => return t.with_timezone(&Utc),
                LocalResult::Ambiguous(first, _) => return first.with_timezone(&Utc),
                LocalResult::None => probe += Duration::minutes(1),
            }
        }
        // Unreachable with the IANA data; read the local time as UTC rather than fail.
        local.and_utc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn johannesburg_23h() -> SettlementDay {
        SettlementDay::new(
            chrono_tz::Africa::Johannesburg,
            NaiveTime::from_hms_opt(23, 0, 0).unwrap(),
        )
    }

    #[test]
    fn the_default_is_the_utc_date() {
        let d = SettlementDay::default();
        assert_eq!(
            d.bounds(day("2026-11-22")),
            (at("2026-11-22T00:00:00Z"), at("2026-11-23T00:00:00Z"))
        );
        assert_eq!(d.day_of(at("2026-11-22T23:59:59Z")), day("2026-11-22"));
        assert_eq!(d.day_of(at("2026-11-23T00:00:00Z")), day("2026-11-23"));
        assert_eq!(d.zone_name(), "UTC");
        assert_eq!(d.cut_off_text(), "00:00");
    }

    #[test]
    fn a_payment_at_or_past_the_cut_off_counts_on_the_next_day() {
        let d = johannesburg_23h();
        // Johannesburg is UTC+2 all year: 23:00 local is 21:00 UTC.
        assert_eq!(
            d.bounds(day("2026-11-22")),
            (at("2026-11-21T21:00:00Z"), at("2026-11-22T21:00:00Z"))
        );
        // 22:59:59 local: that day; 23:00 and 23:30 local: the next; 00:30 local: still it.
        assert_eq!(d.day_of(at("2026-11-22T20:59:59Z")), day("2026-11-22"));
        assert_eq!(d.day_of(at("2026-11-22T21:00:00Z")), day("2026-11-23"));
        assert_eq!(d.day_of(at("2026-11-22T21:30:00+00:00")), day("2026-11-23"));
        assert_eq!(d.day_of(at("2026-11-22T22:30:00Z")), day("2026-11-23"));
        let clock = ManualClock::new(at("2026-11-22T21:30:00Z"));
        assert_eq!(d.today(&clock), day("2026-11-23"));
        clock.set(at("2026-11-22T20:30:00Z"));
        assert_eq!(d.today(&clock), day("2026-11-22"));
    }

    #[test]
    fn a_midnight_cut_off_in_a_zone_is_the_local_date() {
        let d = SettlementDay::new(chrono_tz::Africa::Johannesburg, NaiveTime::MIN);
        assert_eq!(
            d.bounds(day("2026-11-22")),
            (at("2026-11-21T22:00:00Z"), at("2026-11-22T22:00:00Z"))
        );
        assert_eq!(d.day_of(at("2026-11-21T22:30:00Z")), day("2026-11-22"));
    }

    #[test]
    fn days_around_dst_last_23_and_25_hours_and_tile_time() {
        // Europe/Berlin: 2026-03-29 02:00 → 03:00 (spring), 2026-10-25 03:00 → 02:00 (fall).
        let cut = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let d = SettlementDay::new(chrono_tz::Europe::Berlin, cut(2, 30));
        // 02:30 does not exist on 29 March: that day ends at the jump, 01:00 UTC (03:00 CEST).
        let (start, end) = d.bounds(day("2026-03-29"));
        assert_eq!(start, at("2026-03-28T01:30:00Z"));
        assert_eq!(end, at("2026-03-29T01:00:00Z"));
        assert_eq!(end - start, Duration::minutes(23 * 60 + 30));
        // 02:30 happens twice on 25 October: the day ends at the first (00:30 UTC).
        let (start, end) = d.bounds(day("2026-10-25"));
        assert_eq!(start, at("2026-10-24T00:30:00Z"));
        assert_eq!(end, at("2026-10-25T00:30:00Z"));
        let (next_start, next_end) = d.bounds(day("2026-10-26"));
        assert_eq!(next_start, end);
        assert_eq!(next_end - next_start, Duration::hours(25));
        // Every minute of the two weeks around each change belongs to the day whose bounds
        // hold it, and consecutive days meet.
        let d = SettlementDay::new(chrono_tz::Europe::Berlin, cut(23, 0));
        for (from, days) in [("2026-03-22T00:00:00Z", 14), ("2026-10-18T00:00:00Z", 14)] {
            let mut t = at(from);
            let until = t + Duration::days(days);
            while t < until {
                let (start, end) = d.bounds(d.day_of(t));
                assert!(start <= t && t < end, "{t} not in its day {start}..{end}");
                t += Duration::minutes(7);
            }
        }
        for z in [chrono_tz::Europe::Berlin, chrono_tz::America::New_York] {
            for c in [cut(0, 0), cut(1, 30), cut(2, 30), cut(23, 0)] {
                let d = SettlementDay::new(z, c);
                let mut date = day("2026-01-01");
                while date < day("2027-01-01") {
                    let next = date.succ_opt().unwrap();
                    assert_eq!(d.bounds(date).1, d.bounds(next).0);
                    let length = d.bounds(date).1 - d.bounds(date).0;
                    assert!(length >= Duration::hours(23) && length <= Duration::hours(25));
                    date = next;
                }
            }
        }
    }
}
