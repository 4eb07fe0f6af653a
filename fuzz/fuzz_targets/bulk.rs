//! Bulk-create validation: any bytes decode and validate, or are refused
//! with an error; never a panic, never a stack overflow (nesting is read to
//! a fixed depth), and no violation echoes more than 256 characters of the
//! client in its pointer. A request that validates (or fails by item only)
//! also decodes into the store's rows, whose events the core reads back.
#![no_main]

use std::collections::HashSet;

use batchgrpc_core::bulk::{bulk_rows, validate_bulk};
use batchgrpc_core::ingest::{event_rows, Target};
use batchgrpc_core::profiles::{parse_updates, plan, Snapshot};
use libfuzzer_sys::fuzz_target;

/// (item, event) a violation at `pointer` rejects: the event alone, or the
/// whole item (event None) for a problem of its profile.
fn rejected_by(pointer: &str) -> Option<(usize, Option<usize>)> {
    let rest = pointer.strip_prefix("/data/attributes/events-bulk-create/data/")?;
    let (item, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let item = item.parse().ok()?;
    let event = rest
        .strip_prefix("attributes/events/data/")
        .and_then(|r| r.split('/').next())
        .and_then(|j| j.parse().ok());
    Some((item, event))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(validation) = validate_bulk(data, 1_795_000_000.0, 631_152_000.0) {
        for v in &validation.violations {
            // The document's own part (at most ~130 characters) plus 256.
            assert!(v.pointer.chars().count() <= 400, "{}", v.pointer);
            assert!(v.message.chars().count() <= 600, "{}", v.message);
        }
        if validation.fails_whole {
            return;
        }
        // What partial success leaves out, as the processor does
        // (`events/bulk.py`, `rejected_by`).
        let rejected: HashSet<(usize, Option<usize>)> = validation
            .violations
            .iter()
            .filter_map(|v| rejected_by(&v.pointer))
            .collect();
        let rows = bulk_rows(data, "bulk_1", &rejected, 1_795_000_000.0)
            .expect("a request that validates decodes");
        // The planner reads the core's own profile updates, and every
        // item with an identifier or an id becomes a target.
        let updates = parse_updates(&rows.profiles).expect("the core reads its own updates");
        assert_eq!(updates.updates.len(), rows.event_counts.len());
        let mut n = 0;
        let plan = plan(
            &Snapshot::default(),
            &updates.updates,
            1_795_000_000.0,
            &mut || {
                n += 1;
                format!("p{n}")
            },
        );
        let targets: Vec<Option<Target>> = plan.targets;
        let out = event_rows(&rows.events, "acme", &targets).expect("the core reads its own rows");
        let events: u64 = rows.event_counts.iter().map(|&n| n as u64).sum();
        // Events of items without a target are left out, the rest stored or counted.
        let targeted: u64 = rows
            .event_counts
            .iter()
            .zip(&targets)
            .filter(|(_, t)| t.is_some())
            .map(|(&n, _)| n as u64)
            .sum();
        assert!(targeted <= events);
        assert_eq!(
            out.rows.len() as u64 + out.repeats.iter().sum::<u64>(),
            targeted
        );
    }
});
