//! What the simulator answers: scriptable behaviours for `pay` and for advices.
//!
//! Both are serde enums tagged by `kind` (camelCase), which is how the HTTP control endpoints
//! and the CLI take them:
//!
//! | JSON | meaning |
//! |---|---|
//! | `{"kind":"approve"}` | 201 PaymentResponse |
//! | `{"kind":"decline","status":400,"errorType":"INSUFFICIENT_FUNDS"}` | that status and an ErrorDetail (`status` defaults to 400, `errorType` to `DECLINED_BY_PARTNER`) |
//! | `{"kind":"delay","by":"2s","then":{"kind":"approve"}}` | wait, then behave as `then` (default: approve) |
//! | `{"kind":"hang"}` | never answer; the connection is dropped when the simulator shuts down |
//! | `{"kind":"serverError","status":504}` | that status (default 500) with an ErrorDetail |
//! | `{"kind":"dropConnection"}` | the request is read, then the connection is aborted with no response |
//!
//! Advices (confirmations and reversals):
//!
//! | JSON | meaning |
//! |---|---|
//! | `{"kind":"accept"}` | 202 echo, even for a reversal of an unknown payment |
//! | `{"kind":"failTimes","n":2,"status":500}` | the first `n` deliveries of the advice id it meets get `status` (default 500), every later one 202 |
//! | `{"kind":"notFound"}` | 404 with `UNABLE_TO_LOCATE_RECORD` |
//! | `{"kind":"status","status":503}` | that status (an echo for a 2xx, else an ErrorDetail) |
//! | `{"kind":"delay","by":"1s","then":{...}}`, `{"kind":"hang"}`, `{"kind":"dropConnection"}` | as for `pay` (`then` defaults to accept) |
//!
//! Status codes must lie in 100..=999; the HTTP control endpoints refuse others. A behaviour
//! built in process with such a code answers 500 instead.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::model::ErrorType;

/// The answer to one incoming `pay`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "PayWire", into = "PayWire")]
pub enum PayBehaviour {
    /// 201 with a PaymentResponse built from the request.
    #[default]
    Approve,
    /// `status` with an ErrorDetail of `error_type`.
    Decline { status: u16, error_type: ErrorType },
    /// Wait `by` (on top of the configured latency), then behave as `then`.
    Delay {
        by: Duration,
        then: Box<PayBehaviour>,
    },
    /// Never answer, until the simulator shuts down (then the connection is dropped).
    Hang,
    /// This status (500, 504, ...) with a GENERAL_ERROR or UPSTREAM_UNAVAILABLE ErrorDetail.
    ServerError(u16),
    /// Read the request, then abort the connection: the caller sees a transport error.
    DropConnection,
}

impl PayBehaviour {
    /// A 400 decline of the given type.
    pub fn decline(error_type: ErrorType) -> Self {
        Self::Decline {
            status: 400,
            error_type,
        }
    }

    /// `then`, after `by`.
    pub fn delayed(by: Duration, then: PayBehaviour) -> Self {
        Self::Delay {
            by,
            then: Box::new(then),
        }
    }
}

/// The answer to one delivery of a confirmation or a reversal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AdviceWire", into = "AdviceWire")]
pub enum AdviceBehaviour {
    /// 202 with the advice echoed.
    Accept,
    /// `status` for the first `n` deliveries of the advice id that takes this behaviour, then
    /// 202 for every later delivery of that id (whatever else is scripted).
    FailTimes { n: u32, status: u16 },
    /// 404 with `UNABLE_TO_LOCATE_RECORD`.
    NotFound,
    /// This status: the echo for a 2xx, an ErrorDetail otherwise.
    Status(u16),
    /// Wait `by`, then behave as `then`.
    Delay {
        by: Duration,
        then: Box<AdviceBehaviour>,
    },
    /// Never answer, until the simulator shuts down.
    Hang,
    /// Read the advice, then abort the connection.
    DropConnection,
}

impl AdviceBehaviour {
    /// Fail the first `n` deliveries with 500, then accept.
    pub fn fail_times(n: u32) -> Self {
        Self::FailTimes { n, status: 500 }
    }
}

