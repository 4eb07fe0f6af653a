from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorResponse(_message.Message):
    __slots__ = ("errors",)
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    errors: _containers.RepeatedCompositeFieldContainer[Error]
    def __init__(self, errors: _Optional[_Iterable[_Union[Error, _Mapping]]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("id", "status", "code", "title", "detail", "source", "meta")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: int
    code: str
    title: str
    detail: str
    source: ErrorSource
    meta: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., status: _Optional[int] = ..., code: _Optional[str] = ..., title: _Optional[str] = ..., detail: _Optional[str] = ..., source: _Optional[_Union[ErrorSource, _Mapping]] = ..., meta: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ErrorSource(_message.Message):
    __slots__ = ("pointer", "parameter")
    POINTER_FIELD_NUMBER: _ClassVar[int]
    PARAMETER_FIELD_NUMBER: _ClassVar[int]
    pointer: str
    parameter: str
    def __init__(self, pointer: _Optional[str] = ..., parameter: _Optional[str] = ...) -> None: ...
