//! Tracking-batch validation (Bloomreach rules), from the serialized
//! `batchgrpc.track.v2.BatchRequest`: one list of upstream-worded errors per
//! command; an empty list means the command is valid.
//!
//! The request's protobuf is decoded here directly (a few fields and the
//! well-known `Struct`/`Value`), so the whole batch crosses the boundary as
//! one byte string.

use serde_json::{Map, Value};

use crate::error::CoreError;
use crate::limits::{self, TRACK_MAX_COMMAND_BYTES, TRACK_MAX_PROPERTY_VALUE_BYTES};
use crate::rules::parse_timestamp;
use crate::wire::{decode_struct, string, Field, Wire};

/// One command of a batch, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Route name.
    pub name: String,
    /// The payload.
    pub data: Map<String, Value>,
    /// Echoed in the result.
    pub command_id: Option<String>,
    /// Serialized size of the command in bytes.
    pub size: u64,
}

/// Decodes the commands of a serialized `BatchRequest`.
///
/// # Errors
/// Bytes that are not a `BatchRequest`.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Command>, CoreError> {
    let mut commands = Vec::new();
    let mut wire = Wire::new(bytes);
    while let Some((number, field)) = wire.field()? {
        if let (2, Field::Bytes(command)) = (number, field) {
            let mut decoded = Command {
                name: String::new(),
                data: Map::new(),
                command_id: None,
                size: command.len() as u64,
            };
            let mut fields = Wire::new(command);
            while let Some((n, f)) = fields.field()? {
                match (n, f) {
                    (1, Field::Bytes(b)) => decoded.name = string(b)?,
                    (2, Field::Bytes(b)) => decoded.data = decode_struct(b, 0)?,
                    (3, Field::Bytes(b)) => decoded.command_id = Some(string(b)?),
                    _ => {}
                }
            }
            commands.push(decoded);
        }
    }
    Ok(commands)
}

/// Upstream's text when no id is given.
pub const NO_ID: &str = "At least one id should be specified.";
/// Upstream's text when ids are given but none is usable.
pub const NO_VALID_ID: &str = "At least one valid id should be specified";
/// Upstream's text for a missing event type.
pub const NO_EVENT_TYPE: &str = "Field 'event_type' is required.";
/// Seconds in a year: how far ahead a timestamp may be.
const YEAR: f64 = 366.0 * 86_400.0;

/// Whether an id is usable: it has a letter or digit and is not the text of
/// a missing value.
#[must_use]
pub fn is_valid_id(value: &Value) -> bool {
    let text = match value {
        Value::String(s) => s.as_str(),
        Value::Number(n) => return n.as_f64().is_some(),
        _ => return false,
    };
    text.chars().any(char::is_alphanumeric) && text != "null" && text != "undefined"
}

fn check_ids(data: &Map<String, Value>, errors: &mut Vec<String>) {
    match data.get("customer_ids") {
        Some(Value::Object(ids)) if !ids.is_empty() => {
            if !ids.values().any(is_valid_id) {
                errors.push(NO_VALID_ID.to_owned());
            }
        }
        _ => errors.push(NO_ID.to_owned()),
    }
}

/// Checks a timestamp: Unix seconds (a float) or ISO-8601, from 1970 to a
/// year ahead of `now`. A millisecond value is named as such.
fn check_time(field: &str, value: &Value, now: f64, errors: &mut Vec<String>) {
    let seconds = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_timestamp(s),
        Value::Null => return,
        _ => None,
    };
    match seconds {
        None => errors.push(format!(
            "Field '{field}' must be a number of seconds since 1970 or an ISO-8601 date-time."
        )),
        Some(s) if s > now + YEAR && s / 1000.0 <= now + YEAR => errors.push(format!(
            "Field '{field}' looks like milliseconds; it must be in seconds."
        )),
        Some(s) if !(0.0..=now + YEAR).contains(&s) => errors.push(format!(
            "Field '{field}' is out of range: it must be between 1970 and one year from now."
        )),
        Some(_) => {}
    }
}

fn check_properties(data: &Map<String, Value>, errors: &mut Vec<String>) {
    match data.get("properties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(properties)) => {
            for (name, value) in properties {
                let size = match value {
                    Value::String(s) => s.len(),
                    other => other.to_string().len(),
                };
                if size as u64 >= TRACK_MAX_PROPERTY_VALUE_BYTES {
                    errors.push(format!(
                        "Value of property '{name}' must be less than 16 KB."
                    ));
                }
            }
        }
        Some(_) => errors.push("Field 'properties' must be an object.".to_owned()),
    }
}

