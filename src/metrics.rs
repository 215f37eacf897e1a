//! Prometheus metrics: the recorder, `GET /metrics`, the request middleware, and the names
//! and label values every other module records with.
//!
//! Recording goes through the `metrics` facade macros, which cost a hash lookup and an
//! atomic add when a recorder is installed and nothing at all when none is (unit tests, a
//! hub with `server.metrics_enabled = false`). Label values are `&'static str` wherever the
//! set is fixed (operations, statuses, outcomes), so the hot path builds no strings; the
//! partner id is the one label taken from configuration.
//!
//! **Counters, gauges and histograms are process-wide.** The recorder is global (one per
//! process, installed once by [`install`]); several hubs built in one process (tests) add
//! to the same series, and the gauges the sweeper sets (`qrhub_outbox_depth`,
//! `qrhub_outbox_oldest_age_seconds`) hold whichever hub set them last.
//!
//! `/metrics` has no authentication: operators should keep it off the public listener's
//! reach (a firewall rule or a reverse proxy that does not route it), or switch it off with
//! `server.metrics_enabled = false`.

use axum::extract::{MatchedPath, State};
use axum::http;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service};

use crate::model::Operation;
use crate::store::{OutboxStats, PoolStats, SharedStore};

/// Metric names, in one place so that tests and dashboards can grep for them.
pub(crate) mod name {
    pub(crate) const REQUESTS: &str = "qrhub_requests_total";
    pub(crate) const REQUEST_DURATION: &str = "qrhub_request_duration_seconds";
    pub(crate) const MATCHES: &str = "qrhub_matches_total";
    pub(crate) const SCAN_WINDOW_EXPIRIES: &str = "qrhub_scan_window_expiries_total";
    pub(crate) const POS_GONE: &str = "qrhub_pos_gone_before_scan_total";
    pub(crate) const MATCH_LATENCY: &str = "qrhub_match_latency_seconds";
    pub(crate) const PARTNER_CALLS: &str = "qrhub_partner_calls_total";
    pub(crate) const PARTNER_CALL_DURATION: &str = "qrhub_partner_call_duration_seconds";
    pub(crate) const OUTBOX_DELIVERIES: &str = "qrhub_outbox_deliveries_total";
    pub(crate) const OUTBOX_DEAD_LETTERS: &str = "qrhub_outbox_dead_letters_total";
    pub(crate) const OUTBOX_DEPTH: &str = "qrhub_outbox_depth";
    pub(crate) const OUTBOX_REFUSED: &str = "qrhub_outbox_refused";
    pub(crate) const OUTBOX_DEAD: &str = "qrhub_outbox_dead";
    pub(crate) const PARTNER_CREDENTIALS_REFUSED: &str = "qrhub_partner_credentials_refused_total";
    pub(crate) const PAYMENT_RESPONSE_REPAIRS: &str = "qrhub_partner_response_repairs_total";
    pub(crate) const SWEEP_LAST_SUCCESS: &str = "qrhub_sweep_last_success_timestamp_seconds";
    pub(crate) const SWEEP_FAILURES: &str = "qrhub_sweep_failures_total";
    pub(crate) const OUTBOX_OLDEST_AGE: &str = "qrhub_outbox_oldest_age_seconds";
    pub(crate) const UNADVISED_APPROVALS: &str = "qrhub_unadvised_approvals";
    pub(crate) const UNADVISED_OLDEST_AGE: &str = "qrhub_unadvised_approval_oldest_age_seconds";
    pub(crate) const RETENTION_PURGED: &str = "qrhub_retention_purged_rows_total";
    pub(crate) const RETENTION_LAST_SUCCESS: &str =
        "qrhub_retention_last_success_timestamp_seconds";
    pub(crate) const RETENTION_FAILURES: &str = "qrhub_retention_failures_total";
    pub(crate) const UNADVISED_REVERSALS: &str = "qrhub_unadvised_reversals_total";
    pub(crate) const HELD_PAY_REQUESTS: &str = "qrhub_held_pay_requests";
    pub(crate) const DB_POOL_CONNECTIONS: &str = "qrhub_db_pool_connections";
    pub(crate) const DB_POOL_MAX: &str = "qrhub_db_pool_max";
    /// Logins refused by reason: `invalid` (wrong password or unknown user), `throttled`
    /// (the address is over its failed-login budget), `busy` (no password-check slot).
    pub(crate) const FAILED_LOGINS: &str = "qrhub_failed_logins_total";
    /// Connections closed at accept because `server.max_connections` were open.
    pub(crate) const CONNECTIONS_REFUSED: &str = "qrhub_connections_refused_total";
    /// Configuration reloads (SIGHUP) applied, refused, and when the last one was applied.
    pub(crate) const CONFIG_RELOADS: &str = "qrhub_config_reloads_total";
    pub(crate) const CONFIG_RELOAD_FAILURES: &str = "qrhub_config_reload_failures_total";
    pub(crate) const CONFIG_LAST_RELOAD: &str =
        "qrhub_config_last_reload_success_timestamp_seconds";
    /// Each partner over the last hour as this instance saw it (label `partner`), and the
    /// advices waiting for it (the store's, every instance's).
    pub(crate) const PARTNER_PAY_CALLS: &str = "qrhub_partner_pay_calls_last_hour";
    pub(crate) const PARTNER_APPROVAL_RATIO: &str = "qrhub_partner_approval_ratio";
    pub(crate) const PARTNER_UNKNOWN_RATIO: &str = "qrhub_partner_unknown_ratio";
    pub(crate) const PARTNER_PAY_LATENCY: &str = "qrhub_partner_pay_latency_seconds";
    pub(crate) const PARTNER_ADVICES_WAITING: &str = "qrhub_partner_advices_waiting";
    pub(crate) const PARTNER_OLDEST_ADVICE_AGE: &str =
        "qrhub_partner_oldest_advice_waiting_age_seconds";
    pub(crate) const PARTNER_LAST_ERROR: &str = "qrhub_partner_last_error_timestamp_seconds";
}

