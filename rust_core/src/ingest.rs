//! Profile events (bulk-created and tracked) in the store's row layout.
//!
//! A request's events travel as one JSON array, never as a Python object
//! each: the decoder (`bulk::bulk_rows`, or Python for the few events of a
//! tracking batch) writes them with `write_event`; once the planner has said
//! which profile each item is, `event_rows` gives every event its id, drops
//! the repeats within the request, and returns the rows for the store's
//! one insert.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::events::{event_id, write_json_string};

/// An event before its profile is known. As JSON, an array of these fields
/// in this order.
pub struct NewEvent<'a> {
    /// The item (profile update) of the request it belongs to.
    pub item: usize,
    /// `BULK_CREATE` or `TRACKING`.
    pub source: &'a str,
    /// The bulk job it came with (empty for tracking).
    pub job_id: &'a str,
    /// Its place among its item's events.
    pub row_number: u64,
    /// The metric (bulk) or event type (tracking).
    pub event_name: &'a str,
    /// Unix seconds.
    pub event_time: f64,
    /// A JSON object's text.
    pub data: &'a str,
    /// With the profile and the name, what makes two events one.
    pub dedup_key: &'a str,
    /// The event's monetary value, if any.
    pub value: Option<f64>,
    /// Its ISO 4217 currency, or empty.
    pub value_currency: &'a str,
    /// The caller's id of the event, or empty.
    pub unique_id: &'a str,
    /// Recorded, but meant to trigger nothing downstream (a bulk event's
    /// `backfill`).
    pub backfill: bool,
    /// A bulk event's metric service; empty for the other sources.
    pub metric_service: &'a str,
}

type EventTuple = (
    usize,
    String,
    String,
    u64,
    String,
    f64,
    String,
    String,
    Option<f64>,
    String,
    String,
    bool,
    String,
);

fn write_number(out: &mut Vec<u8>, n: f64) {
    // Finite: the core validated every number it passes on.
    let mut text = String::new();
    let _ = write!(text, "{n:?}");
    out.extend_from_slice(text.as_bytes());
}

fn write_int(out: &mut Vec<u8>, n: impl std::fmt::Display) {
    let mut text = String::new();
    let _ = write!(text, "{n}");
    out.extend_from_slice(text.as_bytes());
}

/// Appends `event` as a JSON array (no separator).
pub fn write_event(out: &mut Vec<u8>, event: &NewEvent<'_>) {
    out.push(b'[');
    write_int(out, event.item);
    out.push(b',');
    write_json_string(out, event.source);
    out.push(b',');
    write_json_string(out, event.job_id);
    out.push(b',');
    write_int(out, event.row_number);
    out.push(b',');
    write_json_string(out, event.event_name);
    out.push(b',');
    write_number(out, event.event_time);
    out.push(b',');
    write_json_string(out, event.data);
    out.push(b',');
    write_json_string(out, event.dedup_key);
    out.push(b',');
    match event.value {
        Some(v) => write_number(out, v),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b',');
    write_json_string(out, event.value_currency);
    out.push(b',');
    write_json_string(out, event.unique_id);
    out.push(b',');
    out.extend_from_slice(if event.backfill { b"true" } else { b"false" });
    out.push(b',');
    write_json_string(out, event.metric_service);
    out.push(b']');
}

/// Who an item's events belong to, as the planner decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The profile the item applied to: the event's id names it.
    pub profile_id: String,
    /// The profile it is at the end of the request (merges move events).
    pub live_id: String,
    /// The item's first identifier, as sent.
    pub identity: String,
    /// The live profile existed before the request, so the store may hold
    /// repeats of its events (a profile the request created holds none).
    pub stored: bool,
}

