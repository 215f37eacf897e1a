//! Bytes as a CreateQrCodeRequest body: JSON, schema check, `from_value`, and back (see `check_body`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qrhub::model::{schema, CreateQrCodeRequest};

fuzz_target!(|data: &[u8]| {
    qrhub_fuzz::check_body::<CreateQrCodeRequest>(data, &schema::CREATE_QR_CODE_REQUEST);
});
