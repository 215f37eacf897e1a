//! Every message the simulator received on `/qr/v1/...`, with what it answered.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Which operation a message came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageKind {
    Pay,
    Confirmation,
    Reversal,
}

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Not answered yet (delayed or hanging).
    Pending,
    /// Answered with `status`.
    Answered,
    /// The connection was aborted with no response (scripted, or a hang ended by shutdown).
    Dropped,
}

/// One received message. Repeated deliveries are separate entries, so counting entries with
/// the same `id` counts deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// Order of arrival, from 1, never reused (not even after a reset).
    pub seq: u64,
    pub kind: MessageKind,
    /// The body as received: its JSON, or a JSON string of the raw text when it was not JSON.
    pub message: serde_json::Value,
    /// The message's own `id`, when it had a string one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For advices: the `requestId` (the id of the `pay` it refers to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tran_id: Option<String>,
    /// The HTTP Basic user the caller presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub received_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// The status answered (absent unless `outcome` is `answered`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For a `pay` answered with a 2xx: the amount the simulator approved (a LedgerAmount),
    /// which is not the requested one when a partial approval was scripted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_amount: Option<serde_json::Value>,
}

/// The entries, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    entries: Vec<LedgerEntry>,
    last_seq: u64,
}

/// What is known of a message when it arrives.
pub(crate) struct Arrival {
    pub kind: MessageKind,
    pub message: serde_json::Value,
    pub username: Option<String>,
    pub received_at: DateTime<Utc>,
}

impl Ledger {
    /// Adds an entry for a message just received; returns its `seq`.
    pub(crate) fn record(&mut self, a: Arrival) -> u64 {
        self.last_seq += 1;
        let field = |name: &str| {
            a.message
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        let entry = LedgerEntry {
            seq: self.last_seq,
            kind: a.kind,
            id: field("id"),
            request_id: field("requestId"),
            tran_id: field("tranId"),
            message: a.message,
            username: a.username,
            received_at: a.received_at,
            outcome: Outcome::Pending,
            status: None,
            approved_amount: None,
        };
        self.entries.push(entry);
        self.last_seq
    }

    /// Notes how message `seq` ended: `Some(status)` answered, `None` dropped; and, for an
    /// approval, the amount approved.
    pub(crate) fn finish(
        &mut self,
        seq: u64,
        status: Option<u16>,
        approved_amount: Option<serde_json::Value>,
    ) {
        if let Ok(i) = self.entries.binary_search_by_key(&seq, |e| e.seq) {
            let e = &mut self.entries[i];
            e.approved_amount = approved_amount;
            e.outcome = match status {
                Some(_) => Outcome::Answered,
                None => Outcome::Dropped,
            };
            e.status = status;
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<LedgerEntry> {
        self.entries.clone()
    }

    pub(crate) fn deliveries(&self, id: &str) -> usize {
        self.entries
            .iter()
            .filter(|e| e.id.as_deref() == Some(id))
            .count()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn arrival(message: serde_json::Value) -> Arrival {
        Arrival {
            kind: MessageKind::Confirmation,
            message,
            username: Some("qrhub".into()),
            received_at: Utc::now(),
        }
    }

    #[test]
    fn ids_are_lifted_from_the_message_and_outcomes_recorded() {
        let mut l = Ledger::default();
        let a = l.record(arrival(json!({"id":"c1","requestId":"p1","tranId":"t"})));
        let b = l.record(arrival(json!({"id":"c1","requestId":"p1"})));
        l.finish(a, Some(500), None);
        l.finish(b, None, None);
        let s = l.snapshot();
        assert_eq!(s[0].request_id.as_deref(), Some("p1"));
        assert_eq!(s[0].tran_id.as_deref(), Some("t"));
        assert_eq!((s[0].outcome, s[0].status), (Outcome::Answered, Some(500)));
        assert_eq!((s[1].outcome, s[1].status), (Outcome::Dropped, None));
        assert_eq!(l.deliveries("c1"), 2);
    }

    #[test]
    fn seq_keeps_counting_after_a_reset() {
        let mut l = Ledger::default();
        l.record(arrival(json!("not an object")));
        l.clear();
        let seq = l.record(arrival(json!({})));
        assert_eq!(seq, 2);
        assert_eq!(l.snapshot().len(), 1);
        assert_eq!(l.snapshot()[0].id, None);
    }
}
