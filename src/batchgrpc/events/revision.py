"""The Klaviyo `revision` request metadata: required, `YYYY-MM-DD[.suffix]`."""

from __future__ import annotations

import datetime
import re

from batchgrpc.errors import FieldViolation, InvalidRevision, MissingRevision

_REVISION = re.compile(r"(\d{4})-(\d{2})-(\d{2})(\.[a-z0-9]+)?")


def check_revision(value: str | None) -> str:
    """Returns the revision, or raises with upstream's rule in the message."""
    if not value:
        raise MissingRevision(
            "The revision header is required: send metadata `revision: YYYY-MM-DD` (optionally `.suffix`).",
            violations=[FieldViolation("revision", "required header")],
        )
    match = _REVISION.fullmatch(value)
    try:
        if match is None:
            raise ValueError(value)
        datetime.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise InvalidRevision(
            f"Invalid revision {value!r}: expected YYYY-MM-DD with an optional .suffix, e.g. 2026-07-15.",
            violations=[FieldViolation("revision", "expected YYYY-MM-DD[.suffix]")],
        ) from None
    return value
