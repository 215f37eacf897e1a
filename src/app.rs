//! Wiring: the store, the hub, the router with its layers, the background workers, and a
//! graceful shutdown that lets held requests and forwarding finish.

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::{Layer, ServiceBuilder};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::api::{self, AppState};
use crate::clock::SharedClock;
use crate::config::{redact_url, ServerSettings, Settings};
use crate::credentials::{Credentials, VerifyLimits};
use crate::partner::PartnerClient;
use crate::service::outbox::OutboxWorker;
use crate::service::Hub;
use crate::store;
use crate::tls::{OpeningProtocol, ReloadableServerConfig, TlsListener};

mod files;
mod idle;

/// How often the sweeper looks for expired waits and half-finished payments.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

pub struct App {
    listener: TcpListener,
    router: Router,
    /// `/metrics` and the health checks on a listener of their own
    /// (`server.operations_listen`).
    operations: Option<(TcpListener, Router)>,
    hub: Arc<Hub>,
    /// The listener's TLS configuration when `[server.tls]` is set (reloaded on SIGHUP).
    tls: Option<Arc<ReloadableServerConfig>>,
    /// The callers' credentials, replaced by a configuration reload.
    credentials: Credentials,
    /// The file the configuration was loaded from, re-read on SIGHUP; `None` (a hub built
    /// from a text, as tests do) reloads only the certificate.
    config_path: Option<std::path::PathBuf>,
    /// Held while serving a SQLite database, so that a second instance refuses to start.
    _instance_lock: Option<std::fs::File>,
}

