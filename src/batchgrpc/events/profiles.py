"""Profiles: who a request is about, and what it changes. No storage here.

A profile is found by any of its identifiers (email, phone number, ...,
tracking customer ids) or by its id. When one request names identifiers of
two profiles, they are one person: the oldest profile survives, keeps its
values, takes from the other what it lacks, and the other points at it
(merged), so its id still resolves and its identifiers and events follow.
An event is one of its profile's, and follows it into a merge; a profile
has one bulk-created event per metric and dedup key.

The rules themselves are the core's (`rust_core/src/profiles.rs`), so that
a request's profiles are planned without a Python object each, under the
store's write lock for the shortest time. A store backend reads what a
request touches (`core.profile_updates` says what), hands it to
`core.plan_ingest`, writes the rows it returns, looks up the repeats of
stored events, and `settle`s the counts; every backend applies the same
rules.
"""

from __future__ import annotations

from collections.abc import Sequence

from batchgrpc.store import IngestOutcome

#: What an item names only by a profile id that nothing has.
NO_SUCH_PROFILE = "no profile has this id"


def settle(applied: Sequence[str | None], event_counts: Sequence[int], repeats: Sequence[int]) -> list[IngestOutcome]:
    """Each item's outcome: the profile it applied to (None: its id alone
    names no profile), with its counts, given per item how many of its
    events repeat one stored already or earlier in the request
    (deduplicated: stored once)."""
    return [
        IngestOutcome(error=NO_SUCH_PROFILE)
        if profile_id is None
        else IngestOutcome(profile_id, "", event_counts[i] - repeats[i], repeats[i])
        for i, profile_id in enumerate(applied)
    ]
