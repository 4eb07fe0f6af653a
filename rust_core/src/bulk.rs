//! Bulk-create-events validation (Klaviyo rules), from the serialized
//! `batchgrpc.events.v1.CreateEventBulkCreateJobRequest`: every violation at
//! once, each with the JSON:API pointer upstream would name.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::error::CoreError;
use crate::limits::{
    self, clip, clip_to, longer_than, MAX_CUSTOMER_ID_CHARS, MAX_ECHO_CHARS, MAX_METRIC_NAME_CHARS,
    MAX_NAME_CHARS, MAX_RESOURCE_ID_CHARS,
};
use crate::rules::{is_email, iso_date, parse_timestamp};
use crate::wire::{each_field, each_message, string, Field, Values, Wire};

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

/// What the rules found in a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Validation {
    /// Every violation, in document order; empty when the request is valid.
    pub violations: Vec<Violation>,
    /// The violations fail the request whatever `partial_success` says: a
    /// value nests past what the core's decoder reads ([`crate::wire`]'s 20
    /// levels), so no item of the request may go on to Python's protobuf
    /// decoder, which would fail on it before any rule could speak.
    pub fails_whole: bool,
    /// The request's `request_id` (empty when none).
    pub request_id: String,
    /// The request's `partial_success`.
    pub partial_success: bool,
    /// Per item, its number of events: with the pointers of the violations,
    /// what partial success leaves out.
    pub item_events: Vec<usize>,
}

/// Most properties an event (or a profile) may have.
pub const MAX_PROPERTIES: usize = 400;
/// Longest string value in properties, in bytes.
pub const MAX_STRING_BYTES: usize = 100 * 1024;
/// Deepest nesting of properties, counting the properties object as level 1.
pub const MAX_DEPTH: usize = 10;
/// An event's `unique_id`: the client's own deduplication key, which
/// upstream does not bound; integrators send message ids (a UUID is 36
/// characters), so a name's 255 leaves room.
pub const MAX_UNIQUE_ID_CHARS: usize = MAX_NAME_CHARS;
/// Most addresses one `patch_identifiers` list may name.
const MAX_SECONDARY: usize = 100;
/// Most characters of one client key inside a pointer.
const MAX_KEY_IN_POINTER: usize = 64;
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
    /// `attributes.properties`, when sent.
    properties: Option<Map<String, Value>>,
    /// The profile's other free-form values, by their pointer below the
    /// profile resource: the location's coordinates, `patch_properties`.
    values: Vec<(&'static str, Value)>,
    /// A `location` was sent (perhaps empty).
    location: bool,
}

impl Profile {
    /// Sets an attribute; a field sent twice keeps its last value, as
    /// protobuf does.
    fn set(&mut self, name: &'static str, value: String) {
        match self.attributes.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((name, value)),
        }
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Event {
    kind: String,
    properties: Option<Map<String, Value>>,
    metric_kind: String,
    metric_name: Option<String>,
    metric_service: String,
    time: String,
    value: Option<Value>,
    value_currency: String,
    unique_id: String,
    /// `backfill` as sent (None: not sent, the item's holds).
    backfill: Option<bool>,
}

impl Event {
    /// Upstream's default service of a metric sent through the API.
    const DEFAULT_SERVICE: &'static str = "api";

