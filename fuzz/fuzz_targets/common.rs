//! What the reader targets share: read every row of `data` as `format`
//! through the whole pipeline, checking each event's data is a JSON object.

use std::io::Cursor;

use batchgrpc_core::events::{JobSpec, Pipeline};
use batchgrpc_core::formats::{open, Format, ReadLimits, Resume};

pub fn read_all(format: Format, data: &[u8]) {
    // Small caps, so the fuzzer reaches the oversized-field paths quickly.
    let limits = ReadLimits {
        max_field_bytes: 64,
        max_row_bytes: 256,
        max_fields: 8,
        max_depth: 4,
    };
    let Ok(source) = open(
        format,
        Cursor::new(data.to_vec()),
        limits,
        Resume::default(),
    ) else {
        return;
    };
    let spec = JobSpec {
        job_id: "fuzz".into(),
        default_event_name: "e".into(),
        ..JobSpec::default()
    };
    let fixed = matches!(format, Format::Csv | Format::Psv);
    let Ok(mut pipeline) = Pipeline::new(source, spec, fixed, 0, 0) else {
        return;
    };
    while let Ok(chunk) = pipeline.next_chunk(7) {
        for event in chunk.to_events() {
            assert!(event.data.first() == Some(&b'{') && event.data.last() == Some(&b'}'));
            assert!(std::str::from_utf8(&event.data).is_ok());
        }
        if chunk.done {
            break;
        }
    }
}
