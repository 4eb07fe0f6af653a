//! JSON (one array of objects) and JSONL (one object per line), streamed.
//!
//! A JSON array is split into items by a structural scan (strings, escapes,
//! nesting) over the byte stream, so only one item is held at a time; each
//! item is then parsed on its own. A syntax error inside an item fails that
//! row; a document the scan cannot follow (no `[`, a missing comma, the end
//! of the file inside an item) is a file error.

use std::collections::HashMap;
use std::io::{Read, Seek};

use memchr::memchr;
use serde_json::{Map, Value};

use super::{file_error, Cell, Input, ReadLimits, Resume, Row, RowProblem, RowSource};
use crate::error::{CoreError, FileReason};

/// Column names interned as JSON keys appear, so cells carry small ids.
#[derive(Debug, Default)]
struct Names {
    names: Vec<String>,
    ids: HashMap<String, usize>,
}

impl Names {
    fn id(&mut self, key: &str) -> usize {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.names.len();
        self.names.push(key.to_owned());
        self.ids.insert(key.to_owned(), id);
        id
    }
}

/// Parses one item's bytes into the row, or records why it cannot be a row.
fn item_to_row(bytes: &[u8], limits: &ReadLimits, names: &mut Names, row: &mut Row) {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        // serde_json stops at 128 levels, before the depth check could.
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => {
            row.problem = Some(too_deep(limits));
            return;
        }
        Err(e) => {
            row.problem = Some(RowProblem {
                reason: "INVALID_JSON",
                message: format!("the item is not valid JSON: {e}"),
            });
            return;
        }
    };
    let Value::Object(object) = value else {
        row.problem = Some(RowProblem {
            reason: "NOT_AN_OBJECT",
            message: format!("the item is {}, not an object", kind(&value)),
        });
        return;
    };
    if object.len() > limits.max_fields {
        row.problem = Some(RowProblem {
            reason: "TOO_MANY_FIELDS",
            message: format!("the object has more than {} keys", limits.max_fields),
        });
        return;
    }
    if let Some(problem) = check_values(&object, limits) {
        row.problem = Some(problem);
        return;
    }
    // The file's column names are its keys so far: held to the same cap as
    // a header, or rows of ever new keys would grow them without end.
    // (Only counted when it could matter: most files have a few columns.)
    if names.names.len() + object.len() > limits.max_fields
        && names.names.len()
            + object
                .keys()
                .filter(|k| !names.ids.contains_key(*k))
                .count()
            > limits.max_fields
    {
        row.problem = Some(RowProblem {
            reason: "TOO_MANY_COLUMNS",
            message: format!(
                "the row brings the file's column names to more than {}",
                limits.max_fields
            ),
        });
        return;
    }
    for (key, value) in object {
        let id = names.id(&key);
        row.cells.push((id, Cell::Json(value)));
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Depth, non-finite numbers and integers that do not fit 64 bits.
fn check_values(object: &Map<String, Value>, limits: &ReadLimits) -> Option<RowProblem> {
    fn walk(value: &Value, depth: usize, limits: &ReadLimits) -> Option<RowProblem> {
        match value {
            Value::Object(map) => {
                if depth > limits.max_depth {
                    return Some(too_deep(limits));
                }
                map.values().find_map(|v| walk(v, depth + 1, limits))
            }
            Value::Array(items) => {
                if depth > limits.max_depth {
                    return Some(too_deep(limits));
                }
                items.iter().find_map(|v| walk(v, depth + 1, limits))
            }
            Value::Number(n) => check_number(n.as_str()),
            _ => None,
        }
    }
    object.values().find_map(|v| walk(v, 2, limits))
}

#[cold]
fn too_deep(limits: &ReadLimits) -> RowProblem {
    RowProblem {
        reason: "NESTING_TOO_DEEP",
        message: format!("the item nests deeper than {} levels", limits.max_depth),
    }
}

/// With `arbitrary_precision`, a number keeps its source text: check it here.
pub(crate) fn check_number(text: &str) -> Option<RowProblem> {
    if text.contains(['.', 'e', 'E']) {
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => None,
            _ => Some(RowProblem {
                reason: "NON_FINITE_NUMBER",
                message: format!("the number {text} is out of the range of a 64-bit float"),
            }),
        }
    } else if text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok() {
        None
    } else {
        Some(RowProblem {
            reason: "INTEGER_OUT_OF_RANGE",
            message: format!("the integer {text} does not fit in 64 bits and would lose precision"),
        })
    }
}

