//! Bulk-create-events validation (Klaviyo rules), from the serialized
//! `batchgrpc.events.v1.CreateEventBulkCreateJobRequest`: every violation at
//! once, each with the JSON:API pointer upstream would name.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::error::CoreError;
use crate::limits;
use crate::rules::{is_email, parse_timestamp};
use crate::wire::{decode_struct, decode_value, each_message, string};

/// One violation: where, a stable reason, and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON:API pointer, e.g. `/data/attributes/events-bulk-create/data/0/...`.
    pub pointer: String,
    /// Stable `UPPER_SNAKE` reason.
    pub reason: &'static str,
    /// For a person.
    pub message: String,
}

/// Most properties an event may have.
pub const MAX_PROPERTIES: usize = 400;
/// Longest string value in properties, in bytes.
pub const MAX_STRING_BYTES: usize = 100 * 1024;
/// Deepest nesting of properties.
pub const MAX_DEPTH: usize = 10;
/// 2000-01-01T00:00:00Z: the earliest event time upstream takes.
const EARLIEST: f64 = 946_684_800.0;
const YEAR: f64 = 366.0 * 86_400.0;

/// ISO 4217 alphabetic codes in use.
const CURRENCIES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV \
BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN \
ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS \
KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR \
MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP \
SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED \
VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL";

