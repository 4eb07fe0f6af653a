//! Errors the core reports: a boxed kind, so `Result<T, CoreError>` stays one
//! pointer wide on the happy path, and a stable `UPPER_SNAKE` reason per kind.

use std::fmt;

/// The API whose limits and wording apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Klaviyo-style bulk create events (`batchgrpc.events.v1`).
    BulkEvents,
    /// Bloomreach-style tracking batch (`batchgrpc.track.v2`).
    Tracking,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// A request is larger than its API allows.
    PayloadTooLarge {
        /// The API whose limit was exceeded.
        api: Api,
        /// The request's size in bytes.
        size: u64,
        /// The largest size allowed, in bytes.
        limit: u64,
    },
    /// A request carries more items than its API allows.
    TooManyItems {
        /// The API whose limit was exceeded.
        api: Api,
        /// How many items the request has.
        count: u64,
        /// The most items allowed.
        limit: u64,
    },
    /// A tracking batch with no commands at all.
    NoCommands,
    /// A data file that cannot be read as its format says.
    DataFile {
        /// What is wrong.
        reason: FileReason,
        /// What is wrong, for a person, with the position.
        message: String,
        /// Byte offset in the file where the problem is.
        offset: u64,
    },
    /// Request bytes that do not decode as the message they should be.
    MalformedRequest(String),
    /// A batch job's options (column rules, event settings) are invalid.
    InvalidJobSpec {
        /// The request field at fault, e.g. `columns[2].name_pattern`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Why a data file as a whole cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileReason {
    /// No header row (the file is empty or blank).
    MissingHeader,
    /// A header name is empty.
    EmptyHeaderName,
    /// Two header names are the same.
    DuplicateHeader,
    /// The header is not valid UTF-8 or is over the size cap.
    BadHeader,
    /// A quoted field is never closed.
    UnterminatedQuote,
    /// The JSON document is not an array of values.
    InvalidJsonDocument,
    /// A column a rule requires is not in the header.
    RequiredColumnMissing,
    /// A column named in `event_columns` is not in the header.
    EventColumnMissing,
    /// A resume offset that is not a row boundary.
    BadResumeOffset,
    /// Reading the file failed.
    IoError,
}

impl FileReason {
    /// The stable `UPPER_SNAKE` code.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingHeader => "MISSING_HEADER",
            Self::EmptyHeaderName => "EMPTY_HEADER_NAME",
            Self::DuplicateHeader => "DUPLICATE_HEADER",
            Self::BadHeader => "BAD_HEADER",
            Self::UnterminatedQuote => "UNTERMINATED_QUOTE",
            Self::InvalidJsonDocument => "INVALID_JSON_DOCUMENT",
            Self::RequiredColumnMissing => "REQUIRED_COLUMN_MISSING",
            Self::EventColumnMissing => "EVENT_COLUMN_MISSING",
            Self::BadResumeOffset => "BAD_RESUME_OFFSET",
            Self::IoError => "IO_ERROR",
        }
    }
}

/// An error from the core. Cheap to return: one box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreError(Box<ErrorKind>);

impl CoreError {
    /// Wraps a kind. Error paths are cold: keep them out of the hot loop's way.
    #[cold]
    #[must_use]
    pub fn new(kind: ErrorKind) -> Self {
        Self(Box::new(kind))
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// The stable `UPPER_SNAKE` reason code (the gRPC `ErrorInfo.reason`).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self.kind() {
            ErrorKind::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ErrorKind::TooManyItems { .. } => "TOO_MANY_ITEMS",
            ErrorKind::NoCommands => "NO_COMMANDS",
            ErrorKind::DataFile { reason, .. } => reason.code(),
            ErrorKind::InvalidJobSpec { .. } | ErrorKind::MalformedRequest(_) => "INVALID_ARGUMENT",
        }
    }

    /// The request field at fault, as the API names it: a JSON:API pointer for
    /// bulk events, a body field for tracking.
    #[must_use]
    pub fn field(&self) -> &str {
        match self.kind() {
            ErrorKind::PayloadTooLarge {
                api: Api::BulkEvents,
                ..
            } => "/data",
            ErrorKind::TooManyItems {
                api: Api::BulkEvents,
                ..
            } => "/data/attributes/events-bulk-create/data",
            ErrorKind::PayloadTooLarge {
                api: Api::Tracking, ..
            }
            | ErrorKind::TooManyItems {
                api: Api::Tracking, ..
            }
            | ErrorKind::NoCommands => "commands",
            ErrorKind::DataFile { .. } => "data_source",
            ErrorKind::MalformedRequest(_) => "",
            ErrorKind::InvalidJobSpec { field, .. } => field,
        }
    }
}

impl fmt::Display for CoreError {
    /// The message in the API's own words.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            ErrorKind::PayloadTooLarge {
                api: Api::BulkEvents,
                size,
                limit,
            } => write!(
                f,
                "The payload provided in the request is too large: {size} bytes, \
                 the maximum is {limit} bytes (5 MB)."
            ),
            ErrorKind::PayloadTooLarge {
                api: Api::Tracking,
                size,
                limit,
            } => write!(
                f,
                "Request is too large: {size} bytes, the maximum is {limit} bytes \
                 (50 commands of less than 800 KB each)."
            ),
            ErrorKind::TooManyItems {
                api: Api::BulkEvents,
                count,
                limit,
            } => write!(
                f,
                "Too many events: {count}, at most {limit} events are allowed per request."
            ),
            ErrorKind::TooManyItems {
                api: Api::Tracking,
                count,
                limit,
            } => write!(
                f,
                "Too many commands: {count}, at most {limit} commands are allowed per batch."
            ),
            // Upstream's exact text for an empty or missing `commands` array.
            ErrorKind::NoCommands => f.write_str("No commands"),
            ErrorKind::DataFile { message, .. }
            | ErrorKind::InvalidJobSpec { message, .. }
            | ErrorKind::MalformedRequest(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for CoreError {}
