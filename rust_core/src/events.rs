//! Turning rows into events: column rules, event name, event data, identity,
//! deterministic ids, and row issues; a chunk of rows at a time. Also the one
//! event-id scheme of every source (`event_id`).

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_128;

use crate::error::{CoreError, FileReason};
use crate::formats::{file_error, Cell, Row, RowSource};
use crate::rules::{compile_rules, ColumnRule, Policy, RuleSpec};

/// How a batch job turns rows into events.
#[derive(Debug, Clone, Default)]
pub struct JobSpec {
    /// The job's id: with the row number, it makes the event id.
    pub job_id: String,
    /// Forced on every row when not empty.
    pub event_name: String,
    /// For rows without an `event_name` value.
    pub default_event_name: String,
    /// Columns that become event data; empty means all but `event_name`.
    pub event_columns: Vec<String>,
    /// Merged over every event's data.
    pub event_data: Vec<(String, String)>,
    /// Column rules.
    pub columns: Vec<ColumnRule>,
}

impl JobSpec {
    /// Compiles a job's rules and checks its event settings, for the job
    /// `job_id` (empty when the id is not known yet: set it before reading).
    /// The one place a job's patterns are compiled.
    ///
    /// # Errors
    /// The first rule or setting that is invalid, naming its field.
    pub fn build(
        job_id: String,
        event_name: String,
        default_event_name: String,
        event_columns: Vec<String>,
        mut event_data: Vec<(String, String)>,
        rules: &[RuleSpec],
    ) -> Result<Self, CoreError> {
        // Sorted, so every job with the same data encodes it the same way.
        event_data.sort();
        let spec = Self {
            job_id,
            event_name,
            default_event_name,
            event_columns,
            event_data,
            columns: Vec::new(),
        };
        check_spec(&spec)?;
        Ok(Self {
            columns: compile_rules(rules)?,
            ..spec
        })
    }

    /// Heap bytes of the job's compiled patterns.
    #[must_use]
    pub fn pattern_bytes(&self) -> usize {
        self.columns.iter().map(ColumnRule::pattern_bytes).sum()
    }
}

/// The column holding a row's own event name.
pub const EVENT_NAME_COLUMN: &str = "event_name";

/// Where an event's name is: the job's, the default, or the row's own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    /// The job's `event_name`.
    Job,
    /// The job's `default_event_name`.
    Default,
    /// The row's `event_name` value, at this range of the chunk buffer.
    Row(usize, usize),
}

/// One event of a chunk: numbers and ranges into the chunk's one buffer, so
/// building a chunk allocates nothing per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef {
    /// The row it came from.
    pub row: u64,
    /// Derived from (job id, row number) only.
    pub id: u128,
    /// Its name.
    pub name: EventName,
    /// The identity key's value: a range of the buffer.
    pub identity: (usize, usize),
    /// The event data, a JSON object: a range of `encoded`.
    pub data: (usize, usize),
}

/// One event, owned: what an `EventRef` stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// 32 hex digits, derived from (job id, row number) only.
    pub id: String,
    /// The row it came from.
    pub row: u64,
    /// The event name.
    pub name: String,
    /// The identity key's value.
    pub identity: String,
    /// The event data as a JSON object.
    pub data: Vec<u8>,
}

/// One failed row, or one of several things wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIssue {
    /// 1-based data row number.
    pub row: u64,
    /// Byte offset of the row in the file.
    pub offset: u64,
    /// The column at fault; empty for the whole row.
    pub column: String,
    /// Stable `UPPER_SNAKE` reason.
    pub reason: &'static str,
    /// For a person.
    pub message: String,
}

/// What a chunk of rows produced.
#[derive(Debug, Default)]
pub struct Chunk {
    /// Rows read (good and failed).
    pub rows: u64,
    /// Rows that became events.
    pub good: u64,
    /// Rows that failed.
    pub failed: u64,
    /// The events, in row order.
    pub events: Vec<EventRef>,
    /// The events encoded for the store: one JSON array with one
    /// `[event_id, row_number, event_name, identity, data]` array per event.
    pub encoded: Vec<u8>,
    /// Raw identity values and row event names, for `EventRef` ranges.
    pub buffer: Vec<u8>,
    /// The job's `event_name` (`EventName::Job`).
    pub job_event_name: String,
    /// The job's `default_event_name` (`EventName::Default`).
    pub default_event_name: String,
    /// Everything wrong with the failed rows.
    pub issues: Vec<RowIssue>,
    /// Checkpoint: byte offset just past the last row of the chunk.
    pub next_offset: u64,
    /// Checkpoint: number of the last row of the chunk.
    pub last_row: u64,
    /// True when the source has no more rows.
    pub done: bool,
}

