//! The wire model of the Electrum QR Payment Service Interface v1.7.0, exactly as it travels.
//!
//! Names are camelCase, optional fields are omitted when absent (never `null`), unknown
//! fields are ignored on input, and times are RFC 3339 with milliseconds. Every incoming body
//! is checked against [`schema`] before it is deserialised into these types, so that a caller
//! gets every problem at once in Electrum's `FORMAT_ERROR` shape.

mod common;
mod error;
mod messages;
mod operation;
pub(crate) mod page;
pub(crate) mod pan;
pub(crate) mod repair;
pub mod schema;
pub(crate) mod text;
mod time;

pub use common::*;
pub use error::{ErrorDetail, ErrorType, FormatError};
pub use messages::*;
pub use operation::{Operation, UnknownOperation};
pub use time::Timestamp;
