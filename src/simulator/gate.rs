//! The plain-HTTP listener, which can refuse connections for an outage.
//!
//! A partner that is down refuses connections: the caller learns that nothing was sent,
//! which for a `pay` is a different outcome (failed, nothing to reverse) from a connection
//! lost after sending (unknown, reverse). Accepting and closing at once cannot show that, so
//! during a refusing outage the listening socket itself is closed, and bound again on the
//! same address when the outage ends.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::behaviour::OutageAnswer;
use super::state::ActiveOutage;

/// How long to wait before trying again to bind the address after an outage (another
/// process may hold it for a moment).
const REBIND_PAUSE: Duration = Duration::from_millis(50);

pub(crate) struct GatedListener {
    addr: SocketAddr,
    tcp: Option<TcpListener>,
    outage: watch::Receiver<Option<ActiveOutage>>,
}

impl GatedListener {
    pub(crate) fn new(
        tcp: TcpListener,
        outage: watch::Receiver<Option<ActiveOutage>>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            addr: tcp.local_addr()?,
            tcp: Some(tcp),
            outage,
        })
    }

    /// When the refusing outage under way ends; `None` when connections are welcome.
    fn refusing_until(&self) -> Option<tokio::time::Instant> {
        self.outage
            .borrow()
            .as_ref()
            .filter(|o| o.is_on() && o.answer == OutageAnswer::Refuse)
            .map(|o| o.until)
    }
}

impl axum::serve::Listener for GatedListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if let Some(until) = self.refusing_until() {
                // Dropping the socket makes the kernel refuse new connections.
                self.tcp = None;
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    _ = self.outage.changed() => {}
                }
                continue;
            }
            let Some(tcp) = &self.tcp else {
                match TcpListener::bind(self.addr).await {
                    Ok(tcp) => self.tcp = Some(tcp),
                    Err(e) => {
                        tracing::warn!(addr = %self.addr, error = %e, "simulator: binding again after an outage failed; retrying");
                        tokio::time::sleep(REBIND_PAUSE).await;
                    }
                }
                continue;
            };
            tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok(connection) => return connection,
                    Err(e) => {
                        // As axum's own listener: a failed accept is the client's problem,
                        // but a resource error (too many open files) must not spin.
                        tracing::debug!(error = %e, "simulator: accept failed");
                        tokio::time::sleep(REBIND_PAUSE).await;
                    }
                },
                changed = self.outage.changed() => {
                    if changed.is_err() {
                        // The simulator is gone; nothing will change any more.
                        std::future::pending::<()>().await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
