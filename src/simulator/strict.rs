//! Strict mode: the simulator as a conformance checker of what the hub sends.
//!
//! With `strict = true` in its settings, every message on `/qr/v1/...` is held to two rules,
//! and each breach is answered 400 `FORMAT_ERROR` (as a partner enforcing the interface
//! would) and recorded, so that a test or the chaos checker can count them:
//!
//! - `schema`: the body is a valid PaymentRequest, PaymentConfirmation or PaymentReversal of
//!   the published interface (checked with the hub's own tables, [`crate::model::schema`],
//!   which state the published constraints; the simulator cannot read the test data);
//! - `basicUser`: on `pay`, the HTTP Basic user is the message's `client.id` (the
//!   interface's rule that the sender of a request is the client it names).
//!
//! Without strict mode a schema breach still gets its 400, but nothing is recorded and the
//! Basic user is not compared.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ledger::MessageKind;
use crate::model::FormatError;

/// Which rule a message broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Rule {
    /// The body is not valid under the published schema (or not JSON).
    Schema,
    /// The Basic user of a `pay` is not its `client.id`.
    BasicUser,
}

/// One message that broke a rule in strict mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// The ledger entry of the message.
    pub seq: u64,
    pub kind: MessageKind,
    /// The message's `id`, when it had a string one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub rule: Rule,
    /// What was wrong, for a person reading a report.
    pub detail: String,
}

/// The problems of a schema breach, as one line.
pub(crate) fn describe(problems: &[FormatError]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.field, p.msg))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The `basicUser` rule on a `pay`: `None` when kept, else what was wrong.
pub(crate) fn basic_user_breach(user: Option<&str>, message: &Value) -> Option<String> {
    let client_id = message.pointer("/client/id").and_then(Value::as_str);
    match (user, client_id) {
        (Some(u), Some(c)) if u == c => None,
        (None, c) => Some(format!("no Basic user; client.id {c:?}")),
        (Some(u), c) => Some(format!("Basic user {u:?} but client.id {c:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_basic_user_must_be_the_client_id() {
        let m = json!({"client": {"id": "qrhub", "name": "QR Hub"}});
        assert_eq!(basic_user_breach(Some("qrhub"), &m), None);
        assert!(basic_user_breach(Some("pos-1"), &m).is_some());
        assert!(basic_user_breach(None, &m).is_some());
        assert!(basic_user_breach(Some("qrhub"), &json!({})).is_some());
    }
}
