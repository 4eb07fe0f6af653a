"""Page tokens and sizes for every List RPC.

A token is an opaque string to clients; inside it is the store's cursor (the
position of the last item sent), so a page never repeats or skips an item
when items are added meanwhile.
"""

from __future__ import annotations

import base64

from batchgrpc.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(value: int, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument("page_size must not be negative.", violations=[FieldViolation(field, "must be >= 0")])
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode(cursor: int | None) -> str:
    if cursor is None:
        return ""
    return base64.urlsafe_b64encode(f"c1:{cursor}".encode()).decode().rstrip("=")


def decode(token: str, field: str = "page_token") -> int | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        version, _, cursor = text.partition(":")
        if version == "c1" and cursor.isdigit():
            return int(cursor)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidArgument(
        "page_token is not a token this server issued.",
        violations=[FieldViolation(field, "use the next_page_token of the previous page")],
    )
