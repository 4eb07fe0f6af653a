//! Tracking-batch checks: any bytes decode, check and normalize, or are refused
//! with an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(results) = batchgrpc_core::track::prepare_batch(data, 1_795_000_000.0) {
        assert!(!results.is_empty() && results.len() <= 50);
    }
});