/// Histogram buckets in seconds, from 1 ms (a fast createQrCode) to 60 s (the POS's own
/// timeout, beyond which nothing the hub does can last).
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0,
];

/// The Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder on first call and returns its handle; later calls
/// (every hub a test builds) get the same handle. If some other recorder was installed
/// first, the handle renders only this module's descriptions and the hub's metrics go to
/// that recorder instead: logged, not fatal.
pub(crate) fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .expect("the bucket list is not empty");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                Err(e) => {
                    tracing::warn!(error = %e, "a metrics recorder was already installed; /metrics will be empty");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            };
            describe();
            describe_operations();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        name::RETENTION_PURGED,
        "Rows deleted by the retention purge, by table (payment: payments, each with its advices, outbox rows and events)"
    );
    describe_gauge!(
        name::RETENTION_LAST_SUCCESS,
        Unit::Seconds,
        "When the last retention purge pass finished without error (Unix time)"
    );
    describe_counter!(
        name::RETENTION_FAILURES,
        "Retention purge passes that failed"
    );
    describe_counter!(
        name::REQUESTS,
        "HTTP requests answered, by operation and status code"
    );
    describe_histogram!(
        name::REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by operation (a pay includes its hold)"
    );
    describe_counter!(name::MATCHES, "Scans that claimed a waiting payment");
    describe_counter!(
        name::SCAN_WINDOW_EXPIRIES,
        "Payments whose scan window closed without a scan (NO_SCAN_RECEIVED)"
    );
    describe_counter!(
        name::POS_GONE,
        "Held pays whose POS connection closed before a scan claimed them (ended, never sent)"
    );
    describe_histogram!(
        name::MATCH_LATENCY,
        Unit::Seconds,
        "From the scan claiming a payment to the hub sending pay to the partner"
    );
    describe_counter!(
        name::PARTNER_CALLS,
        "Calls to partners, by partner, operation and outcome (success, failed, unknown, not_sent)"
    );
    describe_histogram!(
        name::PARTNER_CALL_DURATION,
        Unit::Seconds,
        "Duration of calls to partners, by partner and operation"
    );
    describe_counter!(
        name::OUTBOX_DELIVERIES,
        "Advice delivery tries, by kind and result (delivered, failed, retry)"
    );
    describe_counter!(
        name::OUTBOX_DEAD_LETTERS,
        "Advices dead-lettered after their expiry"
    );
    describe_gauge!(
        name::OUTBOX_REFUSED,
        "Advices the partner refused (FAILED), each an operator's open item, as of the last sweep"
    );
    describe_gauge!(
        name::OUTBOX_DEAD,
        "Advices dead-lettered and not retried yet, as of the last sweep"
    );
    describe_counter!(
        name::PARTNER_CREDENTIALS_REFUSED,
        "Answers 401 or 403 to the hub's own calls, by partner: its credentials need an operator"
    );
    describe_counter!(
        name::PAYMENT_RESPONSE_REPAIRS,
        "Approvals whose body the hub repaired to relay a valid PaymentResponse, by partner and repair"
    );
    describe_gauge!(
        name::SWEEP_LAST_SUCCESS,
        Unit::Seconds,
        "When this instance last finished a sweep (Unix time); the sweep needs the database every second, so an old value means it does not answer"
    );
    describe_counter!(
        name::SWEEP_FAILURES,
        "Sweeps that failed (most often: the database did not answer)"
    );
    describe_gauge!(
        name::OUTBOX_DEPTH,
        "Advices waiting for delivery (PENDING), as of the last sweep"
    );
    describe_gauge!(
        name::OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest advice waiting for delivery, as of the last sweep"
    );
    describe_gauge!(
        name::UNADVISED_APPROVALS,
        "Payments approved longer than unadvised.listed_after ago that no POS confirmed or reversed, as of the last sweep"
    );
    describe_gauge!(
        name::UNADVISED_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest of those approvals, as of the last sweep"
    );
    describe_counter!(
        name::UNADVISED_REVERSALS,
        "Approvals nobody advised that the hub reversed at the partner (client policy reverse)"
    );
    describe_gauge!(
        name::HELD_PAY_REQUESTS,
        "pay requests held open, waiting for a scan or the partner's answer"
    );
    describe_gauge!(
        name::DB_POOL_CONNECTIONS,
        "Database pool connections by state (idle, in_use), at scrape time"
    );
    describe_gauge!(
        name::DB_POOL_MAX,
        "Largest number of connections the database pools may open"
    );
}