/// Why a behaviour from outside was refused.
#[derive(Debug, thiserror::Error)]
#[error("status {0} is not an HTTP status code (100..=999)")]
pub struct InvalidStatus(u16);

fn checked(status: u16) -> Result<u16, InvalidStatus> {
    if (100..=999).contains(&status) {
        Ok(status)
    } else {
        Err(InvalidStatus(status))
    }
}

fn status_400() -> u16 {
    400
}

fn status_500() -> u16 {
    500
}

fn declined_by_partner() -> ErrorType {
    ErrorType::DeclinedByPartner
}

/// The JSON shape of [`PayBehaviour`] (serde cannot tag a newtype variant holding a number).
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
enum PayWire {
    Approve,
    #[serde(rename_all = "camelCase")]
    Decline {
        #[serde(default = "status_400")]
        status: u16,
        #[serde(default = "declined_by_partner")]
        error_type: ErrorType,
    },
    Delay {
        #[serde(with = "humantime_serde")]
        by: Duration,
        #[serde(default)]
        then: Box<PayBehaviour>,
    },
    Hang,
    ServerError {
        #[serde(default = "status_500")]
        status: u16,
    },
    DropConnection,
}

impl TryFrom<PayWire> for PayBehaviour {
    type Error = InvalidStatus;

    fn try_from(w: PayWire) -> Result<Self, InvalidStatus> {
        Ok(match w {
            PayWire::Approve => Self::Approve,
            PayWire::Decline { status, error_type } => Self::Decline {
                status: checked(status)?,
                error_type,
            },
            PayWire::Delay { by, then } => Self::Delay { by, then },
            PayWire::Hang => Self::Hang,
            PayWire::ServerError { status } => Self::ServerError(checked(status)?),
            PayWire::DropConnection => Self::DropConnection,
        })
    }
}

impl From<PayBehaviour> for PayWire {
    fn from(b: PayBehaviour) -> Self {
        match b {
            PayBehaviour::Approve => Self::Approve,
            PayBehaviour::Decline { status, error_type } => Self::Decline { status, error_type },
            PayBehaviour::Delay { by, then } => Self::Delay { by, then },
            PayBehaviour::Hang => Self::Hang,
            PayBehaviour::ServerError(status) => Self::ServerError { status },
            PayBehaviour::DropConnection => Self::DropConnection,
        }
    }
}

/// The JSON shape of [`AdviceBehaviour`].
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
enum AdviceWire {
    Accept,
    FailTimes {
        n: u32,
        #[serde(default = "status_500")]
        status: u16,
    },
    NotFound,
    Status {
        status: u16,
    },
    Delay {
        #[serde(with = "humantime_serde")]
        by: Duration,
        #[serde(default = "accept")]
        then: Box<AdviceBehaviour>,
    },
    Hang,
    DropConnection,
}

fn accept() -> Box<AdviceBehaviour> {
    Box::new(AdviceBehaviour::Accept)
}

impl TryFrom<AdviceWire> for AdviceBehaviour {
    type Error = InvalidStatus;

    fn try_from(w: AdviceWire) -> Result<Self, InvalidStatus> {
        Ok(match w {
            AdviceWire::Accept => Self::Accept,
            AdviceWire::FailTimes { n, status } => Self::FailTimes {
                n,
                status: checked(status)?,
            },
            AdviceWire::NotFound => Self::NotFound,
            AdviceWire::Status { status } => Self::Status(checked(status)?),
            AdviceWire::Delay { by, then } => Self::Delay { by, then },
            AdviceWire::Hang => Self::Hang,
            AdviceWire::DropConnection => Self::DropConnection,
        })
    }
}

