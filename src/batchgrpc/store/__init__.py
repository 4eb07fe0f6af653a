"""The storage interface: narrow, async, and free of SQL.

Servicers and the auth layer see only these protocols. The embedded SQLite
store (`batchgrpc.store.sqlite`) is the default; a PostgreSQL store for
multi-replica deployments implements the same protocols.
"""

from __future__ import annotations

import builtins
import enum
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored: never the secret, only its keyed hash."""

    key_id: str
    account: str
    #: HMAC-SHA-256(pepper, key_id ":" secret).
    secret_hash: bytes
    scopes: frozenset[str]
    public: bool
    created_time: float
    revoked_time: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_time is not None


class ClaimState(enum.Enum):
    """What `IdempotencyStore.claim` found for a request id."""

    #: Nobody had it: the caller now owns it and must `complete` or `release`.
    NEW = "new"
    #: A first call finished: `Claim.response` is its serialized response.
    DONE = "done"
    #: A first call is still running.
    PENDING = "pending"


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    response: bytes | None = None
    #: The fingerprint of the request the id was first claimed with.
    fingerprint: bytes | None = None
    #: Who runs a PENDING claim (`owner.process_owner`).
    owner: str | None = None


class KeyStore(Protocol):
    async def create(self, key: ApiKey) -> None:
        """Stores a new key (and its account, if new)."""

    async def create_if_none(self, key: ApiKey) -> bool:
        """Stores `key` only when there are no keys at all; says whether it did."""

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def list(self, account: str | None = None) -> list[ApiKey]:
        """Keys, oldest first, of one account or of all."""

    async def revoke(self, key_id: str, now: float) -> ApiKey | None:
        """Marks a key revoked (once); None when there is no such key."""


class IdempotencyStore(Protocol):
    async def claim(
        self,
        account: str,
        method: str,
        request_id: str,
        *,
        fingerprint: bytes,
        owner: str,
        now: float,
        ttl: float,
        stale_after: float,
    ) -> Claim:
        """Takes a request id for a first call (recording `fingerprint` and
        `owner`), or reports the first call's claim as it is.

        Records older than `ttl` are forgotten; a PENDING claim older than
        `stale_after` is taken over.
        """

    async def complete(self, account: str, method: str, request_id: str, response: bytes, *, now: float) -> None: ...

    async def release(self, account: str, method: str, request_id: str) -> None:
        """Drops a claim whose call failed, so a retry can run again."""

    async def pending_owners(self) -> list[str]:
        """The owners of every PENDING claim."""

    async def release_owner(self, owner: str) -> int:
        """Drops every PENDING claim of `owner`; returns how many."""


@dataclass(frozen=True)
class DataSource:
    """A stored data file: a file asset, a report result or an audience list."""

    id: str
    #: "file_asset", "report" or "audience_list".
    kind: str
    account: str
    name: str
    #: CSV, PSV, JSON or JSONL.
    format: str
    #: The kind's own status names (AVAILABLE; PENDING/DONE; BUILDING/READY ...).
    status: str
    tags: tuple[str, ...]
    #: Audience lists: defaults for the jobs on the list.
    event_columns: tuple[str, ...]
    event_data: dict[str, str]
    size: int
    sha256: str
    created_time: float
    updated_time: float
    completed_time: float | None = None


@dataclass(frozen=True)
class BatchJob:
    """A batch job as stored. `columns` are rule dicts with the proto's names."""

    id: str
    account: str
    name: str
    event_name: str
    default_event_name: str
    status: str
    tags: tuple[str, ...]
    event_data: dict[str, str]
    event_columns: tuple[str, ...]
    columns: tuple[dict[str, object], ...]
    scopes: tuple[str, ...]
    #: REPORT, AUDIENCE_LIST or FILE_ASSET, and that source's id.
    source_type: str
    source_id: str
    #: The job's own id for its data-source reference (upstream has one).
    source_ref_id: str
    source_format: str
    created_time: float
    updated_time: float
    source_released: bool = False
    success_rows: int = 0
    failed_rows: int = 0
    rows_read: int = 0
    error_code: str = ""
    error_message: str = ""
    debug_message: str = ""
    #: Checkpoint: the byte offset past, and number of, the last row stored.
    next_offset: int = 0
    last_row: int = 0
    started_time: float | None = None
    completed_time: float | None = None
    #: The data source's size in bytes, read with the job (not a column of
    #: its own: the source's row has it); 0 when the source is gone.
    source_size: int = 0
    #: The W3C traceparent of the request that created the job ('' when not
    #: traced): its rows' events carry it to the sink.
    traceparent: str = ""


