//! Tracking-batch checks: any bytes decode, check and normalize, or are refused
//! with an error; never a panic, never a stack overflow, and no error echoes
//! more than 256 characters of a client's name.
#![no_main]

#[path = "track_common.rs"]
mod track_common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = batchgrpc_core::track::prepare_batch(data, 1_795_000_000.0) {
        assert!(!batch.commands.is_empty() && batch.commands.len() <= 50);
        track_common::check(&batch.commands);
    }
});