/// What the operations half describes: configuration reloads and partner health.
fn describe_operations() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        name::CONFIG_RELOADS,
        "Configuration reloads (SIGHUP) put in force"
    );
    describe_counter!(
        name::CONFIG_RELOAD_FAILURES,
        "Configuration reloads refused (invalid file, published password beyond loopback); the configuration in force stayed"
    );
    describe_gauge!(
        name::CONFIG_LAST_RELOAD,
        "When the configuration was last loaded or reloaded (Unix seconds)"
    );
    describe_gauge!(
        name::PARTNER_PAY_CALLS,
        "pay calls to the partner by this instance in the last hour"
    );
    describe_gauge!(
        name::PARTNER_APPROVAL_RATIO,
        "Share of this instance's pay calls to the partner approved in the last hour (NaN without calls)"
    );
    describe_gauge!(
        name::PARTNER_UNKNOWN_RATIO,
        "Share of this instance's pay calls to the partner with an unknown outcome (reversed) in the last hour (NaN without calls)"
    );
    describe_gauge!(
        name::PARTNER_PAY_LATENCY,
        "Latency of this instance's pay calls to the partner in the last hour, by quantile (0.5, 0.99)"
    );
    describe_gauge!(
        name::PARTNER_ADVICES_WAITING,
        "Advices waiting for delivery to the partner (all instances)"
    );
    describe_gauge!(
        name::PARTNER_OLDEST_ADVICE_AGE,
        "Age of the oldest advice waiting for the partner, in seconds (0 when none waits)"
    );
    describe_gauge!(
        name::PARTNER_LAST_ERROR,
        "When a call of this instance to the partner last failed (Unix seconds)"
    );
}

/// One partner's health figures, for its gauges.
#[derive(Debug, Clone)]
pub(crate) struct PartnerGauges<'a> {
    pub partner_id: &'a str,
    pub pay_calls: u64,
    pub approval_rate: Option<f64>,
    pub unknown_rate: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub advices_waiting: i64,
    pub oldest_advice_waiting_seconds: Option<i64>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// The per-partner health gauges, from the sweep. A ratio or latency with no call in the
