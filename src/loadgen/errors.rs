//! Every failed or unexpected answer, counted by kind, with the first few kept verbatim.

use serde::Serialize;
use std::collections::BTreeMap;

use super::stats::Op;

/// How many errors are kept verbatim (per lane, and in the merged report).
pub(crate) const SAMPLES: usize = 5;
/// How much of a response body is kept.
const BODY_CHARS: usize = 300;

/// One error as it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorSample {
    pub operation: String,
    /// The HTTP status, when an answer came back at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tran_id: Option<String>,
    /// The answer's body (shortened), or the transport error.
    pub detail: String,
}

/// Errors by kind: `"<operation> <status> <errorType>"`, or `"<operation> <transport error>"`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorLog {
    pub total: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub samples: Vec<ErrorSample>,
}

impl ErrorLog {
    /// An answer with an unexpected status (or an expected status with an unexpected body).
    pub fn answer(&mut self, op: Op, status: u16, body: &[u8], tran_id: Option<&str>) {
        let text = String::from_utf8_lossy(body);
        let error_type = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("errorType")
                    .and_then(|t| t.as_str())
                    .map(str::to_owned)
            });
        let kind = match error_type {
            Some(t) => format!("{} {status} {t}", op.name()),
            None => format!("{} {status}", op.name()),
        };
        self.add(
            kind,
            ErrorSample {
                operation: op.name().to_owned(),
                status: Some(status),
                tran_id: tran_id.map(str::to_owned),
                detail: shorten(&text),
            },
        );
    }

    /// No answer: the request failed in transport (connect, timeout, reset).
    pub fn transport(&mut self, op: Op, error: &reqwest::Error, tran_id: Option<&str>) {
        let what = if error.is_timeout() {
            "timeout"
        } else if error.is_connect() {
            "connect error"
        } else if error.is_body() || error.is_decode() {
            "body error"
        } else {
            "request error"
        };
        self.add(
            format!("{} {what}", op.name()),
            ErrorSample {
                operation: op.name().to_owned(),
                status: None,
                tran_id: tran_id.map(str::to_owned),
                detail: shorten(&format!("{error:#}")),
            },
        );
    }

    /// Anything else worth counting (a missing field in an answer, a failed control call).
    pub fn other(&mut self, op: Op, kind: &str, detail: String, tran_id: Option<&str>) {
        self.add(
            format!("{} {kind}", op.name()),
            ErrorSample {
                operation: op.name().to_owned(),
                status: None,
                tran_id: tran_id.map(str::to_owned),
                detail: shorten(&detail),
            },
        );
    }

    fn add(&mut self, kind: String, sample: ErrorSample) {
        self.total += 1;
        *self.by_kind.entry(kind).or_default() += 1;
        if self.samples.len() < SAMPLES {
            self.samples.push(sample);
        }
    }

    pub fn merge(&mut self, other: ErrorLog) {
        self.total += other.total;
        for (k, n) in other.by_kind {
            *self.by_kind.entry(k).or_default() += n;
        }
        let room = SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(BODY_CHARS).collect();
    if s.chars().count() > BODY_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_kind_and_the_first_kept() {
        let mut a = ErrorLog::default();
        for _ in 0..7 {
            a.answer(
                Op::Pay,
                504,
                br#"{"errorType":"UPSTREAM_UNAVAILABLE"}"#,
                Some("t"),
            );
        }
        let mut b = ErrorLog::default();
        b.answer(Op::Confirm, 500, b"oops", None);
        a.merge(b);
        assert_eq!(a.total, 8);
        assert_eq!(a.by_kind["pay 504 UPSTREAM_UNAVAILABLE"], 7);
        assert_eq!(a.by_kind["confirm 500"], 1);
        assert_eq!(a.samples.len(), SAMPLES);
    }
}
