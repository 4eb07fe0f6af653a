"""A batch job's statuses and the moves between them: the one place that says
which status may follow which. Stores take these as conditions (`allowed_from`);
they never decide them.

    PENDING → QUEUED → IN_PROGRESS → DISPATCHING → DONE
    (a file that cannot be read, an internal error)  any unfinished status → FAILED
    (a caller)  any unfinished status → CANCELED;  DONE/FAILED/CANCELED → EXPIRED
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """Upstream's status names (Extole's batch job `status`)."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    DISPATCHING = "DISPATCHING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    EXPIRED = "EXPIRED"


#: Statuses a job never leaves except to EXPIRED (or deletion).
TERMINAL: frozenset[Status] = frozenset({Status.DONE, Status.FAILED, Status.CANCELED, Status.EXPIRED})
#: Statuses of a job that a worker still has to take forward.
UNFINISHED: frozenset[Status] = frozenset(Status) - TERMINAL

#: Every move a job may make: the runner's forward moves and the callers'.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.QUEUED, Status.FAILED, Status.CANCELED}),
    Status.QUEUED: frozenset({Status.IN_PROGRESS, Status.FAILED, Status.CANCELED}),
    Status.IN_PROGRESS: frozenset({Status.DISPATCHING, Status.FAILED, Status.CANCELED}),
    Status.DISPATCHING: frozenset({Status.DONE, Status.FAILED, Status.CANCELED}),
    Status.DONE: frozenset({Status.EXPIRED}),
    Status.FAILED: frozenset({Status.EXPIRED}),
    Status.CANCELED: frozenset({Status.EXPIRED}),
    Status.EXPIRED: frozenset(),
}


def may_move(from_: str, to: str) -> bool:
    """Whether the table allows a job in `from_` to move to `to`."""
    return Status(to) in TRANSITIONS[Status(from_)]


def sources_of(to: Status) -> tuple[Status, ...]:
    """The statuses a job may move to `to` from, in the table's order: what a
    store's conditional move is given as `allowed_from`."""
    return tuple(s for s, targets in TRANSITIONS.items() if to in targets)


#: A finished job may be deleted; an unfinished one must be canceled first.
DELETABLE: tuple[Status, ...] = tuple(s for s in Status if s in TERMINAL)
#: Names as the store keeps them.
UNFINISHED_NAMES: tuple[str, ...] = tuple(s.value for s in Status if s in UNFINISHED)