@dataclass(frozen=True)
class RowError:
    row_number: int
    byte_offset: int
    column: str
    reason: str
    message: str


@dataclass(frozen=True)
class Event:
    """One event in the event log. `data` is a JSON object's text."""

    #: 32 lower-case hex digits (`batchgrpc.eventids`).
    event_id: str
    account: str
    #: BATCH_JOB, BULK_CREATE, TRACKING or NOTIFICATION.
    source: str
    event_name: str
    event_time: float
    data: str
    job_id: str = ""
    row_number: int = 0
    profile_id: str = ""
    identity: str = ""
    value: float | None = None
    value_currency: str = ""
    unique_id: str = ""
    #: A bulk event sent with `backfill`: recorded, meant to trigger nothing.
    backfill: bool = False
    #: A bulk event's metric service (`api` by default); empty otherwise.
    metric_service: str = ""
    #: Its place in the event log (the outbox order), once stored; 0 before.
    position: int = 0
    #: The W3C traceparent of the request that produced it ('' when not
    #: traced), for its sink message.
    traceparent: str = ""


@dataclass(frozen=True)
class JobChunk:
    """What one chunk of a job's rows produced, stored all or nothing."""

    job_id: str
    #: The events, as the Rust core encodes them: a JSON array of
    #: [event_id, row_number, event_name, identity, data].
    encoded: bytes
    #: (row_number, byte_offset, column, reason, message) per problem.
    issues: list[tuple[int, int, str, str, str]]
    rows: int
    good: int
    failed: int
    next_offset: int
    last_row: int
    event_time: float
    #: The job's (`BatchJob.traceparent`), for every event of the chunk.
    traceparent: str = ""


@dataclass(frozen=True)
class JobFilter:
    name: str = ""
    event_name: str = ""
    #: A job matches when it has every one of these tags.
    tags: tuple[str, ...] = ()
    #: A job matches when its status is any of these (all when empty).
    statuses: tuple[str, ...] = ()


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, in the list's order (each list says which: data
    sources and jobs newest first; events, row errors and profiles oldest
    first, so a job's come back in row order), and the cursor of the next
    (None at the end)."""

    items: list[T]
    next_cursor: int | None


class DataSourceStore(Protocol):
    async def create(self, source: DataSource) -> None: ...

    async def get(self, account: str, kind: str, source_id: str) -> DataSource | None:
        """The source, or None when it does not exist or is another account's."""

    async def list(
        self, account: str, kind: str, *, name: str, tags: tuple[str, ...], cursor: int | None, limit: int
    ) -> Page[DataSource]: ...

    async def complete(
        self, account: str, kind: str, source_id: str, *, expect: str, status: str, size: int, sha256: str, now: float
    ) -> DataSource | None:
        """Records the uploaded content of a source whose status is `expect`;
        None (and no change) when the status is another."""

    async def delete(self, account: str, kind: str, source_id: str, *, in_use: tuple[str, ...]) -> DataSource | None:
        """Deletes the record unless a job whose status is one of `in_use`
        reads it (then `SourceInUse`); None when there is no such source."""


class SourceInUse(Exception):
    """A data source that an unfinished batch job still reads."""

    def __init__(self, job_ids: list[str]) -> None:
        super().__init__(", ".join(job_ids))
        self.job_ids = job_ids


@dataclass(frozen=True)
class Lease:
    """Who holds a job (or a singleton task such as the relay) and until when.

    A worker writes a job's progress only while it holds the job's lease;
    every write of a holder is conditional on it, so a worker whose lease
    was taken over (it stalled past the expiry) writes nothing more."""

    owner: str
    expires: float


