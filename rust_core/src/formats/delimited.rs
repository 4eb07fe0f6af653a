//! CSV and PSV: RFC 4180 with one delimiter, streamed.
//!
//! A record ends at LF, CRLF or a lone CR outside quotes. Quoted fields may
//! hold delimiters, doubled quotes and line breaks. Blank lines are skipped.
//! A field or record over its cap stops being copied (the row fails) while
//! the parser keeps its quote state, so one bad row never swallows the rest
//! of the file; a quote still open at the end of the file is a file error
//! naming where it opened.

use std::collections::HashSet;
use std::io::{Read, Seek};

use memchr::{memchr, memchr2, memchr3, memchr_iter};

use super::{file_error, Cell, Input, ReadLimits, Resume, Row, RowProblem, RowSource};
use crate::error::{CoreError, FileReason};

/// One raw record: its bytes without quoting, and each field's range in them.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub(crate) data: Vec<u8>,
    pub(crate) fields: Vec<(usize, usize)>,
    pub(crate) offset: u64,
    pub(crate) end: u64,
    pub(crate) problem: Option<RowProblem>,
}

#[derive(Clone, Copy)]
enum State {
    /// At the start of a field.
    FieldStart,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// Just past a quote inside a quoted field: a doubled quote, or the end.
    QuoteSeen,
    /// Just past a CR that ended the record: swallow a following LF.
    SkipLf,
}

/// A streaming CSV/PSV reader.
pub struct Delimited<R> {
    input: Input<R>,
    delimiter: u8,
    limits: ReadLimits,
    names: Vec<String>,
    record: Record,
    next_number: u64,
}

impl<R: Read + Seek + Send> Delimited<R> {
    /// Reads the header and positions the reader at the first data row (or
    /// at `resume`).
    ///
    /// # Errors
    /// No header, an empty or duplicate name, a header that is not UTF-8.
    pub fn open(
        src: R,
        delimiter: u8,
        limits: ReadLimits,
        resume: Resume,
    ) -> Result<Self, CoreError> {
        let mut input = Input::new(src, 0);
        input.skip_bom()?;
        let mut reader = Self {
            input,
            delimiter,
            limits,
            names: Vec::new(),
            record: Record::default(),
            next_number: 1,
        };
        reader.read_header()?;
        if resume.offset > 0 {
            if resume.offset < reader.input.offset() {
                return Err(file_error(
                    FileReason::BadResumeOffset,
                    format!("resume offset {} is inside the header", resume.offset),
                    resume.offset,
                ));
            }
            reader.input.seek(resume.offset)?;
            reader.next_number = resume.row + 1;
        }
        Ok(reader)
    }

    fn read_header(&mut self) -> Result<(), CoreError> {
        let mut record = std::mem::take(&mut self.record);
        let found = self.read_record(&mut record)?;
        if !found {
            return Err(file_error(
                FileReason::MissingHeader,
                "the file has no header row: CSV and PSV files need one naming the columns".into(),
                0,
            ));
        }
        if let Some(problem) = &record.problem {
            return Err(file_error(
                FileReason::BadHeader,
                format!("the header row cannot be read: {}", problem.message),
                record.offset,
            ));
        }
        let text = std::str::from_utf8(&record.data)
            .ok()
            .filter(|text| split_char(text, &record.fields).is_none());
        let Some(text) = text else {
            return Err(file_error(
                FileReason::BadHeader,
                "the header row is not valid UTF-8".into(),
                record.offset,
            ));
        };
        let mut seen = HashSet::new();
        for (i, &(start, end)) in record.fields.iter().enumerate() {
            let name = &text[start..end];
            if name.is_empty() {
                return Err(file_error(
                    FileReason::EmptyHeaderName,
                    format!("header column {} has no name", i + 1),
                    record.offset,
                ));
            }
            if !seen.insert(name) {
                return Err(file_error(
                    FileReason::DuplicateHeader,
                    format!("the header names column {name:?} more than once"),
                    record.offset,
                ));
            }
            self.names.push(name.to_owned());
        }
        self.record = record;
        Ok(())
    }

