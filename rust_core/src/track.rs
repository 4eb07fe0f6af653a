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

/// One problem with a command: the body field it is about (`customer_ids`,
/// `properties.<name>`, empty for the command as a whole) and upstream's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path of the field in the command's `data`.
    pub field: String,
    /// Upstream's words.
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
    }
}

/// An id as the text the store keys on: numbers without a spurious `.0`.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(format!("{}", f as i64)),
            Some(f) => Some(f.to_string()),
            None => None,
        },
        _ => None,
    }
}

/// The usable ids of a command, in the order sent; an error when none is.
fn customer_ids(data: &Map<String, Value>, errors: &mut Vec<Problem>) -> Vec<(String, String)> {
    match data.get("customer_ids") {
        Some(Value::Object(ids)) if !ids.is_empty() => {
            let usable: Vec<(String, String)> = ids
                .iter()
                .filter(|(_, value)| is_valid_id(value))
                .filter_map(|(name, value)| Some((name.clone(), id_text(value)?)))
                .collect();
            if usable.is_empty() {
                errors.push(problem("customer_ids", NO_VALID_ID));
            }
            usable
        }
        _ => {
            errors.push(problem("customer_ids", NO_ID));
            Vec::new()
        }
    }
}

/// A timestamp as Unix seconds: a float or ISO-8601, from 1970 to a year
/// ahead of `now`. A millisecond value is named as such.
fn seconds(field: &str, value: &Value, now: f64, errors: &mut Vec<Problem>) -> Option<f64> {
    let seconds = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_timestamp(s),
        Value::Null => return None,
        _ => None,
    };
    let message = match seconds {
        None => format!(
            "Field '{field}' must be a number of seconds since 1970 or an ISO-8601 date-time."
        ),
        Some(s) if s > now + YEAR && s / 1000.0 <= now + YEAR => {
            format!("Field '{field}' looks like milliseconds; it must be in seconds.")
        }
        Some(s) if !(0.0..=now + YEAR).contains(&s) => {
            format!(
                "Field '{field}' is out of range: it must be between 1970 and one year from now."
            )
        }
        Some(s) => return Some(s),
    };
    errors.push(problem(field, message));
    None
}

/// The properties as JSON object text (`{}` when absent), each value under
/// 16 KB.
fn properties(data: &Map<String, Value>, errors: &mut Vec<Problem>) -> String {
    match data.get("properties") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(object @ Value::Object(properties)) => {
            for (name, value) in properties {
                let size = match value {
                    Value::String(s) => s.len(),
                    other => other.to_string().len(),
                };
                if size as u64 >= TRACK_MAX_PROPERTY_VALUE_BYTES {
                    errors.push(problem(
                        format!("properties.{name}"),
                        format!("Value of property '{name}' must be less than 16 KB."),
                    ));
                }
            }
            object.to_string()
        }
        Some(_) => {
            errors.push(problem(
                "properties",
                "Field 'properties' must be an object.",
            ));
            "{}".to_owned()
        }
    }
}

/// A command checked and normalized: what the store needs to apply it, or
/// every reason it cannot be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Route name.
    pub name: String,
    /// Echoed in the result.
    pub command_id: Option<String>,
    /// Every problem; the command is applied only when there is none.
    pub errors: Vec<Problem>,
    /// The usable customer ids, by id name, values as text.
    pub customer_ids: Vec<(String, String)>,
    /// The properties as JSON object text.
    pub properties: String,
    /// `update_timestamp` (customers) or `timestamp` (customers/events) in
    /// Unix seconds, when sent.
    pub time: Option<f64>,
    /// The event type (customers/events).
    pub event_type: String,
}

/// Checks one command with upstream's rules and normalizes its payload.
#[must_use]
pub fn prepare(command: &Command, now: f64) -> Prepared {
    let mut prepared = Prepared {
        name: command.name.clone(),
        command_id: command.command_id.clone(),
        errors: Vec::new(),
        customer_ids: Vec::new(),
        properties: "{}".to_owned(),
        time: None,
        event_type: String::new(),
    };
    let errors = &mut prepared.errors;
    if command.size >= TRACK_MAX_COMMAND_BYTES {
        errors.push(problem("", limits::COMMAND_TOO_LARGE));
        return prepared;
    }
    let data = &command.data;
    let time_field = match command.name.as_str() {
        "customers" => "update_timestamp",
        "customers/events" => "timestamp",
        "system/time" => return prepared,
        "" => {
            errors.push(problem("name", "Field 'name' is required."));
            return prepared;
        }
        other => {
            errors.push(problem(
                "name",
                format!("Unknown command name '{other}': use customers, customers/events or system/time."),
            ));
            return prepared;
        }
    };
    prepared.customer_ids = customer_ids(data, errors);
    if time_field == "timestamp" {
        match data.get("event_type") {
            Some(Value::String(s)) if !s.is_empty() => prepared.event_type.clone_from(s),
            _ => errors.push(problem("event_type", NO_EVENT_TYPE)),
        }
    }
    prepared.time = data
        .get(time_field)
        .and_then(|value| seconds(time_field, value, now, errors));
    prepared.properties = properties(data, errors);
    prepared
}

/// Checks and normalizes a serialized `BatchRequest`: the batch as a whole
/// (1 to 50 commands, size), then each command.
///
/// # Errors
/// Bytes that are not a `BatchRequest`, or a batch that fails as a whole.
pub fn prepare_batch(bytes: &[u8], now: f64) -> Result<Vec<Prepared>, CoreError> {
    let commands = decode_batch(bytes)?;
    let sizes: Vec<u64> = commands.iter().map(|c| c.size).collect();
    limits::check_track_batch(bytes.len() as u64, &sizes)?;
    Ok(commands.iter().map(|c| prepare(c, now)).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every problem with one command, in upstream's words.
    fn check_command(command: &Command, now: f64) -> Vec<String> {
        prepare(command, now)
            .errors
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

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

    #[test]
    fn prepare_keeps_usable_ids_and_normalizes_the_payload() {
        let c = command(
            "customers/events",
            &json!({"customer_ids": {"cookie": "null", "registered": "a@b.c", "shop_id": 42.0},
                    "event_type": "purchase", "timestamp": "1970-01-02T00:00:00Z",
                    "properties": {"price": 1.5}}),
        );
        let p = prepare(&c, NOW);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(
            p.customer_ids,
            [
                ("registered".into(), "a@b.c".into()),
                ("shop_id".into(), "42".into())
            ]
        );
        assert_eq!(p.event_type, "purchase");
        assert_eq!(p.time, Some(86_400.0));
        assert_eq!(p.properties, r#"{"price":1.5}"#);
        let c = command(
            "customers",
            &json!({"customer_ids": {"r": "a"}, "update_timestamp": 10.5}),
        );
        let p = prepare(&c, NOW);
        assert_eq!((p.time, p.properties.as_str()), (Some(10.5), "{}"));
    }

    #[test]
    fn problems_name_their_field() {
        let big = "x".repeat(16 * 1024);
        let c = command(
            "customers/events",
            &json!({"properties": {"note": big}, "timestamp": NOW * 1000.0}),
        );
        let fields: Vec<String> = prepare(&c, NOW)
            .errors
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(
            fields,
            ["customer_ids", "event_type", "timestamp", "properties.note"]
        );
    }
}