#[derive(Default)]
struct Profile {
    kind: String,
    id: String,
    /// (field name, value) of the identifiers and attributes present.
    attributes: Vec<(&'static str, String)>,
}

#[derive(Default)]
struct Event {
    kind: String,
    properties: Option<Map<String, Value>>,
    metric_kind: String,
    metric_name: Option<String>,
    time: String,
    value: Option<Value>,
    value_currency: String,
    unique_id: String,
}

const PROFILE_FIELDS: [&str; 11] = [
    "email",
    "phone_number",
    "external_id",
    "anonymous_id",
    "_kx",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
];

// The decoders below follow the JSON:API nesting of the proto: a
// relationship wraps its resource in `data` (field 1), a resource has `type`
// (1) and `attributes` (2 or 3), and lists are `data` (1) repeated.

fn decode_profile(bytes: &[u8]) -> Result<Profile, CoreError> {
    let mut profile = Profile::default();
    each_message(bytes, |n, b| {
        match n {
            1 => profile.kind = string(b)?,
            2 => profile.id = string(b)?,
            3 => each_message(b, |n, b| {
                // Fields 1..=11 of ProfileAttributes are its strings.
                if let Some(name) = usize::try_from(n)
                    .ok()
                    .and_then(|n| PROFILE_FIELDS.get(n.wrapping_sub(1)))
                {
                    profile.attributes.push((name, string(b)?));
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(profile)
}

fn decode_event(bytes: &[u8]) -> Result<Event, CoreError> {
    let mut event = Event::default();
    each_message(bytes, |n, b| {
        match n {
            1 => event.kind = string(b)?,
            2 => each_message(b, |n, b| {
                match n {
                    1 => event.properties = Some(decode_struct(b, 0)?),
                    2 => decode_metric(b, &mut event)?,
                    3 => event.time = string(b)?,
                    4 => event.value = Some(decode_value(b, 0)?),
                    5 => event.value_currency = string(b)?,
                    6 => event.unique_id = string(b)?,
                    _ => {}
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(event)
}

/// `MetricRelationship { data: MetricResource { type, attributes { name } } }`.
fn decode_metric(bytes: &[u8], event: &mut Event) -> Result<(), CoreError> {
    each_message(bytes, |n, resource| {
        if n != 1 {
            return Ok(());
        }
        each_message(resource, |n, b| {
            match n {
                1 => event.metric_kind = string(b)?,
                2 => {
                    event.metric_name.get_or_insert_with(String::new);
                    each_message(b, |n, b| {
                        if n == 1 {
                            event.metric_name = Some(string(b)?);
                        }
                        Ok(())
                    })?;
                }
                _ => {}
            }
            Ok(())
        })
    })
}

/// One `event-bulk-create` entry: its profile and events.
struct Item {
    kind: String,
    profile: Option<Profile>,
    events: Vec<Event>,
}

/// The request's document type and items:
/// `data { type, attributes { events-bulk-create { data: [item] } } }`.
fn decode_request(bytes: &[u8]) -> Result<(String, Vec<Item>), CoreError> {
    let mut kind = String::new();
    let mut items = Vec::new();
    each_message(bytes, |n, data| {
        if n != 1 {
            return Ok(());
        }
        each_message(data, |n, b| match n {
            1 => {
                kind = string(b)?;
                Ok(())
            }
            2 => each_message(b, |n, list| {
                if n != 1 {
                    return Ok(());
                }
                each_message(list, |n, item| {
                    if n == 1 {
                        items.push(decode_item(item)?);
                    }
                    Ok(())
                })
            }),
            _ => Ok(()),
        })
    })?;
    Ok((kind, items))
}

/// `{ type, attributes { profile { data }, events { data: [event] } } }`.
fn decode_item(bytes: &[u8]) -> Result<Item, CoreError> {
    let mut item = Item {
        kind: String::new(),
        profile: None,
        events: Vec::new(),
    };
    each_message(bytes, |n, b| match n {
        1 => {
            item.kind = string(b)?;
            Ok(())
        }
        2 => each_message(b, |n, b| {
            each_message(b, |m, b| {
                match (n, m) {
                    (1, 1) => item.profile = Some(decode_profile(b)?),
                    (2, 1) => item.events.push(decode_event(b)?),
                    _ => {}
                }
                Ok(())
            })
        }),
        _ => Ok(()),
    })?;
    Ok(item)
}

/// E.164: `+`, then 8 to 15 digits, the first not 0.
#[must_use]
pub fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Checks a property value and what it holds.
fn walk(value: &Value, depth: usize, path: &str, out: &mut Vec<Violation>) {
    if depth > MAX_DEPTH && matches!(value, Value::Object(_) | Value::Array(_)) {
        out.push(violation(
            path,
            "NESTING_TOO_DEEP",
            format!("properties nest deeper than {MAX_DEPTH} levels"),
        ));
        return;
    }
    match value {
        Value::String(s) if s.len() > MAX_STRING_BYTES => out.push(violation(
            path,
            "STRING_TOO_LONG",
            format!(
                "a string may be at most 100 KB; this one is {} bytes",
                s.len()
            ),
        )),
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, depth + 1, &format!("{path}/{}", escape_pointer(k)), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, depth + 1, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Properties: key count, string sizes and nesting.
fn check_properties(properties: &Map<String, Value>, pointer: &str, out: &mut Vec<Violation>) {
    if properties.len() > MAX_PROPERTIES {
        out.push(violation(
            pointer,
            "TOO_MANY_PROPERTIES",
            format!(
                "properties has {} keys; at most {MAX_PROPERTIES} are allowed",
                properties.len()
            ),
        ));
    }
    for (k, v) in properties {
        walk(v, 2, &format!("{pointer}/{}", escape_pointer(k)), out);
    }
}

/// RFC 6901: `~` is `~0`, `/` is `~1`.
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cold]
fn violation(pointer: &str, reason: &'static str, message: String) -> Violation {
    Violation {
        pointer: pointer.to_owned(),
        reason,
        message,
    }
}

/// Validates a serialized bulk-create request against Klaviyo's rules; `now`
/// is Unix seconds. Returns every violation (empty when valid).
///
/// # Errors
/// Over 5 MiB or 1,000 events (checked first, the request fails whole), or
/// bytes that are not the request.
#[allow(clippy::too_many_lines)] // the rules, in the order the document nests
pub fn validate_bulk(bytes: &[u8], now: f64) -> Result<Vec<Violation>, CoreError> {
    limits::check_bulk_request(bytes.len() as u64, 0)?;
    let (kind, items) = decode_request(bytes)?;
    let events: usize = items.iter().map(|i| i.events.len()).sum();
    limits::check_bulk_request(bytes.len() as u64, events as u64)?;
    let currencies: HashSet<&str> = CURRENCIES.split(' ').collect();
    let mut out = Vec::new();
    if kind != "event-bulk-create-job" {
        out.push(violation(
            "/data/type",
            "INVALID_TYPE",
            format!("type must be \"event-bulk-create-job\", not {kind:?}"),
        ));
    }
    if items.is_empty() {
        out.push(violation(
            "/data/attributes/events-bulk-create/data",
            "MISSING_ITEMS",
            "at least one event-bulk-create item is required".into(),
        ));
    }
    // (profile key, metric, unique_id) seen so far, for repeats.
    let mut seen: HashSet<(String, String, String)> = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let base = format!("/data/attributes/events-bulk-create/data/{i}");
        if item.kind != "event-bulk-create" {
            out.push(violation(
                &format!("{base}/type"),
                "INVALID_TYPE",
                format!("type must be \"event-bulk-create\", not {:?}", item.kind),
            ));
        }
        let profile_base = format!("{base}/attributes/profile/data");
        let mut profile_key = String::new();
        match &item.profile {
            None => out.push(violation(
                &profile_base,
                "MISSING_PROFILE",
                "a profile is required".into(),
            )),
            Some(profile) => {
                if profile.kind != "profile" {
                    out.push(violation(
                        &format!("{profile_base}/type"),
                        "INVALID_TYPE",
                        format!("type must be \"profile\", not {:?}", profile.kind),
                    ));
                }
                let attr = |name: &str| {
                    profile
                        .attributes
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, v)| v.as_str())
                };
                let identifiers = [
                    "email",
                    "phone_number",
                    "external_id",
                    "anonymous_id",
                    "_kx",
                ];
                if let Some((name, value)) = std::iter::once(("id", profile.id.as_str()))
                    .chain(identifiers.iter().filter_map(|n| attr(n).map(|v| (*n, v))))
                    .find(|(_, v)| !v.is_empty())
                {
                    profile_key = format!(
                        "{name}:{}",
                        if name == "email" {
                            value.to_lowercase()
                        } else {
                            value.to_owned()
                        }
                    );
                } else {
                    out.push(violation(
                        &format!("{profile_base}/attributes"),
                        "MISSING_PROFILE_IDENTIFIER",
                        "a profile needs at least one identifier: id, email, phone_number, external_id, anonymous_id or _kx".into(),
                    ));
                }
                if let Some(email) = attr("email") {
                    if !is_email(email) {
                        out.push(violation(
                            &format!("{profile_base}/attributes/email"),
                            "INVALID_EMAIL",
                            format!("{email:?} is not a valid email address"),
                        ));
                    }
                }
                if let Some(phone) = attr("phone_number") {
                    if !is_e164(phone) {
                        out.push(violation(
                            &format!("{profile_base}/attributes/phone_number"),
                            "INVALID_PHONE_NUMBER",
                            format!(
                                "{phone:?} is not an E.164 phone number (+ and 8 to 15 digits)"
                            ),
                        ));
                    }
                }
            }
        }
        if item.events.is_empty() {
            out.push(violation(
                &format!("{base}/attributes/events/data"),
                "MISSING_EVENTS",
                "at least one event is required".into(),
            ));
        }
        for (j, event) in item.events.iter().enumerate() {
            let e = format!("{base}/attributes/events/data/{j}");
            if event.kind != "event" {
                out.push(violation(
                    &format!("{e}/type"),
                    "INVALID_TYPE",
                    format!("type must be \"event\", not {:?}", event.kind),
                ));
            }
            match &event.properties {
                None => out.push(violation(
                    &format!("{e}/attributes/properties"),
                    "MISSING_PROPERTIES",
                    "properties is required (it may be empty)".into(),
                )),
                Some(p) => check_properties(p, &format!("{e}/attributes/properties"), &mut out),
            }
            let metric = format!("{e}/attributes/metric/data");
            if event.metric_kind != "metric" {
                out.push(violation(
                    &format!("{metric}/type"),
                    "INVALID_TYPE",
                    format!("type must be \"metric\", not {:?}", event.metric_kind),
                ));
            }
            let name = event.metric_name.as_deref().unwrap_or_default();
            if name.is_empty() {
                out.push(violation(
                    &format!("{metric}/attributes/name"),
                    "MISSING_METRIC_NAME",
                    "the metric name is required".into(),
                ));
            } else if name.chars().count() >= 128 {
                out.push(violation(
                    &format!("{metric}/attributes/name"),
                    "METRIC_NAME_TOO_LONG",
                    "the metric name must be less than 128 characters".into(),
                ));
            }
            if !event.time.is_empty() {
                match parse_timestamp(&event.time) {
                    None => out.push(violation(
                        &format!("{e}/attributes/time"),
                        "INVALID_TIME",
                        format!("{:?} is not an ISO-8601 date-time", event.time),
                    )),
                    Some(t) if !(EARLIEST..=now + YEAR).contains(&t) => out.push(violation(
                        &format!("{e}/attributes/time"),
                        "TIME_OUT_OF_RANGE",
                        "time must be after 2000-01-01 and at most one year from now".into(),
                    )),
                    Some(_) => {}
                }
            }
            match &event.value {
                None | Some(Value::Null | Value::Number(_)) => {}
                Some(_) => out.push(violation(
                    &format!("{e}/attributes/value"),
                    "INVALID_VALUE",
                    "value must be a number".into(),
                )),
            }
            if !event.value_currency.is_empty()
                && !currencies.contains(event.value_currency.as_str())
            {
                out.push(violation(
                    &format!("{e}/attributes/value_currency"),
                    "INVALID_CURRENCY",
                    format!(
                        "{:?} is not an ISO 4217 currency code",
                        event.value_currency
                    ),
                ));
            }
            // Repeats: upstream fails the request for a unique_id repeated for
            // one profile and metric. (Without unique_id the time stands in,
            // and those repeats are deduplicated, not refused.)
            if !event.unique_id.is_empty() && !profile_key.is_empty() && !name.is_empty() {
                let key = (
                    profile_key.clone(),
                    name.to_owned(),
                    event.unique_id.clone(),
                );
                if !seen.insert(key) {
                    out.push(violation(
                        &format!("{e}/attributes/unique_id"),
                        "DUPLICATE_UNIQUE_ID",
                        format!(
                            "unique_id {:?} is repeated for this profile and metric",
                            event.unique_id
                        ),
                    ));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164() {
        for ok in ["+15005550006", "+420123456789", "+12345678"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "15005550006",
            "+1 500 555 0006",
            "+0123456789",
            "+1234567",
            "+1234567890123456",
            "",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn pointer_escaping() {
        assert_eq!(escape_pointer("a/b~c"), "a~1b~0c");
    }

    #[test]
    fn an_empty_request_misses_its_type_and_items() {
        let violations = validate_bulk(&[], 1_795_000_000.0).unwrap();
        let reasons: Vec<_> = violations.iter().map(|v| v.reason).collect();
        assert_eq!(reasons, ["INVALID_TYPE", "MISSING_ITEMS"]);
    }

    #[test]
    fn malformed_bytes_are_an_error() {
        assert!(validate_bulk(&[0x0a, 0x10, 0x01], 0.0).is_err());
    }
}