impl Chunk {
    /// The text at a range of the buffer. Ranges only ever cover whole
    /// strings the pipeline wrote, so they are valid UTF-8.
    #[must_use]
    pub fn text(&self, (start, end): (usize, usize)) -> &str {
        std::str::from_utf8(&self.buffer[start..end]).unwrap_or_default()
    }

    /// The name of an event.
    #[must_use]
    pub fn name(&self, event: &EventRef) -> &str {
        match event.name {
            EventName::Job => &self.job_event_name,
            EventName::Default => &self.default_event_name,
            EventName::Row(start, end) => self.text((start, end)),
        }
    }

    /// The events as owned values.
    #[must_use]
    pub fn to_events(&self) -> Vec<Event> {
        self.events
            .iter()
            .map(|e| Event {
                id: String::from_utf8_lossy(&hex_id(e.id)).into_owned(),
                row: e.row,
                name: self.name(e).to_owned(),
                identity: self.text(e.identity).to_owned(),
                data: self.encoded[e.data.0..e.data.1].to_vec(),
            })
            .collect()
    }
}

/// What one column id means for a job, worked out once per column.
#[derive(Debug, Clone)]
struct Binding {
    /// Rules that pick this column.
    rules: Vec<usize>,
    /// Its key in event data, when it is dispatched and not overridden by
    /// `event_data`.
    data_key: Option<Vec<u8>>,
    /// Whether its value is the identity key.
    identity: bool,
    /// Whether it is the row's `event_name` column.
    event_name: bool,
}

/// Reads rows from a source and turns them into events, chunk by chunk.
pub struct Pipeline {
    source: Box<dyn RowSource>,
    spec: JobSpec,
    bindings: Vec<Binding>,
    /// Rules that require a column or a value, checked against every row.
    required: Vec<usize>,
    /// Identity when `event_columns` names it: that column's name.
    identity_column: Option<String>,
    /// Whether the source has a fixed header (CSV, PSV).
    fixed_header: bool,
    /// `event_data` pre-encoded as `,"key":"value"` pairs.
    event_data_json: Vec<u8>,
    /// The event ids of this job's rows.
    row_ids: RowIds,
    row: Row,
    done: bool,
    last_offset: u64,
    last_row: u64,
}

impl Pipeline {
    /// Binds `spec` to `source`. For CSV and PSV, checks the header has every
    /// column a `REQUIRED_COLUMN` or `REQUIRED_VALUE` rule or `event_columns`
    /// names.
    ///
    /// # Errors
    /// A required column or an event column absent from the header.
    pub fn new(
        source: Box<dyn RowSource>,
        spec: JobSpec,
        fixed_header: bool,
        start_offset: u64,
        start_row: u64,
    ) -> Result<Self, CoreError> {
        let required = spec
            .columns
            .iter()
            .enumerate()
            .filter(|(_, r)| r.policy != Policy::Optional)
            .map(|(i, _)| i)
            .collect();
        let mut event_data_json = Vec::new();
        for (key, value) in &spec.event_data {
            event_data_json.push(b',');
            write_json_string(&mut event_data_json, key);
            event_data_json.push(b':');
            write_json_string(&mut event_data_json, value);
        }
        let row_ids = RowIds::new(&spec.job_id);
        let mut pipeline = Self {
            identity_column: spec.event_columns.first().cloned(),
            source,
            spec,
            bindings: Vec::new(),
            required,
            fixed_header,
            event_data_json,
            row_ids,
            row: Row::default(),
            done: false,
            last_offset: start_offset,
            last_row: start_row,
        };
        if fixed_header {
            pipeline.check_header()?;
        }
        Ok(pipeline)
    }

    /// Column names known so far.
    #[must_use]
    pub fn names(&self) -> &[String] {
        self.source.names()
    }

