"""Tracking commands (Bloomreach): from the core's checked commands to
profile updates and events, and back to per-command results.

The core checks and normalizes every command; here each one becomes an
`IngestItem` for the same profile store bulk create events uses, so a
customer tracked here and a profile created there are one person when they
share an identifier.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from batchgrpc import core
from batchgrpc.auth import CUSTOMERS_SET, EVENTS_SET
from batchgrpc.eventids import tracked_dedup_key
from batchgrpc.store import IngestItem, NewEvent, ProfileUpdate

CUSTOMERS = "customers"
EVENTS = "customers/events"
SYSTEM_TIME = "system/time"

#: Customer id names that are also Klaviyo profile identifiers: a customer
#: tracked with `email` is the profile with that email.
SHARED_IDENTIFIERS = frozenset({"email", "phone_number", "external_id", "anonymous_id", "_kx"})

#: The scope each command needs, and upstream's words when the key lacks it.
_NEEDS = {CUSTOMERS: CUSTOMERS_SET, EVENTS: EVENTS_SET}
_NOT_AUTHORIZED = {
    CUSTOMERS: "Not authorized to update customer properties.",
    EVENTS: "Not authorized to add event of specified type.",
}


@dataclass(frozen=True)
class Outcome:
    """The result of one command before it becomes a message."""

    errors: tuple[str, ...] = ()
    time: float | None = None

    @property
    def success(self) -> bool:
        return not self.errors


def refusals(command: core.TrackCommand, scopes: frozenset[str]) -> tuple[str, ...]:
    """Why `command` cannot run: its validation errors, else a missing scope."""
    if command.errors:
        return tuple(message for _, message in command.errors)
    needed = _NEEDS.get(command.name)
    if needed is not None and needed not in scopes:
        return (_NOT_AUTHORIZED[command.name],)
    return ()


def item_of(command: core.TrackCommand, now: float) -> IngestItem:
    """The profile update (and event) a valid `customers` or
    `customers/events` command makes."""
    ids = dict(command.customer_ids)
    identifiers = {name: value for name, value in ids.items() if name in SHARED_IDENTIFIERS}
    if command.name == CUSTOMERS:
        return IngestItem(
            ProfileUpdate(
                identifiers=identifiers,
                customer_ids=ids,
                properties=json.loads(command.properties),
                # Stale updates never overwrite newer values (upstream's
                # customer properties synchronization).
                timestamp=command.time,
            )
        )
    event = NewEvent(
        event_name=command.event_type,
        event_time=now if command.time is None else command.time,
        data=command.properties,
        # Upstream records every tracked event; a retried batch is made safe
        # by `request_id`, not by guessing that two events are one.
        dedup_key=tracked_dedup_key(),
        source="TRACKING",
    )
    return IngestItem(ProfileUpdate(identifiers=identifiers, customer_ids=ids), events=(event,))


def plan(
    commands: Sequence[core.TrackCommand], scopes: frozenset[str], now: float
) -> tuple[list[Outcome], list[IngestItem]]:
    """Per command its outcome if the store takes the items, and the items
    to store (from the commands that can run), in command order."""
    outcomes, items = [], []
    for command in commands:
        errors = refusals(command, scopes)
        if errors:
            outcomes.append(Outcome(errors))
        elif command.name == SYSTEM_TIME:
            outcomes.append(Outcome(time=now))
        else:
            outcomes.append(Outcome())
            items.append(item_of(command, now))
    return outcomes, items


def field_violations(errors: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(field, message) pairs with an empty field (the command as a whole)
    named after the body."""
    return [(field or "body", message) for field, message in errors]