/// One event as the store inserts it.
pub struct Row {
    /// The event id's halves (`id_halves`).
    pub id: (i64, i64),
    /// The item it belongs to.
    pub item: usize,
    /// The fields `NewEvent` has, but the profile: `profile_id` is where
    /// it is stored (the live profile), `identity` its item's.
    pub source: String,
    /// See `NewEvent`.
    pub job_id: String,
    /// See `NewEvent`.
    pub row_number: u64,
    /// See `NewEvent`.
    pub event_name: String,
    /// See `NewEvent`.
    pub event_time: f64,
    /// The live profile it is stored under.
    pub profile_id: String,
    /// Its item's first identifier.
    pub identity: String,
    /// See `NewEvent`.
    pub data: String,
    /// See `NewEvent`.
    pub value: Option<f64>,
    /// See `NewEvent`.
    pub value_currency: String,
    /// See `NewEvent`.
    pub unique_id: String,
    /// See `NewEvent`; kept for a bulk event only (what the store finds
    /// repeats by), empty for others.
    pub dedup_key: String,
    /// See `NewEvent`.
    pub backfill: bool,
    /// See `NewEvent`.
    pub metric_service: String,
}

/// A request's event rows, ready for the store.
pub struct EventRows {
    /// Each event once, in request order.
    pub rows: Vec<Row>,
    /// JSON array of `[row, item, profile_id, event_name, dedup_key]`: the
    /// rows the store may hold already (a bulk event of a profile that
    /// existed before the request), for its one look-up.
    pub lookups: Vec<u8>,
    /// Per item, its events that repeat an earlier one of the request.
    pub repeats: Vec<u64>,
}

/// The halves of an id as the store keeps them: two signed 64-bit integers.
#[must_use]
pub fn id_halves(id: u128) -> (i64, i64) {
    // Bit casts: the store keeps the bits, not the numbers.
    #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
    ((((id >> 64) as u64) as i64), ((id as u64) as i64))
}

fn profile_event_id(account: &str, profile: &str, name: &str, dedup: &str) -> u128 {
    event_id("profile", &[account, profile, name, dedup])
}

/// The source whose events upstream deduplicates (Klaviyo's bulk create).
const DEDUPLICATED: &str = "BULK_CREATE";

