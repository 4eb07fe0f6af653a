//! Column rules: which columns a rule picks, what it requires of them, and
//! the typed checks on their values.

use regex::Regex;

use crate::error::{CoreError, ErrorKind};

/// How a rule picks its columns.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The column whose name equals this.
    Full(String),
    /// Every column whose name matches this regular expression.
    Pattern(Regex),
}

impl Matcher {
    /// Whether the rule picks the column `name`.
    #[must_use]
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Full(full) => full == name,
            Self::Pattern(re) => re.is_match(name),
        }
    }

    /// How the rule names its column in messages.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Full(name) => format!("column {name:?}"),
            Self::Pattern(re) => format!("a column matching {:?}", re.as_str()),
        }
    }
}

/// What a rule requires of its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// May be absent or empty.
    Optional,
    /// Must be in the header (else the file fails); may be empty.
    RequiredColumn,
    /// Must be in the header and non-empty in every row.
    RequiredValue,
}

/// The type a non-empty value must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Any text.
    Any,
    /// A base-10 integer that fits 64 bits.
    Integer,
    /// A finite decimal number.
    Number,
    /// `true` or `false`, any case.
    Boolean,
    /// local@domain.
    Email,
    /// RFC 3339 date-time with offset, or a date.
    Timestamp,
}

/// A rule, compiled.
#[derive(Debug, Clone)]
pub struct ColumnRule {
    /// Which columns.
    pub matcher: Matcher,
    /// What is required of them.
    pub policy: Policy,
    /// Put before the matched names in event data.
    pub prefix: String,
    /// The type of non-empty values.
    pub value_type: ValueType,
    /// A regular expression non-empty values must match in full.
    pub pattern: Option<Regex>,
    /// Most characters a value may have; 0 for no limit.
    pub max_length: usize,
    /// The only values allowed; empty for any.
    pub allowed_values: Vec<String>,
}

/// The parts of a rule as a request gives them (names as in the proto).
#[derive(Debug, Clone, Default)]
pub struct RuleSpec {
    /// `FULL_NAME_MATCH` or `PATTERN_NAME_MATCH`.
    pub kind: String,
    /// For `FULL_NAME_MATCH`.
    pub name: String,
    /// For `PATTERN_NAME_MATCH`.
    pub name_pattern: String,
    /// `OPTIONAL`, `REQUIRED_COLUMN`, `REQUIRED_VALUE`, or empty for optional.
    pub validation_policy: String,
    /// Event-data prefix.
    pub prefix: String,
    /// `STRING`, `INTEGER`, `NUMBER`, `BOOLEAN`, `EMAIL`, `TIMESTAMP`, or empty.
    pub value_type: String,
    /// Regular expression for values.
    pub pattern: String,
    /// Most characters; 0 for no limit.
    pub max_length: usize,
    /// Allowed values.
    pub allowed_values: Vec<String>,
}

#[cold]
fn invalid(index: usize, field: &str, message: String) -> CoreError {
    CoreError::new(ErrorKind::InvalidJobSpec {
        field: format!("columns[{index}].{field}"),
        message,
    })
}

