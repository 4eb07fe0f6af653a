//! Bulk-create validation: any bytes decode and validate, or are refused
//! with an error; never a panic, never a stack overflow (nesting is read to
//! a fixed depth), and no violation echoes more than 256 characters of the
//! client in its pointer. A request that validates (or fails by item only)
//! also decodes into the store's rows, whose events the core reads back.
#![no_main]

use std::collections::HashSet;

use batchgrpc_core::bulk::{bulk_rows, validate_bulk};
use batchgrpc_core::ingest::{event_rows, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(validation) = validate_bulk(data, 1_795_000_000.0) {
        for v in &validation.violations {
            // The document's own part (at most ~130 characters) plus 256.
            assert!(v.pointer.chars().count() <= 400, "{}", v.pointer);
            assert!(v.message.chars().count() <= 600, "{}", v.message);
        }
        if validation.fails_whole {
            return;
        }
        let rows = bulk_rows(data, "bulk_1", &HashSet::new(), 1_795_000_000.0)
            .expect("a request that validates decodes");
        let targets: Vec<Option<Target>> = rows
            .event_counts
            .iter()
            .map(|_| {
                Some(Target {
                    profile_id: "p".into(),
                    live_id: "p".into(),
                    identity: String::new(),
                    stored: true,
                })
            })
            .collect();
        let out = event_rows(&rows.events, "acme", &targets).expect("the core reads its own rows");
        let events: u64 = rows.event_counts.iter().map(|&n| n as u64).sum();
        assert_eq!(
            out.rows.len() as u64 + out.repeats.iter().sum::<u64>(),
            events
        );
    }
});
