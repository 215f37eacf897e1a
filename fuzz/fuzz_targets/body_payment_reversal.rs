//! Bytes as a PaymentReversal body: JSON, schema check, `from_value`, and back (see `check_body`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use qrhub::model::{schema, PaymentReversal};

fuzz_target!(|data: &[u8]| {
    qrhub_fuzz::check_body::<PaymentReversal>(data, &schema::PAYMENT_REVERSAL);
});