    fn check_header(&mut self) -> Result<(), CoreError> {
        let names = self.source.names();
        for &i in &self.required {
            let rule = &self.spec.columns[i];
            if !names.iter().any(|n| rule.matcher.matches(n)) {
                return Err(file_error(
                    FileReason::RequiredColumnMissing,
                    format!(
                        "the header has no {}, which a column rule requires",
                        rule.matcher.describe()
                    ),
                    0,
                ));
            }
        }
        for column in &self.spec.event_columns {
            if !names.iter().any(|n| n == column) {
                return Err(file_error(
                    FileReason::EventColumnMissing,
                    format!("the header has no column {column:?}, which event_columns names"),
                    0,
                ));
            }
        }
        Ok(())
    }

    /// Works out bindings for column ids the source added since last time.
    fn bind_new_columns(&mut self) {
        let names = self.source.names();
        let first_data_column = names.iter().position(|n| n != EVENT_NAME_COLUMN);
        for (id, name) in names.iter().enumerate().skip(self.bindings.len()) {
            let rules: Vec<usize> = (0..self.spec.columns.len())
                .filter(|&i| self.spec.columns[i].matcher.matches(name))
                .collect();
            let dispatched = if self.spec.event_columns.is_empty() {
                name != EVENT_NAME_COLUMN
            } else {
                self.spec.event_columns.iter().any(|c| c == name)
            };
            let key = match rules
                .iter()
                .map(|&i| &self.spec.columns[i].prefix)
                .find(|p| !p.is_empty())
            {
                Some(prefix) => format!("{prefix}{name}"),
                None => name.clone(),
            };
            let overridden = self.spec.event_data.iter().any(|(k, _)| *k == key);
            let data_key = (dispatched && !overridden).then(|| {
                let mut encoded = Vec::with_capacity(key.len() + 3);
                write_json_string(&mut encoded, &key);
                encoded.push(b':');
                encoded
            });
            let identity = match &self.identity_column {
                Some(column) => column == name,
                // JSON rows have no header: their first key stands in per row.
                None => self.fixed_header && Some(id) == first_data_column,
            };
            self.bindings.push(Binding {
                rules,
                data_key,
                identity,
                event_name: name == EVENT_NAME_COLUMN,
            });
        }
    }

    /// Reads up to `max_rows` rows and turns the good ones into events.
    ///
    /// # Errors
    /// A file-level problem found while reading.
    pub fn next_chunk(&mut self, max_rows: usize) -> Result<Chunk, CoreError> {
        let mut chunk = Chunk::default();
        self.next_chunk_into(&mut chunk, max_rows)?;
        Ok(chunk)
    }

    /// Like `next_chunk`, reusing `chunk`'s allocations: a reader that keeps
    /// one chunk allocates nothing per chunk once warm.
    ///
    /// # Errors
    /// A file-level problem found while reading.
    pub fn next_chunk_into(&mut self, chunk: &mut Chunk, max_rows: usize) -> Result<(), CoreError> {
        chunk.rows = 0;
        chunk.good = 0;
        chunk.failed = 0;
        chunk.events.clear();
        chunk.buffer.clear();
        chunk.encoded.clear();
        chunk.encoded.push(b'[');
        chunk.issues.clear();
        chunk.job_event_name.clone_from(&self.spec.event_name);
        chunk
            .default_event_name
            .clone_from(&self.spec.default_event_name);
        let mut row = std::mem::take(&mut self.row);
        let result = self.fill_chunk(chunk, &mut row, max_rows);
        self.row = row;
        result?;
        chunk.encoded.push(b']');
        chunk.next_offset = self.last_offset;
        chunk.last_row = self.last_row;
        chunk.done = self.done;
        Ok(())
    }