/// A streaming reader of a JSON array of objects.
pub struct JsonArray<R> {
    input: Input<R>,
    limits: ReadLimits,
    names: Names,
    item: Vec<u8>,
    /// True before the first item: no comma expected.
    first: bool,
    done: bool,
    next_number: u64,
}

fn skip_whitespace<R: Read>(input: &mut Input<R>) -> Result<Option<u8>, CoreError> {
    while let Some(b) = input.peek()? {
        if !b.is_ascii_whitespace() {
            return Ok(Some(b));
        }
        input.pos += 1;
    }
    Ok(None)
}

impl<R: Read + Seek + Send> JsonArray<R> {
    /// Checks the document opens an array and positions at the first item
    /// (or after the item `resume` names).
    ///
    /// # Errors
    /// The document does not start with `[`.
    pub fn open(src: R, limits: ReadLimits, resume: Resume) -> Result<Self, CoreError> {
        let mut input = Input::new(src, 0);
        input.skip_bom()?;
        match skip_whitespace(&mut input)? {
            Some(b'[') => input.pos += 1,
            other => {
                return Err(file_error(
                    FileReason::InvalidJsonDocument,
                    format!(
                        "a JSON data file must be one array of objects; it starts with {}",
                        other.map_or("nothing".to_owned(), |b| format!("{:?}", b as char))
                    ),
                    input.offset(),
                ))
            }
        }
        let mut reader = Self {
            input,
            limits,
            names: Names::default(),
            item: Vec::new(),
            first: true,
            done: false,
            next_number: 1,
        };
        if resume.offset > 0 {
            reader.input.seek(resume.offset)?;
            reader.first = false;
            reader.next_number = resume.row + 1;
        }
        Ok(reader)
    }

    #[cold]
    fn broken(&self, message: String) -> CoreError {
        file_error(
            FileReason::InvalidJsonDocument,
            message,
            self.input.offset(),
        )
    }

    /// Copies the next item's bytes into `self.item` (up to the row cap),
    /// following strings and nesting. Returns whether the item overflowed
    /// the cap, and its depth.
    fn scan_item(&mut self) -> Result<(bool, usize), CoreError> {
        self.item.clear();
        let mut depth = 0usize;
        let mut max_depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        let mut overflow = false;
        let cap = self.limits.max_row_bytes;
        loop {
            if !self.input.fill()? {
                if depth == 0 && !in_string && !self.item.is_empty() {
                    return Ok((overflow, max_depth));
                }
                return Err(self.broken("the file ends inside an item of the array".into()));
            }
            let avail = self.input.available();
            let mut consumed = avail.len();
            let mut finished = false;
            for (i, &b) in avail.iter().enumerate() {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                        if depth == 0 {
                            consumed = i + 1;
                            finished = true;
                            break;
                        }
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => {
                        depth += 1;
                        max_depth = max_depth.max(depth);
                    }
                    b'}' | b']' => {
                        if depth == 0 {
                            // The array's own `]` ends a scalar item.
                            consumed = i;
                            finished = true;
                            break;
                        }
                        depth -= 1;
                        if depth == 0 {
                            consumed = i + 1;
                            finished = true;
                            break;
                        }
                    }
                    b',' if depth == 0 => {
                        consumed = i;
                        finished = true;
                        break;
                    }
                    _ => {}
                }
            }
            let chunk = &avail[..consumed];
            if !overflow {
                if self.item.len() + chunk.len() > cap {
                    overflow = true;
                } else {
                    self.item.extend_from_slice(chunk);
                }
            }
            self.input.pos += consumed;
            if finished {
                return Ok((overflow, max_depth));
            }
        }
    }
}

