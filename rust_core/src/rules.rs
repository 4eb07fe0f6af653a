//! Column rules: which columns a rule picks, what it requires of them, and
//! the typed checks on their values.
//!
//! Patterns are client text compiled into automata, so each is held to a
//! compiled size and a job's patterns together to a budget: a request of a
//! few kilobytes (bounded repetitions of a Unicode class, say) must not
//! compile for seconds or into gigabytes.

use regex_automata::meta::{self, Regex};
use regex_automata::util::syntax;

use crate::error::{CoreError, ErrorKind};
use crate::limits::{clip_to, longer_than, MAX_ECHO_CHARS, MAX_NAME_CHARS};

/// Most characters a `name_pattern` or value `pattern` may have (API.md).
pub const MAX_PATTERN_CHARS: usize = 1_000;
/// Most column rules a job may have (API.md; the server checks it first).
pub const MAX_RULES: usize = 100;
/// Most bytes one pattern's compiled automata may take (its forward and
/// reverse NFAs and whatever else the regex engine builds from them; the
/// regex crate's `size_limit` bounds each NFA as it is built, so a pattern
/// far over the cap stops compiling early). Measured: `^[A-Z]{2}\d{6}$`
/// takes 32 KB, `\d{4}-\d{2}-\d{2}` 59 KB (Unicode `\d` is large),
/// `[a-z0-9._%+-]+@[a-z0-9.-]+` 2 KB, `(?i)utm_.*` 6 KB, `^.{1,255}$`
/// 270 KB, `\w{1,10}` 562 KB; `\w{1,20}` (1.1 MB) is over, and
/// `\w{1,200}\w{1,200}` would be 22 MB. Compiling runs at about 7 ms per
/// MB.
pub const PATTERN_SIZE_LIMIT: usize = 1024 * 1024;
/// Most bytes each lazy DFA of a pattern may cache (there are two per
/// search thread, forward and reverse): the regex crate's `dfa_size_limit`.
/// Enough for the lazy DFA of an NFA of about 1,800 states; a larger
/// pattern searches with the engine's other matchers, slower but in the
/// same memory.
pub const PATTERN_DFA_SIZE_LIMIT: usize = 64 * 1024;
/// Most bytes a job's patterns may take together, as compiled (a job that
/// has to wait for a runner slot drops them and compiles again when it
/// starts); a hundred rules of two ordinary patterns each stay well under
/// it (200 date patterns of Unicode digits: 12 MB).
pub const JOB_PATTERN_BUDGET: usize = 16 * 1024 * 1024;
/// Most characters of a value or pattern a row's message shows: there is one
/// message per bad value, so less than an error's own echo.
const ROW_ECHO_CHARS: usize = 64;

/// A compiled pattern and the text it was compiled from.
#[derive(Debug, Clone)]
pub struct Pattern {
    regex: Regex,
    source: String,
}

impl Pattern {
    /// Whether the pattern matches somewhere in `text` (value patterns are
    /// compiled anchored at both ends).
    #[must_use]
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// The pattern as the request gave it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Heap bytes of the compiled automata; caches not included.
    #[must_use]
    pub fn memory_usage(&self) -> usize {
        self.regex.memory_usage()
    }
}

/// What a job's patterns may still take, in bytes of compiled automata.
#[derive(Debug, Clone, Copy)]
pub struct PatternBudget {
    remaining: usize,
}

impl Default for PatternBudget {
    fn default() -> Self {
        Self::new(JOB_PATTERN_BUDGET)
    }
}

impl PatternBudget {
    /// A budget of `bytes`.
    #[must_use]
    pub fn new(bytes: usize) -> Self {
        Self { remaining: bytes }
    }