    fn fill_chunk(
        &mut self,
        chunk: &mut Chunk,
        row: &mut Row,
        max_rows: usize,
    ) -> Result<(), CoreError> {
        let mut seen_required = vec![false; self.spec.columns.len()];
        while !self.done && (chunk.rows as usize) < max_rows {
            if !self.source.next_row(row)? {
                self.done = true;
                break;
            }
            if self.bindings.len() < self.source.names().len() {
                self.bind_new_columns();
            }
            chunk.rows += 1;
            self.last_offset = row.end;
            self.last_row = row.number;
            let issues_before = chunk.issues.len();
            if let Some(problem) = row.problem.take() {
                chunk.issues.push(RowIssue {
                    row: row.number,
                    offset: row.offset,
                    column: String::new(),
                    reason: problem.reason,
                    message: problem.message,
                });
            } else {
                let id = self.row_ids.id(row.number);
                if let Some(event) = self.build(row, id, chunk, &mut seen_required) {
                    chunk.events.push(event);
                }
            }
            if chunk.issues.len() > issues_before {
                chunk.failed += 1;
            } else {
                chunk.good += 1;
            }
        }
        Ok(())
    }

    /// Builds the event of a readable row into the chunk, or records its
    /// issues (and leaves the buffers as they were).
    #[allow(clippy::too_many_lines)] // the two passes over one row read best together
    fn build(&self, row: &Row, id: u128, chunk: &mut Chunk, seen: &mut [bool]) -> Option<EventRef> {
        let names = self.source.names();
        let issues = &mut chunk.issues;
        let before = issues.len();
        seen.fill(false);
        // First pass: rules, the row's event name, the identity.
        let mut row_event_name = None;
        let mut identity = None;
        for (id, cell) in &row.cells {
            let binding = &self.bindings[*id];
            let text = row.cell_text(cell);
            for &r in &binding.rules {
                seen[r] = true;
                if let Some((reason, message)) = self.check_rule(r, &names[*id], &text) {
                    issues.push(row_issue(row, &names[*id], reason, message));
                }
            }
            if binding.event_name && !text.is_empty() {
                row_event_name = Some(text);
            } else if identity.is_none()
                && (binding.identity
                    || (!self.fixed_header
                        && self.identity_column.is_none()
                        && !binding.event_name))
            {
                identity = Some(text);
            }
        }
        for &r in &self.required {
            if !seen[r] {
                let rule = &self.spec.columns[r];
                let reason = if rule.policy == Policy::RequiredValue {
                    "REQUIRED_VALUE_MISSING"
                } else {
                    "REQUIRED_COLUMN_MISSING"
                };
                issues.push(row_issue(
                    row,
                    "",
                    reason,
                    format!("the row has no {}", rule.matcher.describe()),
                ));
            }
        }
        let name = if !self.spec.event_name.is_empty() {
            EventName::Job
        } else if let Some(text) = &row_event_name {
            let start = chunk.buffer.len();
            chunk.buffer.extend_from_slice(text.as_bytes());
            EventName::Row(start, chunk.buffer.len())
        } else if !self.spec.default_event_name.is_empty() {
            EventName::Default
        } else {
            issues.push(row_issue(
                row,
                EVENT_NAME_COLUMN,
                "MISSING_EVENT_NAME",
                "the row has no event_name and the job has no event_name or default_event_name"
                    .into(),
            ));
            EventName::Default
        };
        if issues.len() > before {
            if let EventName::Row(start, _) = name {
                chunk.buffer.truncate(start);
            }
            return None;
        }

        // Second pass: encode [event_id, row_number, event_name, identity, data].
        let out = &mut chunk.encoded;
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(b"[\"");
        out.extend_from_slice(&hex_id(id));
        out.extend_from_slice(b"\",");
        write_u64(out, row.number);
        out.push(b',');
        match name {
            EventName::Job => write_json_string(out, &self.spec.event_name),
            EventName::Default => write_json_string(out, &self.spec.default_event_name),
            EventName::Row(..) => {
                write_json_string(out, row_event_name.as_deref().unwrap_or_default());
            }
        }
        out.push(b',');
        let identity_text = identity.as_deref().unwrap_or_default();
        write_json_string(out, identity_text);
        out.push(b',');
        let data_start = out.len();
        out.push(b'{');
        let mut first = true;
        for (id, cell) in &row.cells {
            let Some(key) = &self.bindings[*id].data_key else {
                continue;
            };
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(key);
            match cell {
                Cell::Text(start, end) => write_json_string(out, &row.text[*start..*end]),
                Cell::Json(value) => {
                    // Writing a Value into a Vec cannot fail.
                    serde_json::to_writer(&mut *out, value).expect("JSON into memory");
                }
            }
        }
        if first && !self.event_data_json.is_empty() {
            out.extend_from_slice(&self.event_data_json[1..]);
        } else {
            out.extend_from_slice(&self.event_data_json);
        }
        out.push(b'}');
        let data = (data_start, out.len());
        out.push(b']');
        let identity_start = chunk.buffer.len();
        chunk.buffer.extend_from_slice(identity_text.as_bytes());
        Some(EventRef {
            row: row.number,
            id,
            name,
            identity: (identity_start, chunk.buffer.len()),
            data,
        })
    }

