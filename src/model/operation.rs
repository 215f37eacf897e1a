//! The interface's five operations: one type for routing, configuration
//! (`server.disabled_operations`), metrics labels, the partner client and the timeline.

use std::fmt;
use std::str::FromStr;

/// One operation of the interface, named as the interface (and the configuration) spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    CreateQrCode,
    Pay,
    NotifyScan,
    ConfirmPayment,
    ReversePayment,
}

impl Operation {
    pub const ALL: [Operation; 5] = [
        Self::CreateQrCode,
        Self::Pay,
        Self::NotifyScan,
        Self::ConfirmPayment,
        Self::ReversePayment,
    ];

    /// The interface's name, as in `server.disabled_operations` and the metrics' labels.
    pub const fn name(self) -> &'static str {
        match self {
            Self::CreateQrCode => "createQrCode",
            Self::Pay => "pay",
            Self::NotifyScan => "notifyScan",
            Self::ConfirmPayment => "confirmPayment",
            Self::ReversePayment => "reversePayment",
        }
    }

    /// The path under which the hub serves it, and partners serve it to the hub.
    pub const fn path(self) -> &'static str {
        match self {
            Self::CreateQrCode => "/qr/v1/qrCodes",
            Self::Pay => "/qr/v1/payments",
            Self::NotifyScan => "/qr/v1/scans",
            Self::ConfirmPayment => "/qr/v1/payments/confirmations",
            Self::ReversePayment => "/qr/v1/payments/reversals",
        }
    }

    /// The kind of the timeline event that records its request.
    pub const fn event_kind(self) -> &'static str {
        match self {
            Self::CreateQrCode => "CREATE_QR_CODE",
            Self::Pay => "PAY",
            Self::NotifyScan => "SCAN",
            Self::ConfirmPayment => "CONFIRMATION",
            Self::ReversePayment => "REVERSAL",
        }
    }

    /// The operation a route serves, with or without the trailing slash that clients
    /// before v1.4.0 sent.
    pub fn from_path(route: &str) -> Option<Self> {
        let route = route.strip_suffix('/').unwrap_or(route);
        Self::ALL.into_iter().find(|o| o.path() == route)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An operation name that is none of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation {name:?}; one of createQrCode, pay, notifyScan, confirmPayment, reversePayment")]
pub struct UnknownOperation {
    pub name: String,
}

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| UnknownOperation {
                name: name.to_owned(),
            })
    }
}

impl<'de> serde::Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_round_trip() {
        for op in Operation::ALL {
            assert_eq!(op.name().parse::<Operation>(), Ok(op));
            assert_eq!(Operation::from_path(op.path()), Some(op));
            assert_eq!(Operation::from_path(&format!("{}/", op.path())), Some(op));
        }
        assert!("payments".parse::<Operation>().is_err());
        assert_eq!(Operation::from_path("/qr/v1/qrCodes/{tran_id}/image"), None);
        assert_eq!(Operation::from_path("/metrics"), None);
    }
}
