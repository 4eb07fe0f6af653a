//! Times the row pipeline alone (no Python) on a CSV file: `rows seconds`.

use std::time::Instant;

use batchgrpc_core::events::{JobSpec, Pipeline};
use batchgrpc_core::formats::{open, Format, ReadLimits, Resume};
use batchgrpc_core::rules::{ColumnRule, PatternBudget, RuleSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: pipeline_profile FILE")?;
    let started = Instant::now();
    let source = open(
        Format::Csv,
        std::fs::File::open(path)?,
        ReadLimits::default(),
        Resume::default(),
    )?;
    let rule = |name: &str, policy: &str, value_type: &str| {
        ColumnRule::compile(
            0,
            &RuleSpec {
                kind: "FULL_NAME_MATCH".into(),
                name: name.into(),
                validation_policy: policy.into(),
                value_type: value_type.into(),
                ..RuleSpec::default()
            },
            &mut PatternBudget::default(),
        )
    };
    let spec = JobSpec {
        job_id: "bench".into(),
        default_event_name: "visit".into(),
        columns: vec![
            rule("email", "REQUIRED_VALUE", "EMAIL")?,
            rule("amount", "", "NUMBER")?,
        ],
        ..JobSpec::default()
    };
    // PARSE_ONLY=1 times the reader alone.
    if std::env::var("PARSE_ONLY").as_deref() == Ok("1") {
        let mut source = source;
        let mut row = batchgrpc_core::formats::Row::default();
        let mut rows = 0;
        while source.next_row(&mut row)? {
            rows += 1;
        }
        println!("{rows} {}", started.elapsed().as_secs_f64());
        return Ok(());
    }
    // PREFETCH=0 keeps parsing on this thread, to see what each half costs.
    let source: Box<dyn batchgrpc_core::formats::RowSource> =
        if std::env::var("PREFETCH").as_deref() == Ok("0") {
            source
        } else {
            Box::new(batchgrpc_core::formats::prefetch::Prefetch::new(source))
        };
    let mut pipeline = Pipeline::new(source, spec, true, 0, 0)?;
    let chunk_rows = std::env::var("CHUNK_ROWS").map_or(Ok(50_000), |v| v.parse())?;
    let mut rows = 0;
    let mut chunk = batchgrpc_core::events::Chunk::default();
    loop {
        pipeline.next_chunk_into(&mut chunk, chunk_rows)?;
        rows += chunk.rows;
        if chunk.done {
            break;
        }
    }
    println!("{rows} {}", started.elapsed().as_secs_f64());
    Ok(())
}