/// window is NaN (no figure), not a stale one.
pub(crate) fn partner_health(p: &PartnerGauges<'_>) {
    let partner = || p.partner_id.to_owned();
    metrics::gauge!(name::PARTNER_PAY_CALLS, "partner" => partner()).set(p.pay_calls as f64);
    metrics::gauge!(name::PARTNER_APPROVAL_RATIO, "partner" => partner())
        .set(p.approval_rate.unwrap_or(f64::NAN));
    metrics::gauge!(name::PARTNER_UNKNOWN_RATIO, "partner" => partner())
        .set(p.unknown_rate.unwrap_or(f64::NAN));
    for (quantile, ms) in [("0.5", p.latency_p50_ms), ("0.99", p.latency_p99_ms)] {
        metrics::gauge!(name::PARTNER_PAY_LATENCY, "partner" => partner(), "quantile" => quantile)
            .set(ms.map_or(f64::NAN, |ms| ms / 1000.0));
    }
    metrics::gauge!(name::PARTNER_ADVICES_WAITING, "partner" => partner())
        .set(p.advices_waiting as f64);
    metrics::gauge!(name::PARTNER_OLDEST_ADVICE_AGE, "partner" => partner())
        .set(p.oldest_advice_waiting_seconds.unwrap_or(0) as f64);
    if let Some(at) = p.last_error_at {
        metrics::gauge!(name::PARTNER_LAST_ERROR, "partner" => partner())
            .set(at.timestamp() as f64);
    }
}

/// A configuration reload was put in force at `at`.
pub(crate) fn config_reloaded(at: DateTime<Utc>) {
    metrics::counter!(name::CONFIG_RELOADS).increment(1);
    metrics::gauge!(name::CONFIG_LAST_RELOAD).set(at.timestamp() as f64);
}

/// A configuration reload was refused.
pub(crate) fn config_reload_failed() {
    metrics::counter!(name::CONFIG_RELOAD_FAILURES).increment(1);
}

/// Housekeeping the exporter needs now and then (draining histogram samples between
/// scrapes); the sweeper calls it each pass. Nothing to do without a recorder.
pub(crate) fn upkeep() {
    if let Some(handle) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// `GET /metrics` for the hub's router: the store's pool is read at each scrape, and
/// `partners` are the configured partners' ids, `loaded_at` when the configuration in force
/// was loaded.
pub(crate) fn router(
    store: SharedStore,
    partners: impl IntoIterator<Item = String>,
    loaded_at: chrono::DateTime<chrono::Utc>,
) -> Router {
    let handle = install();
    // Each partner's alerting counters exist from the start at 0, so that the first burst
    // of refusals is an increase Prometheus can see (a series born at its first increment
    // has no earlier sample to compare with).
    for partner in partners {
        metrics::counter!(name::PARTNER_CREDENTIALS_REFUSED, "partner" => partner).increment(0);
    }
    // The configuration in force was loaded now; a failed reload is an increase from 0.
    metrics::counter!(name::CONFIG_RELOAD_FAILURES).increment(0);
    metrics::gauge!(name::CONFIG_LAST_RELOAD).set(loaded_at.timestamp() as f64);
    Router::new()
        .route("/metrics", get(scrape))
        .with_state((store, handle))
}

async fn scrape(State((store, handle)): State<(SharedStore, PrometheusHandle)>) -> Response {
    record_pool(store.pool_stats());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        handle.render(),
    )
        .into_response()
}

fn record_pool(stats: PoolStats) {
    let in_use = stats.size.saturating_sub(stats.idle);
    metrics::gauge!(name::DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(stats.idle));
    metrics::gauge!(name::DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(in_use));
    metrics::gauge!(name::DB_POOL_MAX).set(f64::from(stats.max));
}

/// Layer: counts and times every request by the route it matched. Routes outside the
/// interface share `other`; requests that matched no route are `unmatched`. A tower layer
/// with its own future rather than `axum::middleware::from_fn`, which boxes a future and a
/// clone of the inner service per request: a held `pay` keeps those for its whole hold.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TrackRequestsLayer;

impl<S> Layer<S> for TrackRequestsLayer {
    type Service = TrackRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackRequests { inner }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct TrackRequests<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for TrackRequests<S>
where
    S: Service<http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackedRequest<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let operation = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", |p| operation_of(p.as_str()));
        TrackedRequest {
            inner: self.inner.call(request),
            operation,
            started: Instant::now(),
        }
    }
}