impl App {
    /// Connects and migrates the store, binds the listener (port 0 picks a free one).
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        // Before anything is opened: a demo configuration never answers beyond loopback.
        let settings = tokio::task::spawn_blocking(move || {
            crate::published::check_listen(&settings).map(|()| settings)
        })
        .await
        .context("the published-password check did not finish")??;
        let settings = Arc::new(settings);
        let tls = match &settings.server.tls {
            Some(section) => Some(Arc::new(
                ReloadableServerConfig::load(section.clone())
                    .context("cannot set up TLS on the listener")?,
            )),
            None => None,
        };
        let store = store::connect(&settings.database.url, settings.database.max_connections)
            .await
            .context("cannot open the database")?;
        store
            .migrate()
            .await
            .context("cannot migrate the database")?;
        let instance_lock = lock_single_instance(&settings.database.url)?;
        let partners = PartnerClient::new(&settings.partners)
            .context("cannot build the partner HTTP client")?;
        let hub = Hub::new(Arc::clone(&settings), store, clock, partners);
        let accounts = crate::reload::Accounts::of(&settings);
        let credentials = Credentials::with_limits(
            &accounts.clients,
            &accounts.partners,
            &accounts.operators,
            verify_limits(&settings.auth),
        );
        let state = AppState {
            hub: Arc::clone(&hub),
            credentials: credentials.clone(),
            limits: api::RateLimits::new(&settings.rate_limit),
            logins: api::LoginThrottle::new(settings.auth.failed_logins_per_minute),
        };
        let router = api::router(state).merge(crate::console::router());
        let mut ops = api::operations_router(Arc::clone(&hub));
        if settings.server.metrics_enabled {
            let partners = settings.partners.iter().map(|p| p.id.clone());
            ops = ops.merge(crate::metrics::router(
                Arc::clone(&hub.store),
                partners,
                hub.clock.now(),
            ));
        }
        files::raise_limit(settings.server.max_connections);
        if settings.server.metrics_enabled
            && settings.server.operations_listen.is_none()
            && !crate::published::is_loopback(&settings.server.listen)
        {
            // Not refused (a private network may be what `listen` is on), but said.
            tracing::warn!(
                listen = %settings.server.listen,
                "/metrics and /health/* are served without authentication on the payment \
                 listener: set server.operations_listen to an address of the monitoring \
                 network, or server.metrics_enabled = false"
            );
        }
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        let (router, operations) = match settings.server.operations_listen {
            Some(addr) => {
                let ops_listener = TcpListener::bind(addr).await.with_context(|| {
                    format!("cannot listen on {addr} (server.operations_listen)")
                })?;
                (
                    with_layers(router, &settings),
                    Some((ops_listener, with_layers(ops, &settings))),
                )
            }
            None => (with_layers(router.merge(ops), &settings), None),
        };
        Ok(Self {
            listener,
            router,
            operations,
            hub,
            tls,
            credentials,
            config_path: None,
            _instance_lock: instance_lock,
        })
    }

    /// Re-reads `path` (with the same environment overrides as at start) on SIGHUP.
    pub fn reload_from(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }

    /// What a SIGHUP does, for callers that run the hub in-process.
    pub fn reloader(&self) -> crate::reload::Reloader {
        crate::reload::Reloader {
            hub: Arc::clone(&self.hub),
            credentials: self.credentials.clone(),
            config_path: self.config_path.clone(),
            tls: self.tls.clone(),
        }
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The operations listener's address, when `server.operations_listen` is set.
    pub fn operations_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        Ok(match &self.operations {
            Some((listener, _)) => Some(listener.local_addr()?),
            None => None,
        })
    }

    /// `https` when the listener speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn hub(&self) -> Arc<Hub> {
        Arc::clone(&self.hub)
    }

    /// Serves until `shutdown` is cancelled, then stops taking requests, lets held ones
    /// finish (up to `server.shutdown_grace`), and stops the workers.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let hub = self.hub;
        let workers = CancellationToken::new();
        let outbox = tokio::spawn(OutboxWorker::new(Arc::clone(&hub)).run(workers.clone()));
        let sweeper = tokio::spawn(Arc::clone(&hub).run_sweeper(SWEEP_INTERVAL, workers.clone()));
        let relay = tokio::spawn(Arc::clone(&hub).relay_announcements(workers.clone()));
        let events = tokio::spawn(Arc::clone(&hub).run_event_writer(workers.clone()));
        let deliveries = tokio::spawn(Arc::clone(&hub).run_delivery_recorder(workers.clone()));
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, tls = self.tls.is_some(), database = %redact_url(&hub.settings().database.url), "qrhub serving");

        // Restart-only settings (listeners, pools, timeouts): a reload never changes these.
        let settings = hub.settings();
        let grace = settings.server.shutdown_grace;
        #[cfg(unix)]
        {
            // Registered here, before serving, so that SIGHUP never meets the default action
            // (termination) once the hub answers. One handler reloads the certificate and
            // the configuration file.
            let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .context("cannot listen for SIGHUP (certificate and configuration reload)")?;
            tokio::spawn(crate::reload::on_hangup(
                crate::reload::Reloader {
                    hub: Arc::clone(&hub),
                    credentials: self.credentials.clone(),
                    config_path: self.config_path.clone(),
                    tls: self.tls.clone(),
                },
                hangup,
                workers.clone(),
            ));
        }
        let operations = self.operations.map(|(listener, router)| {
            let settings = Arc::clone(&settings);
            let shutdown = shutdown.clone();
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "operations endpoints (/metrics, /health) serving");
            }
            tokio::spawn(async move { serve(listener, router, &settings.server, &shutdown).await })
        });
        let served = match self.tls {
            Some(tls) => {
                let listener = TlsListener::with_handshake_timeout(
                    self.listener,
                    tls,
                    settings.server.tls_handshake_timeout,
                )?;
                serve(listener, self.router, &settings.server, &shutdown).await
            }
            None => serve(self.listener, self.router, &settings.server, &shutdown).await,
        };
        served?;
        if let Some(operations) = operations {
            operations
                .await
                .context("the operations listener's task failed")??;
        }
        hub.tasks.close();
        if tokio::time::timeout(grace, hub.tasks.wait()).await.is_err() {
            tracing::warn!("forwarding tasks still running at shutdown; recovery will settle them");
        }
        workers.cancel();
        let _ = tokio::join!(outbox, sweeper, relay, events, deliveries);
        tracing::info!("qrhub stopped");
        Ok(())
    }
}

/// The most an HTTP/1 connection buffers: its read buffer, and the response it queues before
/// flushing. hyper's default (about 400 KiB) lets a read buffer that started at 8 KiB double
/// to 16 KiB on a kept-alive connection, and a held `pay` keeps that buffer for its whole
/// hold. 8 KiB is the smallest hyper accepts; it still leaves room for any request head this
/// interface sends (a head larger than this is refused, as most servers refuse one), and
/// bodies are read through it in pieces, so the body limit is unchanged.
const HTTP1_MAX_BUF: usize = 8 * 1024;

