"""What a request must be before a servicer sees it: a message that decodes,
enum numbers the contract defines, and every string, list and map within
the limits of API.md ("Limits on everything a client sends").

The interceptor decodes each request here, after authentication, so a
client without a key learns nothing from malformed bytes, and no servicer
ever meets an over-long id or an undefined enum.

The requests whose Structs the Rust core reads (bulk create, the tracking
commands) are not decoded here: the core decodes and checks them itself,
with the API's own errors (`interceptor.raw_request`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor, message
from google.protobuf.descriptor import FieldDescriptor

from batchgrpc.errors import FieldViolation, InvalidArgument, MalformedRequest, PayloadTooLarge, clip

#: Resource ids: batch_id, file_asset_id, report and list ids, profile and job ids.
MAX_ID = 64
#: `request_id`: AIP-155 suggests a UUID; room for a client's own scheme.
MAX_REQUEST_ID = 128
#: Names, tags, column and event names, as upstream.
MAX_NAME = 255
#: Metric names, as Klaviyo.
MAX_METRIC = 128
#: Customer identifier values (email, phone number, external id).
MAX_CUSTOMER_ID = 1000
#: A `name_pattern` or value pattern, before it is compiled.
MAX_PATTERN = 1000
#: An event_data value.
MAX_VALUE = 1000
MAX_TAGS = 100
MAX_RULES = 100
MAX_EVENT_COLUMNS = 500
#: Per rule. The largest job the limits allow still decodes and checks in a
#: few milliseconds on the event loop, and its record (which repeats the
#: rules) stays under the 4 MiB a gRPC client takes by default.
MAX_ALLOWED_VALUES = 100
MAX_PAGE_TOKEN = 128
#: The most bytes of a request decoded here (a client-stream chunk aside).
#: Decoding holds the interpreter (a thread would not help), at about 100 ns
#: a field, so many tiny fields are the slow kind: at this size the worst
#: takes 20 to 40 ms on this 2-core machine, and any sensible request fits.
MAX_DECODED_BYTES = 512 * 1024


@dataclass(frozen=True)
class Limit:
    """The most characters a string may have, and for a list or map the
    most items; strings never carry NUL."""

    chars: int | None = None
    items: int | None = None
    #: Upstream's own error code for this field, where it has one.
    upstream: str | None = None


ID = Limit(MAX_ID)
NAME = Limit(MAX_NAME)
TAGS = Limit(MAX_NAME, items=MAX_TAGS)
REQUEST_ID = Limit(MAX_REQUEST_ID)
PAGE_TOKEN = Limit(MAX_PAGE_TOKEN)
#: Bytes bounded elsewhere: an upload chunk by the transport's message size
#: and the file by `max_upload_bytes`.
CHUNK = Limit()

_BATCHES = "batchgrpc.batches.v6."
_EVENTS = "batchgrpc.events.v1."
_TRACK = "batchgrpc.track.v2."
_EVENT_DATA = Limit(items=MAX_EVENT_COLUMNS)
_EVENT_DATA_ENTRY = {"key": NAME, "value": Limit(MAX_VALUE)}
_EVENT_COLUMNS = Limit(MAX_NAME, items=MAX_EVENT_COLUMNS)
_SCOPES = Limit(items=8)
_EVENT_NAME = Limit(MAX_NAME, upstream="batch_job_event_name_invalid")

#: Per message, per field. Every string, bytes, repeated and map field of
#: every request a servicer decodes in Python is listed; a unit test holds
#: the table to the descriptors, so a new field cannot come without a limit.
LIMITS: Mapping[str, Mapping[str, Limit]] = {
    _BATCHES + "CreateBatchJobRequest": {
        "name": NAME,
        "event_name": _EVENT_NAME,
        "default_event_name": _EVENT_NAME,
        "event_columns": _EVENT_COLUMNS,
        "event_data": _EVENT_DATA,
        "columns": Limit(items=MAX_RULES),
        "scopes": _SCOPES,
        "tags": TAGS,
        "request_id": REQUEST_ID,
    },
    _BATCHES + "CreateBatchJobRequest.EventDataEntry": _EVENT_DATA_ENTRY,
    _BATCHES + "DataSource": {"report_id": ID, "audience_list_id": ID, "file_asset_id": ID, "id": ID},
    _BATCHES + "Column": {
        "name": NAME,
        "name_pattern": Limit(MAX_PATTERN),
        "prefix": NAME,
        "pattern": Limit(MAX_PATTERN),
        "allowed_values": Limit(MAX_NAME, items=MAX_ALLOWED_VALUES),
    },
    _BATCHES + "GetBatchJobRequest": {"batch_id": ID},
    _BATCHES + "ListBatchJobsRequest": {
        "name": NAME,
        "event_name": NAME,
        "tags": TAGS,
        "statuses": Limit(items=16),
        "page_token": PAGE_TOKEN,
    },
    _BATCHES + "UpdateBatchJobRequest": {"batch_id": ID, "name": NAME, "tags": TAGS, "scopes": _SCOPES},
    "google.protobuf.FieldMask": {"paths": Limit(MAX_ID, items=16)},
    _BATCHES + "CancelBatchJobRequest": {"batch_id": ID},
    _BATCHES + "ExpireBatchJobRequest": {"batch_id": ID},
    _BATCHES + "DeleteBatchJobRequest": {"batch_id": ID},
    _BATCHES + "WatchBatchJobRequest": {"batch_id": ID},
    _BATCHES + "ListBatchJobRowErrorsRequest": {"batch_id": ID, "page_token": PAGE_TOKEN},
    _BATCHES + "UploadFileAssetRequest": {"chunk": CHUNK},
    _BATCHES + "FileAssetMetadata": {"name": NAME, "tags": TAGS, "request_id": REQUEST_ID},
    _BATCHES + "GetFileAssetRequest": {"file_asset_id": ID},
    _BATCHES + "ListFileAssetsRequest": {"name": NAME, "tags": TAGS, "page_token": PAGE_TOKEN},
    _BATCHES + "DeleteFileAssetRequest": {"file_asset_id": ID},
    _BATCHES + "CreateReportRequest": {"name": NAME, "request_id": REQUEST_ID},
    _BATCHES + "UploadReportResultRequest": {"report_id": ID, "chunk": CHUNK},
    _BATCHES + "GetReportRequest": {"report_id": ID},
    _BATCHES + "ListReportsRequest": {"name": NAME, "page_token": PAGE_TOKEN},
    _BATCHES + "CreateAudienceListRequest": {
        "name": NAME,
        "event_columns": _EVENT_COLUMNS,
        "event_data": _EVENT_DATA,
        "request_id": REQUEST_ID,
    },
    _BATCHES + "CreateAudienceListRequest.EventDataEntry": _EVENT_DATA_ENTRY,
    _BATCHES + "UploadAudienceListMembersRequest": {"audience_list_id": ID, "chunk": CHUNK},
    _BATCHES + "GetAudienceListRequest": {"audience_list_id": ID},
    _BATCHES + "ListAudienceListsRequest": {"name": NAME, "page_token": PAGE_TOKEN},
    _EVENTS + "GetEventBulkCreateJobRequest": {"id": ID},
    _EVENTS + "GetProfileRequest": {"id": ID},
    _EVENTS + "ListProfilesRequest": {
        "email": Limit(MAX_CUSTOMER_ID),
        "phone_number": Limit(MAX_CUSTOMER_ID),
        "external_id": Limit(MAX_CUSTOMER_ID),
        "page_token": PAGE_TOKEN,
        "id": ID,
    },
    _EVENTS + "ListEventsRequest": {
        "profile_id": ID,
        "metric": Limit(MAX_METRIC),
        "job_id": ID,
        "page_token": PAGE_TOKEN,
    },
    _EVENTS + "GetEventRequest": {"id": ID},
    _TRACK + "GetSystemTimeRequest": {"project_token": ID},
}


def decode(message_type: type[message.Message], data: bytes) -> Any:
    """`data` as a `message_type`, checked; raises InvalidArgument."""
    if len(data) > MAX_DECODED_BYTES and not _is_one_bytes_field(message_type.DESCRIPTOR, data):
        raise PayloadTooLarge(f"The request is {len(data)} bytes; at most {MAX_DECODED_BYTES} are accepted.", "request")
    try:
        request = message_type.FromString(data)
    except message.DecodeError:
        # The decoder's own text says nothing a client can act on.
        raise MalformedRequest(
            f"The request is not a valid {message_type.DESCRIPTOR.name} message.",
            metadata={"message": message_type.DESCRIPTOR.full_name},
        ) from None
    check(request)
    return request


def check(request: message.Message) -> None:
    """Raises InvalidArgument naming every field that breaks a limit or
    carries an enum number the contract does not define."""
    found = list(_violations(request, ""))
    if found:
        # Upstream's own code when every violation has the same one.
        codes = {code for _, code in found}
        raise InvalidArgument(
            f"The request has {len(found)} field(s) outside the limits; the details name each.",
            violations=[violation for violation, _ in found],
            upstream=codes.pop() if len(codes) == 1 else None,
        )


#: A violation, and upstream's code for it (if it has its own).
_Found = tuple[FieldViolation, str | None]


def _violations(msg: message.Message, prefix: str) -> Iterator[_Found]:
    limits = LIMITS.get(msg.DESCRIPTOR.full_name, {})
    for field, value in msg.ListFields():
        path = prefix + field.name
        limit = limits.get(field.name)
        if field.is_repeated:
            if limit is not None and limit.items is not None and len(value) > limit.items:
                yield FieldViolation(path, f"at most {limit.items} items, got {len(value)}"), limit.upstream
                continue
            if _is_map(field):
                for key, item in value.items():
                    entry = f"{path}[{clip(str(key), 64)!r}]"
                    yield from _map_entry(field, key, item, entry)
                continue
            for i, item in enumerate(value):
                yield from _value(field, item, f"{path}[{i}]", limit)
        else:
            yield from _value(field, value, path, limit)


def _map_entry(field: FieldDescriptor, key: Any, item: Any, path: str) -> Iterator[_Found]:
    entry = field.message_type
    assert entry is not None
    limits = LIMITS.get(entry.full_name, {})
    yield from _value(entry.fields_by_name["key"], key, path, limits.get("key"))
    yield from _value(entry.fields_by_name["value"], item, path, limits.get("value"))


def _value(field: FieldDescriptor, value: Any, path: str, limit: Limit | None) -> Iterator[_Found]:
    upstream = limit.upstream if limit is not None else None
    if field.type == FieldDescriptor.TYPE_STRING:
        if limit is not None and limit.chars is not None and len(value) > limit.chars:
            yield FieldViolation(path, f"at most {limit.chars} characters, got {len(value)}"), upstream
        elif "\0" in value:
            yield FieldViolation(path, "must not contain NUL characters"), upstream
    elif field.type == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        assert enum is not None
        if value not in enum.values_by_number:
            yield FieldViolation(path, f"{value} is not a value of {enum.name}: use one of {_names(enum)}"), None
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        yield from _violations(value, path + ".")


def _is_one_bytes_field(descriptor: Any, data: bytes) -> bool:
    """Whether `data` is a single `bytes` field (an upload's chunk): one
    copy to decode, however large."""
    key, at = _varint(data, 0)
    if key & 7 != 2:
        return False
    field = descriptor.fields_by_number.get(key >> 3)
    if field is None or field.type != FieldDescriptor.TYPE_BYTES:
        return False
    length, at = _varint(data, at)
    return at + length == len(data)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(at, min(at + 10, len(data))):
        value |= (data[i] & 0x7F) << shift
        shift += 7
        if data[i] < 0x80:
            return value, i + 1
    return -1, len(data)


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _names(enum: descriptor.EnumDescriptor) -> str:
    return ", ".join(v.name for v in enum.values if v.number != 0)
