from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BatchRequest(_message.Message):
    __slots__ = ("project_token", "commands", "request_id")
    PROJECT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    project_token: str
    commands: _containers.RepeatedCompositeFieldContainer[Command]
    request_id: str
    def __init__(self, project_token: _Optional[str] = ..., commands: _Optional[_Iterable[_Union[Command, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("name", "data", "command_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: _struct_pb2.Struct
    command_id: str
    def __init__(self, name: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., command_id: _Optional[str] = ...) -> None: ...

class CommandResult(_message.Message):
    __slots__ = ("success", "errors", "command_id", "time")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    success: bool
    errors: _containers.RepeatedScalarFieldContainer[str]
    command_id: str
    time: float
    def __init__(self, success: _Optional[bool] = ..., errors: _Optional[_Iterable[str]] = ..., command_id: _Optional[str] = ..., time: _Optional[float] = ...) -> None: ...

class BatchResponse(_message.Message):
    __slots__ = ("results", "start_time", "end_time", "success")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CommandResult]
    start_time: float
    end_time: float
    success: bool
    def __init__(self, results: _Optional[_Iterable[_Union[CommandResult, _Mapping]]] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., success: _Optional[bool] = ...) -> None: ...

class UpdateCustomerPropertiesRequest(_message.Message):
    __slots__ = ("project_token", "customer_ids", "properties", "update_timestamp")
    class CustomerIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROJECT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    project_token: str
    customer_ids: _containers.ScalarMap[str, str]
    properties: _struct_pb2.Struct
    update_timestamp: float
    def __init__(self, project_token: _Optional[str] = ..., customer_ids: _Optional[_Mapping[str, str]] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., update_timestamp: _Optional[float] = ...) -> None: ...

class UpdateCustomerPropertiesResponse(_message.Message):
    __slots__ = ("success", "errors")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, success: _Optional[bool] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class AddEventRequest(_message.Message):
    __slots__ = ("project_token", "customer_ids", "event_type", "timestamp", "properties")
    class CustomerIdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROJECT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    project_token: str
    customer_ids: _containers.ScalarMap[str, str]
    event_type: str
    timestamp: _struct_pb2.Value
    properties: _struct_pb2.Struct
    def __init__(self, project_token: _Optional[str] = ..., customer_ids: _Optional[_Mapping[str, str]] = ..., event_type: _Optional[str] = ..., timestamp: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., properties: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class AddEventResponse(_message.Message):
    __slots__ = ("success", "errors")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, success: _Optional[bool] = ..., errors: _Optional[_Iterable[str]] = ...) -> None: ...

class GetSystemTimeRequest(_message.Message):
    __slots__ = ("project_token",)
    PROJECT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project_token: str
    def __init__(self, project_token: _Optional[str] = ...) -> None: ...

class GetSystemTimeResponse(_message.Message):
    __slots__ = ("success", "errors", "time")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    success: bool
    errors: _containers.RepeatedScalarFieldContainer[str]
    time: float
    def __init__(self, success: _Optional[bool] = ..., errors: _Optional[_Iterable[str]] = ..., time: _Optional[float] = ...) -> None: ...