    /// Reads the next record; false at end of file.
    ///
    /// Every byte of the record counts against the row cap (delimiters,
    /// quotes and doubled quotes too, not the line break that ends it) and
    /// every field against the field cap. Past a cap nothing more is kept:
    /// the parser goes on to the end of the record in constant memory,
    /// following quotes so the next record starts where it really does.
    #[allow(clippy::too_many_lines)] // one state machine reads best in one place
    pub(crate) fn read_record(&mut self, rec: &mut Record) -> Result<bool, CoreError> {
        rec.data.clear();
        rec.fields.clear();
        rec.problem = None;
        let delimiter = self.delimiter;
        let limits = self.limits;
        let input = &mut self.input;
        let mut state = State::FieldStart;
        let mut field_start = 0usize;
        let mut quote_offset = 0u64;
        // Fields seen, kept or not: 0 until the record starts.
        let mut fields = 0usize;
        // Once a cap is passed, bytes are no longer kept; parsing goes on.
        let mut overflow = false;
        rec.offset = input.offset();

        // The fast path: a whole line in the buffer with no quote and no CR
        // but a final one is a record of plain fields. Copy it in one go.
        'fast: while let Some(nl) = memchr(b'\n', input.available()) {
            let mut line = &input.available()[..nl];
            match memchr2(b'"', b'\r', line) {
                None => {}
                Some(i) if i + 1 == line.len() && line[i] == b'\r' => line = &line[..i],
                Some(_) => break,
            }
            if line.len() > limits.max_field_bytes.min(limits.max_row_bytes) {
                break;
            }
            if line.is_empty() {
                input.pos += nl + 1;
                rec.offset = input.offset();
                continue;
            }
            let mut start = 0;
            for i in memchr_iter(delimiter, line) {
                if rec.fields.len() + 2 > limits.max_fields {
                    // One field too many: the slow path says so.
                    rec.fields.clear();
                    break 'fast;
                }
                rec.fields.push((start, i));
                start = i + 1;
            }
            rec.fields.push((start, line.len()));
            rec.data.extend_from_slice(line);
            input.pos += nl + 1;
            rec.end = input.offset();
            return Ok(true);
        }

        // Appends `bytes` to the current field unless a cap was passed.
        let push = |rec: &mut Record, bytes: &[u8], field_start: usize, overflow: &mut bool| {
            if *overflow {
                return;
            }
            if rec.data.len() + bytes.len() > limits.max_row_bytes {
                *overflow = true;
                rec.problem = Some(row_too_large(&limits));
            } else if rec.data.len() + bytes.len() - field_start > limits.max_field_bytes {
                *overflow = true;
                rec.problem = Some(RowProblem {
                    reason: "FIELD_TOO_LARGE",
                    message: format!(
                        "field {} is over {} bytes",
                        rec.fields.len() + 1,
                        limits.max_field_bytes
                    ),
                });
            } else {
                rec.data.extend_from_slice(bytes);
            }
        };
        // Counts the record's bytes up to file offset `end`.
        let count = |rec: &mut Record, end: u64, overflow: &mut bool| {
            if !*overflow && end - rec.offset > limits.max_row_bytes as u64 {
                *overflow = true;
                rec.problem = Some(row_too_large(&limits));
            }
        };
        // Ends the current field: kept while under the caps.
        let end_field =
            |rec: &mut Record, field_start: usize, fields: &mut usize, overflow: &mut bool| {
                *fields += 1;
                if *overflow {
                    return;
                }
                if *fields > limits.max_fields {
                    *overflow = true;
                    rec.problem = Some(RowProblem {
                        reason: "TOO_MANY_FIELDS",
                        message: format!("the row has more than {} fields", limits.max_fields),
                    });
                } else {
                    rec.fields.push((field_start, rec.data.len()));
                }
            };

