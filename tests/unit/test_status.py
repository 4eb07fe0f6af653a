"""The batch job status table: the one place that says which move is allowed."""

from __future__ import annotations

import itertools

from batchgrpc.batches.status import DELETABLE, TERMINAL, TRANSITIONS, UNFINISHED, Status, may_move, sources_of


def test_every_unfinished_status_can_be_canceled_or_failed_and_nothing_else_can() -> None:
    assert set(sources_of(Status.CANCELED)) == UNFINISHED
    assert set(sources_of(Status.FAILED)) == UNFINISHED


def test_a_finished_job_only_expires() -> None:
    assert set(sources_of(Status.EXPIRED)) == TERMINAL - {Status.EXPIRED}
    assert all(TRANSITIONS[s] <= {Status.EXPIRED} for s in TERMINAL)
    assert set(DELETABLE) == TERMINAL


def test_the_runner_moves_forward_one_step_at_a_time() -> None:
    path = [Status.PENDING, Status.QUEUED, Status.IN_PROGRESS, Status.DISPATCHING, Status.DONE]
    assert all(may_move(a, b) for a, b in itertools.pairwise(path))
    assert not may_move(Status.PENDING, Status.IN_PROGRESS)
    assert not may_move(Status.DONE, Status.IN_PROGRESS)
