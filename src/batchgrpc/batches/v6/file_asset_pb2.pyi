import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileAsset(_message.Message):
    __slots__ = ("id", "name", "format", "tags", "status", "size", "sha256", "created_time", "updated_time")
    class Format(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        FORMAT_UNSPECIFIED: _ClassVar[FileAsset.Format]
        CSV: _ClassVar[FileAsset.Format]
        PSV: _ClassVar[FileAsset.Format]
        JSON: _ClassVar[FileAsset.Format]
        JSONL: _ClassVar[FileAsset.Format]
    FORMAT_UNSPECIFIED: FileAsset.Format
    CSV: FileAsset.Format
    PSV: FileAsset.Format
    JSON: FileAsset.Format
    JSONL: FileAsset.Format
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[FileAsset.Status]
        AVAILABLE: _ClassVar[FileAsset.Status]
        EXPIRED: _ClassVar[FileAsset.Status]
    STATUS_UNSPECIFIED: FileAsset.Status
    AVAILABLE: FileAsset.Status
    EXPIRED: FileAsset.Status
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    format: FileAsset.Format
    tags: _containers.RepeatedScalarFieldContainer[str]
    status: FileAsset.Status
    size: int
    sha256: str
    created_time: _timestamp_pb2.Timestamp
    updated_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., format: _Optional[_Union[FileAsset.Format, str]] = ..., tags: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[FileAsset.Status, str]] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FileAssetMetadata(_message.Message):
    __slots__ = ("name", "format", "tags", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: FileAsset.Format
    tags: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, name: _Optional[str] = ..., format: _Optional[_Union[FileAsset.Format, str]] = ..., tags: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UploadFileAssetRequest(_message.Message):
    __slots__ = ("metadata", "chunk")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    metadata: FileAssetMetadata
    chunk: bytes
    def __init__(self, metadata: _Optional[_Union[FileAssetMetadata, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadFileAssetResponse(_message.Message):
    __slots__ = ("file_asset",)
    FILE_ASSET_FIELD_NUMBER: _ClassVar[int]
    file_asset: FileAsset
    def __init__(self, file_asset: _Optional[_Union[FileAsset, _Mapping]] = ...) -> None: ...

class GetFileAssetRequest(_message.Message):
    __slots__ = ("file_asset_id",)
    FILE_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    file_asset_id: str
    def __init__(self, file_asset_id: _Optional[str] = ...) -> None: ...

class GetFileAssetResponse(_message.Message):
    __slots__ = ("file_asset",)
    FILE_ASSET_FIELD_NUMBER: _ClassVar[int]
    file_asset: FileAsset
    def __init__(self, file_asset: _Optional[_Union[FileAsset, _Mapping]] = ...) -> None: ...

class ListFileAssetsRequest(_message.Message):
    __slots__ = ("name", "tags", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFileAssetsResponse(_message.Message):
    __slots__ = ("file_assets", "next_page_token")
    FILE_ASSETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    file_assets: _containers.RepeatedCompositeFieldContainer[FileAsset]
    next_page_token: str
    def __init__(self, file_assets: _Optional[_Iterable[_Union[FileAsset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteFileAssetRequest(_message.Message):
    __slots__ = ("file_asset_id",)
    FILE_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    file_asset_id: str
    def __init__(self, file_asset_id: _Optional[str] = ...) -> None: ...

class DeleteFileAssetResponse(_message.Message):
    __slots__ = ("file_asset",)
    FILE_ASSET_FIELD_NUMBER: _ClassVar[int]
    file_asset: FileAsset
    def __init__(self, file_asset: _Optional[_Union[FileAsset, _Mapping]] = ...) -> None: ...
