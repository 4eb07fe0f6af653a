//! Bulk-create validation: any bytes decode and validate, or are refused
//! with an error; never a panic, never a stack overflow (nesting is read to
//! a fixed depth), and no violation echoes more than 256 characters of the
//! client in its pointer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(validation) = batchgrpc_core::bulk::validate_bulk(data, 1_795_000_000.0) {
        for v in &validation.violations {
            // The document's own part (at most ~130 characters) plus 256.
            assert!(v.pointer.chars().count() <= 400, "{}", v.pointer);
            assert!(v.message.chars().count() <= 600, "{}", v.message);
        }
    }
});