    /// Bytes left.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Compiles `source` for `columns[index].field`, whole-value anchored
    /// when `anchored`, and charges it to the budget.
    ///
    /// # Errors
    /// A pattern over `MAX_PATTERN_CHARS`, with bad syntax, compiling to more
    /// than `PATTERN_SIZE_LIMIT`, or past what the job has left.
    pub fn compile(
        &mut self,
        index: usize,
        field: &str,
        source: &str,
        anchored: bool,
    ) -> Result<Pattern, CoreError> {
        let chars = source.chars().count();
        if chars > MAX_PATTERN_CHARS {
            return Err(invalid(
                index,
                field,
                format!(
                    "the pattern has {chars} characters, at most {MAX_PATTERN_CHARS} are allowed"
                ),
            ));
        }
        // No NFA may grow past what is left: a pattern over the job's budget
        // stops compiling as early as one over its own cap.
        let limit = PATTERN_SIZE_LIMIT.min(self.remaining);
        let config = meta::Config::new()
            // As the regex crate's `Regex` builds its meta regex.
            .match_kind(regex_automata::MatchKind::LeftmostFirst)
            .utf8_empty(true)
            .nfa_size_limit(Some(limit))
            .onepass_size_limit(Some(limit))
            .hybrid_cache_capacity(PATTERN_DFA_SIZE_LIMIT)
            // Rules only ask whether a text matches: no capture groups.
            .which_captures(regex_automata::nfa::thompson::WhichCaptures::None);
        let syntax = syntax::Config::new().utf8(true);
        let text = if anchored {
            // Parsed alone first, so that text such as `a)|(b` cannot close
            // the group and leave the anchors out.
            syntax::parse_with(source, &syntax)
                .map_err(|e| invalid(index, field, syntax_message(&e, source)))?;
            format!("^(?:{source})$")
        } else {
            source.to_owned()
        };
        let regex = meta::Builder::new()
            .configure(config)
            .syntax(syntax)
            .build(&text)
            .map_err(|e| {
                if let Some(e) = e.syntax_error() {
                    invalid(index, field, syntax_message(e, source))
                } else if e.size_limit().is_none() {
                    invalid(index, field, "invalid regular expression".into())
                } else if limit < PATTERN_SIZE_LIMIT {
                    over_budget(index, field)
                } else {
                    over_cap(index, field)
                }
            })?;
        let cost = regex.memory_usage();
        if cost > PATTERN_SIZE_LIMIT {
            return Err(over_cap(index, field));
        }
        if cost > self.remaining {
            return Err(over_budget(index, field));
        }
        self.remaining -= cost;
        Ok(Pattern {
            regex,
            source: source.to_owned(),
        })
    }
}

/// A pattern's syntax error as its kind and where it is: the character
/// offset in `source` and at most [`MAX_ECHO_CHARS`] characters of the
/// pattern, not the parser's own text (the whole pattern, with carets under
/// it).
#[cold]
fn syntax_message(error: &regex_syntax::Error, source: &str) -> String {
    let (kind, pattern, offset) = match error {
        regex_syntax::Error::Parse(e) => (e.kind().to_string(), e.pattern(), e.span().start.offset),
        regex_syntax::Error::Translate(e) => {
            (e.kind().to_string(), e.pattern(), e.span().start.offset)
        }
        _ => {
            return format!(
                "invalid regular expression '{}'",
                clip_to(source, MAX_ECHO_CHARS)
            )
        }
    };
    // The parser may have seen `source` inside anchors: its offsets count
    // what it saw.
    let before = pattern.find(source).unwrap_or(0);
    let at = pattern
        .get(before..offset.max(before))
        .map_or(0, |text| text.chars().count());
    format!(
        "invalid regular expression: {kind} at character {at} of '{}'",
        clip_to(source, MAX_ECHO_CHARS)
    )
}

#[cold]
fn over_cap(index: usize, field: &str) -> CoreError {
    invalid(
        index,
        field,
        format!("the pattern compiles to more than {PATTERN_SIZE_LIMIT} bytes; simplify it"),
    )
}

#[cold]
fn over_budget(index: usize, field: &str) -> CoreError {
    invalid(
        index,
        field,
        format!(
            "the job's patterns together compile to more than {JOB_PATTERN_BUDGET} bytes; \
             simplify them or use fewer"
        ),
    )
}