class LeaseStore(Protocol):
    """Leases across every kind of leased work: batch jobs, bulk jobs and
    named singletons (the relay)."""

    async def acquire(self, name: str, owner: str, *, now: float, seconds: float) -> bool:
        """Takes (or renews) the named lease when it is free, expired or
        `owner`'s own; says whether `owner` holds it now."""

    async def holds(self, name: str, owner: str, *, now: float) -> bool: ...

    async def renew(self, owner: str, *, now: float, seconds: float) -> int:
        """Extends every live lease `owner` holds (jobs, bulk jobs, named
        leases) to `now + seconds`; returns how many. An expired lease that
        nobody took over yet is still `owner`'s and is extended too."""

    async def owners(self) -> list[str]:
        """Every owner that holds any lease."""

    async def release_owner(self, owner: str) -> int:
        """Drops every lease of `owner` (a process known to be dead)."""


class JobStore(Protocol):
    async def create(self, job: BatchJob, notification: Event) -> None:
        """Stores a new job and its batch-job-created notification together."""

    async def get(self, job_id: str, account: str | None = None) -> BatchJob | None:
        """The job (of `account`, when given), or None."""

    async def list(self, account: str, where: JobFilter, *, cursor: int | None, limit: int) -> Page[BatchJob]: ...

    async def update(
        self, account: str, job_id: str, changes: dict[str, object], *, unless_status: tuple[str, ...], now: float
    ) -> tuple[BatchJob | None, bool]:
        """Applies `changes` (name, tags, scopes) unless the job's status is in
        `unless_status`. Returns the job after, and whether it changed."""

    async def transition(
        self,
        job_id: str,
        *,
        allowed_from: tuple[str, ...],
        to: str,
        now: float,
        changes: dict[str, object] | None = None,
        notification: Callable[[BatchJob], Event] | None = None,
        holder: str | None = None,
        release: bool = False,
    ) -> tuple[BatchJob | None, bool]:
        """Moves the job to `to` if its status is one of `allowed_from` (and,
        with `holder`, only while `holder` holds its lease), with `changes`
        and the notification made from the job after the move, in one
        transaction; `release` drops the lease with the move. Returns the job
        (after, or as found) and whether it moved."""

    async def record_chunk(self, chunk: JobChunk, *, account: str, while_status: str, holder: str) -> BatchJob | None:
        """Stores a chunk's events, row errors, counts and checkpoint in one
        transaction, if the job is still `while_status` and `holder` holds
        its lease; the job after, or None (and nothing stored) when not."""

    async def claim(
        self, job_id: str, *, owner: str, now: float, seconds: float, statuses: tuple[str, ...]
    ) -> BatchJob | None:
        """Leases the job to `owner` when its status is one of `statuses` and
        no other owner holds a live lease on it; the job, or None."""

    async def claim_next(self, *, owner: str, now: float, seconds: float, statuses: tuple[str, ...]) -> BatchJob | None:
        """Leases the oldest job whose status is one of `statuses` and that
        nobody holds (never leased, released, or its lease expired)."""

    async def release(self, job_id: str, owner: str) -> None:
        """Drops `owner`'s lease on the job (it stopped working on it)."""

    async def row_errors(self, job_id: str, *, cursor: int | None, limit: int) -> Page[RowError]: ...

    async def delete(self, account: str, job_id: str, *, allowed_from: tuple[str, ...]) -> tuple[BatchJob | None, bool]:
        """Deletes a job (with its row errors) whose status is in `allowed_from`."""

    async def count_by_status(self) -> dict[str, int]:
        """How many jobs (of every account) have each status; a status no
        job has is left out. One count over the status index."""


@dataclass(frozen=True)
class EventFilter:
    profile_id: str = ""
    event_name: str = ""
    job_id: str = ""


class EventLog(Protocol):
    """The dispatched-event log, which is also the outbox: events land in
    the same transaction as the work that produced them (a job's chunk, a
    bulk job, a tracking batch), each at a position, and positions grow in
    commit order. A relay hands them to the sink in that order and records,
    per sink, the position up to which the sink has them."""

    async def append(self, events: builtins.list[Event]) -> int:
        """Stores `events`; a notification whose id is stored already is
        left out (it exists once). Returns how many were stored. (Profile
        events go through `ProfileStore.ingest`, batch rows through
        `JobStore.record_chunk`.)"""

    async def list(self, account: str, where: EventFilter, *, cursor: int | None, limit: int) -> Page[Event]: ...

    async def get(self, account: str, position: int) -> Event | None:
        """The account's event at `position`, or None."""

    async def after(self, position: int, *, limit: int) -> builtins.list[Event]:
        """Up to `limit` events past `position`, in position order (every
        account's: the relay's read)."""

    async def delivered(self, sink: str) -> int:
        """The position up to which `sink` has every event (0: none)."""

    async def mark_delivered(self, sink: str, position: int, *, now: float) -> int:
        """Records that `sink` has every event up to `position`; the recorded
        position never goes back. Returns the position recorded."""

    async def last_position(self, job_id: str) -> int:
        """The position of the last event a batch job dispatched (0: none)."""

    async def newest_position(self) -> int:
        """The position of the newest event in the log (0: none)."""