impl<R: Read + Seek + Send> RowSource for JsonArray<R> {
    fn names(&self) -> &[String] {
        &self.names.names
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool, CoreError> {
        if self.done {
            return Ok(false);
        }
        let mut next = skip_whitespace(&mut self.input)?;
        if next == Some(b']') {
            self.input.pos += 1;
            if let Some(b) = skip_whitespace(&mut self.input)? {
                return Err(self.broken(format!(
                    "unexpected {:?} after the end of the array",
                    b as char
                )));
            }
            self.done = true;
            return Ok(false);
        }
        if !self.first {
            if next != Some(b',') {
                return Err(self.broken(match next {
                    None => "the file ends before the array is closed with ]".into(),
                    Some(b) => format!("expected ',' or ']' between items, found {:?}", b as char),
                }));
            }
            self.input.pos += 1;
            next = skip_whitespace(&mut self.input)?;
        }
        if next.is_none() || next == Some(b']') {
            return Err(self.broken("expected an item of the array".into()));
        }
        self.first = false;
        row.reset();
        row.offset = self.input.offset();
        row.number = self.next_number;
        self.next_number += 1;
        let (overflow, depth) = self.scan_item()?;
        row.end = self.input.offset();
        if overflow {
            row.problem = Some(RowProblem {
                reason: "ROW_TOO_LARGE",
                message: format!("the item is over {} bytes", self.limits.max_row_bytes),
            });
        } else if depth > self.limits.max_depth {
            row.problem = Some(too_deep(&self.limits));
        } else {
            item_to_row(&self.item, &self.limits, &mut self.names, row);
        }
        Ok(true)
    }
}

/// A streaming reader of JSON Lines: one object per line, blank lines skipped.
pub struct JsonLines<R> {
    input: Input<R>,
    limits: ReadLimits,
    names: Names,
    line: Vec<u8>,
    next_number: u64,
}

impl<R: Read + Seek + Send> JsonLines<R> {
    /// Positions at the first line (or after the line `resume` names).
    ///
    /// # Errors
    /// Seeking to the resume offset failed.
    pub fn open(src: R, limits: ReadLimits, resume: Resume) -> Result<Self, CoreError> {
        let mut input = Input::new(src, 0);
        input.skip_bom()?;
        let mut next_number = 1;
        if resume.offset > 0 {
            input.seek(resume.offset)?;
            next_number = resume.row + 1;
        }
        Ok(Self {
            input,
            limits,
            names: Names::default(),
            line: Vec::new(),
            next_number,
        })
    }

