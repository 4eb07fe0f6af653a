//! JSON arrays and JSON Lines: any bytes either read row by row or stop with
//! a file error, never panic.
#![no_main]

use std::io::Cursor;

use batchgrpc_core::events::{JobSpec, Pipeline};
use batchgrpc_core::formats::{open, Format, ReadLimits, Resume};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ReadLimits {
        max_field_bytes: 64,
        max_row_bytes: 256,
        max_depth: 4,
    };
    for format in [Format::Json, Format::Jsonl] {
        let Ok(source) = open(
            format,
            Cursor::new(data.to_vec()),
            limits,
            Resume::default(),
        ) else {
            continue;
        };
        let spec = JobSpec {
            job_id: "fuzz".into(),
            event_name: "e".into(),
            ..JobSpec::default()
        };
        let Ok(mut pipeline) = Pipeline::new(source, spec, false, 0, 0) else {
            continue;
        };
        while let Ok(chunk) = pipeline.next_chunk(7) {
            let _ = chunk.to_events();
            if chunk.done {
                break;
            }
        }
    }
});