pin_project! {
    /// A request on its way through [`TrackRequests`].
    pub struct TrackedRequest<F> {
        #[pin]
        inner: F,
        operation: &'static str,
        started: Instant,
    }
}

impl<F, E> Future for TrackedRequest<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let operation = *this.operation;
            let status = status_label(response.status());
            metrics::counter!(name::REQUESTS, "operation" => operation, "status" => status)
                .increment(1);
            metrics::histogram!(name::REQUEST_DURATION, "operation" => operation)
                .record(this.started.elapsed());
        }
        Poll::Ready(result)
    }
}

/// The interface operation a matched route serves (either spelling, with or without the
/// trailing slash); `other` for the rest.
fn operation_of(route: &str) -> &'static str {
    Operation::from_path(route).map_or("other", Operation::name)
}

/// The status code as a label without building a string for the codes the hub answers.
fn status_label(status: StatusCode) -> metrics::SharedString {
    let code: &'static str = match status.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        413 => "413",
        415 => "415",
        422 => "422",
        500 => "500",
        501 => "501",
        502 => "502",
        503 => "503",
        504 => "504",
        other => return metrics::SharedString::from(other.to_string()),
    };
    metrics::SharedString::const_str(code)
}

/// A scan claimed a waiting payment.
pub(crate) fn matched() {
    metrics::counter!(name::MATCHES).increment(1);
}

/// A payment's scan window closed with no scan (counted by whoever won the expiry).
pub(crate) fn scan_window_expired() {
    metrics::counter!(name::SCAN_WINDOW_EXPIRIES).increment(1);
}

/// A held pay's POS went away before a scan, and the hub ended the payment (counted by the
/// instance whose compare-and-set won).
pub(crate) fn pos_gone_before_scan() {
    metrics::counter!(name::POS_GONE).increment(1);
}

/// The hub is about to send `pay` for a payment claimed at `claimed_at`.
pub(crate) fn match_latency(claimed_at: DateTime<Utc>, now: DateTime<Utc>) {
    // Instances' clocks may disagree by a little: never a negative latency.
    let latency = (now - claimed_at).to_std().unwrap_or(Duration::ZERO);
    metrics::histogram!(name::MATCH_LATENCY).record(latency);
}

/// How a call to a partner ended, as the hub understood it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    Success,
    Failed,
    Unknown,
    NotSent,
}

impl CallOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
            Self::NotSent => "not_sent",
        }
    }
}

/// One call to a partner.
pub(crate) fn partner_call(
    partner: &str,
    operation: Operation,
    outcome: CallOutcome,
    took: Duration,
) {
    let partner = partner.to_owned();
    let operation = operation.name();
    metrics::counter!(
        name::PARTNER_CALLS,
        "partner" => partner.clone(),
        "operation" => operation,
        "outcome" => outcome.as_str()
    )
    .increment(1);
    metrics::histogram!(name::PARTNER_CALL_DURATION, "partner" => partner, "operation" => operation)
        .record(took);
}

/// One delivery try of an advice; `result` is `delivered`, `failed` or `retry`.
pub(crate) fn outbox_delivery(kind: crate::domain::AdviceKind, result: &'static str) {
    let kind = match kind {
        crate::domain::AdviceKind::Confirmation => "confirmation",
        crate::domain::AdviceKind::Reversal => "reversal",
    };
    metrics::counter!(name::OUTBOX_DELIVERIES, "kind" => kind, "result" => result).increment(1);
}

/// One sweep ended: its time when it succeeded, a count when it did not.
pub(crate) fn sweep_finished(succeeded_at: Option<DateTime<Utc>>) {
    match succeeded_at {
        // Seconds since 1970 fit an f64 exactly for the next few hundred million years.
        Some(at) => metrics::gauge!(name::SWEEP_LAST_SUCCESS).set(at.timestamp() as f64),
        None => metrics::counter!(name::SWEEP_FAILURES).increment(1),
    }
}

/// A partner answered 401 or 403 to one of the hub's calls.
pub(crate) fn partner_credentials_refused(partner: &str) {
    metrics::counter!(name::PARTNER_CREDENTIALS_REFUSED, "partner" => partner.to_owned())
        .increment(1);
}

