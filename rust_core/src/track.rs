//! Tracking-batch validation (Bloomreach rules), from the serialized
//! `batchgrpc.track.v2.BatchRequest`: one list of upstream-worded errors per
//! command; an empty list means the command is valid.
//!
//! The request's protobuf is decoded here directly (a few fields and the
//! well-known `Struct`/`Value`), so the whole batch crosses the boundary as
//! one byte string.

use serde_json::{Map, Number, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::error::CoreError;
use crate::limits::{
    self, clip, clip_to, longer_than, MAX_CUSTOMER_ID_CHARS, MAX_NAME_CHARS,
    TRACK_MAX_COMMAND_BYTES, TRACK_MAX_PROPERTY_VALUE_BYTES,
};
use crate::rules::parse_timestamp;
use crate::wire::{self, string, Field, Values, Wire};

/// One command of a batch, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Route name.
    pub name: String,
    /// The payload. A `Struct` or list past the decoder's depth
    /// ([`MAX_DEPTH`]) stands as an empty one at the next level, unread.
    pub data: Map<String, Value>,
    /// Echoed in the result.
    pub command_id: Option<String>,
    /// Serialized size of the command in bytes.
    pub size: u64,
}

/// A decoded `BatchRequest`: the fields the servicer needs, and the
/// commands.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch<C> {
    /// The project the batch is for (the account).
    pub project_token: String,
    /// The client's idempotency key, empty when not sent.
    pub request_id: String,
    /// The commands, in order.
    pub commands: Vec<C>,
    /// What makes two requests the same request, for `request_id`: see
    /// [`fingerprint`].
    pub fingerprint: [u8; 16],
}

/// The deepest a command's `data` may nest, counting `data` itself as level
/// 1 (`properties` is level 2, an object in a property level 3): what the
/// decoder reads. Upstream states no limit; a deeper command fails alone.
pub const MAX_DEPTH: usize = wire::MAX_DEPTH;

/// Decodes a serialized `BatchRequest`.
///
/// # Errors
/// Bytes that are not a `BatchRequest`.
pub fn decode_batch(bytes: &[u8]) -> Result<Batch<Command>, CoreError> {
    let mut batch = Batch {
        project_token: String::new(),
        request_id: String::new(),
        commands: Vec::new(),
        fingerprint: [0; 16],
    };
    let mut wire = Wire::new(bytes);
    while let Some((number, field)) = wire.field()? {
        match (number, field) {
            (1, Field::Bytes(b)) => batch.project_token = string(b)?,
            (3, Field::Bytes(b)) => batch.request_id = string(b)?,
            (2, Field::Bytes(command)) => {
                let mut decoded = Command {
                    name: String::new(),
                    data: Map::new(),
                    command_id: None,
                    size: command.len() as u64,
                };
                let mut values = Values::default();
                let mut fields = Wire::new(command);
                while let Some((n, f)) = fields.field()? {
                    match (n, f) {
                        (1, Field::Bytes(b)) => decoded.name = string(b)?,
                        (2, Field::Bytes(b)) => values.merge_struct(b, 1, &mut decoded.data)?,
                        (3, Field::Bytes(b)) => decoded.command_id = Some(string(b)?),
                        _ => {}
                    }
                }
                batch.commands.push(decoded);
            }
            _ => {}
        }
    }
    batch.fingerprint = fingerprint(&batch.project_token, &batch.commands);
    Ok(batch)
}

/// A 128-bit hash of what a request says: its project token and, per
/// command in order, its name, `command_id` and data, every object's keys
/// in sorted order. Not of its bytes: a `Struct` is a map, which has no
/// fixed order on the wire (Go's `proto.Marshal`, in the REST sidecar,
/// writes maps in random order), so a genuine retry of one JSON body may
/// arrive as other bytes. (`serde_json` keeps insertion order here, its
/// `preserve_order` feature being on, so the keys are sorted explicitly.)
///
/// The encoding is tagged and length-prefixed, so two different requests
/// never encode alike; a value the decoder cut ([`MAX_DEPTH`]) stands as
/// what was read, and such a command fails the same way however it went on.
#[must_use]
pub fn fingerprint(project_token: &str, commands: &[Command]) -> [u8; 16] {
    let mut hasher = Xxh3::new();
    text(&mut hasher, project_token);
    length(&mut hasher, commands.len());
    for command in commands {
        text(&mut hasher, &command.name);
        match &command.command_id {
            None => hasher.update(b"-"),
            Some(id) => {
                hasher.update(b"+");
                text(&mut hasher, id);
            }
        }
        object(&mut hasher, &command.data);
    }
    hasher.digest128().to_le_bytes()
}