impl ColumnRule {
    /// Compiles the `index`-th rule of a request.
    ///
    /// # Errors
    /// An unknown type or policy, a missing name, a bad regular expression.
    pub fn compile(index: usize, spec: &RuleSpec) -> Result<Self, CoreError> {
        let matcher = match spec.kind.as_str() {
            "FULL_NAME_MATCH" => {
                if spec.name.is_empty() || spec.name.len() > 255 {
                    return Err(invalid(
                        index,
                        "name",
                        "FULL_NAME_MATCH needs a name of 1 to 255 characters".into(),
                    ));
                }
                Matcher::Full(spec.name.clone())
            }
            "PATTERN_NAME_MATCH" => {
                if spec.name_pattern.is_empty() {
                    return Err(invalid(
                        index,
                        "name_pattern",
                        "PATTERN_NAME_MATCH needs a name_pattern".into(),
                    ));
                }
                Matcher::Pattern(Regex::new(&spec.name_pattern).map_err(|e| {
                    invalid(
                        index,
                        "name_pattern",
                        format!("invalid regular expression: {e}"),
                    )
                })?)
            }
            other => {
                return Err(invalid(
                    index,
                    "type",
                    format!("type must be FULL_NAME_MATCH or PATTERN_NAME_MATCH, not {other:?}"),
                ))
            }
        };
        let policy = match spec.validation_policy.as_str() {
            "" | "OPTIONAL" | "VALIDATION_POLICY_UNSPECIFIED" => Policy::Optional,
            "REQUIRED_COLUMN" => Policy::RequiredColumn,
            "REQUIRED_VALUE" => Policy::RequiredValue,
            other => {
                return Err(invalid(
                    index,
                    "validation_policy",
                    format!("validation_policy must be OPTIONAL, REQUIRED_COLUMN or REQUIRED_VALUE, not {other:?}"),
                ))
            }
        };
        let value_type = match spec.value_type.as_str() {
            "" | "STRING" | "VALUE_TYPE_UNSPECIFIED" => ValueType::Any,
            "INTEGER" => ValueType::Integer,
            "NUMBER" => ValueType::Number,
            "BOOLEAN" => ValueType::Boolean,
            "EMAIL" => ValueType::Email,
            "TIMESTAMP" => ValueType::Timestamp,
            other => {
                return Err(invalid(
                    index,
                    "value_type",
                    format!("unknown value_type {other:?}"),
                ))
            }
        };
        let pattern = if spec.pattern.is_empty() {
            None
        } else {
            // Anchored: the whole value must match, not a part of it.
            Some(Regex::new(&format!("^(?:{})$", spec.pattern)).map_err(|e| {
                invalid(index, "pattern", format!("invalid regular expression: {e}"))
            })?)
        };
        Ok(Self {
            matcher,
            policy,
            prefix: spec.prefix.clone(),
            value_type,
            pattern,
            max_length: spec.max_length,
            allowed_values: spec.allowed_values.clone(),
        })
    }

    /// Checks a non-empty value; returns the reason and message when it fails.
    #[must_use]
    pub fn check(&self, column: &str, value: &str) -> Option<(&'static str, String)> {
        if self.max_length > 0 && value.chars().count() > self.max_length {
            return Some((
                "VALUE_TOO_LONG",
                format!("{column:?} is longer than {} characters", self.max_length),
            ));
        }
        let ok = match self.value_type {
            ValueType::Any => true,
            ValueType::Integer => is_integer(value),
            ValueType::Number => is_number(value),
            ValueType::Boolean => {
                value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
            }
            ValueType::Email => is_email(value),
            ValueType::Timestamp => is_timestamp(value),
        };
        if !ok {
            let (reason, what) = match self.value_type {
                ValueType::Integer => ("INVALID_INTEGER", "an integer"),
                ValueType::Number => ("INVALID_NUMBER", "a number"),
                ValueType::Boolean => ("INVALID_BOOLEAN", "true or false"),
                ValueType::Email => ("INVALID_EMAIL", "an email address"),
                ValueType::Timestamp => ("INVALID_TIMESTAMP", "an ISO-8601 timestamp"),
                ValueType::Any => unreachable!("any text is valid"),
            };
            return Some((
                reason,
                format!("{column:?} must be {what}, got {:?}", clip(value)),
            ));
        }
        if let Some(pattern) = &self.pattern {
            if !pattern.is_match(value) {
                return Some((
                    "PATTERN_MISMATCH",
                    format!("{column:?} does not match {:?}", pattern.as_str()),
                ));
            }
        }
        if !self.allowed_values.is_empty() && !self.allowed_values.iter().any(|a| a == value) {
            return Some((
                "VALUE_NOT_ALLOWED",
                format!("{column:?} is not one of the allowed values"),
            ));
        }
        None
    }
}