    /// Checks one rule against one cell's text.
    fn check_rule(&self, rule: usize, column: &str, text: &str) -> Option<(&'static str, String)> {
        let rule = &self.spec.columns[rule];
        if text.is_empty() {
            (rule.policy == Policy::RequiredValue).then(|| {
                (
                    "REQUIRED_VALUE_MISSING",
                    format!("{column:?} is required and empty"),
                )
            })
        } else {
            rule.check(column, text)
        }
    }
}

#[cold]
fn row_issue(row: &Row, column: &str, reason: &'static str, message: String) -> RowIssue {
    RowIssue {
        row: row.number,
        offset: row.offset,
        column: column.to_owned(),
        reason,
        message,
    }
}

/// Event ids, one scheme for every source: the 128-bit xxh3 (seed 0) of a
/// key that is the source's name followed by the source's parts, each of
/// them (the name too) written as its length in bytes (8 bytes, little
/// endian) and then its UTF-8 bytes. The lengths make the key injective: two
/// different (source, parts) never give the same bytes, so only a 128-bit
/// collision can give two events one id. Numbers are parts in decimal.
///
/// The sources and their parts (`batchgrpc.eventids` holds the same list):
/// - `row`: job id, row number — a batch job's row, the same on every replay;
/// - `profile`: account, profile id, event name, dedup key — bulk and
///   tracked events (a tracked event's dedup key is its own, never repeated);
/// - `notification`: job id, kind — a job's created or finished event.
#[must_use]
pub fn event_id(source: &str, parts: &[&str]) -> u128 {
    let mut key = IdKey::new(source);
    for part in parts {
        key.part(part.as_bytes());
    }
    xxh3_128(&key.0)
}

/// The event id of a job's row: `event_id("row", [job_id, row])`.
#[must_use]
pub fn row_event_id(job_id: &str, row: u64) -> u128 {
    RowIds::new(job_id).id(row)
}

/// An event id's key as it is built: length-prefixed parts.
struct IdKey(Vec<u8>);

impl IdKey {
    fn new(source: &str) -> Self {
        let mut key = Self(Vec::with_capacity(64));
        key.part(source.as_bytes());
        key
    }

    fn part(&mut self, bytes: &[u8]) {
        self.0
            .extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        self.0.extend_from_slice(bytes);
    }
}

/// The ids of one job's rows: the key up to the row number is built once,
/// so a row costs its number's digits and one hash.
struct RowIds {
    key: Vec<u8>,
    prefix: usize,
}

impl RowIds {
    fn new(job_id: &str) -> Self {
        let mut key = IdKey::new("row");
        key.part(job_id.as_bytes());
        let prefix = key.0.len();
        Self { key: key.0, prefix }
    }

    fn id(&mut self, row: u64) -> u128 {
        self.key.truncate(self.prefix);
        // The number's length goes before its digits: reserve it, write
        // the digits, then fill it in.
        self.key.extend_from_slice(&[0; 8]);
        write_u64(&mut self.key, row);
        let len = (self.key.len() - self.prefix - 8) as u64;
        self.key[self.prefix..self.prefix + 8].copy_from_slice(&len.to_le_bytes());
        xxh3_128(&self.key)
    }
}

/// An event id as 32 lower-case hex digits.
#[must_use]
pub fn hex_id(id: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, byte) in id.to_be_bytes().iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(byte >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
    }
    out
}