impl From<AdviceBehaviour> for AdviceWire {
    fn from(b: AdviceBehaviour) -> Self {
        match b {
            AdviceBehaviour::Accept => Self::Accept,
            AdviceBehaviour::FailTimes { n, status } => Self::FailTimes { n, status },
            AdviceBehaviour::NotFound => Self::NotFound,
            AdviceBehaviour::Status(status) => Self::Status { status },
            AdviceBehaviour::Delay { by, then } => Self::Delay { by, then },
            AdviceBehaviour::Hang => Self::Hang,
            AdviceBehaviour::DropConnection => Self::DropConnection,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pay(v: serde_json::Value) -> Result<PayBehaviour, serde_json::Error> {
        serde_json::from_value(v)
    }

    fn advice(v: serde_json::Value) -> Result<AdviceBehaviour, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn the_documented_pay_shapes_parse() {
        assert_eq!(
            pay(json!({"kind":"approve"})).ok(),
            Some(PayBehaviour::Approve)
        );
        assert_eq!(
            pay(json!({"kind":"decline","status":402,"errorType":"INSUFFICIENT_FUNDS"})).ok(),
            Some(PayBehaviour::Decline {
                status: 402,
                error_type: ErrorType::InsufficientFunds
            })
        );
        assert_eq!(
            pay(json!({"kind":"decline"})).ok(),
            Some(PayBehaviour::decline(ErrorType::DeclinedByPartner))
        );
        assert_eq!(
            pay(json!({"kind":"delay","by":"1s 500ms","then":{"kind":"hang"}})).ok(),
            Some(PayBehaviour::delayed(
                Duration::from_millis(1500),
                PayBehaviour::Hang
            ))
        );
        assert_eq!(
            pay(json!({"kind":"delay","by":"10ms"})).ok(),
            Some(PayBehaviour::delayed(
                Duration::from_millis(10),
                PayBehaviour::Approve
            ))
        );
        assert_eq!(
            pay(json!({"kind":"serverError","status":504})).ok(),
            Some(PayBehaviour::ServerError(504))
        );
        assert_eq!(
            pay(json!({"kind":"serverError"})).ok(),
            Some(PayBehaviour::ServerError(500))
        );
        assert_eq!(
            pay(json!({"kind":"dropConnection"})).ok(),
            Some(PayBehaviour::DropConnection)
        );
    }

    #[test]
    fn the_documented_advice_shapes_parse() {
        assert_eq!(
            advice(json!({"kind":"failTimes","n":2})).ok(),
            Some(AdviceBehaviour::fail_times(2))
        );
        assert_eq!(
            advice(json!({"kind":"status","status":503})).ok(),
            Some(AdviceBehaviour::Status(503))
        );
        assert_eq!(
            advice(json!({"kind":"notFound"})).ok(),
            Some(AdviceBehaviour::NotFound)
        );
        assert_eq!(
            advice(json!({"kind":"delay","by":"5ms"})).ok(),
            Some(AdviceBehaviour::Delay {
                by: Duration::from_millis(5),
                then: Box::new(AdviceBehaviour::Accept)
            })
        );
    }

    #[test]
    fn typos_and_impossible_statuses_are_refused() {
        assert!(pay(json!({"kind":"decline","errortype":"INSUFFICIENT_FUNDS"})).is_err());
        assert!(pay(json!({"kind":"explode"})).is_err());
        assert!(pay(json!({"kind":"serverError","status":42})).is_err());
        assert!(advice(json!({"kind":"status","status":1000})).is_err());
        assert!(advice(json!({"kind":"failTimes"})).is_err());
    }

    #[test]
    fn behaviours_round_trip() {
        let all = [
            PayBehaviour::Approve,
            PayBehaviour::decline(ErrorType::DoNotHonor),
            PayBehaviour::delayed(Duration::from_millis(20), PayBehaviour::ServerError(504)),
            PayBehaviour::Hang,
            PayBehaviour::DropConnection,
        ];
        for b in all {
            let v = serde_json::to_value(&b).expect("serialises");
            assert_eq!(pay(v).ok(), Some(b));
        }
        let v = serde_json::to_value(AdviceBehaviour::FailTimes { n: 3, status: 504 })
            .expect("serialises");
        assert_eq!(v, json!({"kind":"failTimes","n":3,"status":504}));
    }
}
