//! Times the row pipeline alone (no Python) on a CSV file: `rows seconds`.

use std::time::Instant;

use batchgrpc_core::events::{JobSpec, Pipeline};
use batchgrpc_core::formats::{open, Format, ReadLimits, Resume};
use batchgrpc_core::rules::{ColumnRule, RuleSpec};

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
    let mut pipeline = Pipeline::new(source, spec, true, 0, 0)?;
    let mut rows = 0;
    let mut chunk = batchgrpc_core::events::Chunk::default();
    loop {
        pipeline.next_chunk_into(&mut chunk, 50_000)?;
        rows += chunk.rows;
        if chunk.done {
            break;
        }
    }
    println!("{rows} {}", started.elapsed().as_secs_f64());
    Ok(())
}