fn length(hasher: &mut Xxh3, n: usize) {
    hasher.update(&(n as u64).to_le_bytes());
}

fn text(hasher: &mut Xxh3, text: &str) {
    length(hasher, text.len());
    hasher.update(text.as_bytes());
}

fn object(hasher: &mut Xxh3, map: &Map<String, Value>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    hasher.update(b"{");
    length(hasher, entries.len());
    for (key, value) in entries {
        text(hasher, key);
        canonical(hasher, value);
    }
}

/// Recursion is bounded by the decoder, which builds at most
/// [`MAX_DEPTH`] + 1 levels.
fn canonical(hasher: &mut Xxh3, value: &Value) {
    match value {
        Value::Null => hasher.update(b"n"),
        Value::Bool(false) => hasher.update(b"f"),
        Value::Bool(true) => hasher.update(b"t"),
        Value::Number(n) => {
            hasher.update(b"#");
            text(hasher, &n.to_string());
        }
        Value::String(s) => {
            hasher.update(b"s");
            text(hasher, s);
        }
        Value::Array(items) => {
            hasher.update(b"[");
            length(hasher, items.len());
            for item in items {
                canonical(hasher, item);
            }
        }
        Value::Object(map) => object(hasher, map),
    }
}

/// The single-command RPCs, each a command of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Single {
    /// `UpdateCustomerProperties`: a `customers` command.
    Customers,
    /// `AddEvent`: a `customers/events` command.
    Event,
}

impl Single {
    /// The command's route name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::Event => "customers/events",
        }
    }
}