@dataclass(frozen=True)
class Profile:
    """One person. `attributes` holds the identifier and profile fields by
    their upstream names, `location` and `properties` as objects."""

    id: str
    account: str
    attributes: dict[str, Any]
    customer_ids: dict[str, str]
    created_time: float
    updated_time: float


@dataclass(frozen=True)
class ProfileUpdate:
    """What one request says about one person. The store finds the profile
    by any identifier (merging profiles that turn out to be one person) or
    creates it, then applies the changes."""

    #: email, phone_number, external_id, anonymous_id, _kx -> value.
    identifiers: dict[str, str] = field(default_factory=dict)
    #: Tracking customer ids (registered, cookie, ...) -> value; identifiers too.
    customer_ids: dict[str, str] = field(default_factory=dict)
    #: A profile id the caller already knows.
    profile_id: str = ""
    #: Attribute changes (first_name, location, ...); location merges by key.
    attributes: dict[str, Any] = field(default_factory=dict)
    #: Property changes, merged over the stored properties.
    properties: dict[str, Any] = field(default_factory=dict)
    #: patch_properties: append values to list properties, remove values
    #: from them, unset keys.
    append: dict[str, Any] = field(default_factory=dict)
    unappend: dict[str, Any] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    #: patch_identifiers: email addresses the profile is also found by
    #: (it is found first, by the identifiers above), and no longer by.
    secondary: tuple[str, ...] = ()
    unsecondary: tuple[str, ...] = ()
    #: When the change happened, for tracking's update_timestamp: a change
    #: older than the stored value's never overwrites it. None: now.
    timestamp: float | None = None


@dataclass(frozen=True)
class NewEvent:
    """An event of a profile the store resolves. Its id is derived from the
    profile, the name and `dedup_key`, so a repeat is stored once."""

    event_name: str
    event_time: float
    data: str
    dedup_key: str
    source: str
    job_id: str = ""
    row_number: int = 0
    value: float | None = None
    value_currency: str = ""
    unique_id: str = ""
    backfill: bool = False
    metric_service: str = ""


@dataclass(frozen=True)
class IngestItem:
    profile: ProfileUpdate
    events: tuple[NewEvent, ...] = ()
    #: Where the item is in its request, for the errors of a job.
    pointer: str = ""


def _update_fields(p: ProfileUpdate) -> tuple[tuple[str, Any], ...]:
    return (
        ("profile_id", p.profile_id),
        ("identifiers", list(p.identifiers.items())),
        ("customer_ids", list(p.customer_ids.items())),
        ("attributes", p.attributes),
        ("properties", p.properties),
        ("append", p.append),
        ("unappend", p.unappend),
        ("unset", list(p.unset)),
        ("secondary", list(p.secondary)),
        ("unsecondary", list(p.unsecondary)),
        ("timestamp", p.timestamp),
    )