/// Every problem with one command, in upstream's words.
#[must_use]
pub fn check_command(command: &Command, now: f64) -> Vec<String> {
    let mut errors = Vec::new();
    if command.size >= TRACK_MAX_COMMAND_BYTES {
        errors.push(limits::COMMAND_TOO_LARGE.to_owned());
        return errors;
    }
    let data = &command.data;
    match command.name.as_str() {
        "customers" => {
            check_ids(data, &mut errors);
            if let Some(value) = data.get("update_timestamp") {
                check_time("update_timestamp", value, now, &mut errors);
            }
            check_properties(data, &mut errors);
        }
        "customers/events" => {
            check_ids(data, &mut errors);
            match data.get("event_type") {
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => errors.push(NO_EVENT_TYPE.to_owned()),
            }
            if let Some(value) = data.get("timestamp") {
                check_time("timestamp", value, now, &mut errors);
            }
            check_properties(data, &mut errors);
        }
        "system/time" => {}
        "" => errors.push("Field 'name' is required.".to_owned()),
        other => errors.push(format!(
            "Unknown command name '{other}': use customers, customers/events or system/time."
        )),
    }
    errors
}

/// Validates a serialized `BatchRequest`: the batch as a whole (1 to 50
/// commands, size), then each command.
///
/// # Errors
/// Bytes that are not a `BatchRequest`, or a batch that fails as a whole.
pub fn validate_batch(bytes: &[u8], now: f64) -> Result<Vec<Vec<String>>, CoreError> {
    let commands = decode_batch(bytes)?;
    let sizes: Vec<u64> = commands.iter().map(|c| c.size).collect();
    limits::check_track_batch(bytes.len() as u64, &sizes)?;
    Ok(commands.iter().map(|c| check_command(c, now)).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: f64 = 1_795_000_000.0;

    fn command(name: &str, data: &Value) -> Command {
        Command {
            name: name.into(),
            data: data.as_object().cloned().unwrap_or_default(),
            command_id: None,
            size: 100,
        }
    }

    #[test]
    fn the_seed_examples() {
        let ok = command(
            "customers",
            &json!({"customer_ids": {"registered": "marian.galik@example.com"}, "properties": {"first_name": "Marian"}}),
        );
        assert!(check_command(&ok, NOW).is_empty());
        let event = command(
            "customers/events",
            &json!({"customer_ids": {"registered": "x@example.com"}, "event_type": "purchase", "timestamp": 123_456.78,
                    "properties": {"total_price": 1234.5, "voucher_code": "KA54-548C-TEST"}}),
        );
        assert!(check_command(&event, NOW).is_empty());
        assert_eq!(
            check_command(&command("customers", &json!({"properties": {}})), NOW),
            [NO_ID]
        );
        assert_eq!(
            check_command(
                &command(
                    "customers/events",
                    &json!({"customer_ids": {"registered": "a"}})
                ),
                NOW
            ),
            [NO_EVENT_TYPE]
        );
        assert!(check_command(&command("system/time", &json!({})), NOW).is_empty());
    }

    #[test]
    fn ids_need_a_letter_or_digit_and_no_placeholder() {
        for bad in [
            json!("null"),
            json!("undefined"),
            json!("--"),
            json!(""),
            json!(true),
        ] {
            let c = command("customers", &json!({"customer_ids": {"registered": bad}}));
            assert_eq!(check_command(&c, NOW), [NO_VALID_ID], "{bad}");
        }
        let c = command(
            "customers",
            &json!({"customer_ids": {"cookie": "null", "registered": "a1"}}),
        );
        assert!(check_command(&c, NOW).is_empty());
    }

    #[test]
    fn timestamps_in_seconds_or_iso() {
        let at = |t: Value| {
            check_command(
                &command(
                    "customers/events",
                    &json!({"customer_ids": {"r": "a"}, "event_type": "e", "timestamp": t}),
                ),
                NOW,
            )
        };
        assert!(at(json!(NOW)).is_empty());
        assert!(at(json!("2026-11-23T10:00:00Z")).is_empty());
        assert!(at(json!(NOW * 1000.0))[0].contains("milliseconds"));
        assert!(at(json!(-5))[0].contains("out of range"));
        assert!(at(json!("yesterday"))[0].contains("ISO-8601"));
    }

    #[test]
    fn property_values_under_16_kb_and_commands_under_800_kb() {
        let big = "x".repeat(16 * 1024);
        let c = command(
            "customers",
            &json!({"customer_ids": {"r": "a"}, "properties": {"note": big}}),
        );
        assert_eq!(
            check_command(&c, NOW),
            ["Value of property 'note' must be less than 16 KB."]
        );
        let mut c = command("customers", &json!({"customer_ids": {"r": "a"}}));
        c.size = TRACK_MAX_COMMAND_BYTES;
        assert_eq!(check_command(&c, NOW), [limits::COMMAND_TOO_LARGE]);
        assert!(check_command(&command("anonymize", &json!({})), NOW)[0]
            .starts_with("Unknown command name"));
    }

    #[test]
    fn malformed_bytes_are_an_error_not_a_panic() {
        assert!(decode_batch(&[0x12, 0xff]).is_err());
        assert!(decode_batch(&[0x12, 0x05, 0x0a]).is_err());
        assert_eq!(decode_batch(&[]).unwrap(), vec![]);
    }
}
