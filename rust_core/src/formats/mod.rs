//! Streaming readers for the data-file formats batch jobs read.
//!
//! Every reader pulls bytes from a `Read` through a fixed buffer, so memory
//! stays bounded whatever the file size, and hands out one [`Row`] at a time.
//! A problem with one row is part of that row ([`RowProblem`]); a problem
//! with the file as a whole ends reading with a [`CoreError`].

pub mod delimited;
pub mod json;
pub mod prefetch;

use std::io::Read;

use crate::error::{CoreError, ErrorKind, FileReason};

/// The formats a data source may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// Pipe-separated values with a header row.
    Psv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// Parses the upstream name (`CSV`, `PSV`, `JSON`, `JSONL`).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "CSV" => Some(Self::Csv),
            "PSV" => Some(Self::Psv),
            "JSON" => Some(Self::Json),
            "JSONL" => Some(Self::Jsonl),
            _ => None,
        }
    }
}

/// Size caps that keep one bad row from taking the whole file with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Largest field (a CSV cell) in bytes.
    pub max_field_bytes: usize,
    /// Largest row (a CSV record or a JSON item) in bytes, every byte
    /// counted: delimiters, quotes and escapes too.
    pub max_row_bytes: usize,
    /// Most fields of a row (a CSV record, the header too, or the keys of a
    /// JSON object), and most distinct column names of a JSON file.
    pub max_fields: usize,
    /// Deepest JSON nesting within a row; the row object itself is depth 1.
    pub max_depth: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_field_bytes: 1 << 20,
            max_row_bytes: 1 << 20,
            max_fields: 10_000,
            max_depth: 10,
        }
    }
}

/// A value in a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text at `start..end` of the row's text (CSV and PSV).
    Text(usize, usize),
    /// A JSON value (JSON and JSONL); strings included.
    Json(serde_json::Value),
}

/// Why a row could not be read as a whole. The row counts as failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// Stable `UPPER_SNAKE` reason.
    pub reason: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

/// One data row. Reused from row to row so reading allocates nothing once warm.
#[derive(Debug, Default)]
pub struct Row {
    /// 1-based data row number (the header is not counted).
    pub number: u64,
    /// Byte offset of the row's first byte in the file.
    pub offset: u64,
    /// Byte offset just past the row (and its terminator).
    pub end: u64,
    /// The row's text, for `Cell::Text` ranges.
    pub text: String,
    /// The row's cells, by column id (an index into the reader's names).
    pub cells: Vec<(usize, Cell)>,
    /// Set when the row could not be read; `cells` are then meaningless.
    pub problem: Option<RowProblem>,
}

impl Row {
    pub(crate) fn reset(&mut self) {
        self.text.clear();
        self.cells.clear();
        self.problem = None;
    }

    /// The text of a cell as a string; JSON scalars in their JSON text
    /// (strings unquoted), null as empty.
    #[must_use]
    pub fn cell_text<'a>(&'a self, cell: &'a Cell) -> std::borrow::Cow<'a, str> {
        match cell {
            Cell::Text(start, end) => std::borrow::Cow::Borrowed(&self.text[*start..*end]),
            Cell::Json(serde_json::Value::String(s)) => std::borrow::Cow::Borrowed(s),
            Cell::Json(serde_json::Value::Null) => std::borrow::Cow::Borrowed(""),
            Cell::Json(value) => std::borrow::Cow::Owned(value.to_string()),
        }
    }
}

/// A source of rows.
pub trait RowSource: Send {
    /// Column names seen so far. Fixed by the header for CSV and PSV; grows
    /// as new keys appear for JSON and JSONL. Cell ids index into it.
    fn names(&self) -> &[String];

    /// Reads the next data row into `row`. Returns false at the end.
    ///
    /// # Errors
    /// A file-level problem (unterminated quote, unreadable JSON document,
    /// I/O error): reading cannot go on.
    fn next_row(&mut self, row: &mut Row) -> Result<bool, CoreError>;
}

/// Where to start reading: the beginning, or a checkpoint a previous reader
/// reported (`Row::end` of the last row handled, and that row's number).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resume {
    /// Byte offset just past the last row handled; 0 for the beginning.
    pub offset: u64,
    /// Number of the last row handled; 0 for the beginning.
    pub row: u64,
}

