//! TLS on the hub's listener (rustls with the ring provider), and the PEM loading shared with
//! the partner client.
//!
//! The listener is an [`axum::serve::Listener`]: TCP connections are accepted on a task of
//! their own, each handshake runs on its own task (a slow or silent client holds up nobody),
//! and only finished handshakes reach the hub's connection loop (`app.rs`), so graceful
//! shutdown works exactly as over plain TCP. The rustls configuration is held behind a lock and rebuilt from the files
//! on [`ReloadableServerConfig::reload`] (SIGHUP): new connections get the new certificate,
//! connections already made keep theirs, and a reload that fails keeps the old one.

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerTlsSettings;

/// Finished handshakes waiting for the connection loop to take them.
const ACCEPT_QUEUE: usize = 128;

/// The ring provider, named explicitly so that no process-wide default is needed.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in the PEM file at `path`; `key` names the configuration key in errors.
pub(crate) fn load_certs(key: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("configuration key `{key}`: cannot read {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow::anyhow!(
                "configuration key `{key}`: {} is not a PEM certificate file: {e}",
                path.display()
            )
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "configuration key `{key}`: {} holds no PEM certificate",
        path.display()
    );
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in the PEM file at `path`.
pub(crate) fn load_key(key: &str, path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("configuration key `{key}`: cannot read {}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        anyhow::anyhow!(
            "configuration key `{key}`: {} holds no usable PEM private key: {e}",
            path.display()
        )
    })
}

/// A root store of the certificates in the PEM bundle at `path`.
pub(crate) fn load_roots(key: &str, path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(key, path)? {
        roots.add(cert).map_err(|e| {
            anyhow::anyhow!(
                "configuration key `{key}`: a certificate in {} is not a usable CA: {e}",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

/// Checks that `key` is the private key of the first certificate of `certs`.
pub(crate) fn check_key_pair(
    cert_key: &str,
    certs: &[CertificateDer<'static>],
    private_key: &PrivateKeyDer<'static>,
) -> anyhow::Result<()> {
    rustls::sign::CertifiedKey::from_der(certs.to_vec(), private_key.clone_key(), &provider())
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("configuration key `{cert_key}`: does not match its key: {e}"))
}

/// The listener's rustls configuration, from the files `settings` names.
pub(crate) fn server_config(settings: &ServerTlsSettings) -> anyhow::Result<ServerConfig> {
    let certs = load_certs("server.tls.cert_path", &settings.cert_path)?;
    let key = load_key("server.tls.key_path", &settings.key_path)?;
    check_key_pair("server.tls.cert_path", &certs, &key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("the ring provider supports no TLS version")?;
    let builder = match &settings.client_ca_path {
        Some(path) => {
            let roots = load_roots("server.tls.client_ca_path", path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .context("configuration key `server.tls.client_ca_path`: unusable")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .context("configuration key `server.tls.cert_path`: unusable with its key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The configuration new connections are accepted with; [`reload`](Self::reload) swaps it.
#[derive(Debug)]
pub struct ReloadableServerConfig {
    settings: ServerTlsSettings,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadableServerConfig {
    /// Loads the files now: a problem stops start-up.
    pub fn load(settings: ServerTlsSettings) -> anyhow::Result<Self> {
        let config = server_config(&settings)?;
        Ok(Self {
            settings,
            current: RwLock::new(Arc::new(config)),
        })
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        let guard = self.current.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard)
    }

    /// The certificate file, for logs.
    pub fn cert_path(&self) -> &Path {
        &self.settings.cert_path
    }

    /// Re-reads the files; on any problem the configuration in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = Arc::new(server_config(&self.settings)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }
}

/// A TCP listener whose connections come out of a finished TLS handshake.
pub(crate) struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// A listener dropping a client whose handshake takes longer than `timeout`.
    pub(crate) fn with_handshake_timeout(
        tcp: TcpListener,
        config: Arc<ReloadableServerConfig>,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let local_addr = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = tokio::spawn(accept_loop(tcp, config, tx, timeout));
        Ok(Self {
            local_addr,
            ready,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Closes the listening socket; handshakes in flight end with nobody to hand to.
        self.acceptor.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    config: Arc<ReloadableServerConfig>,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    handshake_timeout: Duration,
) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = ready.closed() => return,
            accepted = tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // As axum does: per-connection errors are the client's; others (too many
                    // open files) get a pause so the loop does not spin.
                    if !is_connection_error(&e) {
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = TlsAcceptor::from(config.current());
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// What a connection's opening says about the HTTP version it speaks. Most connections (every
/// POS and partner seen so far) speak HTTP/1.1, and are served by hyper's HTTP/1 connection
/// alone; the rest go to hyper-util's `auto` connection, which reads the HTTP/2 preface and
/// serves either. Being sure matters for memory: the `auto` connection carries both
/// protocols' state and configuration (about 3.4 KiB against 0.6 KiB), for as long as a held
/// `pay` keeps its connection open.
pub(crate) trait OpeningProtocol {
    /// True when the connection will certainly speak HTTP/1.x. Waits for its first bytes at
    /// most, never consumes them.
    fn speaks_http1(&self) -> impl std::future::Future<Output = bool> + Send;
}

/// The connection preface every HTTP/2 client sends first (RFC 9113, section 3.4).
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl OpeningProtocol for TcpStream {
    /// Plain TCP: HTTP/1 unless the first bytes could be the start of the HTTP/2 preface
    /// (`PRI ` against `POST`, `PUT`, `PATCH`). A peek, so hyper still reads everything.
    async fn speaks_http1(&self) -> bool {
        let mut opening = [0u8; 4];
        match self.peek(&mut opening).await {
            Ok(n) if n > 0 => !HTTP2_PREFACE.starts_with(&opening[..n]),
            _ => false,
        }
    }
}

impl OpeningProtocol for TlsStream<TcpStream> {
    /// TLS: HTTP/1 when the handshake agreed on `http/1.1` by ALPN (offered `h2` first).
    async fn speaks_http1(&self) -> bool {
        self.get_ref().1.alpn_protocol() == Some(b"http/1.1")
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task only ends when this listener is dropped (or panicked):
            // nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
