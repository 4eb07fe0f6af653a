"""Where dispatched events go: the `EventSink` interface, and the sink a
`--sink` URL names.

The event log is the outbox. Every event is first committed to it, with the
work that produced it, at a position; a relay (`sinks.relay`) then hands
events to the sink in position order and records, in the store, the position
up to which the sink has them. The interface is shaped for a sink with
transactions (Kafka with a transactional producer):

- `deliver` is all or nothing: a consumer sees the whole batch or none of it;
- every message carries its position, so after a crash the relay asks the
  sink what it holds (`recover`: the event at the highest position committed
  there) and carries on after it, instead of sending again what the store
  had not yet recorded as delivered; the relay checks first that the event
  is the store's own at that position (`relay`).

`log` is the default sink: the event log itself, so an event is delivered
when it is committed and no relay runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from batchgrpc.config import ConfigError
from batchgrpc.store import Event


class SinkUnavailable(Exception):
    """The sink cannot take events now (unreachable, or held by another
    relay); the events wait in the outbox and the relay tries again."""


@dataclass(frozen=True)
class Held:
    """An event as a sink holds it: its position and id."""

    position: int
    event_id: str


class EventSink(Protocol):
    #: The name the store keeps this sink's delivered position under.
    name: str
    #: True when committing an event to the log delivers it (no relay).
    delivers_at_commit: bool

    async def open(self) -> None:
        """Connects (and fences off any other relay of this sink); raises
        `SinkUnavailable` when it cannot."""

    async def recover(self) -> Held | None:
        """The event of the highest position the sink holds (None: none):
        what a relay that died may have delivered without recording it."""

    async def deliver(self, events: Sequence[Event]) -> None:
        """Hands over `events` (in position order), all or nothing: when it
        returns the sink holds every one; when it raises, none."""

    async def ping(self) -> None:
        """Returns once the sink could take events (a broker answered);
        raises `SinkUnavailable` when it cannot: what health reports. Works
        whether or not this worker's relay has the sink open."""

    async def close(self) -> None: ...


class LogSink:
    """The event log itself: committed is delivered."""

    name = "log"
    delivers_at_commit = True

    async def open(self) -> None:
        return None

    async def recover(self) -> Held | None:
        return None

    async def deliver(self, events: Sequence[Event]) -> None:
        return None

    async def ping(self) -> None:
        return None  # the store's own ping covers the event log

    async def close(self) -> None:
        return None


def open_sink(url: str) -> EventSink:
    """The sink `--sink URL` names: `log`, `file:///ABSOLUTE/PATH` (JSON
    lines, one message per event) or `kafka://HOST:PORT[,HOST:PORT]/TOPIC`."""
    if url == "log":
        return LogSink()
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/") or parts.path.endswith("/"):
            raise ConfigError(f"sink: expected file:///ABSOLUTE/PATH, got {url!r}")
        from batchgrpc.sinks.file import FileSink

        return FileSink(Path(parts.path))
    if parts.scheme == "kafka":
        topic = parts.path.removeprefix("/")
        hosts = [h for h in parts.netloc.split(",") if h]
        if not hosts or not topic or "/" in topic or any(not h.rpartition(":")[2].isdigit() for h in hosts):
            raise ConfigError(f"sink: expected kafka://HOST:PORT[,HOST:PORT]/TOPIC, got {url!r}")
        from batchgrpc.sinks.kafka import KafkaSink

        return KafkaSink(",".join(hosts), topic)
    raise ConfigError(f"sink: expected log, file:///PATH or kafka://HOST:PORT/TOPIC, got {url!r}")
