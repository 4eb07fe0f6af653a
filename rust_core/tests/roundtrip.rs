//! Property tests: any table written by the reference `csv` writer reads back
//! equal, and CSV, PSV, JSON and JSONL give the same events.

use std::collections::BTreeSet;
use std::io::Cursor;

use batchgrpc_core::events::{Event, JobSpec, Pipeline};
use batchgrpc_core::formats::{open, Format, ReadLimits, Resume, Row};
use proptest::prelude::*;

/// A header of distinct names and rows of the same width.
fn table() -> impl Strategy<Value = (Vec<String>, Vec<Vec<String>>)> {
    prop::collection::btree_set("[a-z][a-z0-9_]{0,7}", 1..6).prop_flat_map(
        |names: BTreeSet<String>| {
            let names: Vec<String> = names.into_iter().collect();
            let width = names.len();
            let cell = prop_oneof![any::<String>(), "[a-z,|\"\r\n ]{0,12}", Just(String::new()),];
            (
                Just(names),
                prop::collection::vec(prop::collection::vec(cell, width), 0..20),
            )
        },
    )
}

fn write_delimited(names: &[String], rows: &[Vec<String>], delimiter: u8) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    writer.write_record(names).unwrap();
    for row in rows {
        writer.write_record(row).unwrap();
    }
    writer.into_inner().unwrap()
}

fn write_json(names: &[String], rows: &[Vec<String>], lines: bool) -> Vec<u8> {
    let objects: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let map: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .cloned()
                .zip(row.iter().cloned().map(serde_json::Value::String))
                .collect();
            serde_json::Value::Object(map)
        })
        .collect();
    if lines {
        let mut out = Vec::new();
        for object in &objects {
            serde_json::to_writer(&mut out, object).unwrap();
            out.push(b'\n');
        }
        out
    } else {
        serde_json::to_vec(&objects).unwrap()
    }
}

fn read_cells(format: Format, bytes: Vec<u8>) -> Vec<Vec<String>> {
    let mut source = open(
        format,
        Cursor::new(bytes),
        ReadLimits::default(),
        Resume::default(),
    )
    .unwrap();
    let mut row = Row::default();
    let mut rows = Vec::new();
    while source.next_row(&mut row).unwrap() {
        assert!(row.problem.is_none(), "{:?}", row.problem);
        rows.push(
            row.cells
                .iter()
                .map(|(_, c)| row.cell_text(c).into_owned())
                .collect(),
        );
    }
    rows
}

fn events(format: Format, bytes: Vec<u8>) -> Vec<Event> {
    let source = open(
        format,
        Cursor::new(bytes),
        ReadLimits::default(),
        Resume::default(),
    )
    .unwrap();
    let spec = JobSpec {
        job_id: "prop".into(),
        event_name: "e".into(),
        ..JobSpec::default()
    };
    let fixed = matches!(format, Format::Csv | Format::Psv);
    let mut pipeline = Pipeline::new(source, spec, fixed, 0, 0).unwrap();
    let mut all = Vec::new();
    loop {
        // Small chunks, so chunk boundaries are crossed too.
        let chunk = pipeline.next_chunk(3).unwrap();
        all.extend(chunk.to_events());
        if chunk.done {
            return all;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn csv_and_psv_read_back_what_the_reference_writer_wrote((names, rows) in table()) {
        for (format, delimiter) in [(Format::Csv, b','), (Format::Psv, b'|')] {
            let bytes = write_delimited(&names, &rows, delimiter);
            prop_assert_eq!(&read_cells(format, bytes), &rows);
        }
    }

    #[test]
    fn all_formats_give_the_same_events((names, rows) in table()) {
        let csv = events(Format::Csv, write_delimited(&names, &rows, b','));
        prop_assert_eq!(csv.len(), rows.len());
        prop_assert_eq!(&events(Format::Psv, write_delimited(&names, &rows, b'|')), &csv);
        prop_assert_eq!(&events(Format::Json, write_json(&names, &rows, false)), &csv);
        prop_assert_eq!(&events(Format::Jsonl, write_json(&names, &rows, true)), &csv);
    }

    #[test]
    fn no_input_panics_the_readers(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for format in [Format::Csv, Format::Psv, Format::Json, Format::Jsonl] {
            if let Ok(mut source) = open(format, Cursor::new(bytes.clone()), ReadLimits::default(), Resume::default()) {
                let mut row = Row::default();
                while let Ok(true) = source.next_row(&mut row) {}
            }
        }
    }
}
