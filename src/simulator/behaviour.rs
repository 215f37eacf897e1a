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
//! | `{"kind":"respond","status":429,"retryAfter":"2"}` | any status, with `Retry-After` and/or `Location` when given: a 2xx is an approval (the 201 body) with that status, anything else an ErrorDetail |
//! | `{"kind":"respond","status":307,"location":"http://elsewhere/qr/v1/payments"}` | a redirect (a 3xx with `Location`) |
//! | `{"kind":"lenientApprove","status":200}` | an approval whose JSON a real wallet sends but that is not schema-exact: no `originator` or `client` echoed, `slipData.issuerReference` in lower case, a partner name over 40 characters, vendor fields the interface does not have (`status` defaults to 200) |
//! | `{"kind":"partialApprove","amount":100}` | 201, approved for `amount` (default: half the requested amount) instead of what was asked |
//! | `{"kind":"nonJsonApprove","status":200}` | that 2xx (default 200) with a `text/plain` body that is not JSON |
//!
//! Advices (confirmations and reversals):
//!
//! | JSON | meaning |
//! |---|---|
//! | `{"kind":"accept"}` | 202 echo, even for a reversal of an unknown payment |
//! | `{"kind":"failTimes","n":2,"status":500}` | the first `n` deliveries of the advice id it meets get `status` (default 500), every later one 202 |
//! | `{"kind":"notFound"}` | 404 with `UNABLE_TO_LOCATE_RECORD` |
//! | `{"kind":"status","status":503}` | that status (an echo for a 2xx, else an ErrorDetail) |
//! | `{"kind":"respond","status":429,"retryAfter":"1"}`, `{"kind":"respond","status":302,"location":"/x"}` | as `status`, with those headers |
//! | `{"kind":"delay","by":"1s","then":{...}}`, `{"kind":"hang"}`, `{"kind":"dropConnection"}` | as for `pay` (`then` defaults to accept) |
//!
//! Status codes must lie in 100..=999 and header values must be sendable; the HTTP control
//! endpoints refuse others. A behaviour built in process with such a code answers 500
//! instead, and a header that cannot be sent is left out.
//!
//! An outage ([`Outage`], `POST /simulator/outage`) overrides every script for its time:
//!
//! | JSON | meaning |
//! |---|---|
//! | `{"for":"2m","kind":"respond","status":503,"retryAfter":"120"}` | every call gets that status (default 503) with an ErrorDetail and the headers given: a maintenance window |
//! | `{"for":"30s","kind":"refuse"}` | the listening socket is closed, so connections are refused; a request on a connection opened before gets its connection dropped |

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
    /// Any status with optional `Retry-After` and `Location`: a 2xx is the approval (as
    /// `Approve`, with that status), anything else an ErrorDetail.
    Respond(Respond),
    /// A 2xx approval that real wallets send and the schema does not allow (see the module
    /// documentation).
    LenientApprove { status: u16 },
    /// 201 approved for `amount` (half the request's when `None`) instead of what was asked.
    PartialApprove { amount: Option<i64> },
    /// A 2xx whose body is not JSON.
    NonJsonApprove { status: u16 },
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
    /// Any status with optional `Retry-After` and `Location`: the echo for a 2xx, an
    /// ErrorDetail otherwise.
    Respond(Respond),
}

impl AdviceBehaviour {
    /// Fail the first `n` deliveries with 500, then accept.
    pub fn fail_times(n: u32) -> Self {
        Self::FailTimes { n, status: 500 }
    }
}

/// A status answered with the headers real partners add to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Respond {
    pub status: u16,
    /// `Retry-After`: seconds, or an HTTP date (sent as given).
    pub retry_after: Option<String>,
    /// `Location`, for redirects.
    pub location: Option<String>,
}

