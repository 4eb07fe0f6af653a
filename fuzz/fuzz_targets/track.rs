//! Tracking-batch validation: any bytes decode and validate, or are refused
//! with an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(results) = batchgrpc_core::track::validate_batch(data, 1_795_000_000.0) {
        assert!(!results.is_empty() && results.len() <= 50);
    }
});
