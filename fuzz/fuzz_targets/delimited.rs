//! CSV and PSV: any bytes either read row by row or stop with a file error,
//! never panic.
#![no_main]

#[path = "common.rs"]
mod common;

use batchgrpc_core::formats::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::read_all(Format::Csv, data);
    common::read_all(Format::Psv, data);
});
