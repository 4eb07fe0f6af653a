//! Bulk-create validation: any bytes decode and validate, or are refused
//! with an error; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = batchgrpc_core::bulk::validate_bulk(data, 1_795_000_000.0);
});
