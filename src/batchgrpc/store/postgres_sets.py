"""Set-based writes on PostgreSQL: many rows in one statement, never a
statement per row (each costs a round of parse, plan and index updates on
the server, even pipelined)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psycopg import AsyncCursor


def columns(rows: Sequence[tuple[Any, ...]], width: int) -> tuple[list[Any], ...]:
    """`rows` as `width` column lists, the parameters of an `unnest`."""
    if not rows:
        return tuple([] for _ in range(width))
    return tuple(list(column) for column in zip(*rows, strict=True))


async def copy_rows(cursor: AsyncCursor[Any], table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Writes `rows` into `table` ("name (columns)") with one COPY, in
    their order: COPY has no ON CONFLICT, so only for rows that are new."""
    if rows:
        async with cursor.copy(f"COPY {table} FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