        loop {
            match state {
                State::FieldStart => {
                    let Some(b) = input.peek()? else {
                        if fields == 0 {
                            return Ok(false);
                        }
                        end_field(rec, field_start, &mut fields, &mut overflow);
                        rec.end = input.offset();
                        return Ok(true);
                    };
                    if fields == 0 && (b == b'\n' || b == b'\r') {
                        // A blank line: skip it, the record starts later.
                        input.pos += 1;
                        rec.offset = input.offset();
                    } else if b == b'"' {
                        quote_offset = input.offset();
                        input.pos += 1;
                        count(rec, input.offset(), &mut overflow);
                        state = State::Quoted;
                    } else {
                        state = State::Unquoted;
                    }
                }
                State::Unquoted => {
                    if !input.fill()? {
                        end_field(rec, field_start, &mut fields, &mut overflow);
                        rec.end = input.offset();
                        return Ok(true);
                    }
                    let avail = input.available();
                    match memchr3(delimiter, b'\n', b'\r', avail) {
                        None => {
                            let n = avail.len();
                            push(rec, avail, field_start, &mut overflow);
                            input.pos += n;
                            count(rec, input.offset(), &mut overflow);
                        }
                        Some(i) => {
                            let b = avail[i];
                            push(rec, &avail[..i], field_start, &mut overflow);
                            input.pos += i;
                            if b == delimiter {
                                // The delimiter is the record's too.
                                input.pos += 1;
                                count(rec, input.offset(), &mut overflow);
                                end_field(rec, field_start, &mut fields, &mut overflow);
                                field_start = rec.data.len();
                                state = State::FieldStart;
                            } else {
                                count(rec, input.offset(), &mut overflow);
                                end_field(rec, field_start, &mut fields, &mut overflow);
                                input.pos += 1;
                                if b == b'\r' {
                                    state = State::SkipLf;
                                } else {
                                    rec.end = input.offset();
                                    return Ok(true);
                                }
                            }
                        }
                    }
                }
                State::Quoted => {
                    if !input.fill()? {
                        return Err(file_error(
                            FileReason::UnterminatedQuote,
                            format!(
                                "a quoted field opened at byte {quote_offset} (row starting at byte {}) \
                                 is never closed",
                                rec.offset
                            ),
                            quote_offset,
                        ));
                    }
                    let avail = input.available();
                    if let Some(i) = memchr(b'"', avail) {
                        push(rec, &avail[..i], field_start, &mut overflow);
                        input.pos += i + 1;
                        state = State::QuoteSeen;
                    } else {
                        let n = avail.len();
                        push(rec, avail, field_start, &mut overflow);
                        input.pos += n;
                    }
                    count(rec, input.offset(), &mut overflow);
                }
                State::QuoteSeen => match input.peek()? {
                    None => {
                        end_field(rec, field_start, &mut fields, &mut overflow);
                        rec.end = input.offset();
                        return Ok(true);
                    }
                    Some(b'"') => {
                        push(rec, b"\"", field_start, &mut overflow);
                        input.pos += 1;
                        count(rec, input.offset(), &mut overflow);
                        state = State::Quoted;
                    }
                    Some(b) if b == delimiter => {
                        input.pos += 1;
                        count(rec, input.offset(), &mut overflow);
                        end_field(rec, field_start, &mut fields, &mut overflow);
                        field_start = rec.data.len();
                        state = State::FieldStart;
                    }
                    Some(b'\n') => {
                        input.pos += 1;
                        end_field(rec, field_start, &mut fields, &mut overflow);
                        rec.end = input.offset();
                        return Ok(true);
                    }
                    Some(b'\r') => {
                        input.pos += 1;
                        end_field(rec, field_start, &mut fields, &mut overflow);
                        state = State::SkipLf;
                    }
                    Some(_) => {
                        // Text after a closing quote: keep it, as most
                        // readers do, but fail the row.
                        if rec.problem.is_none() {
                            rec.problem = Some(RowProblem {
                                reason: "BAD_QUOTING",
                                message: format!(
                                    "field {} has text after its closing quote",
                                    fields + 1
                                ),
                            });
                        }
                        state = State::Unquoted;
                    }
                },
                State::SkipLf => {
                    if input.peek()? == Some(b'\n') {
                        input.pos += 1;
                    }
                    rec.end = input.offset();
                    return Ok(true);
                }
            }
        }
    }
}

#[cold]
fn row_too_large(limits: &ReadLimits) -> RowProblem {
    RowProblem {
        reason: "ROW_TOO_LARGE",
        message: format!("the row is over {} bytes", limits.max_row_bytes),
    }
}

