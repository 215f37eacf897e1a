//! Bytes as a ScanNotification body: JSON, schema check, `from_value`, and back (see `check_body`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qrhub::model::{schema, ScanNotification};

fuzz_target!(|data: &[u8]| {
    qrhub_fuzz::check_body::<ScanNotification>(data, &schema::SCAN_NOTIFICATION);
});