/// How a rule picks its columns.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The column whose name equals this.
    Full(String),
    /// Every column whose name matches this regular expression.
    Pattern(Pattern),
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
            Self::Pattern(re) => format!(
                "a column matching {:?}",
                clip_to(re.as_str(), ROW_ECHO_CHARS)
            ),
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
    pub pattern: Option<Pattern>,
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
    /// Compiles the `index`-th rule of a request, its patterns charged to
    /// the job's `budget`.
    ///
    /// # Errors
    /// An unknown type or policy, a missing name, a bad or oversized
    /// regular expression.
    pub fn compile(
        index: usize,
        spec: &RuleSpec,
        budget: &mut PatternBudget,
    ) -> Result<Self, CoreError> {
        let matcher = match spec.kind.as_str() {
            "FULL_NAME_MATCH" => {
                if spec.name.is_empty() || longer_than(&spec.name, MAX_NAME_CHARS) {
                    return Err(invalid(
                        index,
                        "name",
                        format!("FULL_NAME_MATCH needs a name of 1 to {MAX_NAME_CHARS} characters"),
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
                Matcher::Pattern(budget.compile(
                    index,
                    "name_pattern",
                    &spec.name_pattern,
                    false,
                )?)
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
            Some(budget.compile(index, "pattern", &spec.pattern, true)?)
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

    /// Heap bytes of the rule's compiled patterns.
    #[must_use]
    pub fn pattern_bytes(&self) -> usize {
        let name = match &self.matcher {
            Matcher::Pattern(p) => p.memory_usage(),
            Matcher::Full(_) => 0,
        };
        name + self.pattern.as_ref().map_or(0, Pattern::memory_usage)
    }

    /// Checks a non-empty value; returns the reason and message when it fails.
    #[must_use]
    pub fn check(&self, column: &str, value: &str) -> Option<(&'static str, String)> {
        if self.max_length > 0 && value.chars().count() > self.max_length {
            return Some((
                "VALUE_TOO_LONG",
                format!(
                    "{:?} is longer than {} characters",
                    clip_to(column, MAX_ECHO_CHARS),
                    self.max_length
                ),
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
                format!(
                    "{:?} must be {what}, got {:?}",
                    clip_to(column, MAX_ECHO_CHARS),
                    clip_to(value, ROW_ECHO_CHARS)
                ),
            ));
        }
        if let Some(pattern) = &self.pattern {
            if !pattern.is_match(value) {
                return Some((
                    "PATTERN_MISMATCH",
                    format!(
                        "{:?} does not match {:?}",
                        clip_to(column, MAX_ECHO_CHARS),
                        clip_to(pattern.as_str(), ROW_ECHO_CHARS)
                    ),
                ));
            }
        }
        if !self.allowed_values.is_empty() && !self.allowed_values.iter().any(|a| a == value) {
            return Some((
                "VALUE_NOT_ALLOWED",
                format!(
                    "{:?} is not one of the allowed values",
                    clip_to(column, MAX_ECHO_CHARS)
                ),
            ));
        }
        None
    }
}

/// Compiles a job's rules, their patterns within one [`PatternBudget`].
///
/// # Errors
/// More than `MAX_RULES` rules, or the first rule that does not compile.
pub fn compile_rules(specs: &[RuleSpec]) -> Result<Vec<ColumnRule>, CoreError> {
    if specs.len() > MAX_RULES {
        return Err(CoreError::new(ErrorKind::InvalidJobSpec {
            field: "columns".into(),
            message: format!(
                "a job has at most {MAX_RULES} column rules, not {}",
                specs.len()
            ),
        }));
    }
    let mut budget = PatternBudget::default();
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| ColumnRule::compile(i, spec, &mut budget))
        .collect()
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

/// `YYYY-MM-DD` of the day Unix time `seconds` falls in (Hinnant's
/// inverse of `days_from_civil`), for messages that name a bound.
#[must_use]
#[allow(clippy::cast_possible_truncation)] // seconds of the years we name
pub fn iso_date(seconds: f64) -> String {
    let z = (seconds / 86_400.0).floor() as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_date_is_the_inverse_of_days_from_civil() {
        for (y, m, d) in [
            (1970, 1, 1),
            (1990, 1, 1),
            (2000, 2, 29),
            (2026, 12, 31),
            (1969, 12, 31),
        ] {
            let seconds = days_from_civil(y, m, d) as f64 * 86_400.0 + 3_600.0;
            assert_eq!(iso_date(seconds), format!("{y:04}-{m:02}-{d:02}"));
        }
    }

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
            &mut PatternBudget::default(),
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
            &mut PatternBudget::default(),
        )
        .unwrap_err();
        assert_eq!(err.field(), "columns[3].name_pattern");
        let err = ColumnRule::compile(
            0,
            &RuleSpec {
                kind: "FUZZY".into(),
                ..RuleSpec::default()
            },
            &mut PatternBudget::default(),
        )
        .unwrap_err();
        assert_eq!(err.field(), "columns[0].type");
        let err = ColumnRule::compile(
            0,
            &RuleSpec {
                kind: "FULL_NAME_MATCH".into(),
                ..RuleSpec::default()
            },
            &mut PatternBudget::default(),
        )
        .unwrap_err();
        assert_eq!(err.field(), "columns[0].name");
    }

    #[test]
    fn a_bad_pattern_names_its_error_and_offset_and_echoes_256_characters() {
        // 999 characters, bad at the end: the parser's own text is the whole
        // pattern with carets under it (1,678 characters).
        let long = format!("{}(", "a".repeat(998));
        for (spec, field) in [
            (pattern_rule(&long, ""), "columns[0].name_pattern"),
            (pattern_rule("a", &long), "columns[0].pattern"),
        ] {
            let err = compile_rules(&[spec]).unwrap_err();
            assert_eq!(err.field(), field);
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid regular expression: unclosed group at character 998 of '{}…'",
                    "a".repeat(255)
                )
            );
        }
        // Offsets count characters, in the pattern as sent (not the
        // anchored one), for parse and translation errors alike.
        for (pattern, message) in [
            (
                "éé)",
                "invalid regular expression: unopened group at character 2 of 'éé)'",
            ),
            (
                r"é\p{Nope}",
                r"invalid regular expression: Unicode property not found at character 1 of 'é\p{Nope}'",
            ),
        ] {
            for spec in [pattern_rule(pattern, ""), pattern_rule("a", pattern)] {
                assert_eq!(compile_rules(&[spec]).unwrap_err().to_string(), message);
            }
        }
    }

    #[test]
    fn a_full_name_counts_characters_not_bytes() {
        let full = |name: &str| RuleSpec {
            kind: "FULL_NAME_MATCH".into(),
            name: name.into(),
            ..RuleSpec::default()
        };
        assert!(compile_rules(&[full(&"é".repeat(255))]).is_ok());
        let err = compile_rules(&[full(&"é".repeat(256))]).unwrap_err();
        assert_eq!(err.field(), "columns[0].name");
    }

    #[test]
    fn row_messages_clip_the_column_and_value() {
        let rule = rule("INTEGER", "", 0, &[]);
        let (_, message) = rule
            .check(&"c".repeat(10_000), &"v".repeat(10_000))
            .unwrap();
        assert_eq!(message.matches('c').count(), 255);
        assert_eq!(message.matches('v').count(), 63);
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

    fn pattern_rule(name_pattern: &str, pattern: &str) -> RuleSpec {
        RuleSpec {
            kind: "PATTERN_NAME_MATCH".into(),
            name_pattern: name_pattern.into(),
            pattern: pattern.into(),
            ..RuleSpec::default()
        }
    }

    #[test]
    fn ordinary_patterns_compile_well_under_the_caps() {
        let patterns = [
            r"^[A-Z]{2}\d{6}$",
            r"[a-z0-9._%+-]+@[a-z0-9.-]+",
            r"\d{4}-\d{2}-\d{2}",
            r"(?i)utm_.*",
            r"^.{1,255}$",
            r"\w{1,10}",
        ];
        for p in patterns {
            for spec in [pattern_rule(p, ""), pattern_rule("x", p)] {
                let rule = ColumnRule::compile(0, &spec, &mut PatternBudget::default())
                    .unwrap_or_else(|e| panic!("{p}: {e}"));
                assert!(rule.pattern_bytes() < PATTERN_SIZE_LIMIT, "{p}");
            }
        }
        // A hundred rules of the ordinary ones fit one job.
        let rules: Vec<RuleSpec> = (0..MAX_RULES)
            .map(|i| pattern_rule(patterns[i % 4], patterns[(i + 1) % 4]))
            .collect();
        assert_eq!(compile_rules(&rules).unwrap().len(), MAX_RULES);
    }

    #[test]
    fn a_pattern_over_its_cap_names_its_field() {
        for (rule, field) in [
            (
                pattern_rule(r"\w{1,200}\w{1,200}", ""),
                "columns[0].name_pattern",
            ),
            (
                pattern_rule("a", r"\w{1,200}\w{1,200}"),
                "columns[0].pattern",
            ),
            (pattern_rule(r"\w{1,20}", ""), "columns[0].name_pattern"),
        ] {
            let started = std::time::Instant::now();
            let err = compile_rules(&[rule]).unwrap_err();
            assert_eq!(err.field(), field);
            assert_eq!(
                err.to_string(),
                "the pattern compiles to more than 1048576 bytes; simplify it"
            );
            // Compiling stops at the cap, whatever the pattern would take.
            assert!(started.elapsed().as_secs_f64() < 2.0);
        }
    }

    #[test]
    fn a_pattern_over_1000_characters_is_refused() {
        let at_cap = "a".repeat(MAX_PATTERN_CHARS);
        assert!(compile_rules(&[pattern_rule(&at_cap, &at_cap)]).is_ok());
        let over = "é".repeat(MAX_PATTERN_CHARS + 1);
        let err = compile_rules(&[pattern_rule("a", &over)]).unwrap_err();
        assert_eq!(err.field(), "columns[0].pattern");
        assert!(err.to_string().contains("at most 1000"), "{err}");
    }

    #[test]
    fn the_job_budget_stops_many_heavy_patterns() {
        // Each just under its own cap: a job holds about sixteen of them.
        let heavy = r"\w{1,18}";
        let one = compile_rules(&[pattern_rule(heavy, "")]).unwrap()[0].pattern_bytes();
        assert!(
            one < PATTERN_SIZE_LIMIT && one > PATTERN_SIZE_LIMIT * 9 / 10,
            "{one}"
        );
        let rules: Vec<RuleSpec> = (0..MAX_RULES).map(|_| pattern_rule(heavy, heavy)).collect();
        let err = compile_rules(&rules).unwrap_err();
        let fits = JOB_PATTERN_BUDGET / one;
        assert_eq!(
            err.field(),
            format!(
                "columns[{}].{}",
                fits / 2,
                if fits % 2 == 0 {
                    "name_pattern"
                } else {
                    "pattern"
                }
            )
        );
        assert!(
            err.to_string()
                .contains("together compile to more than 16777216 bytes"),
            "{err}"
        );
        let fitted: usize = compile_rules(&rules[..fits / 2])
            .unwrap()
            .iter()
            .map(ColumnRule::pattern_bytes)
            .sum();
        assert!(fitted <= JOB_PATTERN_BUDGET && fitted + 2 * one > JOB_PATTERN_BUDGET);
    }

    #[test]
    fn more_than_100_rules_are_refused() {
        let rules = vec![pattern_rule("a", ""); MAX_RULES + 1];
        assert_eq!(compile_rules(&rules).unwrap_err().field(), "columns");
    }

    #[test]
    fn a_value_pattern_cannot_escape_its_anchors() {
        let err = compile_rules(&[pattern_rule("a", "x)|(y")]).unwrap_err();
        assert_eq!(err.field(), "columns[0].pattern");
        let rule = &compile_rules(&[pattern_rule("a", "x|y")]).unwrap()[0];
        assert_eq!(rule.check("a", "x"), None);
        assert_eq!(rule.check("a", "xy").unwrap().0, "PATTERN_MISMATCH");
        assert!(rule.matcher.matches("ab"));
    }
}