@dataclass(frozen=True)
class IngestBatch:
    """A request's profile updates and their events, as the store takes
    them: two buffers in the core's layout, from the decoder to the store,
    never a Python object per profile or event."""

    #: A JSON array of profile updates (`rust_core/src/profiles.rs`,
    #: `Update`), one per item.
    profiles: bytes
    #: A JSON array of `[item, source, job_id, row_number, event_name,
    #: event_time, data, dedup_key, value, value_currency, unique_id,
    #: backfill, metric_service]` per event, `item` its index in `profiles`
    #: (`rust_core/src/ingest.rs`).
    events: bytes
    #: Per profile, its number of events.
    event_counts: Sequence[int]
    #: Per profile, where its item is in the request, for a job's errors.
    pointers: Sequence[str] = ()
    #: The traceparent of the request, stored with every event of the batch
    #: (one per request: the core's buffers do not carry it).
    traceparent: str = ""

    @classmethod
    def of(cls, items: Sequence[IngestItem], *, traceparent: str = "") -> IngestBatch:
        """A batch of items made in Python (a tracking batch's few events)."""
        fields: tuple[str, ...] = ("source", "job_id", "row_number", "event_name", "event_time", "data")
        fields += ("dedup_key", "value", "value_currency", "unique_id", "backfill", "metric_service")
        events = [[i, *(getattr(e, f) for f in fields)] for i, item in enumerate(items) for e in item.events]
        # Empty fields left out (the core reads them as empty): fewer keys
        # to parse under the store's write lock.
        profiles = [
            {key: value for key, value in _update_fields(item.profile) if value not in ("", None, [], {})}
            for item in items
        ]
        return cls(
            profiles=json.dumps(profiles, separators=(",", ":")).encode(),
            events=json.dumps(events, separators=(",", ":")).encode(),
            event_counts=[len(item.events) for item in items],
            pointers=[item.pointer for item in items],
            traceparent=traceparent,
        )


@dataclass(frozen=True)
class IngestOutcome:
    """Per item: the profile id, or why the item could not be applied."""

    profile_id: str = ""
    error: str = ""
    accepted: int = 0
    deduplicated: int = 0


@dataclass(frozen=True)
class BulkJob:
    id: str
    account: str
    status: str
    event_count: int
    accepted_count: int
    deduplicated_count: int
    rejected_count: int
    #: (JSON:API pointer, reason, message) per problem.
    errors: tuple[tuple[str, str, str], ...]
    created_time: float
    completed_time: float | None
    #: The serialized request, kept until it is processed.
    request: bytes = b""
    #: The traceparent of the request that created the job ('' when not
    #: traced): its events carry it, whoever processes it.
    traceparent: str = ""


class ProfileStore(Protocol):
    async def ingest(self, account: str, batch: IngestBatch, now: float) -> builtins.list[IngestOutcome]:
        """Applies every item (profile update and its events) in one
        transaction; an item that cannot be applied (an unknown profile id
        alone) changes nothing of its own."""

    async def get(self, account: str, profile_id: str) -> Profile | None:
        """The profile (following merges), or None."""

    async def list(
        self, account: str, identifiers: dict[str, str], *, cursor: int | None, limit: int
    ) -> Page[Profile]: ...


@dataclass(frozen=True)
class BulkTally:
    """A bulk job's counts and errors once its items are applied, as the
    domain tallies them from the outcomes (`events.bulk.tally`)."""

    accepted: int
    deduplicated: int
    rejected: int
    #: (JSON:API pointer, reason, message) per problem, the job's own first.
    errors: tuple[tuple[str, str, str], ...]


class BulkJobStore(Protocol):
    async def create(self, job: BulkJob, lease: Lease) -> None:
        """Stores a new job, leased to its creator (who processes it next)."""

    async def get(self, account: str, job_id: str) -> BulkJob | None: ...

    async def start(self, job_id: str, *, holder: str, now: float) -> BulkJob | None:
        """QUEUED -> PROCESSING while `holder` holds the job; the job, or None
        when it is not QUEUED or PROCESSING or another holds it."""

    async def claim_next(self, *, owner: str, now: float, seconds: float) -> BulkJob | None:
        """Leases the oldest QUEUED or PROCESSING job that nobody holds (its
        creator died, or stalled past the lease) to `owner`."""

    async def complete(
        self,
        job_id: str,
        batch: IngestBatch,
        *,
        tally: Callable[[BulkJob, builtins.list[IngestOutcome]], BulkTally],
        now: float,
        holder: str,
    ) -> tuple[BulkJob, builtins.list[IngestOutcome]] | None:
        """Ingests `batch` and marks the job COMPLETE with the counts and
        errors `tally` makes of the job and the outcomes, in one
        transaction, while the job is PROCESSING and `holder` holds it (None,
        and nothing stored, when not: another worker applies it, or it is
        done). A crash leaves the job to be processed again, whole."""

    async def fail(self, job_id: str, message: str, now: float, *, holder: str) -> None: ...

    async def count_by_status(self) -> dict[str, int]:
        """How many bulk jobs (of every account) have each status; a status
        no job has is left out. One count over the status index."""