/// The first characters of a value, for messages.
fn clip(value: &str) -> &str {
    match value.char_indices().nth(64) {
        Some((i, _)) => &value[..i],
        None => value,
    }
}

fn is_integer(value: &str) -> bool {
    value.parse::<i64>().is_ok()
}

fn is_number(value: &str) -> bool {
    // Rust's float parser also takes "inf" and "NaN": only decimal notation here.
    let body = value.strip_prefix(['-', '+']).unwrap_or(value);
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && body.as_bytes()[0] != b'e'
        && value.parse::<f64>().is_ok_and(f64::is_finite)
}

/// A pragmatic address check: one `@`, a plausible local part and a dotted
/// domain of letters, digits and hyphens. Full RFC 5322 accepts far more than
/// any mailbox really uses.
#[must_use]
pub fn is_email(value: &str) -> bool {
    let Some(at) = memchr::memchr(b'@', value.as_bytes()) else {
        return false;
    };
    let (local, domain) = (&value.as_bytes()[..at], &value.as_bytes()[at + 1..]);
    if local.is_empty() || local.len() > 64 || domain.len() > 253 {
        return false;
    }
    // Byte classes by table (this runs on every row of a job with an email
    // rule); anything non-ASCII (part of a UTF-8 letter) is accepted as
    // internationalised text. Dots are checked separately: not first, not
    // last, never two in a row.
    let mut previous = b'.';
    for &b in local {
        if !EMAIL_LOCAL[usize::from(b)] || (b == b'.' && previous == b'.') {
            return false;
        }
        previous = b;
    }
    if previous == b'.' {
        return false;
    }
    let mut labels = 0;
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
            || !label.iter().all(|&b| EMAIL_DOMAIN[usize::from(b)])
        {
            return false;
        }
        labels += 1;
    }
    labels >= 2
}

/// Bytes allowed in an address's local part (dots are placed separately).
static EMAIL_LOCAL: [bool; 256] = byte_class(b"!#$%&'*+/=?^_`{|}~.-");
/// Bytes allowed in a domain label (hyphens are placed separately).
static EMAIL_DOMAIN: [bool; 256] = byte_class(b"-");