/// Decodes a serialized `UpdateCustomerPropertiesRequest` or
/// `AddEventRequest` as the command it stands for, with its project token:
/// its fields become the command's `data`, as the batch would carry them.
///
/// # Errors
/// Bytes that are not the request.
pub fn decode_single(kind: Single, bytes: &[u8]) -> Result<(String, Command), CoreError> {
    let mut project_token = String::new();
    let mut ids = Map::new();
    let mut data = Map::new();
    let mut properties: Option<Map<String, Value>> = None;
    let mut values = Values::default();
    let (properties_field, time_field) = match kind {
        Single::Customers => (3, 4),
        Single::Event => (5, 4),
    };
    if kind == Single::Event {
        data.insert("event_type".into(), Value::String(String::new()));
    }
    let mut wire = Wire::new(bytes);
    while let Some((number, field)) = wire.field()? {
        match (number, field) {
            (1, Field::Bytes(b)) => project_token = string(b)?,
            (2, Field::Bytes(entry)) => {
                let (mut key, mut value) = (String::new(), String::new());
                let mut entry = Wire::new(entry);
                while let Some((n, f)) = entry.field()? {
                    match (n, f) {
                        (1, Field::Bytes(b)) => key = string(b)?,
                        (2, Field::Bytes(b)) => value = string(b)?,
                        _ => {}
                    }
                }
                ids.insert(key, Value::String(value));
            }
            (3, Field::Bytes(b)) if kind == Single::Event => {
                data.insert("event_type".into(), Value::String(string(b)?));
            }
            (n, Field::Bytes(b)) if n == properties_field => {
                // `properties` sits at level 2 of the command's data.
                values.merge_struct(b, 2, properties.get_or_insert_with(Map::new))?;
            }
            (n, Field::Fixed64(bits)) if n == time_field && kind == Single::Customers => {
                let seconds =
                    Number::from_f64(f64::from_bits(bits)).map_or(Value::Null, Value::Number);
                data.insert("update_timestamp".into(), seconds);
            }
            (n, Field::Bytes(b)) if n == time_field && kind == Single::Event => {
                data.insert("timestamp".into(), values.decode_value(b, 2)?);
            }
            _ => {}
        }
    }
    data.insert("customer_ids".into(), Value::Object(ids));
    if let Some(properties) = properties {
        data.insert("properties".into(), Value::Object(properties));
    }
    let command = Command {
        name: kind.name().into(),
        data,
        command_id: None,
        size: bytes.len() as u64,
    };
    Ok((project_token, command))
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

/// A client's name for an error text: at most 256 characters, a NUL shown
/// as `\0`.
fn shown(name: &str) -> String {
    clip(name).replace('\0', "\\0")
}

/// A client's name inside a field path (`properties.<name>`): at most 64
/// characters, as a key in a bulk pointer, so the path stays short.
fn in_field(name: &str) -> String {
    clip_to(name, 64).replace('\0', "\\0")
}

/// The usable ids of a command, in the order sent; an error when none is,
/// or when a name or value is over its limit.
fn customer_ids(data: &Map<String, Value>, errors: &mut Vec<Problem>) -> Vec<(String, String)> {
    match data.get("customer_ids") {
        Some(Value::Object(ids)) if !ids.is_empty() => {
            let before = errors.len();
            for (name, value) in ids {
                let field = format!("customer_ids.{}", in_field(name));
                if longer_than(name, MAX_NAME_CHARS) {
                    errors.push(problem(
                        field,
                        format!(
                            "Customer id name '{}' must be at most {MAX_NAME_CHARS} characters.",
                            shown(name)
                        ),
                    ));
                } else if name.contains('\0') {
                    errors.push(problem(
                        field,
                        format!(
                            "Customer id name '{}' must not contain NUL characters.",
                            shown(name)
                        ),
                    ));
                } else if matches!(value, Value::String(s) if longer_than(s, MAX_CUSTOMER_ID_CHARS))
                {
                    errors.push(problem(
                        field,
                        format!(
                            "Customer id '{}' must be at most {MAX_CUSTOMER_ID_CHARS} characters.",
                            shown(name)
                        ),
                    ));
                } else if matches!(value, Value::String(s) if s.contains('\0')) {
                    // Ids are stored as they are, and a store's text
                    // (PostgreSQL's) cannot hold NUL.
                    errors.push(problem(
                        field,
                        format!(
                            "Customer id '{}' must not contain NUL characters.",
                            shown(name)
                        ),
                    ));
                }
            }
            if errors.len() > before {
                return Vec::new();
            }
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
                let field = format!("properties.{}", in_field(name));
                if longer_than(name, MAX_NAME_CHARS) {
                    errors.push(problem(
                        field,
                        format!(
                            "Property name '{}' must be at most {MAX_NAME_CHARS} characters.",
                            shown(name)
                        ),
                    ));
                    continue;
                }
                if name.contains('\0') {
                    errors.push(problem(
                        field,
                        format!(
                            "Property name '{}' must not contain NUL characters.",
                            shown(name)
                        ),
                    ));
                    continue;
                }
                if let Some(what) = bad_key(value) {
                    errors.push(problem(
                        field,
                        format!("Value of property '{}' has a key {what}.", shown(name)),
                    ));
                    continue;
                }
                let size = match value {
                    Value::String(s) => s.len(),
                    other => other.to_string().len(),
                };
                if size as u64 >= TRACK_MAX_PROPERTY_VALUE_BYTES {
                    errors.push(problem(
                        field,
                        format!(
                            "Value of property '{}' must be less than 16 KB.",
                            shown(name)
                        ),
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

/// What is wrong with the first key, at any level inside a property's
/// value, that is over [`MAX_NAME_CHARS`] or has a NUL (a key there is a
/// property name too). Recursion is bounded by the decoder's depth.
fn bad_key(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => map.iter().find_map(|(key, value)| {
            if longer_than(key, MAX_NAME_CHARS) {
                Some(format!("of more than {MAX_NAME_CHARS} characters"))
            } else if key.contains('\0') {
                Some("with a NUL character".to_owned())
            } else {
                bad_key(value)
            }
        }),
        Value::Array(items) => items.iter().find_map(bad_key),
        _ => None,
    }
}

/// The fields of `data` that nest past [`MAX_DEPTH`] (where the decoder
/// stopped reading), each named: a property by its name, another field by
/// its own.
fn nesting(data: &Map<String, Value>, errors: &mut Vec<Problem>) {
    // `data` is level 1, so a field's own container is level 2.
    let too_deep = |value: &Value, level: usize| level - 1 + wire::depth(value) > MAX_DEPTH;
    for (field, value) in data {
        match value {
            Value::Object(properties) if field == "properties" => {
                for (name, value) in properties {
                    if too_deep(value, 3) {
                        errors.push(problem(
                            format!("properties.{}", in_field(name)),
                            format!(
                                "Value of property '{}' nests too deep: a command may nest at most {MAX_DEPTH} levels.",
                                shown(name)
                            ),
                        ));
                    }
                }
            }
            _ if too_deep(value, 2) => errors.push(problem(
                in_field(field),
                format!(
                    "Field '{}' nests too deep: a command may nest at most {MAX_DEPTH} levels.",
                    shown(field)
                ),
            )),
            _ => {}
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
    if let Some(id) = &command.command_id {
        let message = if longer_than(id, MAX_NAME_CHARS) {
            format!("Field 'command_id' must be at most {MAX_NAME_CHARS} characters.")
        } else if id.contains('\0') {
            "Field 'command_id' must not contain NUL characters.".to_owned()
        } else {
            String::new()
        };
        if !message.is_empty() {
            // The command fails alone, and its result does not carry the id
            // back: an id of up to 800 KB per command would make the
            // response itself too large for a client.
            errors.push(problem("command_id", message));
            prepared.command_id = None;
            return prepared;
        }
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
                format!(
                    "Unknown command name '{}': use customers, customers/events or system/time.",
                    shown(other)
                ),
            ));
            return prepared;
        }
    };
    nesting(data, errors);
    prepared.customer_ids = customer_ids(data, errors);
    if time_field == "timestamp" {
        match data.get("event_type") {
            Some(Value::String(s)) if longer_than(s, MAX_NAME_CHARS) => errors.push(problem(
                "event_type",
                format!("Field 'event_type' must be at most {MAX_NAME_CHARS} characters."),
            )),
            Some(Value::String(s)) if s.contains('\0') => errors.push(problem(
                "event_type",
                "Field 'event_type' must not contain NUL characters.",
            )),
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
pub fn prepare_batch(bytes: &[u8], now: f64) -> Result<Batch<Prepared>, CoreError> {
    let batch = decode_batch(bytes)?;
    let sizes: Vec<u64> = batch.commands.iter().map(|c| c.size).collect();
    limits::check_track_batch(bytes.len() as u64, &sizes)?;
    Ok(Batch {
        commands: batch.commands.iter().map(|c| prepare(c, now)).collect(),
        project_token: batch.project_token,
        request_id: batch.request_id,
        fingerprint: batch.fingerprint,
    })
}

/// Checks and normalizes a serialized `UpdateCustomerPropertiesRequest` or
/// `AddEventRequest` as the command it stands for: a batch of one, with the
/// request's project token.
///
/// # Errors
/// Bytes that are not the request, or a request too large to be a batch
/// (the command itself over 800 KB fails as a command).
pub fn prepare_single(kind: Single, bytes: &[u8], now: f64) -> Result<Batch<Prepared>, CoreError> {
    // The size is the request's own: known before decoding anything.
    limits::check_track_batch(bytes.len() as u64, &[bytes.len() as u64])?;
    let (project_token, command) = decode_single(kind, bytes)?;
    let fingerprint = fingerprint(&project_token, std::slice::from_ref(&command));
    Ok(Batch {
        project_token,
        request_id: String::new(),
        commands: vec![prepare(&command, now)],
        fingerprint,
    })
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
        assert_eq!(decode_batch(&[]).unwrap().commands, vec![]);
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

    mod wire_level {
        use super::super::*;
        use crate::wire::tests::{deep_list, ld, nested, string_value, struct_of};

        const NOW: f64 = 1_795_000_000.0;

        fn command(name: &str, data: &[u8]) -> Vec<u8> {
            ld(2, &[ld(1, name.as_bytes()), ld(2, data)].concat())
        }

        fn customer(properties: &[u8]) -> Vec<u8> {
            let ids = struct_of("registered", &string_value("a@b.c"));
            [
                struct_of("customer_ids", &ld(5, &ids)),
                struct_of("properties", &ld(5, properties)),
            ]
            .concat()
        }

        fn errors(batch: &Batch<Prepared>) -> Vec<Vec<(String, String)>> {
            batch
                .commands
                .iter()
                .map(|c| {
                    c.errors
                        .iter()
                        .map(|p| (p.field.clone(), p.message.clone()))
                        .collect()
                })
                .collect()
        }

        #[test]
        fn the_batch_keeps_its_project_token_and_request_id() {
            let bytes = [
                ld(1, b"default"),
                command("system/time", &[]),
                ld(3, b"r-1"),
            ]
            .concat();
            let batch = prepare_batch(&bytes, NOW).unwrap();
            assert_eq!(
                (batch.project_token.as_str(), batch.request_id.as_str()),
                ("default", "r-1")
            );
            assert_eq!(batch.commands.len(), 1);
        }

        #[test]
        fn a_command_nested_too_deep_fails_alone_however_deep() {
            // data (1) > properties (2) > "p" (3): a value of 18 levels fits.
            let fits = customer(&struct_of("p", &nested(18, true)));
            for levels in [19, 50, 5_000] {
                let deep = customer(&struct_of("p", &nested(levels, true)));
                let bytes = [command("customers", &fits), command("customers", &deep)].concat();
                let batch = prepare_batch(&bytes, NOW).unwrap();
                assert_eq!(
                    errors(&batch),
                    [
                        vec![],
                        vec![(
                            "properties.p".to_owned(),
                            "Value of property 'p' nests too deep: a command may nest at most 20 levels."
                                .to_owned()
                        )]
                    ],
                    "{levels}"
                );
            }
            // Another field of data is named as itself.
            let deep = [customer(&[]), struct_of("extra", &nested(30, false))].concat();
            let batch = prepare_batch(&command("customers", &deep), NOW).unwrap();
            assert_eq!(errors(&batch)[0][0].0, "extra");
        }

        #[test]
        fn a_command_of_nested_lists_to_800_kb_fails_alone() {
            let deep = customer(&struct_of("p", &deep_list(700 * 1024)));
            let bytes = [command("customers", &deep), command("system/time", &[])].concat();
            let batch = prepare_batch(&bytes, NOW).unwrap();
            let errors = errors(&batch);
            assert_eq!(errors[0].len(), 1);
            assert!(errors[0][0].1.contains("nests too deep"), "{errors:?}");
            assert!(errors[1].is_empty());
        }

        fn event_command(event_type: &str, ids: &[u8], properties: &[u8]) -> Vec<u8> {
            let data = [
                struct_of("customer_ids", &ld(5, ids)),
                struct_of("event_type", &string_value(event_type)),
                struct_of("properties", &ld(5, properties)),
            ]
            .concat();
            command("customers/events", &data)
        }

        fn only_errors(bytes: &[u8]) -> Vec<(String, String)> {
            errors(&prepare_batch(bytes, NOW).unwrap()).remove(0)
        }

        #[test]
        fn names_at_most_255_characters_without_nul() {
            let ids = struct_of("registered", &string_value("a"));
            let ok = "é".repeat(255);
            assert!(only_errors(&event_command(
                &ok,
                &ids,
                &struct_of(&ok, &string_value("v"))
            ))
            .is_empty());
            let long = "é".repeat(256);
            assert_eq!(
                only_errors(&event_command(&long, &ids, &[])),
                [(
                    "event_type".to_owned(),
                    "Field 'event_type' must be at most 255 characters.".to_owned()
                )]
            );
            assert_eq!(
                only_errors(&event_command("a\0b", &ids, &[])),
                [(
                    "event_type".to_owned(),
                    "Field 'event_type' must not contain NUL characters.".to_owned()
                )]
            );
            let got = only_errors(&event_command(
                "e",
                &ids,
                &struct_of(&long, &string_value("v")),
            ));
            assert_eq!(got.len(), 1);
            // In the field path, a name keeps 64 characters (the last `…`).
            assert_eq!(got[0].0, format!("properties.{}…", "é".repeat(63)));
            assert_eq!(
                got[0].1,
                format!("Property name '{long}' must be at most 255 characters.")
            );
            let got = only_errors(&event_command(
                "e",
                &ids,
                &struct_of("a\0b", &string_value("v")),
            ));
            assert_eq!(
                got,
                [(
                    "properties.a\\0b".to_owned(),
                    "Property name 'a\\0b' must not contain NUL characters.".to_owned()
                )]
            );
            let got = only_errors(&event_command(
                "e",
                &struct_of(&long, &string_value("a")),
                &[],
            ));
            assert_eq!(
                got[0].1,
                format!("Customer id name '{long}' must be at most 255 characters.")
            );
            let got = only_errors(&event_command(
                "e",
                &struct_of("a\0", &string_value("a")),
                &[],
            ));
            assert_eq!(
                got[0].1,
                "Customer id name 'a\\0' must not contain NUL characters."
            );
        }

        #[test]
        fn customer_ids_at_most_1000_characters() {
            let id = |n: usize| struct_of("registered", &string_value(&"i".repeat(n)));
            assert!(only_errors(&event_command("e", &id(1000), &[])).is_empty());
            assert_eq!(
                only_errors(&event_command("e", &id(1001), &[])),
                [(
                    "customer_ids.registered".to_owned(),
                    "Customer id 'registered' must be at most 1000 characters.".to_owned()
                )]
            );
        }

        #[test]
        fn errors_echo_at_most_256_characters_of_the_client() {
            let huge = "h".repeat(100 * 1024);
            let ids = struct_of(&huge, &string_value("a"));
            let bytes = [
                event_command(&huge, &ids, &struct_of(&huge, &string_value("v"))),
                command(&huge, &[]),
            ]
            .concat();
            for command in errors(&prepare_batch(&bytes, NOW).unwrap()) {
                assert!(!command.is_empty());
                for (field, message) in command {
                    assert!(field.matches('h').count() <= 256, "{}", field.len());
                    assert!(message.matches('h').count() <= 256, "{}", message.len());
                }
            }
        }

        fn with_id(name: &str, data: &[u8], command_id: &str) -> Vec<u8> {
            ld(
                2,
                &[
                    ld(1, name.as_bytes()),
                    ld(2, data),
                    ld(3, command_id.as_bytes()),
                ]
                .concat(),
            )
        }

        fn fingerprint_of(bytes: &[u8]) -> [u8; 16] {
            prepare_batch(bytes, NOW).unwrap().fingerprint
        }

        #[test]
        fn the_fingerprint_is_of_what_the_batch_says_not_its_byte_order() {
            let ids = struct_of("registered", &string_value("a@b.c"));
            let inner = |first: bool| {
                let (a, b) = (
                    struct_of("a", &string_value("1")),
                    struct_of("b", &ld(6, &ld(1, &string_value("2")))),
                );
                ld(5, &if first { [a, b] } else { [b, a] }.concat())
            };
            let data = |first: bool, plan: &str| {
                let entries = [
                    struct_of("customer_ids", &ld(5, &ids)),
                    struct_of(
                        "properties",
                        &ld(
                            5,
                            &[
                                struct_of("plan", &string_value(plan)),
                                struct_of("nested", &inner(first)),
                            ]
                            .concat(),
                        ),
                    ),
                ];
                if first {
                    entries.concat()
                } else {
                    [entries[1].clone(), entries[0].clone()].concat()
                }
            };
            let batch = |first: bool, plan: &str, id: &str| {
                [
                    ld(1, b"default"),
                    with_id("customers", &data(first, plan), id),
                    ld(3, b"r-1"),
                ]
                .concat()
            };
            let one = batch(true, "gold", "c1");
            let other_order = batch(false, "gold", "c1");
            assert_ne!(one, other_order);
            assert_eq!(fingerprint_of(&one), fingerprint_of(&other_order));
            // The request id is the claim's key, not part of the request.
            let same = [
                ld(1, b"default"),
                with_id("customers", &data(true, "gold"), "c1"),
                ld(3, b"r-2"),
            ]
            .concat();
            assert_eq!(fingerprint_of(&same), fingerprint_of(&one));
            // One value, the command id, the token, the order of commands,
            // a string for a list: each is another request.
            let two = |a: &[u8], b: &[u8]| [ld(1, b"default"), a.to_vec(), b.to_vec()].concat();
            let (x, y) = (
                with_id("customers", &data(true, "gold"), "c1"),
                with_id("system/time", &[], ""),
            );
            for other in [
                batch(true, "silver", "c1"),
                batch(true, "gold", "c2"),
                [ld(1, b"other"), x.clone()].concat(),
                two(&y, &x),
            ] {
                assert_ne!(fingerprint_of(&other), fingerprint_of(&one));
            }
            assert_ne!(fingerprint_of(&two(&x, &y)), fingerprint_of(&two(&y, &x)));
            let list_or_string = |v: &[u8]| {
                let data = [
                    struct_of("customer_ids", &ld(5, &ids)),
                    struct_of("properties", &ld(5, &struct_of("p", v))),
                ]
                .concat();
                fingerprint_of(&[ld(1, b"t"), command_of(&data)].concat())
            };
            assert_ne!(
                list_or_string(&ld(6, &ld(1, &string_value("2")))),
                list_or_string(&string_value("2"))
            );
        }

        fn command_of(data: &[u8]) -> Vec<u8> {
            command("customers", data)
        }

        #[test]
        fn a_command_id_is_at_most_255_characters_without_nul() {
            let data = customer(&[]);
            let at = with_id("customers", &data, &"é".repeat(255));
            let batch = prepare_batch(&at, NOW).unwrap();
            assert!(batch.commands[0].errors.is_empty());
            assert_eq!(batch.commands[0].command_id, Some("é".repeat(255)));
            for (id, message) in [
                (
                    "é".repeat(256),
                    "Field 'command_id' must be at most 255 characters.",
                ),
                (
                    "a\0b".to_owned(),
                    "Field 'command_id' must not contain NUL characters.",
                ),
            ] {
                let bytes = [
                    with_id("customers", &data, &id),
                    command("system/time", &[]),
                ]
                .concat();
                let batch = prepare_batch(&bytes, NOW).unwrap();
                assert_eq!(
                    errors(&batch),
                    [vec![("command_id".to_owned(), message.to_owned())], vec![]]
                );
                // Not carried back in the result.
                assert_eq!(batch.commands[0].command_id, None);
            }
        }

        #[test]
        fn keys_inside_a_property_value_are_names_too() {
            let ok = "é".repeat(255);
            let at = |key: &str| {
                // {"p": [{"q": {<key>: 1}}]}
                let value = ld(
                    6,
                    &ld(
                        1,
                        &ld(
                            5,
                            &struct_of("q", &ld(5, &struct_of(key, &string_value("1")))),
                        ),
                    ),
                );
                only_errors(&command("customers", &customer(&struct_of("p", &value))))
            };
            assert!(at(&ok).is_empty());
            assert_eq!(
                at(&"é".repeat(256)),
                [(
                    "properties.p".to_owned(),
                    "Value of property 'p' has a key of more than 255 characters.".to_owned()
                )]
            );
            assert_eq!(
                at("a\0"),
                [(
                    "properties.p".to_owned(),
                    "Value of property 'p' has a key with a NUL character.".to_owned()
                )]
            );
        }

        fn map_entry(key: &str, value: &str) -> Vec<u8> {
            ld(
                2,
                &[ld(1, key.as_bytes()), ld(2, value.as_bytes())].concat(),
            )
        }

        #[test]
        fn single_commands_decode_from_their_own_requests() {
            let update = [
                ld(1, b"default"),
                map_entry("registered", "a@b.c"),
                ld(3, &struct_of("plan", &string_value("gold"))),
                vec![0x21],
                10.5f64.to_le_bytes().to_vec(),
            ]
            .concat();
            let batch = prepare_single(Single::Customers, &update, NOW).unwrap();
            assert_eq!(batch.project_token, "default");
            let c = &batch.commands[0];
            assert!(c.errors.is_empty(), "{:?}", c.errors);
            assert_eq!(c.name, "customers");
            assert_eq!(c.customer_ids, [("registered".into(), "a@b.c".into())]);
            assert_eq!(
                (c.properties.as_str(), c.time),
                (r#"{"plan":"gold"}"#, Some(10.5))
            );

            let event = [
                ld(1, b"default"),
                map_entry("registered", "a@b.c"),
                ld(3, b"purchase"),
                ld(4, &string_value("1970-01-02T00:00:00Z")),
                ld(5, &struct_of("price", &string_value("1"))),
            ]
            .concat();
            let c = &prepare_single(Single::Event, &event, NOW).unwrap().commands[0];
            assert!(c.errors.is_empty(), "{:?}", c.errors);
            assert_eq!(
                (c.event_type.as_str(), c.time),
                ("purchase", Some(86_400.0))
            );

            // No event type, and properties nested past the limit.
            let event = [
                map_entry("registered", "a"),
                ld(5, &struct_of("p", &nested(5_000, false))),
            ]
            .concat();
            let c = &prepare_single(Single::Event, &event, NOW).unwrap().commands[0];
            let fields: Vec<_> = c.errors.iter().map(|p| p.field.as_str()).collect();
            assert_eq!(fields, ["properties.p", "event_type"]);
            assert!(prepare_single(Single::Customers, &[0x0a, 0x05], NOW).is_err());
        }
    }
}