impl Respond {
    /// `status` with no extra header.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            location: None,
        }
    }

    /// `status` with `Retry-After: after`.
    pub fn retry_after(status: u16, after: impl Into<String>) -> Self {
        Self {
            retry_after: Some(after.into()),
            ..Self::status(status)
        }
    }

    /// A redirect: `status` (a 3xx) with `Location: location`.
    pub fn redirect(status: u16, location: impl Into<String>) -> Self {
        Self {
            location: Some(location.into()),
            ..Self::status(status)
        }
    }

    fn checked(self) -> Result<Self, InvalidStatus> {
        for (name, value) in [
            ("Retry-After", &self.retry_after),
            ("Location", &self.location),
        ] {
            if let Some(v) = value {
                if axum::http::HeaderValue::from_str(v).is_err() {
                    return Err(InvalidStatus::Header(name, v.clone()));
                }
            }
        }
        Ok(Self {
            status: checked(self.status)?,
            ..self
        })
    }
}

/// An outage of the partner: for `lasting`, every call on `/qr/v1/...` gets `answer`,
/// whatever is scripted (see the module documentation for the JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "OutageWire", into = "OutageWire")]
pub struct Outage {
    pub lasting: Duration,
    pub answer: OutageAnswer,
}

/// What an outage answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutageAnswer {
    /// This status (with an ErrorDetail) to every call: a maintenance window, a gateway
    /// whose upstream is gone.
    Respond(Respond),
    /// No connection is accepted: the caller's connect is refused.
    Refuse,
}

impl Outage {
    /// A maintenance window: 503 with `Retry-After` in seconds, for `lasting`.
    pub fn maintenance(lasting: Duration) -> Self {
        Self {
            lasting,
            answer: OutageAnswer::Respond(Respond::retry_after(
                503,
                lasting.as_secs().max(1).to_string(),
            )),
        }
    }

    /// Connections refused for `lasting`.
    pub fn refuse(lasting: Duration) -> Self {
        Self {
            lasting,
            answer: OutageAnswer::Refuse,
        }
    }
}

/// Why a behaviour from outside was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvalidStatus {
    #[error("status {0} is not an HTTP status code (100..=999)")]
    Status(u16),
    #[error("{0} {1:?} cannot be sent as an HTTP header value")]
    Header(&'static str, String),
    #[error("an outage that refuses connections answers no status")]
    RefuseWithStatus,
}

fn checked(status: u16) -> Result<u16, InvalidStatus> {
    if (100..=999).contains(&status) {
        Ok(status)
    } else {
        Err(InvalidStatus::Status(status))
    }
}

fn status_400() -> u16 {
    400
}

fn status_500() -> u16 {
    500
}

fn status_200() -> u16 {
    200
}

/// The JSON shape of [`Respond`], inside a behaviour's object.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RespondWire {
    status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
}

impl RespondWire {
    fn into_respond(self) -> Result<Respond, InvalidStatus> {
        Respond {
            status: self.status,
            retry_after: self.retry_after,
            location: self.location,
        }
        .checked()
    }
}

