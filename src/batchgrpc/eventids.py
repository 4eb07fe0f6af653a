"""Event ids: one scheme for every source, so an event has the same id on
every replay and in every sink.

An id is 32 lower-case hex digits, the 128-bit xxh3 (seed 0) of a key made
of the source's name and then its parts, each (the name too) written as its
length in UTF-8 bytes (8 bytes, little endian) followed by those bytes.
Numbers are parts in decimal. The lengths keep keys apart: ("ab", "c") and
("a", "bc") are different bytes, and so are two sources with the same parts.
The Rust core computes it (`rust_core/src/events.rs` `event_id`), for the
rows it encodes and for the calls here, so there is one implementation.

Sources and their parts:

- ``row``: job id, row number. A batch job's row: the same on every replay
  of the job, whatever the row says.
- ``profile``: account, profile id, event name, dedup key. Bulk-created and
  tracked events. A bulk event's dedup key is its `unique_id`, else its time
  to the second; a tracked event's is its own (`tracked_dedup_key`), so it is
  never taken for a repeat.
- ``notification``: job id, kind. A batch job's created or finished event.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterable

from batchgrpc import core

#: Tracked events are never deduplicated, so each gets a key of its own: a
#: random prefix per process (unique across restarts and replicas) and a
#: counter, which costs nothing per event, unlike a random token each.
_PROCESS = secrets.token_hex(8)
_SEQUENCE = itertools.count()


def row_event_id(job_id: str, row: int) -> str:
    """The id of the event of row `row` of batch job `job_id`: what the
    core's chunk encoder writes for it."""
    return core.event_id("row", (job_id, str(row)))


def row_event_ids(rows: Iterable[tuple[str, int]]) -> list[str]:
    """`row_event_id` of each (job id, row number), in one call into the core."""
    return core.event_ids("row", [(job_id, str(row)) for job_id, row in rows])


def profile_event_id(account: str, profile_id: str, event_name: str, dedup_key: str) -> str:
    """The id of a profile's event (bulk create, tracking)."""
    return core.event_id("profile", (account, profile_id, event_name, dedup_key))


def notification_id(job_id: str, kind: str) -> str:
    """The id of batch job `job_id`'s `kind` notification
    (batch_job_created, batch_job_finished)."""
    return core.event_id("notification", (job_id, kind))


def tracked_dedup_key() -> str:
    """A dedup key no other tracked event has, in any process."""
    return f"track:{_PROCESS}:{next(_SEQUENCE)}"