    /// Reads one line into `self.line` (without its LF); false at the end.
    fn read_line(&mut self) -> Result<(bool, bool), CoreError> {
        self.line.clear();
        let mut overflow = false;
        let mut any = false;
        loop {
            if !self.input.fill()? {
                return Ok((any, overflow));
            }
            any = true;
            let avail = self.input.available();
            let (chunk, consumed, done) = match memchr(b'\n', avail) {
                Some(i) => (&avail[..i], i + 1, true),
                None => (avail, avail.len(), false),
            };
            if !overflow {
                if self.line.len() + chunk.len() > self.limits.max_row_bytes {
                    overflow = true;
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            self.input.pos += consumed;
            if done {
                return Ok((true, overflow));
            }
        }
    }
}

impl<R: Read + Seek + Send> RowSource for JsonLines<R> {
    fn names(&self) -> &[String] {
        &self.names.names
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool, CoreError> {
        loop {
            let offset = self.input.offset();
            let (found, overflow) = self.read_line()?;
            if !found {
                return Ok(false);
            }
            if !overflow && self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            row.reset();
            row.offset = offset;
            row.end = self.input.offset();
            row.number = self.next_number;
            self.next_number += 1;
            if overflow {
                row.problem = Some(RowProblem {
                    reason: "ROW_TOO_LARGE",
                    message: format!("the line is over {} bytes", self.limits.max_row_bytes),
                });
            } else {
                item_to_row(&self.line, &self.limits, &mut self.names, row);
            }
            return Ok(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::error::ErrorKind;
    use crate::formats::{open, Format};

    type Rows = Vec<Result<Vec<(String, String)>, String>>;

    fn read(format: Format, input: &str) -> Result<Rows, CoreError> {
        let mut source = open(
            format,
            Cursor::new(input.as_bytes().to_vec()),
            ReadLimits::default(),
            Resume::default(),
        )?;
        let mut rows = Vec::new();
        let mut row = Row::default();
        while source.next_row(&mut row)? {
            rows.push(match &row.problem {
                Some(p) => Err(p.reason.to_string()),
                None => Ok(row
                    .cells
                    .iter()
                    .map(|(id, c)| (source.names()[*id].clone(), row.cell_text(c).into_owned()))
                    .collect()),
            });
        }
        Ok(rows)
    }

    #[allow(clippy::unnecessary_wraps)] // reads as the expected row in tables
    fn pairs(items: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
        Ok(items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect())
    }

    #[test]
    fn json_array_table() {
        let cases: &[(&str, &str, Rows)] = &[
            ("empty", "[]", vec![]),
            ("spaces", " \n[ ]\n ", vec![]),
            (
                "two",
                r#"[{"a":"1","b":2},{"b":true}]"#,
                vec![pairs(&[("a", "1"), ("b", "2")]), pairs(&[("b", "true")])],
            ),
            (
                "nested",
                r#"[{"a":{"x":[1,"]"]},"b":"}"}]"#,
                vec![pairs(&[("a", r#"{"x":[1,"]"]}"#), ("b", "}")])],
            ),
            (
                "escapes",
                r#"[{"a":"q\"],{"}]"#,
                vec![pairs(&[("a", "q\"],{")])],
            ),
            (
                "not object",
                r#"[1, "x", null, {"a":"ok"}]"#,
                vec![
                    Err("NOT_AN_OBJECT".into()),
                    Err("NOT_AN_OBJECT".into()),
                    Err("NOT_AN_OBJECT".into()),
                    pairs(&[("a", "ok")]),
                ],
            ),
            (
                "bad item",
                r#"[{"a":tru}, {"a":"ok"}]"#,
                vec![Err("INVALID_JSON".into()), pairs(&[("a", "ok")])],
            ),
            (
                "huge int",
                r#"[{"a":123456789012345678901234}]"#,
                vec![Err("INTEGER_OUT_OF_RANGE".into())],
            ),
            (
                "u64 ok",
                r#"[{"a":18446744073709551615}]"#,
                vec![pairs(&[("a", "18446744073709551615")])],
            ),
            (
                "inf",
                r#"[{"a":1e999}]"#,
                vec![Err("NON_FINITE_NUMBER".into())],
            ),
            ("bom", "\u{feff}[{\"a\":\"1\"}]", vec![pairs(&[("a", "1")])]),
        ];
        for (name, input, expected) in cases {
            assert_eq!(
                &read(Format::Json, input).unwrap_or_else(|e| panic!("{name}: {e}")),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn json_document_errors() {
        for input in [
            "",
            "{\"a\":1}",
            "[{\"a\":1} {\"a\":2}]",
            "[{\"a\":1},",
            "[{\"a\":1}] x",
            "[{\"a\":\"open]",
            "[,]",
        ] {
            let err = read(Format::Json, input).unwrap_err();
            assert!(
                matches!(
                    err.kind(),
                    ErrorKind::DataFile {
                        reason: FileReason::InvalidJsonDocument,
                        ..
                    }
                ),
                "{input:?}: {err:?}"
            );
        }
    }

    #[test]
    fn nesting_over_the_cap_fails_the_row() {
        let deep = format!(
            "[{{\"a\":{}1{}}},{{\"a\":1}}]",
            "[".repeat(12),
            "]".repeat(12)
        );
        assert_eq!(
            read(Format::Json, &deep).unwrap(),
            vec![Err("NESTING_TOO_DEEP".into()), pairs(&[("a", "1")])]
        );
        let deep = format!("{{\"a\":{}1{}}}\n", "[".repeat(12), "]".repeat(12));
        assert_eq!(
            read(Format::Jsonl, &deep).unwrap(),
            vec![Err("NESTING_TOO_DEEP".into())]
        );
    }

    #[test]
    fn jsonl_table() {
        let rows = read(
            Format::Jsonl,
            "{\"a\":\"1\"}\r\n\n  \n{\"a\":2}\n[1]\n{bad\n{\"a\":3}",
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![
                pairs(&[("a", "1")]),
                pairs(&[("a", "2")]),
                Err("NOT_AN_OBJECT".into()),
                Err("INVALID_JSON".into()),
                pairs(&[("a", "3")])
            ]
        );
    }

    #[test]
    fn json_rows_resume_after_a_checkpoint() {
        let input = r#"[{"a":1},{"a":2},{"a":3}]"#.as_bytes().to_vec();
        let mut source = open(
            Format::Json,
            Cursor::new(input.clone()),
            ReadLimits::default(),
            Resume::default(),
        )
        .unwrap();
        let mut row = Row::default();
        assert!(source.next_row(&mut row).unwrap());
        let resume = Resume {
            offset: row.end,
            row: row.number,
        };
        let mut source = open(
            Format::Json,
            Cursor::new(input),
            ReadLimits::default(),
            resume,
        )
        .unwrap();
        let mut numbers = Vec::new();
        while source.next_row(&mut row).unwrap() {
            numbers.push((row.number, row.cell_text(&row.cells[0].1).into_owned()));
        }
        assert_eq!(numbers, [(2, "2".to_owned()), (3, "3".to_owned())]);
    }

    fn object(keys: std::ops::Range<usize>) -> String {
        let members: Vec<String> = keys.map(|i| format!("\"k{i}\":{i}")).collect();
        format!("{{{}}}", members.join(","))
    }

    #[test]
    fn an_object_over_the_field_cap_fails_its_row() {
        let ok = object(0..10_000);
        let over = object(0..10_001);
        for format in [Format::Json, Format::Jsonl] {
            let input = match format {
                Format::Json => format!("[{ok},{over},{{\"k1\":1}}]"),
                _ => format!("{ok}\n{over}\n{{\"k1\":1}}\n"),
            };
            let rows = read(format, &input).unwrap();
            assert_eq!(rows[0].as_ref().map(Vec::len), Ok(10_000));
            assert_eq!(rows[1], Err("TOO_MANY_FIELDS".into()));
            assert_eq!(rows[2], pairs(&[("k1", "1")]));
        }
    }

    #[test]
    fn the_files_column_names_are_held_to_the_field_cap() {
        // Each row under the cap, but every row brings new keys.
        let input = format!(
            "{}\n{}\n{}\n",
            object(0..6_000),
            object(6_000..12_000),
            object(0..10)
        );
        let rows = read(Format::Jsonl, &input).unwrap();
        assert_eq!(rows[0].as_ref().map(Vec::len), Ok(6_000));
        assert_eq!(rows[1], Err("TOO_MANY_COLUMNS".into()));
        assert_eq!(rows[2].as_ref().map(Vec::len), Ok(10));
    }

    #[test]
    fn a_huge_line_is_too_large_and_nesting_is_capped() {
        let huge = format!("{}\n{{\"a\":1}}\n", object(0..200_000));
        assert!(huge.len() > 1 << 20);
        assert_eq!(
            read(Format::Jsonl, &huge).unwrap(),
            vec![Err("ROW_TOO_LARGE".into()), pairs(&[("a", "1")])]
        );
        // Deep nesting of objects under the byte cap: the depth cap speaks.
        let deep = format!("{}1{}\n", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        assert!(deep.len() < 1 << 20);
        assert_eq!(
            read(Format::Jsonl, &deep).unwrap(),
            vec![Err("NESTING_TOO_DEEP".into())]
        );
        let deep = format!("[{}1{}]", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        assert_eq!(
            read(Format::Json, &deep).unwrap(),
            vec![Err("NESTING_TOO_DEEP".into())]
        );
    }
}