impl<R: Read + Seek + Send> RowSource for Delimited<R> {
    fn names(&self) -> &[String] {
        &self.names
    }

    fn next_row(&mut self, row: &mut Row) -> Result<bool, CoreError> {
        let mut record = std::mem::take(&mut self.record);
        let found = self.read_record(&mut record);
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                self.record = record;
                return Err(e);
            }
        };
        if !found {
            self.record = record;
            return Ok(false);
        }
        row.reset();
        row.number = self.next_number;
        self.next_number += 1;
        row.offset = record.offset;
        row.end = record.end;
        if let Some(problem) = record.problem.take() {
            row.problem = Some(problem);
        } else if record.fields.len() != self.names.len() {
            row.problem = Some(RowProblem {
                reason: "RAGGED_ROW",
                message: format!(
                    "the row has {} fields, the header {}",
                    record.fields.len(),
                    self.names.len()
                ),
            });
        } else {
            // Swap buffers instead of copying: the record takes the row's
            // old string buffer and reuses it for the next record.
            let old = std::mem::take(&mut row.text).into_bytes();
            match String::from_utf8(std::mem::replace(&mut record.data, old)) {
                Ok(text) => {
                    if let Some(field) = split_char(&text, &record.fields) {
                        row.problem = Some(RowProblem {
                            reason: "INVALID_UTF8",
                            message: format!("field {:?} is not valid UTF-8", self.names[field]),
                        });
                    } else {
                        for (id, &(start, end)) in record.fields.iter().enumerate() {
                            row.cells.push((id, Cell::Text(start, end)));
                        }
                    }
                    row.text = text;
                }
                Err(e) => {
                    let at = e.utf8_error().valid_up_to();
                    let field = record
                        .fields
                        .iter()
                        .position(|&(_, end)| at < end)
                        .unwrap_or(0);
                    row.problem = Some(RowProblem {
                        reason: "INVALID_UTF8",
                        message: format!("field {:?} is not valid UTF-8", self.names[field]),
                    });
                }
            }
        }
        self.record = record;
        Ok(true)
    }
}

