import datetime

from batchgrpc.events.v1 import profile_pb2 as _profile_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventBulkCreateJob(_message.Message):
    __slots__ = ("id", "status", "event_count", "accepted_count", "deduplicated_count", "rejected_count", "errors", "created_time", "completed_time")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[EventBulkCreateJob.Status]
        QUEUED: _ClassVar[EventBulkCreateJob.Status]
        PROCESSING: _ClassVar[EventBulkCreateJob.Status]
        COMPLETE: _ClassVar[EventBulkCreateJob.Status]
        FAILED: _ClassVar[EventBulkCreateJob.Status]
    STATUS_UNSPECIFIED: EventBulkCreateJob.Status
    QUEUED: EventBulkCreateJob.Status
    PROCESSING: EventBulkCreateJob.Status
    COMPLETE: EventBulkCreateJob.Status
    FAILED: EventBulkCreateJob.Status
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: EventBulkCreateJob.Status
    event_count: int
    accepted_count: int
    deduplicated_count: int
    rejected_count: int
    errors: _containers.RepeatedCompositeFieldContainer[BulkError]
    created_time: _timestamp_pb2.Timestamp
    completed_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[EventBulkCreateJob.Status, str]] = ..., event_count: _Optional[int] = ..., accepted_count: _Optional[int] = ..., deduplicated_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[BulkError, _Mapping]]] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BulkError(_message.Message):
    __slots__ = ("pointer", "reason", "message")
    POINTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    pointer: str
    reason: str
    message: str
    def __init__(self, pointer: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class CreateEventBulkCreateJobRequest(_message.Message):
    __slots__ = ("data", "request_id", "partial_success")
    DATA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    data: EventBulkCreateJobData
    request_id: str
    partial_success: bool
    def __init__(self, data: _Optional[_Union[EventBulkCreateJobData, _Mapping]] = ..., request_id: _Optional[str] = ..., partial_success: _Optional[bool] = ...) -> None: ...

class EventBulkCreateJobData(_message.Message):
    __slots__ = ("type", "attributes")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    type: str
    attributes: EventBulkCreateJobAttributes
    def __init__(self, type: _Optional[str] = ..., attributes: _Optional[_Union[EventBulkCreateJobAttributes, _Mapping]] = ...) -> None: ...

class EventBulkCreateJobAttributes(_message.Message):
    __slots__ = ("events_bulk_create",)
    EVENTS_BULK_CREATE_FIELD_NUMBER: _ClassVar[int]
    events_bulk_create: EventsBulkCreate
    def __init__(self, events_bulk_create: _Optional[_Union[EventsBulkCreate, _Mapping]] = ...) -> None: ...

class EventsBulkCreate(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[EventBulkCreate]
    def __init__(self, data: _Optional[_Iterable[_Union[EventBulkCreate, _Mapping]]] = ...) -> None: ...

class EventBulkCreate(_message.Message):
    __slots__ = ("type", "attributes")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    type: str
    attributes: EventBulkCreateAttributes
    def __init__(self, type: _Optional[str] = ..., attributes: _Optional[_Union[EventBulkCreateAttributes, _Mapping]] = ...) -> None: ...

class EventBulkCreateAttributes(_message.Message):
    __slots__ = ("profile", "events", "backfill")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    BACKFILL_FIELD_NUMBER: _ClassVar[int]
    profile: ProfileRelationship
    events: EventList
    backfill: bool
    def __init__(self, profile: _Optional[_Union[ProfileRelationship, _Mapping]] = ..., events: _Optional[_Union[EventList, _Mapping]] = ..., backfill: _Optional[bool] = ...) -> None: ...

class ProfileRelationship(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: ProfileResource
    def __init__(self, data: _Optional[_Union[ProfileResource, _Mapping]] = ...) -> None: ...

class ProfileResource(_message.Message):
    __slots__ = ("type", "id", "attributes", "meta")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    attributes: _profile_pb2.ProfileAttributes
    meta: ProfileMeta
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., attributes: _Optional[_Union[_profile_pb2.ProfileAttributes, _Mapping]] = ..., meta: _Optional[_Union[ProfileMeta, _Mapping]] = ...) -> None: ...

class ProfileMeta(_message.Message):
    __slots__ = ("patch_properties", "patch_identifiers")
    PATCH_PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    PATCH_IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    patch_properties: PatchProperties
    patch_identifiers: PatchIdentifiers
    def __init__(self, patch_properties: _Optional[_Union[PatchProperties, _Mapping]] = ..., patch_identifiers: _Optional[_Union[PatchIdentifiers, _Mapping]] = ...) -> None: ...

class PatchIdentifiers(_message.Message):
    __slots__ = ("append", "unappend")
    APPEND_FIELD_NUMBER: _ClassVar[int]
    UNAPPEND_FIELD_NUMBER: _ClassVar[int]
    append: _struct_pb2.Struct
    unappend: _struct_pb2.Struct
    def __init__(self, append: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., unappend: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class PatchProperties(_message.Message):
    __slots__ = ("append", "unappend", "unset")
    APPEND_FIELD_NUMBER: _ClassVar[int]
    UNAPPEND_FIELD_NUMBER: _ClassVar[int]
    UNSET_FIELD_NUMBER: _ClassVar[int]
    append: _struct_pb2.Struct
    unappend: _struct_pb2.Struct
    unset: _struct_pb2.Value
    def __init__(self, append: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., unappend: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., unset: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class EventList(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: _containers.RepeatedCompositeFieldContainer[EventResource]
    def __init__(self, data: _Optional[_Iterable[_Union[EventResource, _Mapping]]] = ...) -> None: ...

class EventResource(_message.Message):
    __slots__ = ("type", "attributes")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    type: str
    attributes: EventAttributes
    def __init__(self, type: _Optional[str] = ..., attributes: _Optional[_Union[EventAttributes, _Mapping]] = ...) -> None: ...

class EventAttributes(_message.Message):
    __slots__ = ("properties", "metric", "time", "value", "value_currency", "unique_id", "backfill")
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    VALUE_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_ID_FIELD_NUMBER: _ClassVar[int]
    BACKFILL_FIELD_NUMBER: _ClassVar[int]
    properties: _struct_pb2.Struct
    metric: MetricRelationship
    time: str
    value: _struct_pb2.Value
    value_currency: str
    unique_id: str
    backfill: bool
    def __init__(self, properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metric: _Optional[_Union[MetricRelationship, _Mapping]] = ..., time: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., value_currency: _Optional[str] = ..., unique_id: _Optional[str] = ..., backfill: _Optional[bool] = ...) -> None: ...

class MetricRelationship(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: MetricResource
    def __init__(self, data: _Optional[_Union[MetricResource, _Mapping]] = ...) -> None: ...

class MetricResource(_message.Message):
    __slots__ = ("type", "attributes")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    type: str
    attributes: MetricAttributes
    def __init__(self, type: _Optional[str] = ..., attributes: _Optional[_Union[MetricAttributes, _Mapping]] = ...) -> None: ...

class MetricAttributes(_message.Message):
    __slots__ = ("name", "service")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    name: str
    service: str
    def __init__(self, name: _Optional[str] = ..., service: _Optional[str] = ...) -> None: ...

class CreateEventBulkCreateJobResponse(_message.Message):
    __slots__ = ("event_bulk_create_job",)
    EVENT_BULK_CREATE_JOB_FIELD_NUMBER: _ClassVar[int]
    event_bulk_create_job: EventBulkCreateJob
    def __init__(self, event_bulk_create_job: _Optional[_Union[EventBulkCreateJob, _Mapping]] = ...) -> None: ...

class GetEventBulkCreateJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetEventBulkCreateJobResponse(_message.Message):
    __slots__ = ("event_bulk_create_job",)
    EVENT_BULK_CREATE_JOB_FIELD_NUMBER: _ClassVar[int]
    event_bulk_create_job: EventBulkCreateJob
    def __init__(self, event_bulk_create_job: _Optional[_Union[EventBulkCreateJob, _Mapping]] = ...) -> None: ...