/// ASCII letters and digits, `extra`, and every non-ASCII byte.
const fn byte_class(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        #[allow(clippy::cast_possible_truncation)] // b < 256
        let c = b as u8;
        table[b] = c >= 0x80 || c.is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

/// Seconds since the Unix epoch of an RFC 3339 / ISO-8601 date-time
/// (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, space allowed for `T`, offset
/// optional meaning UTC) or a date (`YYYY-MM-DD`, midnight UTC).
#[must_use]
pub fn parse_timestamp(value: &str) -> Option<f64> {
    let b = value.as_bytes();
    let num = |s: &[u8]| -> Option<i64> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(s).ok()?.parse().ok()
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut seconds = days_from_civil(year, month, day) as f64 * 86_400.0;
    if b.len() == 10 {
        return Some(seconds);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    seconds += (hour * 3600 + minute * 60 + second) as f64;
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let digits = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        seconds += format!("0.{}", std::str::from_utf8(&frac[..digits]).ok()?)
            .parse::<f64>()
            .ok()?;
        rest = &frac[digits..];
    }
    match rest {
        [] | [b'Z' | b'z'] => Some(seconds),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (num(&[*h1, *h2])?, num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = (h * 3600 + m * 60) as f64;
            Some(if *sign == b'+' {
                seconds - offset
            } else {
                seconds + offset
            })
        }
        _ => None,
    }
}

fn is_timestamp(value: &str) -> bool {
    parse_timestamp(value).is_some()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(value_type: &str, pattern: &str, max_length: usize, allowed: &[&str]) -> ColumnRule {
        ColumnRule::compile(
            0,
            &RuleSpec {
                kind: "FULL_NAME_MATCH".into(),
                name: "c".into(),
                value_type: value_type.into(),
                pattern: pattern.into(),
                max_length,
                allowed_values: allowed.iter().map(ToString::to_string).collect(),
                ..RuleSpec::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn value_checks() {
        let cases = [
            ("INTEGER", "42", None),
            ("INTEGER", "-7", None),
            ("INTEGER", "4.2", Some("INVALID_INTEGER")),
            ("INTEGER", "99999999999999999999", Some("INVALID_INTEGER")),
            ("NUMBER", "4.25", None),
            ("NUMBER", "-1e3", None),
            ("NUMBER", "NaN", Some("INVALID_NUMBER")),
            ("NUMBER", "inf", Some("INVALID_NUMBER")),
            ("NUMBER", "1e999", Some("INVALID_NUMBER")),
            ("NUMBER", "12abc", Some("INVALID_NUMBER")),
            ("BOOLEAN", "TRUE", None),
            ("BOOLEAN", "yes", Some("INVALID_BOOLEAN")),
            ("EMAIL", "ann@example.com", None),
            ("EMAIL", "ann.lee+tag@mail.example.co.uk", None),
            ("EMAIL", "ann@localhost", Some("INVALID_EMAIL")),
            ("EMAIL", "ann@@example.com", Some("INVALID_EMAIL")),
            ("EMAIL", "ann example@x.com", Some("INVALID_EMAIL")),
            ("EMAIL", "@example.com", Some("INVALID_EMAIL")),
            ("TIMESTAMP", "2026-11-23T09:00:00Z", None),
            ("TIMESTAMP", "2026-11-23T09:00:00.123+01:00", None),
            ("TIMESTAMP", "2026-11-23", None),
            ("TIMESTAMP", "2026-02-30", Some("INVALID_TIMESTAMP")),
            ("TIMESTAMP", "23/11/2026", Some("INVALID_TIMESTAMP")),
        ];
        for (value_type, value, expected) in cases {
            assert_eq!(
                rule(value_type, "", 0, &[])
                    .check("c", value)
                    .map(|(r, _)| r),
                expected,
                "{value_type} {value}"
            );
        }
    }

    #[test]
    fn pattern_length_and_allowed_values() {
        assert_eq!(rule("", "[A-Z]{2}", 0, &[]).check("c", "CZ"), None);
        assert_eq!(
            rule("", "[A-Z]{2}", 0, &[]).check("c", "CZE").unwrap().0,
            "PATTERN_MISMATCH"
        );
        assert_eq!(rule("", "", 3, &[]).check("c", "čšž").map(|(r, _)| r), None);
        assert_eq!(
            rule("", "", 3, &[]).check("c", "abcd").unwrap().0,
            "VALUE_TOO_LONG"
        );
        assert_eq!(
            rule("", "", 0, &["a", "b"]).check("c", "c").unwrap().0,
            "VALUE_NOT_ALLOWED"
        );
    }

    #[test]
    fn bad_rules_name_their_field() {
        let err = ColumnRule::compile(
            3,
            &RuleSpec {
                kind: "PATTERN_NAME_MATCH".into(),
                name_pattern: "(".into(),
                ..RuleSpec::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.field(), "columns[3].name_pattern");
        let err = ColumnRule::compile(
            0,
            &RuleSpec {
                kind: "FUZZY".into(),
                ..RuleSpec::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.field(), "columns[0].type");
        let err = ColumnRule::compile(
            0,
            &RuleSpec {
                kind: "FULL_NAME_MATCH".into(),
                ..RuleSpec::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.field(), "columns[0].name");
    }

    #[test]
    fn timestamps_convert_to_epoch_seconds() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_timestamp("2000-01-01"), Some(946_684_800.0));
        assert_eq!(
            parse_timestamp("2000-01-01T01:00:00+01:00"),
            Some(946_684_800.0)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T12:00:00"),
            Some(1_709_208_000.0)
        );
    }
}
