"""Requests as bytes, for the RPCs whose requests the Rust core decodes:
`Struct`s and lists nested past Python's recursion limit (which its own
runtime cannot build) spliced into otherwise ordinary requests, and the rows
a server's store holds. Protobuf merges a message field sent twice, so a
request's normal part is serialized by the runtime and the deep part
appended as raw fields.
"""

from __future__ import annotations

import random
import sqlite3
import string
from pathlib import Path

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from batchgrpc.events.v1 import event_bulk_create_job_pb2 as bulk_pb2
from batchgrpc.store.sqlite import DATABASE_NAME
from batchgrpc.track.v2 import tracking_pb2


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def entry(key: str, value: bytes) -> bytes:
    """One entry of a `Struct` (its `fields` map), `value` a `Value`."""
    return field(1, field(1, key.encode()) + field(2, value))


def string_value(text: str) -> bytes:
    return field(3, text.encode())


def nested(levels: int, *, lists: bool = False) -> bytes:
    """A `Value` `levels` containers deep: `{"n": {"n": ... "x"}}`, or lists
    in lists. Built back to front, so in time linear in its size."""
    reversed_bytes = bytearray(string_value("x")[::-1])
    for _ in range(levels):
        # Value{struct_value: Struct{fields: {"n": inner}}} or
        # Value{list_value: ListValue{values: [inner]}}.
        wrappers = [(1, b""), (6, b"")] if lists else [(2, b""), (1, field(1, b"n")), (5, b"")]
        for number, before in wrappers:
            header = varint(number << 3 | 2) + varint(len(reversed_bytes) + len(before))
            reversed_bytes += before[::-1] + header[::-1]
    return bytes(reversed_bytes[::-1])


def nested_to_size(size: int) -> bytes:
    """Lists in lists, a little under `size` bytes of them (a level of
    lists costs four bytes of tags and two lengths, which grow to three
    bytes each past 2 MB)."""
    return nested(size // 10, lists=True)


def struct(*entries: bytes) -> bytes:
    return b"".join(entries)


def struct_value(*entries: bytes) -> bytes:
    return field(5, struct(*entries))


# --- bulk create events -------------------------------------------------------

ITEMS = "/data/attributes/events-bulk-create/data"


def bulk_event(name: str = "Viewed", properties: dict[str, object] | None = None) -> dict[str, object]:
    return {
        "type": "event",
        "attributes": {
            "properties": {"sku": "A-1"} if properties is None else properties,
            "metric": {"data": {"type": "metric", "attributes": {"name": name}}},
        },
    }


def bulk_item(profile: dict[str, object], *events: dict[str, object], profile_id: str = "") -> dict[str, object]:
    data: dict[str, object] = {"type": "profile", "attributes": profile}
    if profile_id:
        data["id"] = profile_id
    return {
        "type": "event-bulk-create",
        "attributes": {"profile": {"data": data}, "events": {"data": list(events) or [bulk_event()]}},
    }


def bulk_request(*items: dict[str, object], partial: bool = False, request_id: str = "") -> bytes:
    request = bulk_pb2.CreateEventBulkCreateJobRequest(partial_success=partial, request_id=request_id)
    json_format.ParseDict(
        {"data": {"type": "event-bulk-create-job", "attributes": {"events-bulk-create": {"data": list(items)}}}},
        request,
    )
    return request.SerializeToString()


def bulk_deep_item(email: str, properties: bytes) -> bytes:
    """The bytes to append to a bulk request for one more item: a profile
    with `email` and one event whose `properties` is the `Struct` bytes."""
    item = bulk_pb2.EventBulkCreate(type="event-bulk-create")
    profile = item.attributes.profile.data
    profile.type = "profile"
    profile.attributes.email = email
    resource = bulk_pb2.EventResource(type="event")
    resource.attributes.metric.data.type = "metric"
    resource.attributes.metric.data.attributes.name = "Viewed"
    # EventResource.attributes (2) .properties (1), merged into the rest.
    event = resource.SerializeToString() + field(2, field(1, properties))
    # EventBulkCreate.attributes (2) .events (2) .data (1).
    item_bytes = item.SerializeToString() + field(2, field(2, field(1, event)))
    # Request.data (1) .attributes (2) .events_bulk_create (1) .data (1).
    return field(1, field(2, field(1, field(1, item_bytes))))


def bulk_pointer(item: int) -> str:
    return f"{ITEMS}/{item}/attributes/events/data/0/attributes/properties"


# --- tracking -----------------------------------------------------------------


def command(name: str, data: dict[str, object] | None = None, command_id: str = "") -> bytes:
    """One `Command`, serialized by the runtime."""
    message = tracking_pb2.Command(name=name, command_id=command_id)
    if data is not None:
        message.data.update(data)
    return message.SerializeToString()


def deep_command(name: str, data: dict[str, object], properties: bytes, command_id: str = "") -> bytes:
    """A `Command` whose `data.properties` is the `Struct` bytes."""
    return command(name, data, command_id) + field(2, entry("properties", field(5, properties)))


def batch(*commands: bytes, project_token: str = "default", request_id: str = "") -> bytes:
    """A `BatchRequest` of serialized commands, in order."""
    tail = field(3, request_id.encode()) if request_id else b""
    return field(1, project_token.encode()) + b"".join(field(2, c) for c in commands) + tail


def command_of(name: str, data: bytes, command_id: str = "") -> bytes:
    """A `Command` whose `data` is the `Struct` bytes, as written (entries
    in the order given: a map has no fixed order on the wire)."""
    tail = field(3, command_id.encode()) if command_id else b""
    return field(1, name.encode()) + field(2, data) + tail


def update_customer(properties: bytes, customer: str = "deep@example.com") -> bytes:
    request = tracking_pb2.UpdateCustomerPropertiesRequest(
        project_token="default", customer_ids={"registered": customer}
    )
    return request.SerializeToString() + field(3, properties)


def add_event(properties: bytes, customer: str = "deep@example.com") -> bytes:
    request = tracking_pb2.AddEventRequest(
        project_token="default", customer_ids={"registered": customer}, event_type="deep"
    )
    return request.SerializeToString() + field(5, properties)


def random_text(size: int) -> str:
    """Letters and digits at random: a run of them found in an answer was
    echoed, not made up."""
    return "".join(random.choices(string.ascii_letters + string.digits, k=size))


def longest_echo(texts: list[str], sent: str) -> int:
    """The longest run of `sent` (random, so a run is its own and not
    chance) found in any of `texts`."""
    longest = 0
    for text in texts:
        for start in range(len(text)):
            size = longest + 1
            while start + size <= len(text) and text[start : start + size] in sent:
                longest = size
                size += 1
    return longest


def total_echo(text: str, sent: str, shortest: int = 8) -> int:
    """How many characters of `text` are runs of `sent` (random) at least
    `shortest` long, all told: two names clipped to 255 each are 510."""
    total, start = 0, 0
    while start < len(text):
        end = start
        while end < len(text) and text[start : end + 1] in sent:
            end += 1
        if end - start >= shortest:
            total += end - start
            start = end
        else:
            start += 1
    return total


def python_decodes(data: bytes, message: type[Message]) -> bool:
    """Whether Python's protobuf runtime takes `data` as `message`."""
    try:
        message.FromString(data)
    except DecodeError:
        return False
    return True


def stored(data_dir: Path) -> dict[str, int]:
    """Rows per table of the store in `data_dir` (read beside the server,
    as WAL mode allows): "nothing stored" is the same counts before and
    after."""
    db = sqlite3.connect(f"file:{data_dir / DATABASE_NAME}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        db.close()
