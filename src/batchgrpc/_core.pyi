"""The Rust core (`rust_core/`), built by maturin. Hand-written; checked by
`mypy.stubtest` against the built module."""

from collections.abc import Iterator, Mapping, Sequence
from os import PathLike
from typing import Any, final

__all__ = [
    "BULK_EVENTS_MAX_EVENTS",
    "BULK_EVENTS_MAX_REQUEST_BYTES",
    "JOB_PATTERN_BUDGET",
    "PATTERN_SIZE_LIMIT",
    "TRACK_MAX_COMMANDS",
    "TRACK_MAX_COMMAND_BYTES",
    "TRACK_MAX_PROPERTY_VALUE_BYTES",
    "TRACK_MAX_REQUEST_BYTES",
    "BulkRows",
    "BulkValidation",
    "IngestPlan",
    "JobSpec",
    "ProfileUpdates",
    "RowChunk",
    "RowReader",
    "TrackBatch",
    "TrackCommand",
    "__version__",
    "bulk_rows",
    "check_bulk_request",
    "check_track_batch",
    "event_id",
    "event_ids",
    "open_rows",
    "plan_ingest",
    "prepare_track_batch",
    "prepare_track_command",
    "profile_updates",
    "validate_bulk_request",
]

__version__: str

#: Klaviyo's 5 MB request limit, in bytes of the serialized request.
BULK_EVENTS_MAX_REQUEST_BYTES: int
#: Klaviyo's 1,000 events per request.
BULK_EVENTS_MAX_EVENTS: int
#: Most bytes one compiled column-rule pattern may take.
PATTERN_SIZE_LIMIT: int
#: Most bytes a batch job's compiled patterns may take together.
JOB_PATTERN_BUDGET: int
#: Bloomreach's 50 commands per batch.
TRACK_MAX_COMMANDS: int
#: Bloomreach: each command under 800 KB.
TRACK_MAX_COMMAND_BYTES: int
#: Bloomreach: each property value under 16 KB.
TRACK_MAX_PROPERTY_VALUE_BYTES: int
#: The largest tracking batch that can be valid.
TRACK_MAX_REQUEST_BYTES: int

def check_bulk_request(request_bytes: int, event_count: int) -> None:
    """Raises `batchgrpc.errors.PayloadTooLarge` over 5 MiB, then
    `batchgrpc.errors.TooManyItems` over 1,000 events."""

def check_track_batch(request_bytes: int, command_bytes: list[int]) -> list[str | None]:
    """Per command, None or the error text of an oversized command. Raises
    `batchgrpc.errors.NoCommands`, `TooManyItems` or `PayloadTooLarge` for
    a batch that fails as a whole."""

#: One event: (event_id, job_id, row_number, event_name, identity, data as JSON bytes).
_Event = tuple[str, str, int, str, str, bytes]
#: One row issue: (row_number, byte_offset, column, reason, message).
_Issue = tuple[int, int, str, str, str]