/// How often an HTTP/2 connection is pinged, and how long its answer may take before the
/// connection is dropped as gone.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(20);
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest HTTP/2 request head (decoded), in line with HTTP/1's 8 KiB buffer.
const HTTP2_MAX_HEADER_LIST: u32 = 16 * 1024;
/// Requests one HTTP/2 connection may have in flight: a lane's POS holds one `pay` at a time,
/// a gateway multiplexing lanes a few dozen; more is one peer taking a share meant for many.
const HTTP2_MAX_STREAMS: u32 = 256;

/// Serves a connection that may speak HTTP/2 (by ALPN or by its preface) until the peer
/// closes it, the hub stops, or no request has been in flight for `idle_timeout`; the last
/// two close it gracefully (GOAWAY, requests in flight finish). `watcher` keeps the hub's
/// shutdown waiting for it.
async fn serve_http2<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    idle_timeout: Duration,
    watcher: hyper_util::server::graceful::Watcher,
    stopping: &CancellationToken,
) -> anyhow::Result<()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<hyper::body::Incoming>, Response = axum::response::Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: std::error::Error + Send + Sync + 'static,
{
    let _watched = watcher;
    let activity = idle::Activity::new();
    let service = TowerToHyperService::new(idle::Tracked::new(service, Arc::clone(&activity)));
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => return served.map_err(|e| anyhow::anyhow!(e)),
            _ = stopping.cancelled(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = idle::idle_for(&activity, idle_timeout), if !closing => {
                tracing::debug!("HTTP/2 connection closed: idle");
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets requests in flight finish for up
/// to `server.shutdown_grace`. Each connection is bounded: at most `server.max_connections`
/// open (one more is closed as soon as it is accepted), its first bytes within
/// `server.first_bytes_timeout`, each request head (and so each idle wait between requests)
/// within `server.header_read_timeout`. Connections are served here rather than by `axum::serve`, which neither lets
/// the HTTP/1 buffer size be set, nor avoids re-preparing the router for each connection, nor
/// serves an HTTP/1 connection without the HTTP/2 machinery beside it.
async fn serve<L>(
    mut listener: L,
    router: Router,
    server: &ServerSettings,
    shutdown: &CancellationToken,
) -> anyhow::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: OpeningProtocol,
{
    // Made ready (`with_state`) once: every connection gets a clone of this one router, a
    // reference count, where `axum::serve` would have given each its own copy of the route
    // tables (about 20 KiB, kept for as long as the connection lives, for a held `pay` its
    // whole hold).
    let router = router.with_state::<()>(());
    let grace = server.shutdown_grace;
    // hyper's header-read timer runs only with a timer set. It starts when the connection
    // waits for a request head, so it also closes a kept-alive connection left idle.
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .max_buf_size(HTTP1_MAX_BUF)
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout);
    let mut either = auto::Builder::new(TokioExecutor::new());
    either
        .http1()
        .max_buf_size(HTTP1_MAX_BUF)
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout);
    // HTTP/2: pings find a peer that is gone without a word (a POS whose lane lost power
    // would otherwise keep its held pay, and its slot, to the end); the idle timer below
    // closes a live one that has no request in flight.
    either
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HTTP2_PING_INTERVAL))
        .keep_alive_timeout(HTTP2_PING_TIMEOUT)
        .max_header_list_size(HTTP2_MAX_HEADER_LIST)
        .max_concurrent_streams(HTTP2_MAX_STREAMS);
    let idle_timeout = server.header_read_timeout;
    let first_bytes_timeout = server.first_bytes_timeout;
    let open = Arc::new(tokio::sync::Semaphore::new(server.max_connections));
    let builders = Arc::new((http1, either));
    let graceful = GracefulShutdown::new();
    loop {
        let (io, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        // Over the cap: closed at once (accepted first, so that it is not left waiting in
        // the kernel's backlog for a slot it would hold up).
        let Ok(slot) = Arc::clone(&open).try_acquire_owned() else {
            metrics::counter!(crate::metrics::name::CONNECTIONS_REFUSED).increment(1);
            tracing::debug!(?peer, "connection refused: server.max_connections are open");
            drop(io);
            continue;
        };
        // The peer's address rides on every request of the connection (the failed-login
        // throttle keys on it): a copy of 32 bytes, no allocation.
        let service = axum::Extension(api::ClientAddr(peer)).layer(router.clone());
        let watcher = graceful.watcher();
        let builders = Arc::clone(&builders);
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let (http1, either) = &*builders;
            // A connection that has sent nothing yet would hold up a shutdown (its watcher
            // is live): on shutdown it is closed unserved; so is one silent for too long.
            let speaks_http1 = tokio::select! {
                http1 = tokio::time::timeout(first_bytes_timeout, io.speaks_http1()) => match http1 {
                    Ok(http1) => http1,
                    Err(_) => {
                        tracing::debug!(?peer, "connection closed: no first bytes in time");
                        return;
                    }
                },
                _ = stopping.cancelled() => return,
            };
            let served = if speaks_http1 {
                watcher
                    .watch(
                        http1.serve_connection(TokioIo::new(io), TowerToHyperService::new(service)),
                    )
                    .await
                    .map_err(anyhow::Error::from)
            } else {
                // Boxed, so that this task is sized for the HTTP/1 connection above.
                Box::pin(serve_http2(
                    either,
                    io,
                    service,
                    idle_timeout,
                    watcher,
                    &stopping,
                ))
                .await
            };
            if let Err(e) = served {
                tracing::trace!(?peer, error = %e, "connection ended with an error");
            }
        });
    }
    // No new connections from here; the open ones finish what they hold, then close.
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(grace) => {
            tracing::warn!("shutdown grace ran out with requests still held");
        }
    }
    Ok(())
}

