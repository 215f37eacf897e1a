use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time as the interface carries it: RFC 3339, emitted with milliseconds.
///
/// The offset the sender used is kept, so an echoed `time` says the same instant in the same
/// words (UTC is written as `Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<FixedOffset>);

impl Timestamp {
    pub fn parse(s: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(s).ok().map(Self)
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

    #[test]
    fn a_date_without_time_is_refused() {
        assert!(Timestamp::parse("2021-05-03").is_none());
    }
}