impl From<Respond> for RespondWire {
    fn from(r: Respond) -> Self {
        Self {
            status: r.status,
            retry_after: r.retry_after,
            location: r.location,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum OutageKind {
    Respond,
    Refuse,
}

/// The JSON shape of [`Outage`].
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OutageWire {
    #[serde(rename = "for", with = "humantime_serde")]
    lasting: Duration,
    kind: OutageKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
}

impl TryFrom<OutageWire> for Outage {
    type Error = InvalidStatus;

    fn try_from(w: OutageWire) -> Result<Self, InvalidStatus> {
        let answer = match w.kind {
            OutageKind::Refuse if w.status.is_some() => {
                return Err(InvalidStatus::RefuseWithStatus)
            }
            OutageKind::Refuse => OutageAnswer::Refuse,
            OutageKind::Respond => OutageAnswer::Respond(
                RespondWire {
                    status: w.status.unwrap_or(503),
                    retry_after: w.retry_after,
                    location: w.location,
                }
                .into_respond()?,
            ),
        };
        Ok(Self {
            lasting: w.lasting,
            answer,
        })
    }
}

impl From<Outage> for OutageWire {
    fn from(o: Outage) -> Self {
        match o.answer {
            OutageAnswer::Refuse => Self {
                lasting: o.lasting,
                kind: OutageKind::Refuse,
                status: None,
                retry_after: None,
                location: None,
            },
            OutageAnswer::Respond(r) => Self {
                lasting: o.lasting,
                kind: OutageKind::Respond,
                status: Some(r.status),
                retry_after: r.retry_after,
                location: r.location,
            },
        }
    }
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
    Respond(RespondWire),
    LenientApprove {
        #[serde(default = "status_200")]
        status: u16,
    },
    PartialApprove {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        amount: Option<i64>,
    },
    NonJsonApprove {
        #[serde(default = "status_200")]
        status: u16,
    },
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
            PayWire::Respond(r) => Self::Respond(r.into_respond()?),
            PayWire::LenientApprove { status } => Self::LenientApprove {
                status: checked(status)?,
            },
            PayWire::PartialApprove { amount } => Self::PartialApprove { amount },
            PayWire::NonJsonApprove { status } => Self::NonJsonApprove {
                status: checked(status)?,
            },
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
            PayBehaviour::Respond(r) => Self::Respond(r.into()),
            PayBehaviour::LenientApprove { status } => Self::LenientApprove { status },
            PayBehaviour::PartialApprove { amount } => Self::PartialApprove { amount },
            PayBehaviour::NonJsonApprove { status } => Self::NonJsonApprove { status },
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
    Respond(RespondWire),
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
            AdviceWire::Respond(r) => Self::Respond(r.into_respond()?),
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
            AdviceBehaviour::Respond(r) => Self::Respond(r.into()),
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
    fn the_real_partner_shapes_parse() {
        assert_eq!(
            pay(json!({"kind":"respond","status":429,"retryAfter":"3"})).ok(),
            Some(PayBehaviour::Respond(Respond::retry_after(429, "3")))
        );
        assert_eq!(
            advice(json!({"kind":"respond","status":308,"location":"/x"})).ok(),
            Some(AdviceBehaviour::Respond(Respond::redirect(308, "/x")))
        );
        assert_eq!(
            pay(json!({"kind":"lenientApprove"})).ok(),
            Some(PayBehaviour::LenientApprove { status: 200 })
        );
        assert_eq!(
            pay(json!({"kind":"partialApprove"})).ok(),
            Some(PayBehaviour::PartialApprove { amount: None })
        );
        assert_eq!(
            pay(json!({"kind":"nonJsonApprove","status":204})).ok(),
            Some(PayBehaviour::NonJsonApprove { status: 204 })
        );
        let o: Option<Outage> =
            serde_json::from_value(json!({"for":"2m","kind":"respond","retryAfter":"120"})).ok();
        assert_eq!(
            o,
            Some(Outage {
                lasting: Duration::from_secs(120),
                answer: OutageAnswer::Respond(Respond::retry_after(503, "120"))
            })
        );
        let o: Option<Outage> = serde_json::from_value(json!({"for":"30s","kind":"refuse"})).ok();
        assert_eq!(o, Some(Outage::refuse(Duration::from_secs(30))));
        for o in [
            Outage::maintenance(Duration::from_secs(90)),
            Outage::refuse(Duration::from_millis(1500)),
        ] {
            let v = serde_json::to_value(&o).expect("serialises");
            assert_eq!(serde_json::from_value::<Outage>(v).ok(), Some(o));
        }
    }

    #[test]
    fn unsendable_headers_and_bad_outages_are_refused() {
        assert!(pay(json!({"kind":"respond","status":503,"retryAfter":"1\n2"})).is_err());
        assert!(pay(json!({"kind":"respond","status":503,"retryafter":"1"})).is_err());
        assert!(pay(json!({"kind":"respond"})).is_err());
        assert!(
            serde_json::from_value::<Outage>(json!({"for":"1s","kind":"refuse","status":503}))
                .is_err()
        );
        assert!(serde_json::from_value::<Outage>(json!({"kind":"refuse"})).is_err());
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
