//! The one HTTP client of a run: HTTP/1.1 with keep-alive and a pool big enough for every
//! lane's pay and scan at once, shared by all lanes.

use anyhow::Context;
use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use std::time::{Duration, Instant};

/// An answer with its status, body and the time from just before sending to the last byte
/// of the body.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Answer {
    /// The body's JSON member `name` as a string.
    pub(super) fn field(&self, name: &str) -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()?
            .get(name)?
            .as_str()
            .map(str::to_owned)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Http {
    client: reqwest::Client,
}

/// Basic credentials.
pub(super) type Auth<'a> = Option<(&'a str, &'a str)>;

impl Http {
    pub(super) fn new(lanes: usize, timeout: Duration) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS provider; an error only says one is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(lanes.saturating_mul(2).saturating_add(16))
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .timeout(timeout)
            .build()
            .context("building the load generator's HTTP client")?;
        Ok(Self { client })
    }

    pub(super) async fn post(
        &self,
        url: &str,
        auth: Auth<'_>,
        body: &serde_json::Value,
    ) -> Result<Answer, reqwest::Error> {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if let Some((user, password)) = auth {
            request = request.basic_auth(user, Some(password));
        }
        Self::send(request).await
    }

    pub(super) async fn get(&self, url: &str) -> Result<Answer, reqwest::Error> {
        Self::send(self.client.get(url)).await
    }

    pub(super) async fn delete(&self, url: &str) -> Result<Answer, reqwest::Error> {
        Self::send(self.client.delete(url)).await
    }

    async fn send(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
        let started = Instant::now();
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        Ok(Answer {
            status,
            body,
            elapsed: started.elapsed(),
        })
    }
}

/// `base` (with or without a trailing slash) joined with `path`.
pub(super) fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}
