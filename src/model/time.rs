use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time as the interface carries it: RFC 3339, emitted with milliseconds.
///
/// The offset the sender used is kept, so an echoed `time` says the same instant in the same
/// words (UTC is written as `Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<FixedOffset>);

impl Timestamp {
    /// An RFC 3339 date-time whose instant also has a four-digit year in UTC: the stores keep
    /// times in UTC, and `9999-12-31T23:59:59-01:00` is in year 10000 there, which RFC 3339
    /// (and so the SQLite store's text form) cannot write.
    pub fn parse(s: &str) -> Option<Self> {
        let t = DateTime::parse_from_rfc3339(s).ok()?;
        (0..=9999)
            .contains(&t.with_timezone(&Utc).year())
            .then_some(Self(t))
    }

    pub fn to_utc(self) -> DateTime<Utc> {
        self.0.with_timezone(&Utc)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Self(t.fixed_offset())
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 date-time"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_is_written_with_milliseconds_and_z() {
        let t = Timestamp::parse("2013-06-07T10:11:59Z").expect("valid");
        assert_eq!(t.to_string(), "2013-06-07T10:11:59.000Z");
    }

    #[test]
    fn an_offset_is_kept_on_echo() {
        let t = Timestamp::parse("2021-05-03T13:04:04.123+02:00").expect("valid");
        assert_eq!(t.to_string(), "2021-05-03T13:04:04.123+02:00");
    }

    /// `qrProperties.expiryDate` = `9999-12-31T23:59:59-01:00` used to be accepted, stored by
    /// SQLite as `+10000-…`, and every later read of the code failed to decode (a 500 on each
    /// pay and scan for that tranId).
    #[test]
    fn instants_outside_four_digit_utc_years_are_refused() {
        assert!(Timestamp::parse("9999-12-31T23:59:59-01:00").is_none());
        assert!(Timestamp::parse("0000-01-01T00:30:00+01:00").is_none());
        assert!(Timestamp::parse("9999-12-31T23:59:59Z").is_some());
        assert!(Timestamp::parse("9999-12-31T23:59:59+01:00").is_some());
        assert!(Timestamp::parse("0000-01-01T00:30:00-01:00").is_some());
    }

    #[test]
    fn a_date_without_time_is_refused() {
        assert!(Timestamp::parse("2021-05-03").is_none());
    }
}