    /// The metric's service, upstream's default when not sent.
    fn service(&self) -> &str {
        if self.metric_service.is_empty() {
            Self::DEFAULT_SERVICE
        } else {
            &self.metric_service
        }
    }
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

/// The string fields of `Location` by field number (5 and 6, the
/// coordinates, are `Value`s), named by their path below the attributes.
const LOCATION_FIELDS: [&str; 10] = [
    "location/address1",
    "location/address2",
    "location/city",
    "location/country",
    "",
    "",
    "location/region",
    "location/zip",
    "location/timezone",
    "location/ip",
];

/// Klaviyo's profile `image` is a URL: at most 2,048 characters, the
/// longest URL the web reliably carries (the sitemaps protocol's limit,
/// which browsers and CDNs meet). 1,000 would refuse ordinary signed CDN
/// URLs, whose query strings alone often pass 500.
pub const MAX_URL_CHARS: usize = 2_048;

/// The profile's free-text attributes and location fields, and their
/// limits: upstream states none, and API.md gives every string one (a
/// name-like text, 255 characters).
const TEXT_FIELDS: [(&str, usize); 14] = [
    ("first_name", MAX_NAME_CHARS),
    ("last_name", MAX_NAME_CHARS),
    ("organization", MAX_NAME_CHARS),
    ("locale", MAX_NAME_CHARS),
    ("title", MAX_NAME_CHARS),
    ("image", MAX_URL_CHARS),
    ("location/address1", MAX_NAME_CHARS),
    ("location/address2", MAX_NAME_CHARS),
    ("location/city", MAX_NAME_CHARS),
    ("location/country", MAX_NAME_CHARS),
    ("location/region", MAX_NAME_CHARS),
    ("location/zip", MAX_NAME_CHARS),
    ("location/timezone", MAX_NAME_CHARS),
    ("location/ip", MAX_NAME_CHARS),
];

/// The profile identifiers: customer identifier values, at most 1,000
/// characters each.
const IDENTIFIERS: [&str; 5] = [
    "email",
    "phone_number",
    "external_id",
    "anonymous_id",
    "_kx",
];

// The decoders below follow the JSON:API nesting of the proto: a
// relationship wraps its resource in `data` (field 1), a resource has `type`
// (1) and `attributes` (2 or 3), and lists are `data` (1) repeated. Every
// message field is read, and every `Struct` / `Value` through `values`, so
// no part of a request reaches Python's decoder unseen.

fn decode_profile(bytes: &[u8], values: &mut Values) -> Result<Profile, CoreError> {
    let mut profile = Profile::default();
    each_message(bytes, |n, b| {
        match n {
            1 => profile.kind = string(b)?,
            2 => profile.id = string(b)?,
            3 => each_message(b, |n, b| {
                match n {
                    // Fields 1..=11 of ProfileAttributes are its strings.
                    1..=11 => profile.set(PROFILE_FIELDS[(n - 1) as usize], string(b)?),
                    12 => {
                        profile.location = true;
                        each_message(b, |n, b| {
                            let at = match n {
                                5 => "attributes/location/latitude",
                                6 => "attributes/location/longitude",
                                1..=4 | 7..=10 => {
                                    profile.set(LOCATION_FIELDS[(n - 1) as usize], string(b)?);
                                    return Ok(());
                                }
                                _ => return Ok(()),
                            };
                            profile.values.push((at, values.decode_value(b, 1)?));
                            Ok(())
                        })?;
                    }
                    13 => values.merge_struct(
                        b,
                        1,
                        profile.properties.get_or_insert_with(Map::new),
                    )?,
                    _ => {}
                }
                Ok(())
            })?,
            // ProfileMeta { patch_properties { append, unappend, unset },
            // patch_identifiers { append, unappend } }.
            4 => each_message(b, |n, b| {
                if n == 2 {
                    return each_message(b, |n, b| {
                        let at = match n {
                            1 => "meta/patch_identifiers/append",
                            2 => "meta/patch_identifiers/unappend",
                            _ => return Ok(()),
                        };
                        profile
                            .values
                            .push((at, Value::Object(values.decode_struct(b, 1)?)));
                        Ok(())
                    });
                }
                if n != 1 {
                    return Ok(());
                }
                each_message(b, |n, b| {
                    let (at, value) = match n {
                        1 => (
                            "meta/patch_properties/append",
                            Value::Object(values.decode_struct(b, 1)?),
                        ),
                        2 => (
                            "meta/patch_properties/unappend",
                            Value::Object(values.decode_struct(b, 1)?),
                        ),
                        3 => match values.decode_value(b, 1)? {
                            // The SDK's models write every optional member,
                            // a null for one not set: null is "none".
                            Value::Null => return Ok(()),
                            value => ("meta/patch_properties/unset", value),
                        },
                        _ => return Ok(()),
                    };
                    profile.values.push((at, value));
                    Ok(())
                })
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(profile)
}

fn decode_event(bytes: &[u8], values: &mut Values) -> Result<Event, CoreError> {
    let mut event = Event::default();
    each_message(bytes, |n, b| {
        match n {
            1 => event.kind = string(b)?,
            2 => each_field(b, |n, field| {
                match (n, field) {
                    (1, Field::Bytes(b)) => {
                        values.merge_struct(b, 1, event.properties.get_or_insert_with(Map::new))?;
                    }
                    (2, Field::Bytes(b)) => decode_metric(b, &mut event)?,
                    (3, Field::Bytes(b)) => event.time = string(b)?,
                    (4, Field::Bytes(b)) => event.value = Some(values.decode_value(b, 1)?),
                    (5, Field::Bytes(b)) => event.value_currency = string(b)?,
                    (6, Field::Bytes(b)) => event.unique_id = string(b)?,
                    (7, Field::Varint(v)) => event.backfill = Some(v != 0),
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
                        match n {
                            1 => event.metric_name = Some(string(b)?),
                            2 => event.metric_service = string(b)?,
                            _ => {}
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
    /// `backfill` as sent for the item's events.
    backfill: Option<bool>,
}

/// The request's top-level scalars: `request_id` (2), `partial_success` (3).
fn decode_options(bytes: &[u8]) -> Result<(String, bool), CoreError> {
    let (mut request_id, mut partial) = (String::new(), false);
    let mut wire = Wire::new(bytes);
    while let Some((number, field)) = wire.field()? {
        match (number, field) {
            (2, Field::Bytes(b)) => request_id = string(b)?,
            (3, Field::Varint(v)) => partial = v != 0,
            _ => {}
        }
    }
    Ok((request_id, partial))
}

/// The request's document type and items:
/// `data { type, attributes { events-bulk-create { data: [item] } } }`.
fn decode_request(bytes: &[u8], values: &mut Values) -> Result<(String, Vec<Item>), CoreError> {
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
                        items.push(decode_item(item, values)?);
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
fn decode_item(bytes: &[u8], values: &mut Values) -> Result<Item, CoreError> {
    let mut item = Item {
        kind: String::new(),
        profile: None,
        events: Vec::new(),
        backfill: None,
    };
    each_message(bytes, |n, b| match n {
        1 => {
            item.kind = string(b)?;
            Ok(())
        }
        2 => each_field(b, |n, field| match (n, field) {
            (3, Field::Varint(v)) => {
                item.backfill = Some(v != 0);
                Ok(())
            }
            (1 | 2, Field::Bytes(b)) => each_message(b, |m, b| {
                match (n, m) {
                    (1, 1) => item.profile = Some(decode_profile(b, values)?),
                    (2, 1) => item.events.push(decode_event(b, values)?),
                    _ => {}
                }
                Ok(())
            }),
            _ => Ok(()),
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

/// One step of a path below a pointer's base: an object key or a list index.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The JSON:API pointer of `path` below `base` (the document's own part,
/// which names the item, event and field and is never shortened), so that
/// a pointer never echoes more than 256 characters of what the client sent:
/// each key is clipped to 64 characters (the 64th then `…`) before RFC 6901
/// escaping, and when the whole is still longer than 256 characters, the
/// keys nearest the base give way to one `…` segment, keeping as many of
/// the last ones, where the problem is, as fit.
#[cold]
fn pointer(base: &str, path: &[Seg<'_>]) -> String {
    let segments: Vec<String> = path
        .iter()
        .map(|seg| match seg {
            Seg::Key(key) => escape_pointer(&clip_to(key, MAX_KEY_IN_POINTER)),
            Seg::Index(i) => i.to_string(),
        })
        .collect();
    let chars = |s: &str| s.chars().count();
    let whole = chars(base) + segments.iter().map(|s| 1 + chars(s)).sum::<usize>();
    let mut out = base.to_owned();
    if whole <= MAX_ECHO_CHARS {
        for s in &segments {
            out.push('/');
            out.push_str(s);
        }
        return out;
    }
    // Room for the last segments after the base and "/…".
    let mut room = MAX_ECHO_CHARS.saturating_sub(chars(base) + 2);
    let mut keep = 0;
    for s in segments.iter().rev() {
        if 1 + chars(s) > room {
            break;
        }
        room -= 1 + chars(s);
        keep += 1;
    }
    out.push_str("/…");
    for s in &segments[segments.len() - keep..] {
        out.push('/');
        out.push_str(s);
    }
    out
}

/// Checks a free-form value and what it holds: string sizes and nesting.
/// `level` is the JSON level a container here would be at; recursion is
/// bounded by the decoder, which never builds more than 21 levels.
fn walk<'a>(
    value: &'a Value,
    level: usize,
    what: &str,
    base: &str,
    path: &mut Vec<Seg<'a>>,
    out: &mut Vec<Violation>,
) {
    match value {
        Value::Object(_) | Value::Array(_) if level > MAX_DEPTH => out.push(violation(
            &pointer(base, path),
            "NESTING_TOO_DEEP",
            format!("{what} nest deeper than {MAX_DEPTH} levels"),
        )),
        Value::String(s) if s.len() > MAX_STRING_BYTES => out.push(violation(
            &pointer(base, path),
            "STRING_TOO_LONG",
            format!(
                "a string may be at most 100 KB; this one is {} bytes",
                s.len()
            ),
        )),
        Value::Object(map) => {
            for (k, v) in map {
                path.push(Seg::Key(k));
                // A key at any level is a property name too.
                if longer_than(k, MAX_NAME_CHARS) {
                    out.push(violation(
                        &pointer(base, path),
                        "PROPERTY_NAME_TOO_LONG",
                        format!(
                            "a key in {what} may be at most {MAX_NAME_CHARS} characters; this one has {}",
                            k.chars().count()
                        ),
                    ));
                } else if k.contains('\0') {
                    out.push(violation(
                        &pointer(base, path),
                        "INVALID_PROPERTY_NAME",
                        format!("a key in {what} must not contain NUL characters"),
                    ));
                }
                walk(v, level + 1, what, base, path, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                walk(v, level + 1, what, base, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Properties (an event's, a profile's, or the properties a profile's
/// `patch_properties` names): key count, names, string sizes and nesting.
fn check_properties(properties: &Map<String, Value>, base: &str, out: &mut Vec<Violation>) {
    if properties.len() > MAX_PROPERTIES {
        out.push(violation(
            base,
            "TOO_MANY_PROPERTIES",
            format!(
                "properties has {} keys; at most {MAX_PROPERTIES} are allowed",
                properties.len()
            ),
        ));
    }
    let mut path = Vec::new();
    for (k, v) in properties {
        path.push(Seg::Key(k));
        if longer_than(k, MAX_NAME_CHARS) {
            out.push(violation(
                &pointer(base, &path),
                "PROPERTY_NAME_TOO_LONG",
                format!(
                    "a property name may be at most {MAX_NAME_CHARS} characters; this one has {}",
                    k.chars().count()
                ),
            ));
        } else if k.contains('\0') {
            out.push(violation(
                &pointer(base, &path),
                "INVALID_PROPERTY_NAME",
                "a property name must not contain NUL characters".into(),
            ));
        }
        walk(v, 2, "properties", base, &mut path, out);
        path.pop();
    }
}

/// RFC 6901: `~` is `~0`, `/` is `~1`.
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A string field over its limit (`field` is how its pointer ends).
#[cold]
fn too_long(pointer: &str, field: &str, limit: usize, value: &str) -> Violation {
    let name = field.rsplit('/').next().unwrap_or(field);
    violation(
        pointer,
        "STRING_TOO_LONG",
        format!(
            "{name} may be at most {limit} characters; this one has {}",
            value.chars().count()
        ),
    )
}

#[cold]
fn violation(pointer: &str, reason: &'static str, message: String) -> Violation {
    Violation {
        pointer: pointer.to_owned(),
        reason,
        message,
    }
}

/// A profile's identifiers and text attributes, each within its limit.
fn check_lengths(profile: &Profile, profile_base: &str, out: &mut Vec<Violation>) {
    for name in IDENTIFIERS {
        if let Some(value) = profile.attribute(name) {
            if longer_than(value, MAX_CUSTOMER_ID_CHARS) {
                out.push(violation(
                    &format!("{profile_base}/attributes/{name}"),
                    "IDENTIFIER_TOO_LONG",
                    format!(
                        "{name} may be at most {MAX_CUSTOMER_ID_CHARS} characters; this one has {}",
                        value.chars().count()
                    ),
                ));
            } else if value.contains('\0') {
                // Identifiers are stored as they are, and a store's text
                // (PostgreSQL's) cannot hold NUL.
                out.push(violation(
                    &format!("{profile_base}/attributes/{name}"),
                    "INVALID_IDENTIFIER",
                    format!("{name} must not contain NUL characters"),
                ));
            }
        }
    }
    for (name, limit) in TEXT_FIELDS {
        if let Some(value) = profile.attribute(name) {
            if longer_than(value, limit) {
                out.push(too_long(
                    &format!("{profile_base}/attributes/{name}"),
                    name,
                    limit,
                    value,
                ));
            }
        }
    }
}

/// A profile: its type, identifiers, properties and other values.
/// Returns the key that identifies the profile within the request, for
/// repeated `unique_id`s (empty when it has no identifier).
fn check_profile(profile: &Profile, profile_base: &str, out: &mut Vec<Violation>) -> String {
    if profile.kind != "profile" {
        out.push(violation(
            &format!("{profile_base}/type"),
            "INVALID_TYPE",
            format!("type must be \"profile\", not {:?}", clip(&profile.kind)),
        ));
    }
    if longer_than(&profile.id, MAX_RESOURCE_ID_CHARS) {
        out.push(violation(
            &format!("{profile_base}/id"),
            "PROFILE_ID_TOO_LONG",
            format!(
                "a profile id may be at most {MAX_RESOURCE_ID_CHARS} characters; this one has {}",
                profile.id.chars().count()
            ),
        ));
    } else if profile.id.contains('\0') {
        out.push(violation(
            &format!("{profile_base}/id"),
            "INVALID_IDENTIFIER",
            "a profile id must not contain NUL characters".into(),
        ));
    }
    check_lengths(profile, profile_base, out);
    let mut profile_key = String::new();
    if let Some((name, value)) = std::iter::once(("id", profile.id.as_str()))
        .chain(
            IDENTIFIERS
                .iter()
                .filter_map(|n| profile.attribute(n).map(|v| (*n, v))),
        )
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
    if let Some(email) = profile.attribute("email") {
        if !longer_than(email, MAX_CUSTOMER_ID_CHARS) && !is_email(email) {
            out.push(violation(
                &format!("{profile_base}/attributes/email"),
                "INVALID_EMAIL",
                format!("{:?} is not a valid email address", clip(email)),
            ));
        }
    }
    if let Some(phone) = profile.attribute("phone_number") {
        if !longer_than(phone, MAX_CUSTOMER_ID_CHARS) && !is_e164(phone) {
            out.push(violation(
                &format!("{profile_base}/attributes/phone_number"),
                "INVALID_PHONE_NUMBER",
                format!(
                    "{:?} is not an E.164 phone number (+ and 8 to 15 digits)",
                    clip(phone)
                ),
            ));
        }
    }
    if let Some(properties) = &profile.properties {
        check_properties(
            properties,
            &format!("{profile_base}/attributes/properties"),
            out,
        );
    }
    for (at, value) in &profile.values {
        let base = format!("{profile_base}/{at}");
        match value {
            Value::Object(map) if at.starts_with("meta/patch_identifiers/") => {
                check_secondary(map, &base, out);
            }
            // Upstream: a property name or a list of them.
            _ if *at == "meta/patch_properties/unset" && !names_properties(value) => {
                out.push(violation(
                    &base,
                    "INVALID_VALUE",
                    "unset must be a property name or a list of property names".into(),
                ));
            }
            Value::Object(map) if at.starts_with("meta/") => check_properties(map, &base, out),
            _ => walk(value, 1, "values", &base, &mut Vec::new(), out),
        }
    }
    profile_key
}

/// `patch_identifiers.append` or `.unappend`: `email` only (upstream's one
/// kind), a valid address or a list of at most [`MAX_SECONDARY`].
fn check_secondary(map: &Map<String, Value>, base: &str, out: &mut Vec<Violation>) {
    for (kind, value) in map {
        let at = format!(
            "{base}/{}",
            escape_pointer(&clip_to(kind, MAX_KEY_IN_POINTER))
        );
        if kind != "email" {
            out.push(violation(
                &at,
                "UNSUPPORTED_IDENTIFIER",
                format!("only email can be patched, not {:?}", clip(kind)),
            ));
            continue;
        }
        let emails = match value {
            Value::Array(list) if list.len() > MAX_SECONDARY => {
                out.push(violation(
                    &at,
                    "TOO_MANY_VALUES",
                    format!("at most {MAX_SECONDARY} addresses; this has {}", list.len()),
                ));
                continue;
            }
            Value::Array(list) => list.iter().collect::<Vec<_>>(),
            one => vec![one],
        };
        for email in emails {
            match email.as_str() {
                Some(e) if !longer_than(e, MAX_CUSTOMER_ID_CHARS) && is_email(e) => {}
                Some(e) => out.push(violation(
                    &at,
                    "INVALID_EMAIL",
                    format!("{:?} is not a valid email address", clip(e)),
                )),
                None => out.push(violation(
                    &at,
                    "INVALID_VALUE",
                    "email must be an address or a list of addresses".into(),
                )),
            }
        }
    }
}

/// The secondary addresses one `patch_identifiers` list names (validated).
fn secondary(profile: &Profile, at: &str) -> Vec<Value> {
    let mut emails = Vec::new();
    for (name, value) in &profile.values {
        if *name != at {
            continue;
        }
        match value.get("email") {
            Some(Value::Array(list)) => emails.extend(list.iter().cloned()),
            Some(one @ Value::String(_)) => emails.push(one.clone()),
            _ => {}
        }
    }
    emails
}

/// A string, or a list of strings: what `patch_properties.unset` names.
fn names_properties(value: &Value) -> bool {
    match value {
        Value::String(_) => true,
        Value::Array(names) => names.iter().all(Value::is_string),
        _ => false,
    }
}

/// Validates a serialized bulk-create request against Klaviyo's rules; `now`
/// is Unix seconds, `earliest` the earliest event time the request's
/// revision takes (a January 1st: upstream's rule is "after the year N").
/// Returns every violation (none when valid), and whether they fail the
/// request even with `partial_success`.
///
/// A request that passes (or fails by item only) has no `Struct` or
/// `ListValue` deeper than the decoder's 20 levels, so Python's protobuf
/// runtime decodes it: the servicer decodes the bytes only after this.
///
/// # Errors
/// Over 5 MiB or 1,000 events (checked first, the request fails whole), or
/// bytes that are not the request.
#[allow(clippy::too_many_lines)] // the rules, in the order the document nests
pub fn validate_bulk(bytes: &[u8], now: f64, earliest: f64) -> Result<Validation, CoreError> {
    limits::check_bulk_request(bytes.len() as u64, 0)?;
    let mut values = Values::default();
    let (kind, items) = decode_request(bytes, &mut values)?;
    let (request_id, partial_success) = decode_options(bytes)?;
    let events: usize = items.iter().map(|i| i.events.len()).sum();
    limits::check_bulk_request(bytes.len() as u64, events as u64)?;
    let currencies: HashSet<&str> = CURRENCIES.split(' ').collect();
    let mut out = Vec::new();
    if kind != "event-bulk-create-job" {
        out.push(violation(
            "/data/type",
            "INVALID_TYPE",
            format!(
                "type must be \"event-bulk-create-job\", not {:?}",
                clip(&kind)
            ),
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
                format!(
                    "type must be \"event-bulk-create\", not {:?}",
                    clip(&item.kind)
                ),
            ));
        }
        let profile_base = format!("{base}/attributes/profile/data");
        let profile_key = match &item.profile {
            None => {
                out.push(violation(
                    &profile_base,
                    "MISSING_PROFILE",
                    "a profile is required".into(),
                ));
                String::new()
            }
            Some(profile) => check_profile(profile, &profile_base, &mut out),
        };
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
                    format!("type must be \"event\", not {:?}", clip(&event.kind)),
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
                    format!(
                        "type must be \"metric\", not {:?}",
                        clip(&event.metric_kind)
                    ),
                ));
            }
            let name = event.metric_name.as_deref().unwrap_or_default();
            if name.is_empty() {
                out.push(violation(
                    &format!("{metric}/attributes/name"),
                    "MISSING_METRIC_NAME",
                    "the metric name is required".into(),
                ));
            } else if longer_than(name, MAX_METRIC_NAME_CHARS) {
                out.push(violation(
                    &format!("{metric}/attributes/name"),
                    "METRIC_NAME_TOO_LONG",
                    "the metric name must be less than 128 characters".into(),
                ));
            } else if name.contains('\0') {
                out.push(violation(
                    &format!("{metric}/attributes/name"),
                    "INVALID_METRIC_NAME",
                    "the metric name must not contain NUL characters".into(),
                ));
            }
            if longer_than(&event.metric_service, MAX_NAME_CHARS) {
                out.push(too_long(
                    &format!("{metric}/attributes/service"),
                    "service",
                    MAX_NAME_CHARS,
                    &event.metric_service,
                ));
            } else if event.metric_service.contains('\0') {
                out.push(violation(
                    &format!("{metric}/attributes/service"),
                    "INVALID_METRIC_SERVICE",
                    "the service must not contain NUL characters".into(),
                ));
            }
            if !event.time.is_empty() {
                match parse_timestamp(&event.time) {
                    None => out.push(violation(
                        &format!("{e}/attributes/time"),
                        "INVALID_TIME",
                        format!("{:?} is not an ISO-8601 date-time", clip(&event.time)),
                    )),
                    Some(t) if !(earliest..=now + YEAR).contains(&t) => out.push(violation(
                        &format!("{e}/attributes/time"),
                        "TIME_OUT_OF_RANGE",
                        format!(
                            "time must be after {} and at most one year from now",
                            iso_date(earliest)
                        ),
                    )),
                    Some(_) => {}
                }
            }
            match &event.value {
                None | Some(Value::Null | Value::Number(_)) => {}
                Some(other) => {
                    out.push(violation(
                        &format!("{e}/attributes/value"),
                        "INVALID_VALUE",
                        "value must be a number".into(),
                    ));
                    // Deep enough, it also names where the nesting passes the limit.
                    walk(
                        other,
                        1,
                        "values",
                        &format!("{e}/attributes/value"),
                        &mut Vec::new(),
                        &mut out,
                    );
                }
            }
            if !event.value_currency.is_empty()
                && !currencies.contains(event.value_currency.as_str())
            {
                out.push(violation(
                    &format!("{e}/attributes/value_currency"),
                    "INVALID_CURRENCY",
                    format!(
                        "{:?} is not an ISO 4217 currency code",
                        clip(&event.value_currency)
                    ),
                ));
            }
            if longer_than(&event.unique_id, MAX_UNIQUE_ID_CHARS) {
                out.push(too_long(
                    &format!("{e}/attributes/unique_id"),
                    "unique_id",
                    MAX_UNIQUE_ID_CHARS,
                    &event.unique_id,
                ));
            } else if event.unique_id.contains('\0') {
                out.push(violation(
                    &format!("{e}/attributes/unique_id"),
                    "INVALID_UNIQUE_ID",
                    "unique_id must not contain NUL characters".into(),
                ));
            }
            // Repeats: upstream fails the request for a unique_id repeated for
            // one profile and metric. (Without unique_id the time stands in,
            // and those repeats are deduplicated, not refused.)
            if !event.unique_id.is_empty() && !profile_key.is_empty() && !name.is_empty() {
                // The metric is its name and service: one name from two
                // services is two metrics.
                let key = (
                    profile_key.clone(),
                    format!("{name}\0{}", event.service()),
                    event.unique_id.clone(),
                );
                if !seen.insert(key) {
                    out.push(violation(
                        &format!("{e}/attributes/unique_id"),
                        "DUPLICATE_UNIQUE_ID",
                        format!(
                            "unique_id {:?} is repeated for this profile and metric",
                            clip(&event.unique_id)
                        ),
                    ));
                }
            }
        }
    }
    Ok(Validation {
        violations: out,
        fails_whole: values.cut,
        request_id,
        partial_success,
        item_events: items.iter().map(|i| i.events.len()).collect(),
    })
}

/// A bulk request as the store takes it: per item kept, its profile update;
/// per event kept, its row (`ingest::EVENT_FIELDS`).
pub struct BulkRows {
    /// JSON array, per item kept, its profile update (`profiles::Update`):
    /// `{"profile_id", "identifiers" (pairs, in upstream's order),
    /// "attributes", "properties", "append", "unappend", "unset"}`.
    pub profiles: Vec<u8>,
    /// Per item kept, its index in the request.
    pub items: Vec<usize>,
    /// JSON array of the events' rows; an event's `item` counts kept items.
    pub events: Vec<u8>,
    /// Per item kept, its number of events kept.
    pub event_counts: Vec<usize>,
}

/// What the processor stores for a request that `validate_bulk` passed (or
/// failed by item only, under `partial_success`): every item and event not
/// in `rejected` (`(item, None)` for a whole item), `now` standing in for a
/// missing time. Event times are whole seconds, as upstream keeps them.
///
/// # Errors
/// Bytes that are not the request.
///
/// # Panics
/// Never: only JSON values are serialized.
pub fn bulk_rows<S: std::hash::BuildHasher>(
    bytes: &[u8],
    job_id: &str,
    rejected: &HashSet<(usize, Option<usize>), S>,
    now: f64,
) -> Result<BulkRows, CoreError> {
    let mut values = Values::default();
    let (_, items) = decode_request(bytes, &mut values)?;
    let mut profiles = Vec::new();
    let mut events = Vec::with_capacity(bytes.len());
    events.push(b'[');
    let mut event_counts = Vec::new();
    let mut kept_items = Vec::new();
    let empty = Profile::default();
    for (i, item) in items.iter().enumerate() {
        if rejected.contains(&(i, None)) {
            continue;
        }
        let kept = event_counts.len();
        profiles.push(profile_update(item.profile.as_ref().unwrap_or(&empty)));
        kept_items.push(i);
        let mut count = 0;
        for (j, event) in item.events.iter().enumerate() {
            if rejected.contains(&(i, Some(j))) {
                continue;
            }
            count += 1;
            if events.len() > 1 {
                events.push(b',');
            }
            // The core validated the time; one it cannot read is now.
            let time = if event.time.is_empty() {
                now
            } else {
                parse_timestamp(&event.time).unwrap_or(now)
            }
            .trunc();
            // Upstream: without a unique_id, the time to the second stands
            // in, so a profile has at most one such event per metric and second.
            // The service is part of the metric (and so of the event's id);
            // the default's keys are as they were before it counted.
            // The service's length first: a service may hold `:`, and no
            // two (service, unique_id) pairs may make one key.
            let service = match event.service() {
                Event::DEFAULT_SERVICE => String::new(),
                other => format!("s{}:{other}:", other.len()),
            };
            let dedup = if event.unique_id.is_empty() {
                format!("{service}t:{time}")
            } else {
                format!("{service}u:{}", event.unique_id)
            };
            let data = serde_json::to_string(event.properties.as_ref().unwrap_or(&Map::new()))
                .expect("a JSON map serializes");
            let value = match &event.value {
                Some(Value::Number(n)) => n.as_f64(),
                _ => None,
            };
            crate::ingest::write_event(
                &mut events,
                &crate::ingest::NewEvent {
                    item: kept,
                    source: "BULK_CREATE",
                    job_id,
                    row_number: j as u64,
                    event_name: event.metric_name.as_deref().unwrap_or_default(),
                    event_time: time,
                    data: &data,
                    dedup_key: &dedup,
                    value,
                    value_currency: &event.value_currency,
                    unique_id: &event.unique_id,
                    backfill: event.backfill.or(item.backfill).unwrap_or(false),
                    metric_service: event.service(),
                },
            );
        }
        event_counts.push(count);
    }
    events.push(b']');
    Ok(BulkRows {
        profiles: serde_json::to_vec(&profiles).expect("JSON values serialize"),
        items: kept_items,
        events,
        event_counts,
    })
}

/// An item's profile as the planner reads it (`profiles::Update`).
fn profile_update(profile: &Profile) -> Value {
    let mut identifiers = Vec::new();
    for name in IDENTIFIERS {
        if let Some(value) = profile.attribute(name) {
            // `_kx` has no presence: empty is unset.
            if name != "_kx" || !value.is_empty() {
                identifiers.push(Value::from(vec![Value::from(name), Value::from(value)]));
            }
        }
    }
    let mut attributes = Map::new();
    for name in &PROFILE_FIELDS[5..] {
        if let Some(value) = profile.attribute(name) {
            attributes.insert((*name).to_owned(), Value::from(value));
        }
    }
    let mut patch = Map::new();
    if profile.location {
        let mut location = Map::new();
        for name in LOCATION_FIELDS.iter().filter(|n| !n.is_empty()) {
            if let Some(value) = profile.attribute(name) {
                location.insert(name["location/".len()..].to_owned(), Value::from(value));
            }
        }
        for (at, value) in &profile.values {
            if let Some(name) = at.strip_prefix("attributes/location/") {
                location.insert(name.to_owned(), value.clone());
            }
        }
        attributes.insert("location".into(), Value::Object(location));
    }
    for (at, value) in &profile.values {
        if let Some(name) = at.strip_prefix("meta/patch_properties/") {
            patch.insert(name.to_owned(), value.clone());
        }
    }
    let unset = match patch.remove("unset") {
        None => Value::Array(Vec::new()),
        Some(Value::Array(values)) => Value::Array(values),
        Some(other) => Value::Array(vec![other]),
    };
    let object = |name: &str, patch: &mut Map<String, Value>| {
        patch
            .remove(name)
            .unwrap_or_else(|| Value::Object(Map::new()))
    };
    let mut update = Map::new();
    update.insert("profile_id".into(), Value::from(profile.id.as_str()));
    update.insert("identifiers".into(), Value::Array(identifiers));
    update.insert("attributes".into(), Value::Object(attributes));
    update.insert(
        "properties".into(),
        Value::Object(profile.properties.clone().unwrap_or_default()),
    );
    update.insert("append".into(), object("append", &mut patch));
    update.insert("unappend".into(), object("unappend", &mut patch));
    update.insert("unset".into(), unset);
    update.insert(
        "secondary".into(),
        Value::Array(secondary(profile, "meta/patch_identifiers/append")),
    );
    update.insert(
        "unsecondary".into(),
        Value::Array(secondary(profile, "meta/patch_identifiers/unappend")),
    );
    Value::Object(update)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::{deep_list, ld, nested, string_value, struct_of};

    const NOW: f64 = 1_795_000_000.0;
    /// 2000-01-01, the floor of the revisions before 2026-07-15.
    const EARLIEST: f64 = 946_684_800.0;
    const PROPERTIES: &str =
        "/data/attributes/events-bulk-create/data/0/attributes/events/data/0/attributes/properties";
    const PROFILE: &str = "/data/attributes/events-bulk-create/data/0/attributes/profile/data";

    /// A `Struct` of `entries`.
    fn object(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
        entries.iter().flat_map(|(k, v)| struct_of(k, v)).collect()
    }

    fn event(properties: &[u8], metric: &str) -> Vec<u8> {
        let metric = ld(
            1,
            &[ld(1, b"metric"), ld(2, &ld(1, metric.as_bytes()))].concat(),
        );
        let attributes = [ld(1, properties), ld(2, &metric)].concat();
        [ld(1, b"event"), ld(2, &attributes)].concat()
    }

    /// A request of one item: a profile with `profile` attributes (fields
    /// of `ProfileAttributes`, already encoded) and `id`, and its events.
    fn request_with(id: &str, profile: &[u8], events: &[Vec<u8>]) -> Vec<u8> {
        let resource = [ld(1, b"profile"), ld(2, id.as_bytes()), ld(3, profile)].concat();
        let events: Vec<u8> = events.iter().flat_map(|e| ld(1, e)).collect();
        let attributes = [ld(1, &ld(1, &resource)), ld(2, &events)].concat();
        let item = [ld(1, b"event-bulk-create"), ld(2, &attributes)].concat();
        let data = [
            ld(1, b"event-bulk-create-job"),
            ld(2, &ld(1, &ld(1, &item))),
        ]
        .concat();
        ld(1, &data)
    }

    fn email(address: &str) -> Vec<u8> {
        ld(1, address.as_bytes())
    }

    /// One valid event with `properties`, for a profile with an email.
    fn request(properties: &[u8]) -> Vec<u8> {
        request_with("", &email("a@example.com"), &[event(properties, "Viewed")])
    }

    #[test]
    fn validation_reads_the_request_id_partial_success_and_item_sizes() {
        let mut bytes = request(&object(&[("a", string_value("b"))]));
        bytes.extend(ld(2, b"req-1"));
        bytes.extend([3 << 3, 1]);
        let validation = validate_bulk(&bytes, NOW, EARLIEST).unwrap();
        assert_eq!(validation.request_id, "req-1");
        assert!(validation.partial_success);
        assert_eq!(validation.item_events, vec![1]);
    }

    #[test]
    fn rows_keep_what_was_not_rejected_with_upstream_times_and_dedup_keys() {
        let with_time = |time: &str, unique: &str| {
            let mut e = event(&object(&[("sku", string_value("A"))]), "Viewed");
            // The attributes are the event's second field: append to them.
            let mut attributes = Vec::new();
            each_message(&e, |n, b| {
                if n == 2 {
                    attributes = b.to_vec();
                }
                Ok(())
            })
            .unwrap();
            attributes.extend(ld(3, time.as_bytes()));
            attributes.extend(ld(6, unique.as_bytes()));
            e = [ld(1, b"event"), ld(2, &attributes)].concat();
            e
        };
        let profile = [email("a@example.com"), ld(6, b"Ann")].concat();
        let bytes = request_with(
            "",
            &profile,
            &[
                with_time("2026-01-02T03:04:05.9Z", ""),
                with_time("", "u1"),
                with_time("2026-01-02", "u2"),
            ],
        );
        let rejected: HashSet<(usize, Option<usize>)> = [(0, Some(2))].into_iter().collect();
        let rows = bulk_rows(&bytes, "bulk_1", &rejected, 1_800_000_000.7).unwrap();
        assert_eq!(rows.event_counts, vec![2]);
        let events: Value = serde_json::from_slice(&rows.events).unwrap();
        let t = 1_767_323_045.0; // 2026-01-02T03:04:05Z
        assert_eq!(events[0][5].as_f64(), Some(t), "truncated to the second");
        assert_eq!(events[0][7], format!("t:{t}"));
        assert_eq!(
            events[1][5].as_f64(),
            Some(1_800_000_000.0),
            "now, to the second"
        );
        assert_eq!(events[1][7], "u:u1");
        assert_eq!(
            (&events[0][0], &events[0][1], &events[0][2], &events[0][3]),
            (
                &Value::from(0),
                &Value::from("BULK_CREATE"),
                &Value::from("bulk_1"),
                &Value::from(0)
            )
        );
        assert_eq!(events[0][6], "{\"sku\":\"A\"}");
        let profiles: Value = serde_json::from_slice(&rows.profiles).unwrap();
        assert_eq!(
            profiles[0]["identifiers"],
            serde_json::json!([["email", "a@example.com"]])
        );
        assert_eq!(
            profiles[0]["attributes"],
            serde_json::json!({"first_name": "Ann"})
        );
        assert_eq!(profiles[0]["unset"], serde_json::json!([]));
        assert_eq!(rows.items, vec![0]);
        let updates = crate::profiles::parse_updates(&rows.profiles).unwrap();
        assert_eq!(updates.pairs[0], ("email".into(), "a@example.com".into()));
        // A rejected item leaves out its profile and events.
        let whole: HashSet<(usize, Option<usize>)> = [(0, None)].into_iter().collect();
        let none = bulk_rows(&bytes, "bulk_1", &whole, NOW).unwrap();
        assert_eq!((none.events, none.event_counts), (b"[]".to_vec(), vec![]));
        assert!(none.items.is_empty());
    }

    fn found(bytes: &[u8]) -> Vec<(String, &'static str)> {
        validate_bulk(bytes, NOW, EARLIEST)
            .unwrap()
            .violations
            .into_iter()
            .map(|v| (v.pointer, v.reason))
            .collect()
    }

    /// The pointer of the container at `level` of `{"p": {"n": {"n": ...}}}`.
    fn nested_pointer(level: usize) -> String {
        format!("{PROPERTIES}/p{}", "/n".repeat(level - 2))
    }

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
        let validation = validate_bulk(&[], NOW, EARLIEST).unwrap();
        let reasons: Vec<_> = validation.violations.iter().map(|v| v.reason).collect();
        assert_eq!(reasons, ["INVALID_TYPE", "MISSING_ITEMS"]);
        assert!(!validation.fails_whole);
    }

    #[test]
    fn malformed_bytes_are_an_error() {
        assert!(validate_bulk(&[0x0a, 0x10, 0x01], 0.0, EARLIEST).is_err());
    }

    #[test]
    fn a_valid_request_has_no_violations() {
        let validation = validate_bulk(
            &request(&object(&[("a", string_value("b"))])),
            NOW,
            EARLIEST,
        )
        .unwrap();
        assert_eq!(
            validation,
            Validation {
                item_events: vec![1],
                ..Validation::default()
            }
        );
    }

    #[test]
    fn nesting_to_ten_levels_passes_and_eleven_names_the_eleventh() {
        // {"p": <value of n levels>}: the properties object is level 1.
        assert!(found(&request(&struct_of("p", &nested(9, false)))).is_empty());
        assert_eq!(
            found(&request(&struct_of("p", &nested(10, false)))),
            [(nested_pointer(11), "NESTING_TOO_DEEP")]
        );
    }

    #[test]
    fn nesting_past_the_decoder_fails_whole_with_the_same_pointer() {
        for levels in [15, 19, 20, 50, 5_000] {
            let validation = validate_bulk(
                &request(&struct_of("p", &nested(levels, false))),
                NOW,
                EARLIEST,
            )
            .unwrap();
            let got: Vec<_> = validation
                .violations
                .iter()
                .map(|v| (v.pointer.as_str(), v.reason))
                .collect();
            assert_eq!(got, [(nested_pointer(11).as_str(), "NESTING_TOO_DEEP")]);
            // The decoder reads 20 levels: properties (1) and 19 more.
            assert_eq!(validation.fails_whole, levels > 19, "{levels}");
        }
    }

    #[test]
    fn five_megabytes_of_nested_lists_are_refused_without_recursing() {
        let properties = struct_of("p", &deep_list(5 * 1024 * 1024 - 200));
        let bytes = request(&properties);
        assert!(bytes.len() as u64 <= limits::BULK_EVENTS_MAX_REQUEST_BYTES);
        let validation = validate_bulk(&bytes, NOW, EARLIEST).unwrap();
        assert!(validation.fails_whole);
        assert_eq!(validation.violations.len(), 1);
        assert_eq!(validation.violations[0].reason, "NESTING_TOO_DEEP");
        assert_eq!(
            validation.violations[0].pointer,
            format!("{PROPERTIES}/p{}", "/0".repeat(9))
        );
    }

    #[test]
    fn deep_values_anywhere_in_a_profile_are_seen() {
        // A profile's location latitude and patch_properties are Values too.
        let location = ld(12, &ld(5, &nested(30, true)));
        let bytes = request_with(
            "",
            &[email("a@example.com"), location].concat(),
            &[event(&[], "m")],
        );
        let validation = validate_bulk(&bytes, NOW, EARLIEST).unwrap();
        assert!(validation.fails_whole);
        assert_eq!(validation.violations[0].reason, "NESTING_TOO_DEEP");
        assert!(validation.violations[0]
            .pointer
            .starts_with(&format!("{PROFILE}/attributes/location/latitude/0/n/0/n")));
    }

    #[test]
    fn profile_properties_have_the_event_properties_cap() {
        let props = |n: usize| {
            let entries: Vec<(String, Vec<u8>)> = (0..n)
                .map(|i| (format!("k{i}"), string_value("v")))
                .collect();
            let entries: Vec<(&str, Vec<u8>)> = entries
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            object(&entries)
        };
        let profile = |n| [email("a@example.com"), ld(13, &props(n))].concat();
        let at = |n| found(&request_with("", &profile(n), &[event(&[], "m")]));
        assert!(at(400).is_empty());
        assert_eq!(
            at(401),
            [(
                format!("{PROFILE}/attributes/properties"),
                "TOO_MANY_PROPERTIES"
            )]
        );
    }

    #[test]
    fn property_names_at_most_255_characters_and_no_nul() {
        let name = "é".repeat(255);
        assert!(found(&request(&struct_of(&name, &string_value("v")))).is_empty());
        let long = "é".repeat(256);
        let got = found(&request(&struct_of(&long, &string_value("v"))));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, "PROPERTY_NAME_TOO_LONG");
        assert_eq!(got[0].0, format!("{PROPERTIES}/{}…", "é".repeat(63)));
        assert_eq!(
            found(&request(&struct_of("a\0b", &string_value("v")))),
            [(format!("{PROPERTIES}/a\0b"), "INVALID_PROPERTY_NAME")]
        );
    }

    #[test]
    fn identifiers_at_most_1000_characters_profile_ids_64() {
        // An email's own syntax stops it far below 1,000: the limit shows on
        // the others, and an email over it is refused for its length alone.
        let external = ld(3, "x".repeat(1000).as_bytes());
        assert!(found(&request_with("", &external, &[event(&[], "m")])).is_empty());
        let too_long = format!("{}@example.com", "a".repeat(1000));
        let got = found(&request_with("", &email(&too_long), &[event(&[], "m")]));
        assert_eq!(
            got,
            [(format!("{PROFILE}/attributes/email"), "IDENTIFIER_TOO_LONG")]
        );
        let external = ld(3, "x".repeat(1001).as_bytes());
        assert_eq!(
            found(&request_with("", &external, &[event(&[], "m")]))[0].1,
            "IDENTIFIER_TOO_LONG"
        );
        assert!(found(&request_with(&"p".repeat(64), &[], &[event(&[], "m")])).is_empty());
        assert_eq!(
            found(&request_with(&"p".repeat(65), &[], &[event(&[], "m")])),
            [(format!("{PROFILE}/id"), "PROFILE_ID_TOO_LONG")]
        );
    }

    #[test]
    fn metric_names_under_128_characters_and_no_nul() {
        let metric = "/data/attributes/events-bulk-create/data/0/attributes/events/data/0/attributes/metric/data/attributes/name";
        let with = |name: &str| {
            found(&request_with(
                "",
                &email("a@example.com"),
                &[event(&[], name)],
            ))
        };
        assert!(with(&"m".repeat(127)).is_empty());
        assert_eq!(
            with(&"m".repeat(128)),
            [(metric.into(), "METRIC_NAME_TOO_LONG")]
        );
        assert_eq!(with("a\0b"), [(metric.into(), "INVALID_METRIC_NAME")]);
    }

    #[test]
    fn every_profile_string_has_a_limit() {
        let id = email("a@example.com");
        let check = |attributes: &[u8]| {
            found(&request_with(
                "",
                &[id.clone(), attributes.to_vec()].concat(),
                &[event(&[], "m")],
            ))
        };
        // ProfileAttributes fields 6 to 11.
        for (number, name, limit) in [
            (6, "first_name", 255),
            (7, "last_name", 255),
            (8, "organization", 255),
            (9, "locale", 255),
            (10, "title", 255),
            (11, "image", MAX_URL_CHARS),
        ] {
            assert!(check(&ld(number, "é".repeat(limit).as_bytes())).is_empty());
            assert_eq!(
                check(&ld(number, "é".repeat(limit + 1).as_bytes())),
                [(format!("{PROFILE}/attributes/{name}"), "STRING_TOO_LONG")],
                "{name}"
            );
        }
        // Location (ProfileAttributes field 12): its strings.
        for (number, name) in [
            (1, "address1"),
            (2, "address2"),
            (3, "city"),
            (4, "country"),
            (7, "region"),
            (8, "zip"),
            (9, "timezone"),
            (10, "ip"),
        ] {
            let location = |n: usize| ld(12, &ld(number, "é".repeat(n).as_bytes()));
            assert!(check(&location(255)).is_empty());
            assert_eq!(
                check(&location(256)),
                [(
                    format!("{PROFILE}/attributes/location/{name}"),
                    "STRING_TOO_LONG"
                )],
                "{name}"
            );
        }
        let got = validate_bulk(
            &request_with(
                "",
                &[id.clone(), ld(6, "x".repeat(100_000).as_bytes())].concat(),
                &[event(&[], "m")],
            ),
            NOW,
            EARLIEST,
        )
        .unwrap()
        .violations;
        assert_eq!(
            got[0].message,
            "first_name may be at most 255 characters; this one has 100000"
        );
    }

    #[test]
    fn an_events_service_and_unique_id_have_limits() {
        let with = |service: &str, unique_id: &str| {
            let metric = ld(
                1,
                &[
                    ld(1, b"metric"),
                    ld(2, &[ld(1, b"m"), ld(2, service.as_bytes())].concat()),
                ]
                .concat(),
            );
            let attributes = [ld(1, &[]), ld(2, &metric), ld(6, unique_id.as_bytes())].concat();
            let event = [ld(1, b"event"), ld(2, &attributes)].concat();
            found(&request_with("", &email("a@example.com"), &[event]))
        };
        let e = "/data/attributes/events-bulk-create/data/0/attributes/events/data/0/attributes";
        assert!(with(&"é".repeat(255), &"é".repeat(255)).is_empty());
        assert_eq!(
            with(&"é".repeat(256), "u"),
            [(
                format!("{e}/metric/data/attributes/service"),
                "STRING_TOO_LONG"
            )]
        );
        assert_eq!(
            with("api", &"é".repeat(256)),
            [(format!("{e}/unique_id"), "STRING_TOO_LONG")]
        );
    }

    #[test]
    fn keys_at_every_level_are_property_names() {
        let key = |k: &str| {
            // {"p": [{"q": {<k>: "v"}}]}
            let inner = ld(5, &struct_of(k, &string_value("v")));
            let list = ld(6, &ld(1, &ld(5, &struct_of("q", &inner))));
            found(&request(&struct_of("p", &list)))
        };
        assert!(key(&"é".repeat(255)).is_empty());
        let long = "é".repeat(256);
        assert_eq!(
            key(&long),
            [(
                format!("{PROPERTIES}/p/0/q/{}…", "é".repeat(63)),
                "PROPERTY_NAME_TOO_LONG"
            )]
        );
        assert_eq!(
            key("a\0"),
            [(format!("{PROPERTIES}/p/0/q/a\0"), "INVALID_PROPERTY_NAME")]
        );
        // In a profile's properties too.
        let nested = struct_of("p", &ld(5, &struct_of(&long, &string_value("v"))));
        let profile = [email("a@example.com"), ld(13, &nested)].concat();
        let got = found(&request_with("", &profile, &[event(&[], "m")]));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, "PROPERTY_NAME_TOO_LONG");
        assert!(got[0]
            .0
            .starts_with(&format!("{PROFILE}/attributes/properties/p/")));
    }

    #[test]
    fn pointers_and_messages_echo_at_most_256_characters_of_the_client() {
        // A 100 KB key, ten levels of 250-character keys (within the limit,
        // clipped in a pointer), then too deep.
        let mut value = nested(2, false);
        for _ in 0..10 {
            value = ld(5, &struct_of(&"k".repeat(250), &value));
        }
        let huge = "h".repeat(100 * 1024);
        let got = validate_bulk(&request(&struct_of(&huge, &value)), NOW, EARLIEST)
            .unwrap()
            .violations;
        let reasons: Vec<_> = got.iter().map(|v| v.reason).collect();
        assert_eq!(reasons, ["PROPERTY_NAME_TOO_LONG", "NESTING_TOO_DEEP"]);
        for v in &got {
            assert!(v.pointer.starts_with(PROPERTIES), "{}", v.pointer);
            let client = v.pointer.chars().count() - PROPERTIES.chars().count();
            assert!(client <= MAX_ECHO_CHARS, "{client}: {}", v.pointer);
        }
        // The deep one keeps its last segments, where the problem is.
        assert_eq!(
            got[1].pointer,
            format!("{PROPERTIES}/…/{k}/{k}", k = format!("{}…", "k".repeat(63)))
        );
        let bad_email = "x".repeat(5000);
        let got = validate_bulk(
            &request_with("", &email(&bad_email), &[event(&[], "m")]),
            NOW,
            EARLIEST,
        )
        .unwrap()
        .violations;
        assert_eq!(got[0].reason, "IDENTIFIER_TOO_LONG");
        let bad_email = "x".repeat(999);
        let got = validate_bulk(
            &request_with("", &email(&bad_email), &[event(&[], "m")]),
            NOW,
            EARLIEST,
        )
        .unwrap()
        .violations;
        assert_eq!(got[0].reason, "INVALID_EMAIL");
        assert!(got[0].message.matches('x').count() <= MAX_ECHO_CHARS);
    }
}
