//! `[settlement]`: what a settlement day is (DESIGN.md §5, `domain::SettlementDay`).

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::Deserialize;

use crate::domain::SettlementDay;

/// The settlement day's time zone and cut-off. The default, UTC and 00:00, makes a day the
/// UTC date.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettlementSettings {
    /// An IANA time zone name, e.g. `Africa/Johannesburg`.
    pub time_zone: ZoneName,
    /// `HH:MM` local time: a payment at or past it counts on the next day; `00:00` ends the
    /// day at midnight.
    pub cut_off: CutOff,
}

impl SettlementSettings {
    pub fn day(&self) -> SettlementDay {
        SettlementDay::new(self.time_zone.0, self.cut_off.0)
    }
}

/// An IANA zone name, checked against the database compiled into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ZoneName(pub Tz);

impl Default for ZoneName {
    fn default() -> Self {
        Self(Tz::UTC)
    }
}

impl TryFrom<String> for ZoneName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        name.trim().parse::<Tz>().map(Self).map_err(|_| {
            format!("{name:?} is not an IANA time zone name (such as \"Africa/Johannesburg\" or \"UTC\")")
        })
    }
}

/// A local time of day, `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct CutOff(pub NaiveTime);

impl Default for CutOff {
    fn default() -> Self {
        Self(NaiveTime::MIN)
    }
}

impl TryFrom<String> for CutOff {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        NaiveTime::parse_from_str(text.trim(), "%H:%M")
            .map(Self)
            .map_err(|_| format!("{text:?} is not a time of day HH:MM (such as \"23:00\")"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times_are_checked() {
        assert_eq!(
            ZoneName::try_from("Africa/Johannesburg".to_owned())
                .unwrap()
                .0,
            chrono_tz::Africa::Johannesburg
        );
        assert!(ZoneName::try_from("Mars/Olympus".to_owned()).is_err());
        assert_eq!(
            CutOff::try_from("23:00".to_owned()).unwrap().0,
            NaiveTime::from_hms_opt(23, 0, 0).unwrap()
        );
        assert!(CutOff::try_from("24:00".to_owned()).is_err());
        assert!(CutOff::try_from("11pm".to_owned()).is_err());
        assert_eq!(
            SettlementSettings::default().day(),
            SettlementDay::default()
        );
    }
}