/// The first field whose bounds cut a character in two. Quoting and
/// delimiters are gone from the record's bytes, so the bytes of two fields can
/// join into a valid character although neither field is valid UTF-8 alone.
fn split_char(text: &str, fields: &[(usize, usize)]) -> Option<usize> {
    fields
        .iter()
        .position(|&(start, end)| !text.is_char_boundary(start) || !text.is_char_boundary(end))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::error::ErrorKind;

    /// Each row's cells, or the reason it failed.
    type Rows = Vec<Result<Vec<String>, String>>;

    fn read(input: &[u8], delimiter: u8) -> Result<(Vec<String>, Rows), CoreError> {
        let mut reader = Delimited::open(
            Cursor::new(input.to_vec()),
            delimiter,
            ReadLimits::default(),
            Resume::default(),
        )?;
        let mut rows = Vec::new();
        let mut row = Row::default();
        while reader.next_row(&mut row)? {
            rows.push(match &row.problem {
                Some(p) => Err(p.reason.to_string()),
                None => Ok(row
                    .cells
                    .iter()
                    .map(|(_, c)| row.cell_text(c).into_owned())
                    .collect()),
            });
        }
        Ok((reader.names.clone(), rows))
    }

    #[allow(clippy::unnecessary_wraps)] // reads as the expected row in tables
    fn ok(cells: &[&str]) -> Result<Vec<String>, String> {
        Ok(cells.iter().map(ToString::to_string).collect())
    }

    fn file_reason(err: &CoreError) -> FileReason {
        match err.kind() {
            ErrorKind::DataFile { reason, .. } => *reason,
            other => panic!("not a file error: {other:?}"),
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, &[u8], Rows)] = &[
            (
                "lf",
                b"a,b\n1,2\n3,4\n",
                vec![ok(&["1", "2"]), ok(&["3", "4"])],
            ),
            (
                "crlf",
                b"a,b\r\n1,2\r\n3,4\r\n",
                vec![ok(&["1", "2"]), ok(&["3", "4"])],
            ),
            (
                "lone cr",
                b"a,b\r1,2\r3,4",
                vec![ok(&["1", "2"]), ok(&["3", "4"])],
            ),
            ("no final newline", b"a,b\n1,2", vec![ok(&["1", "2"])]),
            ("bom", b"\xEF\xBB\xBFa,b\n1,2\n", vec![ok(&["1", "2"])]),
            (
                "blank lines",
                b"a,b\n\n1,2\r\n\r\n3,4\n\n",
                vec![ok(&["1", "2"]), ok(&["3", "4"])],
            ),
            (
                "quoted delimiter",
                b"a,b\n\"x,y\",2\n",
                vec![ok(&["x,y", "2"])],
            ),
            (
                "doubled quote",
                b"a,b\n\"say \"\"hi\"\"\",2\n",
                vec![ok(&["say \"hi\"", "2"])],
            ),
            (
                "quoted newline",
                b"a,b\n\"line1\nline2\r\nline3\",2\n",
                vec![ok(&["line1\nline2\r\nline3", "2"])],
            ),
            ("empty fields", b"a,b,c\n,,\n", vec![ok(&["", "", ""])]),
            ("quoted empty", b"a\n\"\"\n", vec![ok(&[""])]),
            (
                "ragged short",
                b"a,b\n1\n3,4\n",
                vec![Err("RAGGED_ROW".into()), ok(&["3", "4"])],
            ),
            (
                "ragged long",
                b"a,b\n1,2,3\n",
                vec![Err("RAGGED_ROW".into())],
            ),
            (
                "text after quote",
                b"a,b\n\"x\"y,2\n",
                vec![Err("BAD_QUOTING".into())],
            ),
            (
                "invalid utf8",
                b"a,b\n\xff,2\nok,3\n",
                vec![Err("INVALID_UTF8".into()), ok(&["ok", "3"])],
            ),
            ("header only", b"a,b\n", vec![]),
        ];
        for (name, input, expected) in cases {
            let (_, rows) = read(input, b',').unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(&rows, expected, "{name}");
        }
    }

    #[test]
    fn a_character_split_by_a_delimiter_is_invalid_utf8() {
        // 0xD5 0xBE is one character only once the delimiter is gone.
        let (_, rows) = read(b"a,b\n\xd5,\xbe\"\"\nok,1\n", b',').unwrap();
        assert_eq!(rows, vec![Err("INVALID_UTF8".into()), ok(&["ok", "1"])]);
        let err = read(b"\xd5,\xbe\"\"\n", b',').unwrap_err();
        assert_eq!(file_reason(&err), FileReason::BadHeader);
    }

    #[test]
    fn psv_uses_the_pipe() {
        let (names, rows) = read(b"a|b\n1,5|\"x|y\"\n", b'|').unwrap();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(rows, vec![ok(&["1,5", "x|y"])]);
    }

    #[test]
    fn header_problems_are_file_errors() {
        for (input, reason) in [
            (&b""[..], FileReason::MissingHeader),
            (b"\n\n", FileReason::MissingHeader),
            (b"a,,b\n", FileReason::EmptyHeaderName),
            (b"a,b,a\n1,2,3\n", FileReason::DuplicateHeader),
            (b"a,\xff\n", FileReason::BadHeader),
        ] {
            let err = read(input, b',').unwrap_err();
            assert_eq!(file_reason(&err), reason, "{input:?}");
        }
    }

    #[test]
    fn an_unterminated_quote_is_a_file_error_at_the_quote() {
        let err = read(b"a,b\n1,2\n3,\"open\n4,5\n6,7\n", b',').unwrap_err();
        assert_eq!(file_reason(&err), FileReason::UnterminatedQuote);
        match err.kind() {
            ErrorKind::DataFile {
                offset, message, ..
            } => {
                assert_eq!(*offset, 10);
                assert!(message.contains("byte 10"), "{message}");
            }
            _ => unreachable!(),
        }
    }

    #[test]
    fn an_oversized_field_fails_its_row_only() {
        let big = "x".repeat(300);
        let input = format!("a,b\n1,{big}\n2,\"{big}\"\n3,4\n");
        let limits = ReadLimits {
            max_field_bytes: 100,
            max_row_bytes: 1000,
            max_fields: 10_000,
            max_depth: 10,
        };
        let mut reader = Delimited::open(
            Cursor::new(input.into_bytes()),
            b',',
            limits,
            Resume::default(),
        )
        .unwrap();
        let mut row = Row::default();
        let mut reasons = Vec::new();
        while reader.next_row(&mut row).unwrap() {
            reasons.push(row.problem.as_ref().map(|p| p.reason));
        }
        assert_eq!(
            reasons,
            [Some("FIELD_TOO_LARGE"), Some("FIELD_TOO_LARGE"), None]
        );
    }

    #[test]
    fn rows_carry_numbers_and_offsets_and_resume_from_them() {
        let input = b"a,b\n1,2\n\"3\n\",4\n5,6\n".to_vec();
        let mut reader = Delimited::open(
            Cursor::new(input.clone()),
            b',',
            ReadLimits::default(),
            Resume::default(),
        )
        .unwrap();
        let mut row = Row::default();
        let mut seen = Vec::new();
        while reader.next_row(&mut row).unwrap() {
            seen.push((row.number, row.offset, row.end));
        }
        assert_eq!(seen, [(1, 4, 8), (2, 8, 15), (3, 15, 19)]);
        let resume = Resume { offset: 8, row: 1 };
        let mut reader =
            Delimited::open(Cursor::new(input), b',', ReadLimits::default(), resume).unwrap();
        assert!(reader.next_row(&mut row).unwrap());
        assert_eq!(
            (row.number, row.cell_text(&row.cells[0].1).as_ref()),
            (2, "3\n")
        );
    }

    #[test]
    fn small_reads_parse_the_same() {
        // A reader that returns one byte at a time exercises every refill path.
        struct OneByte(Cursor<Vec<u8>>);
        impl Read for OneByte {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(1);
                self.0.read(&mut buf[..n])
            }
        }
        impl Seek for OneByte {
            fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
                self.0.seek(pos)
            }
        }
        let input = b"a,b\r\n\"x,\"\"y\"\"\r\n\",2\r3,4".to_vec();
        let mut reader = Delimited::open(
            OneByte(Cursor::new(input)),
            b',',
            ReadLimits::default(),
            Resume::default(),
        )
        .unwrap();
        let mut row = Row::default();
        let mut rows = Vec::new();
        while reader.next_row(&mut row).unwrap() {
            rows.push(
                row.cells
                    .iter()
                    .map(|(_, c)| row.cell_text(c).into_owned())
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(rows, [vec!["x,\"y\"\r\n", "2"], vec!["3", "4"]]);
    }

    /// Reads `input` with the default caps: the header's names, and per row
    /// its field count or the reason it failed.
    #[allow(clippy::type_complexity)] // a test's table of rows
    fn shapes(input: &[u8]) -> Result<(usize, Vec<Result<usize, &'static str>>), CoreError> {
        let mut reader = Delimited::open(
            Cursor::new(input.to_vec()),
            b',',
            ReadLimits::default(),
            Resume::default(),
        )?;
        let mut rows = Vec::new();
        let mut row = Row::default();
        while reader.next_row(&mut row)? {
            rows.push(match &row.problem {
                Some(p) => Err(p.reason),
                None => Ok(row.cells.len()),
            });
        }
        Ok((reader.names.len(), rows))
    }

    /// `n` fields of one shape, joined by commas, ended by `end`.
    fn record(n: usize, field: &str, end: &str) -> Vec<u8> {
        let mut out = vec![field; n].join(",").into_bytes();
        out.extend_from_slice(end.as_bytes());
        out
    }

    fn header(n: usize) -> String {
        (0..n)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    const MAX_FIELDS: usize = 10_000;
    const MAX_BYTES: usize = 1 << 20;

    #[test]
    fn rows_of_any_shape_stop_at_the_field_cap() {
        let head = header(MAX_FIELDS);
        // Empty fields, quoted empties, doubled quotes, CRLF, a lone CR.
        for (field, end) in [
            ("", "\n"),
            ("\"\"", "\n"),
            ("\"\"\"\"", "\r\n"),
            ("x", "\r"),
            ("\"a,b\"", "\n"),
        ] {
            for (n, expected) in [
                (MAX_FIELDS, Ok(MAX_FIELDS)),
                (MAX_FIELDS + 1, Err("TOO_MANY_FIELDS")),
            ] {
                let mut input = format!("\u{feff}{head}\n").into_bytes();
                input.extend(record(n, field, end));
                input.extend_from_slice(b"after\n");
                let (_, rows) = shapes(&input).unwrap();
                assert_eq!(
                    rows,
                    [expected, Err("RAGGED_ROW")],
                    "{n} fields of {field:?}"
                );
            }
        }
    }

    #[test]
    fn a_header_over_the_field_cap_is_a_bad_header() {
        let (names, rows) = shapes(format!("{}\n", header(MAX_FIELDS)).as_bytes()).unwrap();
        assert_eq!((names, rows), (MAX_FIELDS, vec![]));
        let err = shapes(format!("{}\n1\n", header(MAX_FIELDS + 1)).as_bytes()).unwrap_err();
        assert_eq!(file_reason(&err), FileReason::BadHeader);
        assert!(err.to_string().contains("more than 10000 fields"), "{err}");
        for shape in [",", "\"\","] {
            let err = shapes(shape.repeat(MAX_FIELDS + 1).as_bytes()).unwrap_err();
            assert_eq!(file_reason(&err), FileReason::BadHeader, "{shape:?}");
        }
    }

    #[test]
    fn every_byte_of_a_row_counts_against_the_byte_cap() {
        // Each shape as a function of the row's length in bytes (without
        // its line break), with the header it needs.
        type Shape = (&'static str, fn(usize) -> String);
        let shapes_of: [Shape; 4] = [
            ("a", |n| "x".repeat(n)),
            ("a", |n| format!("\"{}\"", "x".repeat(n - 2))),
            ("a", |n| {
                format!(
                    "\"{}{}\"",
                    "\"\"".repeat((n - 2) / 2),
                    "x".repeat((n - 2) % 2)
                )
            }),
            ("a,b", |n| {
                let inner = n - n / 2 - 3;
                let quoted = "\"\"".repeat(inner / 2) + &"y".repeat(inner % 2);
                format!("{},\"{quoted}\"", "x".repeat(n / 2))
            }),
        ];
        for (head, make) in shapes_of {
            for (n, expected) in [
                (MAX_BYTES, Ok(head.split(',').count())),
                (MAX_BYTES + 1, Err("ROW_TOO_LARGE")),
            ] {
                let row = make(n);
                assert_eq!(row.len(), n);
                for end in ["\n", "\r\n", ""] {
                    let input = format!("{head}\n{row}{end}");
                    let (_, rows) = shapes(input.as_bytes()).unwrap();
                    assert_eq!(
                        rows,
                        [expected],
                        "{n} bytes, {}..., ended by {end:?}",
                        &row[..8]
                    );
                }
            }
        }
        // The header too.
        let err = shapes(format!("{}\n", "h".repeat(MAX_BYTES + 1)).as_bytes()).unwrap_err();
        assert_eq!(file_reason(&err), FileReason::BadHeader);
        assert_eq!(
            shapes(format!("{}\n", "h".repeat(MAX_BYTES)).as_bytes())
                .unwrap()
                .0,
            1
        );
    }

    /// A long line of one pattern, made as it is read.
    struct Repeat {
        unit: &'static [u8],
        left: usize,
        at: usize,
    }

    impl Read for Repeat {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let mut n = 0;
            while n < buf.len() && self.left > 0 {
                buf[n] = self.unit[self.at];
                self.at = (self.at + 1) % self.unit.len();
                self.left -= 1;
                n += 1;
            }
            Ok(n)
        }
    }

    impl Seek for Repeat {
        fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
            unreachable!("never resumed")
        }
    }

    #[test]
    fn a_huge_row_of_delimiters_is_read_in_flat_memory() {
        for unit in [&b","[..], b"\"\",", b"\"\"\"\",", b"\"\r\n\","] {
            // A header of one name, then 4 MB of the pattern on one row.
            let left = (4 << 20) / unit.len() * unit.len();
            let src = Read::chain(Cursor::new(b"a\n".to_vec()), Repeat { unit, left, at: 0 });
            let mut reader = Delimited::open(
                ReadSeek(src),
                b',',
                ReadLimits::default(),
                Resume::default(),
            )
            .unwrap();
            let mut row = Row::default();
            let mut rows = 0;
            while reader.next_row(&mut row).unwrap() {
                rows += 1;
                assert!(
                    reader.record.fields.capacity() <= 2 * MAX_FIELDS,
                    "{unit:?}"
                );
                assert!(reader.record.data.capacity() <= 2 * MAX_BYTES, "{unit:?}");
            }
            assert!(rows > 0, "{unit:?}");
        }
    }

    /// A reader that is never asked to seek.
    struct ReadSeek<R>(R);

    impl<R: Read> Read for ReadSeek<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl<R> Seek for ReadSeek<R> {
        fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
            unreachable!("never resumed")
        }
    }

    /// Every row of `input` under `limits`: its position, its cells or its
    /// reason, and the most fields and bytes its record held.
    #[allow(clippy::type_complexity)] // a test's table of rows
    fn positions(
        input: &[u8],
        limits: ReadLimits,
    ) -> Result<
        Vec<(
            u64,
            u64,
            u64,
            Result<Vec<String>, &'static str>,
            usize,
            usize,
        )>,
        FileReason,
    > {
        let mut reader =
            Delimited::open(Cursor::new(input.to_vec()), b',', limits, Resume::default())
                .map_err(|e| file_reason(&e))?;
        let mut rows = Vec::new();
        let mut row = Row::default();
        while reader.next_row(&mut row).map_err(|e| file_reason(&e))? {
            let (fields, bytes) = (
                reader.record.fields.len(),
                reader.record.data.len().max(row.text.len()),
            );
            rows.push((
                row.number,
                row.offset,
                row.end,
                match &row.problem {
                    Some(p) => Err(p.reason),
                    None => Ok(row
                        .cells
                        .iter()
                        .map(|(_, c)| row.cell_text(c).into_owned())
                        .collect()),
                },
                fields,
                bytes,
            ));
        }
        Ok(rows)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// The caps fail rows and bound what a record holds, but never move
        /// where a record ends, however its bytes are made.
        #[test]
        fn caps_never_move_record_boundaries(
            tokens in proptest::collection::vec(
                proptest::sample::select(vec![",", "\"\"", "\"", "x", "yy", "\r", "\n", "\r\n", "\"a,\nb\"", "\u{feff}"]),
                0..60,
            )
        ) {
            let input = format!("h1,h2\n{}", tokens.concat());
            let caps = ReadLimits { max_field_bytes: 6, max_row_bytes: 12, max_fields: 3, max_depth: 10 };
            let free = ReadLimits { max_field_bytes: 1 << 20, max_row_bytes: 1 << 20, max_fields: 1 << 20, max_depth: 10 };
            let capped = positions(input.as_bytes(), caps);
            let uncapped = positions(input.as_bytes(), free);
            match (capped, uncapped) {
                (Ok(capped), Ok(uncapped)) => {
                    proptest::prop_assert_eq!(capped.len(), uncapped.len());
                    for (c, u) in capped.iter().zip(&uncapped) {
                        proptest::prop_assert_eq!((c.0, c.1, c.2), (u.0, u.1, u.2));
                        proptest::prop_assert!(c.4 <= 3 && c.5 <= 12, "{c:?}");
                        let row_bytes = usize::try_from(u.2 - u.1).unwrap();
                        if c.3.is_ok() || u.3.is_err() && !matches!(c.3, Err("ROW_TOO_LARGE" | "FIELD_TOO_LARGE" | "TOO_MANY_FIELDS")) {
                            proptest::prop_assert_eq!(&c.3, &u.3);
                        } else {
                            // Failed by a cap: the row was over one.
                            proptest::prop_assert!(u.4 > 3 || row_bytes > 12 || u.5 > 6, "{c:?} {u:?}");
                        }
                    }
                }
                (capped, uncapped) => proptest::prop_assert_eq!(capped.map(|_| ()), uncapped.map(|_| ())),
            }
        }
    }
}
