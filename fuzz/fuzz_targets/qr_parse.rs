//! Arbitrary bytes into the QR parser: no panic, and whatever parses keeps its invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(payload) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = qrhub::qr::parse(payload) {
        qrhub_fuzz::check_parsed(payload, &parsed);
    }
});
