//! QR payment payloads: encoders, a parser, the CRC and images.
//!
//! # The format (EMVCo merchant-presented mode, `spec/emv-qr-notes.md` §3)
//! A payload is a string of data objects, each a 2-digit id, a 2-digit length (`01`–`99`,
//! counting **characters**, not bytes) and the value. Templates (26–51 merchant account
//! information, 62 additional data, 64 language, 80–99 unreserved) nest the same format in
//! their value. The payload starts with `000201`; in the EMVCo schemes it ends with
//! `6304` + a CRC-16/CCITT-FALSE computed over everything before it, `6304` included.
//!
//! # Schemes (DESIGN §4), chosen by `QrProperties.scheme`
//! - `ELECTRUM_MERCHANT_MINIMAL` (the default): `000201`, tag 26 {`00` provider id, `01`
//!   tranId}, partners' templates in 27–51. No CRC, as in Electrum's published example.
//! - `EMVCO_MERCHANT`: the full EMVCo payload (00, 01, 26–51, 52, 53, 54, 58, 59, 60, 61, 62,
//!   63); missing mandatory data is an [`EncodeError::Missing`].
//! - `PSEUDO_EMVCO_MERCHANT`: the same layout and CRC, leaving out mandatory tags it has no
//!   data for (Electrum's "not a fully EMVCo compliant string").
//!
//! [`parse()`] reads any of them back, checking lengths, the payload format indicator and the
//! CRC when present. [`svg()`] and [`png()`] draw the symbol.
//!
//! # Modules
//! - [`tlv`]: data objects, the writer, template ids.
//! - [`crc`](mod@crc): the tag 63 checksum.
//! - [`encode`](mod@encode): [`QrContent`] and the scheme encoders.
//! - [`parse`](mod@parse): [`ParsedQr`] and [`ParseError`].
//! - [`image`]: SVG and PNG.

pub(crate) mod crc;
pub(crate) mod encode;
mod encode_error;
pub(crate) mod image;
pub(crate) mod parse;
mod tag_path;
pub(crate) mod tlv;

pub use self::crc::{crc16, crc_hex};
pub use self::encode::{encode, MerchantInfo, QrContent, StaticTemplate, SubObject};
pub use self::encode_error::EncodeError;
pub use self::image::{png, svg, ImageError};
pub use self::parse::{parse, AccountTemplate, ParseError, ParsedQr};
pub use self::tag_path::TagPath;
pub use self::tlv::{is_template_id, DataObject};
