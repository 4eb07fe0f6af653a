import datetime

from batchgrpc.batches.v6 import file_asset_pb2 as _file_asset_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AudienceList(_message.Message):
    __slots__ = ("id", "name", "format", "status", "event_columns", "event_data", "size", "sha256", "created_time", "completed_time")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[AudienceList.Status]
        BUILDING: _ClassVar[AudienceList.Status]
        READY: _ClassVar[AudienceList.Status]
        FAILED: _ClassVar[AudienceList.Status]
    STATUS_UNSPECIFIED: AudienceList.Status
    BUILDING: AudienceList.Status
    READY: AudienceList.Status
    FAILED: AudienceList.Status
    class EventDataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EVENT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    EVENT_DATA_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    format: _file_asset_pb2.FileAsset.Format
    status: AudienceList.Status
    event_columns: _containers.RepeatedScalarFieldContainer[str]
    event_data: _containers.ScalarMap[str, str]
    size: int
    sha256: str
    created_time: _timestamp_pb2.Timestamp
    completed_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., format: _Optional[_Union[_file_asset_pb2.FileAsset.Format, str]] = ..., status: _Optional[_Union[AudienceList.Status, str]] = ..., event_columns: _Optional[_Iterable[str]] = ..., event_data: _Optional[_Mapping[str, str]] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateAudienceListRequest(_message.Message):
    __slots__ = ("name", "format", "event_columns", "event_data", "request_id")
    class EventDataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    EVENT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    EVENT_DATA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: _file_asset_pb2.FileAsset.Format
    event_columns: _containers.RepeatedScalarFieldContainer[str]
    event_data: _containers.ScalarMap[str, str]
    request_id: str
    def __init__(self, name: _Optional[str] = ..., format: _Optional[_Union[_file_asset_pb2.FileAsset.Format, str]] = ..., event_columns: _Optional[_Iterable[str]] = ..., event_data: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateAudienceListResponse(_message.Message):
    __slots__ = ("audience_list",)
    AUDIENCE_LIST_FIELD_NUMBER: _ClassVar[int]
    audience_list: AudienceList
    def __init__(self, audience_list: _Optional[_Union[AudienceList, _Mapping]] = ...) -> None: ...

class UploadAudienceListMembersRequest(_message.Message):
    __slots__ = ("audience_list_id", "chunk")
    AUDIENCE_LIST_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    audience_list_id: str
    chunk: bytes
    def __init__(self, audience_list_id: _Optional[str] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadAudienceListMembersResponse(_message.Message):
    __slots__ = ("audience_list",)
    AUDIENCE_LIST_FIELD_NUMBER: _ClassVar[int]
    audience_list: AudienceList
    def __init__(self, audience_list: _Optional[_Union[AudienceList, _Mapping]] = ...) -> None: ...

class GetAudienceListRequest(_message.Message):
    __slots__ = ("audience_list_id",)
    AUDIENCE_LIST_ID_FIELD_NUMBER: _ClassVar[int]
    audience_list_id: str
    def __init__(self, audience_list_id: _Optional[str] = ...) -> None: ...

class GetAudienceListResponse(_message.Message):
    __slots__ = ("audience_list",)
    AUDIENCE_LIST_FIELD_NUMBER: _ClassVar[int]
    audience_list: AudienceList
    def __init__(self, audience_list: _Optional[_Union[AudienceList, _Mapping]] = ...) -> None: ...

class ListAudienceListsRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAudienceListsResponse(_message.Message):
    __slots__ = ("audience_lists", "next_page_token")
    AUDIENCE_LISTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    audience_lists: _containers.RepeatedCompositeFieldContainer[AudienceList]
    next_page_token: str
    def __init__(self, audience_lists: _Optional[_Iterable[_Union[AudienceList, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