fn with_layers(router: Router, settings: &Settings) -> Router {
    let request_id = api::REQUEST_ID;
    // The held `pay` is answered by the hub itself at pay_deadline; this guard sits halfway
    // between that and the POS's own timeout.
    let timing = &settings.timing;
    let timeout = timing.pay_deadline + (timing.pos_timeout - timing.pay_deadline) / 2;
    router.layer(
        ServiceBuilder::new()
            // Before the id is set: a caller's id is kept only if it is a plain token.
            .layer(axum::middleware::from_fn(api::plain_request_id))
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|request: &Request<_>| {
                        let request_id = request
                            .headers()
                            .get(api::REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        tracing::info_span!(
                            "request",
                            method = %request.method(),
                            path = %request.uri().path(),
                            request_id = %request_id,
                        )
                    })
                    // A 5xx is logged once, where it is made and with its cause (ApiError,
                    // the request timeout), not a second time here without one.
                    .on_failure(()),
            )
            .layer(PropagateRequestIdLayer::new(request_id))
            // Outside the timeout, so that a request it cuts short is counted with its 504.
            .option_layer(
                settings
                    .server
                    .metrics_enabled
                    .then_some(crate::metrics::TrackRequestsLayer),
            )
            .layer(api::RequestTimeoutLayer::new(timeout))
            .layer(DefaultBodyLimit::max(settings.server.body_limit_bytes)),
    )
}

/// `[auth]`'s slots for argon2, one per two cores unless set.
fn verify_limits(auth: &crate::config::AuthSettings) -> VerifyLimits {
    let default = VerifyLimits::default();
    VerifyLimits {
        slots: match auth.verify_concurrency {
            0 => default.slots,
            n => n,
        },
        queue: auth.verify_queue,
    }
}

/// SQLite serves one hub instance (its waits and wake-ups live in one process): a second
/// `serve` on the same file stops at start-up and says why, rather than running half-blind.
fn lock_single_instance(url: &str) -> anyhow::Result<Option<std::fs::File>> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Ok(None);
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.starts_with(':') {
        return Ok(None); // in memory: nobody else can open it
    }
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open the instance lock {lock_path}"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another qrhub instance is already serving {path}: SQLite supports one instance; \
             use PostgreSQL (database.url = \"postgres://...\") to run several"
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {lock_path}"))
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested");
}
