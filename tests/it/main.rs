//! The integration tests, as one test binary: each module is one concern (one former
//! `tests/*.rs`), and `common` holds the helpers they share (hubs, databases, partners,
//! processes, logs), compiled once. `cargo test --locked` runs them all; one module alone:
//! `cargo test --test it -- lifecycle::`.

#[macro_use]
mod common;

mod abuse;
mod access;
mod admin;
mod api;
mod architecture;
mod chaos;
mod connections;
mod console;
mod crash;
mod instances;
mod lifecycle;
mod loadgen;
mod openapi;
mod operations;
mod partner_health;
mod partners;
mod pos_away;
mod properties;
mod published;
mod reload;
mod retention;
mod secrets;
mod simulator;
mod sqlite_durability;
mod store_conformance;
mod tls;
mod unadvised;