/// Gives each event of `events` (`write_event`'s arrays) its id under its
/// item's target, in `account`; an item without a target (its profile was
/// not found) has its events left out. A bulk event that repeats an earlier
/// one of the request (the same live profile, name and dedup key) is
/// counted, not written.
///
/// # Errors
/// `events` is not what `write_event` writes, or names an item past
/// `targets`: a bug of the caller, said in the text.
pub fn event_rows(
    events: &[u8],
    account: &str,
    targets: &[Option<Target>],
) -> Result<EventRows, String> {
    let events: Vec<EventTuple> =
        serde_json::from_slice(events).map_err(|e| format!("event rows: {e}"))?;
    let mut rows = Vec::with_capacity(events.len());
    let mut lookups = Vec::from(&b"["[..]);
    let mut repeats = vec![0u64; targets.len()];
    let mut seen: HashSet<u128> = HashSet::with_capacity(events.len());
    for (
        item,
        source,
        job_id,
        row_number,
        name,
        time,
        data,
        dedup,
        value,
        currency,
        unique_id,
        backfill,
        metric_service,
    ) in events
    {
        let target = targets
            .get(item)
            .ok_or_else(|| format!("event rows: no item {item}"))?;
        let Some(target) = target else { continue };
        let deduplicated = source == DEDUPLICATED;
        if deduplicated {
            // What makes two events one, hashed: the live profile's key.
            if !seen.insert(profile_event_id(account, &target.live_id, &name, &dedup)) {
                repeats[item] += 1;
                continue;
            }
            if target.stored {
                if lookups.len() > 1 {
                    lookups.push(b',');
                }
                lookups.push(b'[');
                write_int(&mut lookups, rows.len());
                lookups.push(b',');
                write_int(&mut lookups, item);
                lookups.push(b',');
                write_json_string(&mut lookups, &target.live_id);
                lookups.push(b',');
                write_json_string(&mut lookups, &name);
                lookups.push(b',');
                write_json_string(&mut lookups, &dedup);
                lookups.push(b']');
            }
        }
        rows.push(Row {
            id: id_halves(profile_event_id(account, &target.profile_id, &name, &dedup)),
            item,
            source,
            job_id,
            row_number,
            event_name: name,
            event_time: time,
            profile_id: target.live_id.clone(),
            identity: target.identity.clone(),
            data,
            value,
            value_currency: currency,
            unique_id,
            dedup_key: if deduplicated { dedup } else { String::new() },
            backfill,
            metric_service,
        });
    }
    lookups.push(b']');
    Ok(EventRows {
        rows,
        lookups,
        repeats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(list: &[(usize, &str, &str)]) -> Vec<u8> {
        let mut out = b"[".to_vec();
        for (i, (item, name, dedup)) in list.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_event(
                &mut out,
                &NewEvent {
                    item: *item,
                    source: "BULK_CREATE",
                    job_id: "bulk_1",
                    row_number: i as u64,
                    event_name: name,
                    event_time: 1_790_000_000.0,
                    data: "{\"a\":\"\\\"q\\\"\"}",
                    dedup_key: dedup,
                    value: Some(9.5),
                    value_currency: "EUR",
                    unique_id: "",
                    backfill: false,
                    metric_service: "api",
                },
            );
        }
        out.push(b']');
        out
    }

    #[allow(clippy::unnecessary_wraps)] // the shape `targets` takes
    fn target(profile: &str, live: &str, stored: bool) -> Option<Target> {
        Some(Target {
            profile_id: profile.into(),
            live_id: live.into(),
            identity: "a@x".into(),
            stored,
        })
    }

    #[test]
    fn ids_name_the_profile_the_item_applied_to_and_rows_the_live_one() {
        let out = event_rows(
            &events(&[(0, "V", "t:1")]),
            "acme",
            &[target("p", "q", false)],
        )
        .unwrap();
        let [row] = &out.rows[..] else {
            panic!("one row")
        };
        assert_eq!(row.id, id_halves(profile_event_id("acme", "p", "V", "t:1")));
        assert_eq!(
            (row.profile_id.as_str(), row.identity.as_str()),
            ("q", "a@x")
        );
        assert_eq!(
            (row.data.as_str(), row.value),
            ("{\"a\":\"\\\"q\\\"\"}", Some(9.5))
        );
        assert!((row.event_time - 1_790_000_000.0).abs() < f64::EPSILON);
        assert_eq!(
            out.lookups, b"[]",
            "a profile new in the request holds nothing"
        );
    }

    #[test]
    fn repeats_of_the_live_profile_count_once_and_items_without_a_target_are_left_out() {
        let list = [
            (0, "V", "t:1"),
            (0, "V", "t:1"),
            (1, "V", "t:1"),
            (2, "V", "t:1"),
            (1, "W", "t:1"),
        ];
        // Items 0 and 1 applied to two profiles merged into one by the end.
        let targets = [target("p", "s", true), target("s", "s", true), None];
        let out = event_rows(&events(&list), "acme", &targets).unwrap();
        assert_eq!(out.repeats, vec![1, 1, 0]);
        let names: Vec<(usize, &str)> = out
            .rows
            .iter()
            .map(|r| (r.item, r.event_name.as_str()))
            .collect();
        assert_eq!(names, vec![(0, "V"), (1, "W")]);
        assert_eq!(
            out.rows[0].dedup_key, "t:1",
            "kept for the store's look-ups"
        );
        let lookups: serde_json::Value = serde_json::from_slice(&out.lookups).unwrap();
        assert_eq!(
            lookups,
            serde_json::json!([[0, 0, "s", "V", "t:1"], [1, 1, "s", "W", "t:1"]])
        );
    }

    #[test]
    fn a_buffer_of_another_layout_or_item_is_an_error() {
        assert!(event_rows(b"[[0]]", "acme", &[None]).is_err());
        assert!(event_rows(&events(&[(3, "V", "t:1")]), "acme", &[None]).is_err());
    }

    #[test]
    fn halves_keep_the_bits() {
        assert_eq!(id_halves(u128::MAX), (-1, -1));
        assert_eq!(id_halves(1 << 127), (i64::MIN, 0));
        assert_eq!(id_halves(5), (0, 5));
    }
}
