"""One dispatched event as a message for a sink (API.md, "Kafka sink"):
key `ACCOUNT/PROFILE_ID` (or `ACCOUNT/IDENTITY` where there is no profile),
value the event as JSON with the fields `EventService.ListEvents` returns
(proto names, proto JSON mapping) plus `account` and `source`, and headers
`event_id`, `account`, `source`, and `traceparent` when the request that
produced the event was traced (`batchgrpc.tracing`).

The value is built from the stored text, not through a message: the event's
`data` is already JSON and goes in as it is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from batchgrpc.store import Event


@dataclass(frozen=True)
class Message:
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    #: The event's place in the outbox.
    position: int


def _time(seconds: float) -> str:
    moment = timestamp_pb2.Timestamp()
    moment.FromNanoseconds(round(seconds * 1e9))
    return moment.ToJsonString()


def value_of(event: Event) -> bytes:
    head = json.dumps(
        {
            "event_id": event.event_id,
            "event_name": event.event_name,
            "event_time": _time(event.event_time),
            "profile_id": event.profile_id,
            "identity": event.identity,
            "job_id": event.job_id,
            # int64 is a string in the proto JSON mapping.
            "row_number": str(event.row_number),
            "source": event.source,
            "value": event.value,
            "value_currency": event.value_currency,
            "unique_id": event.unique_id,
            "backfill": event.backfill,
            "metric_service": event.metric_service,
            # The id GetEvent takes: the event's position in the log.
            "id": str(event.position),
            "account": event.account,
        },
        separators=(",", ":"),
    )
    return f'{head[:-1]},"data":{event.data}}}'.encode()


def message_of(event: Event) -> Message:
    headers: tuple[tuple[str, bytes], ...] = (
        ("event_id", event.event_id.encode()),
        ("account", event.account.encode()),
        ("source", event.source.encode()),
    )
    if event.traceparent:
        # The request that produced the event, for a consumer to continue its trace.
        headers += (("traceparent", event.traceparent.encode()),)
    return Message(
        key=f"{event.account}/{event.profile_id or event.identity}".encode(),
        value=value_of(event),
        headers=headers,
        position=event.position,
    )