/// The hub repaired an approval's body (`repair` is one of a few fixed kinds).
pub(crate) fn payment_response_repair(partner: &str, repair: &'static str) {
    metrics::counter!(name::PAYMENT_RESPONSE_REPAIRS, "partner" => partner.to_owned(), "repair" => repair)
        .increment(1);
}

pub(crate) fn outbox_dead_letters(count: u64) {
    metrics::counter!(name::OUTBOX_DEAD_LETTERS).increment(count);
}

/// The outbox as the sweeper last saw it.
pub(crate) fn outbox_stats(stats: &OutboxStats, now: DateTime<Utc>) {
    // i64 → f64 loses nothing below 2^53 rows.
    metrics::gauge!(name::OUTBOX_DEPTH).set(stats.pending as f64);
    metrics::gauge!(name::OUTBOX_REFUSED).set(stats.refused as f64);
    metrics::gauge!(name::OUTBOX_DEAD).set(stats.dead as f64);
    let age = stats
        .oldest_created_at
        .and_then(|t| (now - t).to_std().ok())
        .unwrap_or(Duration::ZERO);
    metrics::gauge!(name::OUTBOX_OLDEST_AGE).set(age.as_secs_f64());
}

/// The approvals nobody advised, as the sweep found them.
pub(crate) fn unadvised_stats(stats: &crate::store::UnadvisedStats, now: DateTime<Utc>) {
    metrics::gauge!(name::UNADVISED_APPROVALS).set(stats.count as f64);
    let age = stats
        .oldest_approved_at
        .and_then(|t| (now - t).to_std().ok())
        .unwrap_or(Duration::ZERO);
    metrics::gauge!(name::UNADVISED_OLDEST_AGE).set(age.as_secs_f64());
}

/// The hub reversed an approval nobody advised (counted by the instance whose change won).
pub(crate) fn unadvised_reversed() {
    metrics::counter!(name::UNADVISED_REVERSALS).increment(1);
}

/// Counts a held `pay` for as long as it lives: dropped on every way out of the hold,
/// including the POS hanging up (the handler's future is dropped).
#[must_use = "the pay counts as held only while the guard lives"]
pub(crate) struct HeldPay(());

impl HeldPay {
    pub(crate) fn start() -> Self {
        metrics::gauge!(name::HELD_PAY_REQUESTS).increment(1.0);
        Self(())
    }
}

impl Drop for HeldPay {
    fn drop(&mut self) {
        metrics::gauge!(name::HELD_PAY_REQUESTS).decrement(1.0);
    }
}

/// A retention batch deleted `rows` rows of `table`.
pub(crate) fn retention_purged(table: &'static str, rows: u64) {
    metrics::counter!(name::RETENTION_PURGED, "table" => table).increment(rows);
}

/// One retention pass ended: its time when it succeeded, a count when it did not.
pub(crate) fn retention_finished(succeeded_at: Option<DateTime<Utc>>) {
    match succeeded_at {
        Some(at) => metrics::gauge!(name::RETENTION_LAST_SUCCESS).set(at.timestamp() as f64),
        None => metrics::counter!(name::RETENTION_FAILURES).increment(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_operations_with_or_without_the_slash() {
        assert_eq!(operation_of("/qr/v1/qrCodes"), "createQrCode");
        assert_eq!(operation_of("/qr/v1/payments"), "pay");
        assert_eq!(operation_of("/qr/v1/payments/"), "pay");
        assert_eq!(operation_of("/qr/v1/scans/"), "notifyScan");
        assert_eq!(
            operation_of("/qr/v1/payments/confirmations"),
            "confirmPayment"
        );
        assert_eq!(operation_of("/qr/v1/payments/reversals/"), "reversePayment");
        assert_eq!(operation_of("/qr/v1/qrCodes/{tran_id}/image"), "other");
        assert_eq!(operation_of("/health/ready"), "other");
        assert_eq!(operation_of("/metrics"), "other");
    }

    #[test]
    fn status_labels_are_the_numeric_code() {
        assert_eq!(&*status_label(StatusCode::CREATED), "201");
        assert_eq!(&*status_label(StatusCode::GATEWAY_TIMEOUT), "504");
        assert_eq!(&*status_label(StatusCode::IM_A_TEAPOT), "418");
    }
}
