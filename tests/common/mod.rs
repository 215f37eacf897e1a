//! Helpers shared by the integration tests. Each test file uses only some of them.
#![allow(dead_code)]

pub mod db;
