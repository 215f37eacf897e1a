//! qrhub: a QR payment hub speaking the Electrum QR Payment Service Interface.
//!
//! # Layout
//! - `api`: axum handlers (one module per resource), Basic auth, ErrorDetail responses.
//! - [`service`]: the hub's work per operation: holding `pay`, matching scans, forwarding,
//!   advices, and their store-and-forward delivery (`service::outbox`). Handlers call it;
//!   it calls the store and the partner client.
//! - [`domain`]: the payment state machine and rules, pure.
//! - [`model`]: the wire types and the spec's constraints.
//! - [`qr`]: QR payload encoders, parser, CRC and images.
//! - [`store`]: persistence behind a few focused traits, on PostgreSQL and SQLite.
//! - [`partner`]: the outbound client to partners.
//! - The tools, behind the cargo feature `tools` (default) and never imported by the product:
//!   `simulator` (a partner simulator for newcomers, tests and load runs), `loadgen` (the
//!   load generator that drives hubs and checks the simulator's ledger), `chaos` (the
//!   fault-injection run and its invariant checker).
//! - `tls`: rustls on the listener (reloaded on SIGHUP) and PEM loading.
//! - `metrics`: Prometheus metrics and `GET /metrics`.
//! - `admin`: the back office behind `/admin/v1` (search, timelines, reports).
//! - `console`: the operators' web console at `/admin` (static page over `/admin/v1`).
//! - [`openapi`]: the OpenAPI document, generated from the code (`GET /openapi.json`).
//! - `published`: the project's demo passwords, kept off non-loopback listeners;
//!   `init_config` writes a configuration with fresh ones.
//! - [`config`], `telemetry`, [`app`] (wiring and shutdown), [`cli`].
//!
//! The layers, and the test that holds every import to them, are in DESIGN.md §8. What
//! the library exports (`pub mod` below) is what the binary and the integration tests use;
//! everything else is `pub(crate)`, and `unreachable_pub` keeps it so.
#![forbid(unsafe_code)]
// `pub(crate)` by default: a `pub` item the crate does not export is a warning (and CI
// denies warnings), so what tests and the binary may use is exactly what lib.rs exports.
#![warn(unreachable_pub)]

pub(crate) mod admin;
pub(crate) mod api;
pub mod app;
#[cfg(feature = "tools")]
pub(crate) mod chaos;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod console;
pub mod credentials;
pub mod domain;
pub(crate) mod init_config;
#[cfg(feature = "tools")]
pub mod loadgen;
pub(crate) mod metrics;
pub mod model;
pub mod openapi;
pub mod partner;
pub(crate) mod published;
pub mod qr;
pub(crate) mod reload;
pub mod service;
#[cfg(feature = "tools")]
pub mod simulator;
pub mod store;
pub(crate) mod telemetry;
pub(crate) mod tls;
