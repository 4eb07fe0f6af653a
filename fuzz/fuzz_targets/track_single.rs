//! The single-command tracking requests (`UpdateCustomerProperties`,
//! `AddEvent`), decoded by the core from their own bytes: a command of one,
//! or an error; never a panic.
#![no_main]

#[path = "track_common.rs"]
mod track_common;

use batchgrpc_core::track::{prepare_single, Single};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for kind in [Single::Customers, Single::Event] {
        if let Ok(batch) = prepare_single(kind, data, 1_795_000_000.0) {
            assert_eq!(batch.commands.len(), 1);
            assert_eq!(batch.commands[0].name, kind.name());
            track_common::check(&batch.commands);
        }
    }
});
