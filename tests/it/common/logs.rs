//! Captures everything the process logs through `tracing`, for tests that inspect the logs.
//!
//! The hub installs its subscriber with `telemetry::init`, which keeps one that is already
//! set; a test binary that calls [`capture`] first therefore sees every line the hub (and the
//! in-process partner simulator) writes, in the production JSON form and the pretty form.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// The captured bytes, shared by every writer the subscriber makes.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

pub struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(Arc::clone(&self.0))
    }
}

static LOGS: OnceLock<Logs> = OnceLock::new();

/// Installs the capturing global subscriber (once per test binary, at `filter`, e.g.
/// `"trace"`) and returns the buffer. Panics if another global subscriber came first, since
/// the test would then inspect nothing.
pub fn capture(filter: &str) -> Logs {
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        tracing_subscriber::registry()
            .with(EnvFilter::new(filter))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(logs.clone()),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(logs.clone()),
            )
            .try_init()
            .expect("no global subscriber was installed before the capture");
        logs
    })
    .clone()
}
