//! CSV and PSV: any bytes either read row by row or stop with a file error,
//! never panic; every row's cells come from valid UTF-8.
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
    for format in [Format::Csv, Format::Psv] {
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
            default_event_name: "e".into(),
            ..JobSpec::default()
        };
        let Ok(mut pipeline) = Pipeline::new(source, spec, true, 0, 0) else {
            continue;
        };
        while let Ok(chunk) = pipeline.next_chunk(7) {
            for event in chunk.to_events() {
                assert!(serde_json_is_object(&event.data));
            }
            if chunk.done {
                break;
            }
        }
    }
});

fn serde_json_is_object(data: &[u8]) -> bool {
    data.first() == Some(&b'{') && data.last() == Some(&b'}') && std::str::from_utf8(data).is_ok()
}