@final
class RowChunk:
    """What one chunk of rows produced."""

    @property
    def rows(self) -> int: ...
    @property
    def good(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def events(self) -> list[_Event]:
        """The events as tuples, built on each access."""
    @property
    def event_count(self) -> int: ...
    @property
    def encoded(self) -> bytes:
        """One JSON array of [event_id, row_number, event_name, identity, data]: for the store."""
    @property
    def issues(self) -> list[_Issue]: ...
    @property
    def next_offset(self) -> int:
        """Checkpoint: byte offset just past the chunk's last row (`resume_offset`)."""
    @property
    def last_row(self) -> int:
        """Checkpoint: the number of the chunk's last row (`resume_row`)."""
    @property
    def done(self) -> bool: ...

@final
class RowReader:
    """Iterates a data file in chunks; each step releases the GIL while it reads."""

    @property
    def columns(self) -> list[str]:
        """Column names seen so far: the header for CSV and PSV."""
    def __iter__(self) -> Iterator[RowChunk]: ...
    def __next__(self) -> RowChunk: ...

@final
class JobSpec:
    """A batch job's rules and event settings, compiled once (the GIL is
    released while the patterns compile). Raises
    `batchgrpc.errors.InvalidJobSpec` naming the field: a bad rule, a
    pattern over 1,000 characters or compiling to more than
    `PATTERN_SIZE_LIMIT` bytes, a job's patterns together over
    `JOB_PATTERN_BUDGET`, more than 100 rules, a bad event setting.

    `columns` are rule dicts with the proto's field names (`type`, `name`,
    `name_pattern`, `validation_policy`, `prefix`, `value_type`, `pattern`,
    `max_length`, `allowed_values`).
    """

    def __new__(
        cls,
        *,
        event_name: str = ...,
        default_event_name: str = ...,
        event_columns: Sequence[str] = ...,
        event_data: Mapping[str, str] = ...,
        columns: Sequence[Mapping[str, Any]] = ...,
    ) -> JobSpec: ...
    @property
    def pattern_bytes(self) -> int:
        """Heap bytes of the compiled patterns."""

def event_id(source: str, parts: Sequence[str]) -> str:
    """The event id of `source` with `parts`: 32 lower-case hex digits of the
    xxh3-128 of the length-prefixed key (`batchgrpc.eventids` has the layout)."""

def event_ids(source: str, keys: Sequence[Sequence[str]]) -> list[str]:
    """`event_id(source, parts)` for each of `keys`, in one call."""

def open_rows(
    path: str | PathLike[str],
    format: str,
    *,
    job_id: str,
    spec: JobSpec | None = None,
    chunk_rows: int = 10000,
    resume_offset: int = 0,
    resume_row: int = 0,
    max_field_bytes: int = 1048576,
    max_row_bytes: int = 1048576,
    max_fields: int = 10000,
    max_depth: int = 10,
) -> RowReader:
    """Opens a CSV, PSV, JSON or JSONL file for the job `job_id`, with its
    compiled `spec` (None: no rules, default settings); nothing is compiled
    here. A row (a header too) holds at most `max_fields` fields and
    `max_row_bytes` bytes, every byte counted. Raises
    `batchgrpc.errors.InvalidJobSpec` for an unknown format,
    `batchgrpc.errors.DataFileError` for a file that cannot be read (also
    from iteration), `OSError` when the file cannot be opened.
    """

@final
class TrackCommand:
    """One tracking command, checked and normalized by the core."""

    @property
    def name(self) -> str: ...
    @property
    def command_id(self) -> str | None: ...
    @property
    def errors(self) -> list[tuple[str, str]]:
        """(field, message) per problem, in upstream's words; empty when valid."""
    @property
    def customer_ids(self) -> dict[str, str]:
        """The usable customer ids (ids like "null" left out), values as text."""
    @property
    def properties(self) -> str:
        """The properties as JSON object text."""
    @property
    def time(self) -> float | None:
        """update_timestamp (customers) or timestamp (customers/events), Unix seconds."""
    @property
    def event_type(self) -> str: ...

@final
class TrackBatch:
    """A tracking request decoded and checked by the core, Structs and all:
    Python never decodes it."""

    @property
    def project_token(self) -> str: ...
    @property
    def request_id(self) -> str:
        """Empty when not sent (always, for a single-command request)."""
    @property
    def commands(self) -> list[TrackCommand]:
        """Checked and normalized, in order. A command whose data nests past
        20 levels (its data is level 1) fails alone with its own error."""
    @property
    def fingerprint(self) -> bytes:
        """What makes two requests the same request, for `request_id`: 16
        bytes hashed from the project token and each command's name,
        `command_id` and data, every object's keys sorted. The same request
        in another wire order (a `Struct` is a map, and Go writes maps in
        random order) has the same fingerprint; the request id is not in it."""

def prepare_track_batch(request: bytes, now: float) -> TrackBatch:
    """Checks a serialized `batchgrpc.track.v2.BatchRequest` with Bloomreach's
    rules and normalizes each command. Raises `NoCommands`, `TooManyItems` or
    `PayloadTooLarge` for a batch that fails whole, `MalformedRequest` for
    bytes that are not a BatchRequest."""

def prepare_track_command(kind: str, request: bytes, now: float) -> TrackBatch:
    """Checks a serialized `UpdateCustomerPropertiesRequest` (`kind`
    "customers") or `AddEventRequest` ("customers/events") as the command it
    stands for: a batch of one command. Raises `MalformedRequest` for bytes
    that are not the request, `PayloadTooLarge` past the batch limit,
    `ValueError` for another `kind`."""

@final
class BulkValidation:
    """What Klaviyo's rules found in a bulk-create request."""

    @property
    def violations(self) -> list[tuple[str, str, str]]:
        """(JSON:API pointer, reason, message) per violation; empty when valid."""
    @property
    def fails_whole(self) -> bool:
        """The violations fail the request even with `partial_success`: a
        value nests past the 20 levels the core decodes. Only when this is
        false may the bytes go to Python's protobuf decoder."""
    @property
    def request_id(self) -> str:
        """The request's `request_id`; empty when none."""
    @property
    def partial_success(self) -> bool:
        """The request's `partial_success`."""
    @property
    def item_events(self) -> list[int]:
        """Per item, its number of events."""

@final
class BulkRows:
    """A validated bulk request in the store's layout."""

    @property
    def profiles(self) -> bytes:
        """JSON array, per kept item: its profile update (`profile_id`,
        `identifiers` as [name, value] pairs in upstream's order,
        `attributes`, `properties`, `append`, `unappend`, `unset`), as
        `profile_updates` reads it."""
    @property
    def items(self) -> list[int]:
        """Per kept item, its index in the request."""
    @property
    def events(self) -> bytes:
        """JSON array of the kept events, `[item, source, job_id, row_number,
        event_name, event_time, data, dedup_key, value, value_currency,
        unique_id]`, `item` counting kept items."""
    @property
    def event_counts(self) -> list[int]:
        """Per kept item, its number of kept events."""

def bulk_rows(request: bytes, job_id: str, rejected: list[tuple[int, int | None]], now: float) -> BulkRows:
    """The items and events of a request `validate_bulk_request` passed,
    without the `rejected` ones ((item, None) for a whole item); `now` for
    a missing time. Releases the interpreter."""

@final
class ProfileUpdates:
    """A request's profile updates, parsed once."""

    @property
    def pairs(self) -> bytes:
        """JSON array of `[kind, value]`: every identifier they name, once
        (`customer:<name>` for a tracking customer id)."""
    @property
    def named(self) -> bytes:
        """JSON array of every profile id they name, once."""

def profile_updates(updates: bytes) -> ProfileUpdates:
    """Parses a JSON array of profile updates: objects of `profile_id`,
    `identifiers` and `customer_ids` (arrays of [name, value]),
    `attributes`, `properties`, `append`, `unappend` (objects), `unset`
    (array of keys), `timestamp` (number or null), each optional. Raises
    ValueError for another layout. Releases the interpreter."""

@final
class IngestPlan:
    """A request's writes in the store's row layout: each list holds the
    parameter tuples of one statement."""

    @property
    def created(self) -> list[tuple[str, str, str, str, str, str | None, float, float]]:
        """`(id, account, attributes, attribute_time, customer_ids,
        merged_into, created_time, updated_time)` per created profile, in
        age order."""
    @property
    def updated(self) -> list[tuple[str, str, str, str | None, float, str]]:
        """`(attributes, attribute_time, customer_ids, merged_into,
        updated_time, id)` per stored profile the request touched."""
    @property
    def moved(self) -> list[tuple[str, str]]:
        """`(live, merged)` per stored profile merged: what it had follows it."""
    @property
    def identifiers(self) -> list[tuple[str, str, str, str]]:
        """`(account, kind, value, profile_id)` per identifier to (re)assign."""
    @property
    def removed(self) -> list[tuple[str, str, str, str]]:
        """`(account, kind, value, profile_id)` per stored identifier to
        remove (a secondary address unappended)."""
    @property
    def applied(self) -> list[str | None]:
        """Per item, the profile it applied to; None when its id alone
        names no profile."""
    @property
    def rows(self) -> list[tuple[Any, ...]]:
        """Per event stored, the event insert's parameters: `(id_high,
        id_low, account, source, job_id, row_number, event_name, event_time,
        profile_id, identity, data, value, value_currency, unique_id,
        dedup_key)`; `dedup_key` empty but for a bulk event."""
    @property
    def lookups(self) -> bytes:
        """JSON array of `[row, item, profile_id, event_name, dedup_key]`:
        the bulk events of profiles that existed before the request, which
        the store may hold already."""
    @property
    def repeats(self) -> list[int]:
        """Per item, its events that repeat an earlier one of the request."""

def plan_ingest(
    updates: ProfileUpdates,
    identifiers: Sequence[tuple[str, str, str]],
    resolved: Sequence[tuple[str, str]],
    profiles: Sequence[tuple[int, str, str, str, str]],
    events: bytes,
    account: str,
    now: float,
) -> IngestPlan:
    """Plans a request's profiles over what the store read for them, then
    gives its events (`BulkRows.events`' layout) their ids under each
    item's profile, dropping the bulk events that repeat an earlier one of
    the request. `identifiers`: `(kind, value, profile_id)` per stored
    identifier the updates name; `resolved`: `(named, live)` per profile id
    they name that exists; `profiles`: `(seq, id, attributes,
    attribute_time, customer_ids)` per live profile those lead to. Raises
    ValueError for stored state or events of another layout. Releases the
    interpreter."""

def validate_bulk_request(request: bytes, now: float, earliest: float) -> BulkValidation:
    """Validates a serialized `CreateEventBulkCreateJobRequest` with Klaviyo's
    rules, every violation at once; `earliest` is the earliest event time
    the request's revision takes. Raises `PayloadTooLarge` over 5 MiB,
    `TooManyItems` over 1,000 events, `MalformedRequest` for bytes that are
    not the request."""
