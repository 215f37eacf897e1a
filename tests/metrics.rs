//! `GET /metrics` after real flows, in a test binary of its own: the metrics recorder is one
//! per process, and these cases count exactly what their flows did, which no other test may
//! add to meanwhile (the other integration tests share one binary, `tests/it`, and would).

#[macro_use]
#[allow(dead_code)] // the helpers these cases do not use are the other binary's
#[path = "it/common/mod.rs"]
mod common;

#[path = "it/metrics.rs"]
mod metrics;