@dataclass(frozen=True)
class LimitRecord:
    """One account's token buckets for one API, as stored: the tokens left
    in each bucket (in the order of the API's configured rates) as of
    `updated`, a wall-clock time (seconds since the epoch)."""

    tokens: tuple[float, ...]
    updated: float


class RateLimitStore(Protocol):
    """Where the rate limiter keeps its buckets, so that every worker and
    replica of one store spends one budget per account and API.

    Storage only: `batchgrpc.ratelimit` decides (refill, take a token, what
    to report); a backend runs one atomic read-modify-write of one small
    record. The state may be lost (a power cut, a deleted file): every
    bucket then starts full, which is what an idle account has anyway.
    """

    async def update(self, account: str, api: str, change: Callable[[LimitRecord | None], tuple[LimitRecord, T]]) -> T:
        """Reads the record of (account, api), None when there is none, and
        stores the record `change` returns, with no other update of that
        key in between, in this process or any other; returns what `change`
        returned with it.

        `change` is plain, fast and without I/O; it runs wherever the
        backend likes (the backend's thread) while the record is held, and
        reads the clock itself, so the time it stores is never behind the
        time of the update before. A backend may call it again if its
        transaction has to be retried. PostgreSQL: in one transaction,
        ``INSERT ... ON CONFLICT DO NOTHING`` (so there is a row to lock),
        ``SELECT ... FOR UPDATE``, `change`, ``UPDATE``, COMMIT.
        """

    async def close(self) -> None:
        """Releases what the backend holds beside the store's own
        connections (nothing, for one that uses the store's pool)."""


@dataclass(frozen=True)
class Upload:
    """One complete upload of a data source's bytes, as stored: `chunks`
    pieces, numbered from 0, of `size` bytes in all."""

    id: str
    source_id: str
    size: int
    sha256: str
    chunks: int


class UploadStore(Protocol):
    """Uploaded file bytes in the database, in chunks, so that a job on any
    replica reads any upload. Only a store that replicas share has one; the
    SQLite store's `uploads` is None, and its files stay in the data
    directory, which is one machine's like the database file.

    Storage only: `batchgrpc.batches.files` streams, counts and hashes. An
    upload's chunks are written as they arrive, each in its own short
    transaction, so that no transaction is held open for a slow client; it
    is visible only once `publish` marks it complete. A source may have
    several complete uploads (two racing uploads of one report, or one a
    crash left before its source was completed): the source's own SHA-256
    says which is its content.
    """

    async def begin(self, upload_id: str, source_id: str, *, now: float) -> None: ...

    async def append(self, upload_id: str, seq: int, data: bytes, *, now: float) -> None:
        """Stores chunk `seq` of an upload begun and not yet complete."""

    async def publish(self, upload_id: str, *, size: int, sha256: str) -> None:
        """Marks the upload complete."""

    async def find(self, source_id: str, sha256: str) -> Upload | None:
        """The newest complete upload of the source with that content."""

    async def chunk(self, upload_id: str, seq: int) -> bytes | None:
        """Chunk `seq` of a complete upload; None once it is removed."""

    async def discard(self, upload_id: str) -> None:
        """Removes one upload and its chunks (one that failed midway)."""

    async def remove(self, source_id: str, *, keep: str = "") -> int:
        """Removes the source's uploads, complete or not; with `keep`, only
        its complete uploads but that one. Returns how many."""

    async def sweep(self, *, untouched_since: float) -> int:
        """Removes incomplete uploads with no chunk written since then (their
        writer died); returns how many."""


class Store(Protocol):
    keys: KeyStore
    idempotency: IdempotencyStore
    sources: DataSourceStore
    jobs: JobStore
    events: EventLog
    profiles: ProfileStore
    bulk_jobs: BulkJobStore
    leases: LeaseStore
    limits: RateLimitStore
    #: None where files stay on the machine's disk (see `UploadStore`).
    uploads: UploadStore | None

    async def ping(self) -> None:
        """Returns once the store has answered a trivial query, raises when
        it cannot: what health reports."""

    async def close(self) -> None: ...
