//! A partner that answers exactly what a test tells it, over real HTTP on a random port, and
//! records every request it gets (method, path, Basic user, body). Unlike the simulator it
//! knows nothing of the interface: it is the careless or strict partner a test describes,
//! and the published schema, not the hub's own types, judges what the hub sent and answered.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PAY: &str = "/qr/v1/payments";
pub const CONFIRM: &str = "/qr/v1/payments/confirmations";
pub const REVERSE: &str = "/qr/v1/payments/reversals";

/// One answer to give.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// `None`: for a pay, a valid PaymentResponse echoing the request; for an advice, the
    /// advice echoed.
    pub body: Option<String>,
    /// Adds a vendor field of this many bytes to the echoed body (an oversized answer that
    /// is otherwise valid).
    pub padding: Option<usize>,
    /// How long the partner takes before it answers (a slow or silent partner).
    pub delay: Option<Duration>,
}

impl Canned {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
            padding: None,
            delay: None,
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    pub fn padded(mut self, bytes: usize) -> Self {
        self.padding = Some(bytes);
        self
    }

    pub fn with_body(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some(body.into()),
            padding: None,
            delay: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// One request the partner received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    /// The Basic-auth user, if the request had one.
    pub user: Option<String>,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    /// Answers by path, first in first out; when a path's queue is empty the default applies.
    script: HashMap<String, VecDeque<Canned>>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct ScriptedPartner {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl ScriptedPartner {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let app = axum::Router::new().fallback(move |method, uri, headers, body| {
            answer(Arc::clone(&shared), method, uri, headers, body)
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, state }
    }

    /// Queues `answers` for requests to `path`, in order.
    pub fn script(&self, path: &str, answers: impl IntoIterator<Item = Canned>) {
        let mut state = self.state.lock().expect("lock");
        state
            .script
            .entry(path.to_owned())
            .or_default()
            .extend(answers);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("lock").received.clone()
    }

    pub fn received_at(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until `count` requests reached `path`, or fails after `within`.
    pub async fn wait_for(&self, path: &str, count: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.received_at(path);
            if got.len() >= count {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} got {} requests, expected {count}: {:#?}",
                got.len(),
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let user = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(u, _)| u.to_owned()));
    let canned = {
        let mut state = state.lock().expect("lock");
        state.received.push(Received {
            method: method.clone(),
            path: path.clone(),
            user,
            body: body.clone(),
            at: Instant::now(),
        });
        state.script.get_mut(&path).and_then(VecDeque::pop_front)
    };
    let default_status = if path == PAY { 201 } else { 202 };
    let canned = canned.unwrap_or_else(|| Canned::status(default_status));
    if let Some(delay) = canned.delay {
        tokio::time::sleep(delay).await;
    }
    let text = match canned.body {
        Some(text) => text,
        None => {
            let mut echoed = if path == PAY {
                approval_of(&body)
            } else {
                body
            };
            if let (Some(bytes), Some(map)) = (canned.padding, echoed.as_object_mut()) {
                map.insert("vendorPadding".into(), Value::String("x".repeat(bytes)));
            }
            echoed.to_string()
        }
    };
    let mut response =
        (StatusCode::from_u16(canned.status).expect("a status"), text).into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in canned.headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).expect("header value"),
        );
    }
    response
}

/// The partner's own institution id in the identifiers it adds.
pub const PARTNER_INSTITUTION: &str = "wallet-institution";

/// The approval a well-behaved partner sends: the request echoed as a PaymentResponse, with
/// its own identifier added.
pub fn approval_of(request: &Value) -> Value {
    let mut response = request.clone();
    if let Some(map) = response.as_object_mut() {
        map.remove("partnerPaymentToken");
        map.insert("slipData".into(), json!({"issuerReference": "REF0001"}));
    }
    if let Some(ids) = response["thirdPartyIdentifiers"].as_array_mut() {
        ids.push(json!({"institutionId": PARTNER_INSTITUTION, "transactionIdentifier": "W-1"}));
    }
    response
}