/// Opens a reader for `format` over `src`.
///
/// # Errors
/// A bad header or a document that does not start like its format.
pub fn open<R: Read + std::io::Seek + Send + 'static>(
    format: Format,
    src: R,
    limits: ReadLimits,
    resume: Resume,
) -> Result<Box<dyn RowSource>, CoreError> {
    Ok(match format {
        Format::Csv => Box::new(delimited::Delimited::open(src, b',', limits, resume)?),
        Format::Psv => Box::new(delimited::Delimited::open(src, b'|', limits, resume)?),
        Format::Json => Box::new(json::JsonArray::open(src, limits, resume)?),
        Format::Jsonl => Box::new(json::JsonLines::open(src, limits, resume)?),
    })
}

/// A fixed-size input buffer over a reader, tracking file offsets.
pub(crate) struct Input<R> {
    src: R,
    buf: Box<[u8]>,
    pub(crate) pos: usize,
    pub(crate) len: usize,
    /// File offset of `buf[0]`.
    pub(crate) base: u64,
    pub(crate) eof: bool,
}

const INPUT_BUFFER: usize = 256 * 1024;

impl<R: Read> Input<R> {
    pub(crate) fn new(src: R, base: u64) -> Self {
        Self {
            src,
            buf: vec![0; INPUT_BUFFER].into_boxed_slice(),
            pos: 0,
            len: 0,
            base,
            eof: false,
        }
    }

    /// The file offset of the next unread byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// The unread bytes in the buffer.
    pub(crate) fn available(&self) -> &[u8] {
        &self.buf[self.pos..self.len]
    }

    /// Makes bytes available when none are; false at end of file. Bytes
    /// already consumed are dropped: callers copy what they keep.
    pub(crate) fn fill(&mut self) -> Result<bool, CoreError> {
        if self.pos < self.len {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        self.base += self.len as u64;
        self.pos = 0;
        self.len = 0;
        loop {
            match self.src.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.len = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(file_error(
                        FileReason::IoError,
                        format!("reading the file failed: {e}"),
                        self.base,
                    ))
                }
            }
        }
    }

    /// The next byte without consuming it; None at end of file.
    pub(crate) fn peek(&mut self) -> Result<Option<u8>, CoreError> {
        Ok(if self.fill()? {
            Some(self.buf[self.pos])
        } else {
            None
        })
    }

    /// Skips a UTF-8 byte-order mark at the very start of the file.
    pub(crate) fn skip_bom(&mut self) -> Result<(), CoreError> {
        const BOM: &[u8] = b"\xEF\xBB\xBF";
        self.fill()?;
        // The first read of a file returns at least 3 bytes unless the file
        // is shorter; a BOM split across reads is not worth handling.
        if self.base == 0 && self.available().starts_with(BOM) {
            self.pos += BOM.len();
        }
        Ok(())
    }
}

/// A file-level error at `offset`.
#[cold]
pub(crate) fn file_error(reason: FileReason, message: String, offset: u64) -> CoreError {
    CoreError::new(ErrorKind::DataFile {
        reason,
        message,
        offset,
    })
}

impl<R: Read + std::io::Seek> Input<R> {
    /// Continues reading at `offset`, dropping what is buffered.
    pub(crate) fn seek(&mut self, offset: u64) -> Result<(), CoreError> {
        self.src
            .seek(std::io::SeekFrom::Start(offset))
            .map_err(|e| {
                file_error(
                    FileReason::IoError,
                    format!("seeking to byte {offset} failed: {e}"),
                    offset,
                )
            })?;
        self.base = offset;
        self.pos = 0;
        self.len = 0;
        self.eof = false;
        Ok(())
    }
}

/// The 1-based line of byte `offset` in the file at `path`, for messages
/// about file errors. Reads the file again: only ever on the error path.
///
/// # Errors
/// The file cannot be read.
#[cold]
pub fn line_of(path: &std::path::Path, offset: u64) -> std::io::Result<u64> {
    let mut file = std::io::BufReader::new(std::fs::File::open(path)?).take(offset);
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 1u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}
