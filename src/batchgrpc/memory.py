"""Giving the allocator's free memory back to the system.

glibc keeps what worker threads free in their arenas: after a job whose
patterns took 16 MiB the server stayed 34 MiB over idle, and ten refused
8 MB requests left it up to 75 MiB over. `malloc_trim` returns it, in a
worker thread; calls that arrive while one runs share it.
"""

from __future__ import annotations

import asyncio
import ctypes

#: glibc's `malloc_trim`, where there is one.
_malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
_trimming = False
#: Requests at least this large that fail are followed by a trim: their
#: bytes (and grpc's buffers for them) were the largest allocations around.
TRIM_AFTER_BYTES = 1 << 20
_soon: set[asyncio.Task[None]] = set()


async def give_back_memory() -> None:
    """Returns the allocator's free memory to the system, off the event loop."""
    global _trimming
    if _malloc_trim is None or _trimming:
        return
    _trimming = True
    try:
        await asyncio.to_thread(_malloc_trim, 0)
    finally:
        _trimming = False


def give_back_soon() -> None:
    """`give_back_memory` once the current call has let go of what it holds."""

    def start() -> None:
        task = asyncio.ensure_future(give_back_memory())
        _soon.add(task)
        task.add_done_callback(_soon.discard)

    asyncio.get_running_loop().call_later(0.05, start)