/// Appends a number in decimal without a temporary string.
fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Bytes a JSON string cannot hold as they are: control characters, `"`, `\\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Whether any byte needs escaping, eight bytes at a time: this scan runs
/// over every byte of every event, and a table lookup per byte was a fifth
/// of the encoding time.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte of `x` is zero exactly when the result has its high bit set
    // (the classic "has zero byte" test; no false positives when the high
    // bits of `x` are masked out, as `!x & HIGHS` does).
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // Bytes below 0x20: the high three bits are all zero.
        let control = has_zero(w & u64::from_ne_bytes([0xe0; 8]));
        let quote = has_zero(w ^ u64::from_ne_bytes([b'"'; 8]));
        let backslash = has_zero(w ^ u64::from_ne_bytes([b'\\'; 8]));
        if control | quote | backslash != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| NEEDS_ESCAPE[usize::from(b)])
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most values need no escaping: copy them whole.
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Checks `event_columns` and the event names against upstream's limits.
///
/// # Errors
/// An over-long event name or an empty event column name.
pub fn check_spec(spec: &JobSpec) -> Result<(), CoreError> {
    use crate::error::ErrorKind;
    let invalid = |field: &str, message: &str| {
        Err(CoreError::new(ErrorKind::InvalidJobSpec {
            field: field.into(),
            message: message.into(),
        }))
    };
    if spec.event_name.chars().count() > 255 {
        return invalid(
            "event_name",
            "event_name should have a value, max length 255",
        );
    }
    if spec.default_event_name.chars().count() > 255 {
        return invalid(
            "default_event_name",
            "default_event_name should have a value, max length 255",
        );
    }
    let mut seen = HashMap::new();
    for (i, column) in spec.event_columns.iter().enumerate() {
        if column.is_empty() {
            return invalid(
                &format!("event_columns[{i}]"),
                "an event column needs a name",
            );
        }
        if seen.insert(column.as_str(), i).is_some() {
            return invalid(
                &format!("event_columns[{i}]"),
                "event_columns names a column twice",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::formats::{open, Format, ReadLimits, Resume};
    use crate::rules::RuleSpec;

    /// A chunk's counts and issues, with its events owned.
    struct Run {
        good: u64,
        failed: u64,
        events: Vec<Event>,
        issues: Vec<RowIssue>,
    }

    fn run(format: Format, input: &str, spec: JobSpec) -> Result<Run, CoreError> {
        let source = open(
            format,
            Cursor::new(input.as_bytes().to_vec()),
            ReadLimits::default(),
            Resume::default(),
        )?;
        let fixed = matches!(format, Format::Csv | Format::Psv);
        let chunk = Pipeline::new(source, spec, fixed, 0, 0)?.next_chunk(1000)?;
        Ok(Run {
            good: chunk.good,
            failed: chunk.failed,
            events: chunk.to_events(),
            issues: chunk.issues,
        })
    }

    fn rule(kind: &str, name: &str, policy: &str, prefix: &str, value_type: &str) -> ColumnRule {
        let mut spec = RuleSpec {
            kind: kind.into(),
            validation_policy: policy.into(),
            prefix: prefix.into(),
            value_type: value_type.into(),
            ..RuleSpec::default()
        };
        if kind == "FULL_NAME_MATCH" {
            spec.name = name.into();
        } else {
            spec.name_pattern = name.into();
        }
        ColumnRule::compile(0, &spec, &mut crate::rules::PatternBudget::default()).unwrap()
    }

    fn data(event: &Event) -> String {
        String::from_utf8(event.data.clone()).unwrap()
    }

    #[test]
    fn event_name_precedence() {
        let input = "email,event_name\na@x.com,signup\nb@x.com,\n";
        let base = JobSpec {
            job_id: "j".into(),
            ..JobSpec::default()
        };
        let forced = run(
            Format::Csv,
            input,
            JobSpec {
                event_name: "forced".into(),
                default_event_name: "d".into(),
                ..base.clone()
            },
        )
        .unwrap();
        assert_eq!(
            forced
                .events
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>(),
            ["forced", "forced"]
        );
        let by_row = run(
            Format::Csv,
            input,
            JobSpec {
                default_event_name: "d".into(),
                ..base.clone()
            },
        )
        .unwrap();
        assert_eq!(
            by_row
                .events
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>(),
            ["signup", "d"]
        );
        let none = run(Format::Csv, input, base).unwrap();
        assert_eq!((none.good, none.failed), (1, 1));
        assert_eq!(none.issues[0].reason, "MISSING_EVENT_NAME");
        assert_eq!(none.issues[0].row, 2);
    }

    #[test]
    fn event_data_from_columns_with_prefix_and_event_data_over_it() {
        let spec = JobSpec {
            job_id: "j".into(),
            event_name: "e".into(),
            event_columns: vec!["person_id".into(), "city".into(), "tier".into()],
            event_data: vec![
                ("source".into(), "import".into()),
                ("tier".into(), "gold".into()),
            ],
            columns: vec![rule("PATTERN_NAME_MATCH", "^ci", "OPTIONAL", "addr_", "")],
            ..JobSpec::default()
        };
        let chunk = run(
            Format::Csv,
            "city,person_id,tier,ignored\nPrague,42,silver,x\n",
            spec,
        )
        .unwrap();
        let event = &chunk.events[0];
        assert_eq!(event.identity, "42");
        assert_eq!(
            data(event),
            r#"{"addr_city":"Prague","person_id":"42","source":"import","tier":"gold"}"#
        );
    }

    #[test]
    fn all_columns_but_event_name_when_event_columns_is_empty() {
        let chunk = run(
            Format::Csv,
            "event_name,email,note\nx,a@x.com,\"q\"\"t\"\n",
            JobSpec {
                job_id: "j".into(),
                ..JobSpec::default()
            },
        )
        .unwrap();
        assert_eq!(
            data(&chunk.events[0]),
            r#"{"email":"a@x.com","note":"q\"t"}"#
        );
        assert_eq!(chunk.events[0].identity, "a@x.com");
    }

    #[test]
    fn policies() {
        let spec = |policy: &str| JobSpec {
            job_id: "j".into(),
            event_name: "e".into(),
            columns: vec![rule("FULL_NAME_MATCH", "email", policy, "", "EMAIL")],
            ..JobSpec::default()
        };
        let err = run(Format::Csv, "id\n1\n", spec("REQUIRED_COLUMN"))
            .err()
            .unwrap();
        assert_eq!(err.reason(), "REQUIRED_COLUMN_MISSING");
        assert!(err.to_string().contains("\"email\""));
        let optional = run(Format::Csv, "id\n1\n", spec("OPTIONAL")).unwrap();
        assert_eq!(optional.good, 1);
        let chunk = run(
            Format::Csv,
            "email\n\nnot-an-email\na@x.com\n\"\"\n",
            spec("REQUIRED_COLUMN"),
        )
        .unwrap();
        assert_eq!((chunk.good, chunk.failed), (2, 1));
        assert_eq!(chunk.issues[0].reason, "INVALID_EMAIL");
        let chunk = run(
            Format::Csv,
            "email\n\"\"\na@x.com\n",
            spec("REQUIRED_VALUE"),
        )
        .unwrap();
        assert_eq!((chunk.good, chunk.failed), (1, 1));
        assert_eq!(
            (
                chunk.issues[0].reason,
                chunk.issues[0].column.as_str(),
                chunk.issues[0].row
            ),
            ("REQUIRED_VALUE_MISSING", "email", 1)
        );
    }

    #[test]
    fn json_rows_check_required_columns_per_row() {
        let spec = JobSpec {
            job_id: "j".into(),
            event_name: "e".into(),
            columns: vec![rule("FULL_NAME_MATCH", "email", "REQUIRED_COLUMN", "", "")],
            ..JobSpec::default()
        };
        let chunk = run(
            Format::Jsonl,
            "{\"email\":\"a@x.com\",\"n\":1}\n{\"n\":2}\n",
            spec,
        )
        .unwrap();
        assert_eq!((chunk.good, chunk.failed), (1, 1));
        assert_eq!(chunk.issues[0].reason, "REQUIRED_COLUMN_MISSING");
        assert_eq!(data(&chunk.events[0]), r#"{"email":"a@x.com","n":1}"#);
    }

    #[test]
    fn the_four_formats_give_the_same_events() {
        let spec = JobSpec {
            job_id: "job-1".into(),
            default_event_name: "d".into(),
            ..JobSpec::default()
        };
        let csv = run(
            Format::Csv,
            "email,event_name\na@x.com,signup\nb@x.com,\n",
            spec.clone(),
        )
        .unwrap();
        let psv = run(
            Format::Psv,
            "email|event_name\na@x.com|signup\nb@x.com|\n",
            spec.clone(),
        )
        .unwrap();
        let json = run(
            Format::Json,
            r#"[{"email":"a@x.com","event_name":"signup"},{"email":"b@x.com","event_name":""}]"#,
            spec.clone(),
        )
        .unwrap();
        let jsonl = run(Format::Jsonl, "{\"email\":\"a@x.com\",\"event_name\":\"signup\"}\n{\"email\":\"b@x.com\",\"event_name\":\"\"}\n", spec).unwrap();
        assert_eq!(csv.events, psv.events);
        assert_eq!(csv.events, json.events);
        assert_eq!(csv.events, jsonl.events);
        assert_eq!(csv.events[1].name, "d");
    }

    #[test]
    fn an_event_id_is_xxh3_128_of_length_prefixed_parts() {
        // The layout `batchgrpc.eventids` documents, written out by hand.
        let mut key = Vec::new();
        for part in ["row", "job-1", "7"] {
            key.extend_from_slice(&(part.len() as u64).to_le_bytes());
            key.extend_from_slice(part.as_bytes());
        }
        assert_eq!(event_id("row", &["job-1", "7"]), xxh3_128(&key));
    }

    #[test]
    fn a_rows_id_is_the_row_source_with_the_number_in_decimal() {
        let mut ids = RowIds::new("job-1");
        // One RowIds for many rows, as a pipeline uses it, numbers of every width.
        for row in [0, 1, 9, 10, 99, 100, 123_456_789, u64::MAX, 3] {
            let expected = event_id("row", &["job-1", &row.to_string()]);
            assert_eq!(ids.id(row), expected, "row {row}");
            assert_eq!(row_event_id("job-1", row), expected);
        }
    }

    #[test]
    fn different_keys_never_share_an_id_by_their_bytes() {
        // The same bytes split differently, moved between source and parts,
        // or an empty part: each a different key, so a different id.
        let ids = [
            event_id("profile", &["ab", "c", "", ""]),
            event_id("profile", &["a", "bc", "", ""]),
            event_id("profile", &["a", "b", "c", ""]),
            event_id("profile", &["abc", "", "", ""]),
            event_id("profile", &["abc", "", ""]),
            event_id("profileab", &["c", "", ""]),
            event_id("notification", &["ab", "c"]),
            event_id("row", &["ab", "c"]),
        ];
        let distinct: std::collections::HashSet<u128> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn the_encoded_chunk_carries_each_rows_id() {
        let spec = JobSpec {
            job_id: "job-9".into(),
            event_name: "signup".into(),
            ..JobSpec::default()
        };
        let out = run(Format::Csv, "email\na@x.com\nb@x.com\n", spec).unwrap();
        let ids: Vec<&str> = out.events.iter().map(|e| e.id.as_str()).collect();
        let expected: Vec<String> = [1, 2]
            .iter()
            .map(|&row| String::from_utf8(hex_id(row_event_id("job-9", row)).to_vec()).unwrap())
            .collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn event_ids_depend_on_job_and_row_only() {
        assert_eq!(row_event_id("a", 1), row_event_id("a", 1));
        assert_ne!(row_event_id("a", 1), row_event_id("a", 2));
        assert_ne!(row_event_id("a", 1), row_event_id("b", 1));
        assert_eq!(
            &hex_id(0x0123_4567_89ab_cdef_u128 << 64),
            b"0123456789abcdef0000000000000000"
        );
    }

    #[test]
    fn numbers_in_decimal() {
        for n in [0, 7, 10, 12_345, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }

    #[test]
    fn the_word_scan_agrees_with_the_table_for_every_byte_anywhere() {
        for b in 0..=255u8 {
            for at in 0..17 {
                let mut bytes = [b'a'; 17];
                bytes[at] = b;
                for len in at + 1..=17 {
                    assert_eq!(
                        needs_escape(&bytes[..len]),
                        NEEDS_ESCAPE[usize::from(b)],
                        "byte {b:#x} at {at} of {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn json_escaping() {
        let mut out = Vec::new();
        write_json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\nd\u0001é""#);
    }
}
