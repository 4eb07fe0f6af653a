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
        // Once a cap is passed, bytes are no longer kept; parsing goes on.
        let mut overflow = false;
        rec.offset = input.offset();

        // The fast path: a whole line in the buffer with no quote and no CR
        // but a final one is a record of plain fields. Copy it in one go.
        while let Some(nl) = memchr(b'\n', input.available()) {
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
            rec.data.extend_from_slice(line);
            let mut start = 0;
            for i in memchr_iter(delimiter, line) {
                rec.fields.push((start, i));
                start = i + 1;
            }
            rec.fields.push((start, line.len()));
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
                rec.problem = Some(RowProblem {
                    reason: "ROW_TOO_LARGE",
                    message: format!("the row is over {} bytes", limits.max_row_bytes),
                });
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

        loop {
            match state {
                State::FieldStart => {
                    let Some(b) = input.peek()? else {
                        if rec.fields.is_empty() {
                            return Ok(false);
                        }
                        rec.fields.push((field_start, rec.data.len()));
                        rec.end = input.offset();
                        return Ok(true);
                    };
                    if rec.fields.is_empty() && (b == b'\n' || b == b'\r') {
                        // A blank line: skip it, the record starts later.
                        input.pos += 1;
                        rec.offset = input.offset();
                    } else if b == b'"' {
                        quote_offset = input.offset();
                        input.pos += 1;
                        state = State::Quoted;
                    } else {
                        state = State::Unquoted;
                    }
                }
                State::Unquoted => {
                    if !input.fill()? {
                        rec.fields.push((field_start, rec.data.len()));
                        rec.end = input.offset();
                        return Ok(true);
                    }
                    let avail = input.available();
                    match memchr3(delimiter, b'\n', b'\r', avail) {
                        None => {
                            let n = avail.len();
                            push(rec, avail, field_start, &mut overflow);
                            input.pos += n;
                        }
                        Some(i) => {
                            let b = avail[i];
                            push(rec, &avail[..i], field_start, &mut overflow);
                            input.pos += i + 1;
                            rec.fields.push((field_start, rec.data.len()));
                            field_start = rec.data.len();
                            if b == delimiter {
                                state = State::FieldStart;
                            } else if b == b'\r' {
                                state = State::SkipLf;
                            } else {
                                rec.end = input.offset();
                                return Ok(true);
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
                }
                State::QuoteSeen => match input.peek()? {
                    None => {
                        rec.fields.push((field_start, rec.data.len()));
                        rec.end = input.offset();
                        return Ok(true);
                    }
                    Some(b'"') => {
                        push(rec, b"\"", field_start, &mut overflow);
                        input.pos += 1;
                        state = State::Quoted;
                    }
                    Some(b) if b == delimiter => {
                        input.pos += 1;
                        rec.fields.push((field_start, rec.data.len()));
                        field_start = rec.data.len();
                        state = State::FieldStart;
                    }
                    Some(b'\n') => {
                        input.pos += 1;
                        rec.fields.push((field_start, rec.data.len()));
                        rec.end = input.offset();
                        return Ok(true);
                    }
                    Some(b'\r') => {
                        input.pos += 1;
                        rec.fields.push((field_start, rec.data.len()));
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
                                    rec.fields.len() + 1
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
}
