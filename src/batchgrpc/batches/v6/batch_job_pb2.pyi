import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BatchJob(_message.Message):
    __slots__ = ("id", "name", "event_name", "default_event_name", "status", "created_time", "started_time", "completed_time", "tags", "event_data", "event_columns", "columns", "data_source", "scopes", "success_rows", "failed_rows", "rows_read", "error_code", "error_message", "debug_message", "bytes_read", "bytes_total")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[BatchJob.Status]
        PENDING: _ClassVar[BatchJob.Status]
        QUEUED: _ClassVar[BatchJob.Status]
        IN_PROGRESS: _ClassVar[BatchJob.Status]
        DISPATCHING: _ClassVar[BatchJob.Status]
        DONE: _ClassVar[BatchJob.Status]
        FAILED: _ClassVar[BatchJob.Status]
        CANCELED: _ClassVar[BatchJob.Status]
        EXPIRED: _ClassVar[BatchJob.Status]
    STATUS_UNSPECIFIED: BatchJob.Status
    PENDING: BatchJob.Status
    QUEUED: BatchJob.Status
    IN_PROGRESS: BatchJob.Status
    DISPATCHING: BatchJob.Status
    DONE: BatchJob.Status
    FAILED: BatchJob.Status
    CANCELED: BatchJob.Status
    EXPIRED: BatchJob.Status
    class Scope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SCOPE_UNSPECIFIED: _ClassVar[BatchJob.Scope]
        CLIENT_SUPERUSER: _ClassVar[BatchJob.Scope]
        CLIENT_ADMIN: _ClassVar[BatchJob.Scope]
    SCOPE_UNSPECIFIED: BatchJob.Scope
    CLIENT_SUPERUSER: BatchJob.Scope
    CLIENT_ADMIN: BatchJob.Scope
    class EventDataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    STARTED_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_TIME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    EVENT_DATA_FIELD_NUMBER: _ClassVar[int]
    EVENT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    DATA_SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_ROWS_FIELD_NUMBER: _ClassVar[int]
    FAILED_ROWS_FIELD_NUMBER: _ClassVar[int]
    ROWS_READ_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEBUG_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    event_name: str
    default_event_name: str
    status: BatchJob.Status
    created_time: _timestamp_pb2.Timestamp
    started_time: _timestamp_pb2.Timestamp
    completed_time: _timestamp_pb2.Timestamp
    tags: _containers.RepeatedScalarFieldContainer[str]
    event_data: _containers.ScalarMap[str, str]
    event_columns: _containers.RepeatedScalarFieldContainer[str]
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    data_source: DataSource
    scopes: _containers.RepeatedScalarFieldContainer[BatchJob.Scope]
    success_rows: int
    failed_rows: int
    rows_read: int
    error_code: str
    error_message: str
    debug_message: str
    bytes_read: int
    bytes_total: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., event_name: _Optional[str] = ..., default_event_name: _Optional[str] = ..., status: _Optional[_Union[BatchJob.Status, str]] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., event_data: _Optional[_Mapping[str, str]] = ..., event_columns: _Optional[_Iterable[str]] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., data_source: _Optional[_Union[DataSource, _Mapping]] = ..., scopes: _Optional[_Iterable[_Union[BatchJob.Scope, str]]] = ..., success_rows: _Optional[int] = ..., failed_rows: _Optional[int] = ..., rows_read: _Optional[int] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., debug_message: _Optional[str] = ..., bytes_read: _Optional[int] = ..., bytes_total: _Optional[int] = ...) -> None: ...

class DataSource(_message.Message):
    __slots__ = ("type", "report_id", "audience_list_id", "file_asset_id", "id")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[DataSource.Type]
        REPORT: _ClassVar[DataSource.Type]
        AUDIENCE_LIST: _ClassVar[DataSource.Type]
        FILE_ASSET: _ClassVar[DataSource.Type]
    TYPE_UNSPECIFIED: DataSource.Type
    REPORT: DataSource.Type
    AUDIENCE_LIST: DataSource.Type
    FILE_ASSET: DataSource.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_LIST_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    type: DataSource.Type
    report_id: str
    audience_list_id: str
    file_asset_id: str
    id: str
    def __init__(self, type: _Optional[_Union[DataSource.Type, str]] = ..., report_id: _Optional[str] = ..., audience_list_id: _Optional[str] = ..., file_asset_id: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("type", "name", "name_pattern", "validation_policy", "prefix", "value_type", "pattern", "max_length", "allowed_values")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[Column.Type]
        FULL_NAME_MATCH: _ClassVar[Column.Type]
        PATTERN_NAME_MATCH: _ClassVar[Column.Type]
    TYPE_UNSPECIFIED: Column.Type
    FULL_NAME_MATCH: Column.Type
    PATTERN_NAME_MATCH: Column.Type
    class ValidationPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALIDATION_POLICY_UNSPECIFIED: _ClassVar[Column.ValidationPolicy]
        OPTIONAL: _ClassVar[Column.ValidationPolicy]
        REQUIRED_COLUMN: _ClassVar[Column.ValidationPolicy]
        REQUIRED_VALUE: _ClassVar[Column.ValidationPolicy]
    VALIDATION_POLICY_UNSPECIFIED: Column.ValidationPolicy
    OPTIONAL: Column.ValidationPolicy
    REQUIRED_COLUMN: Column.ValidationPolicy
    REQUIRED_VALUE: Column.ValidationPolicy
    class ValueType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE_TYPE_UNSPECIFIED: _ClassVar[Column.ValueType]
        STRING: _ClassVar[Column.ValueType]
        INTEGER: _ClassVar[Column.ValueType]
        NUMBER: _ClassVar[Column.ValueType]
        BOOLEAN: _ClassVar[Column.ValueType]
        EMAIL: _ClassVar[Column.ValueType]
        TIMESTAMP: _ClassVar[Column.ValueType]
    VALUE_TYPE_UNSPECIFIED: Column.ValueType
    STRING: Column.ValueType
    INTEGER: Column.ValueType
    NUMBER: Column.ValueType
    BOOLEAN: Column.ValueType
    EMAIL: Column.ValueType
    TIMESTAMP: Column.ValueType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_PATTERN_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_POLICY_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    VALUE_TYPE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_VALUES_FIELD_NUMBER: _ClassVar[int]
    type: Column.Type
    name: str
    name_pattern: str
    validation_policy: Column.ValidationPolicy
    prefix: str
    value_type: Column.ValueType
    pattern: str
    max_length: int
    allowed_values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, type: _Optional[_Union[Column.Type, str]] = ..., name: _Optional[str] = ..., name_pattern: _Optional[str] = ..., validation_policy: _Optional[_Union[Column.ValidationPolicy, str]] = ..., prefix: _Optional[str] = ..., value_type: _Optional[_Union[Column.ValueType, str]] = ..., pattern: _Optional[str] = ..., max_length: _Optional[int] = ..., allowed_values: _Optional[_Iterable[str]] = ...) -> None: ...

class RowError(_message.Message):
    __slots__ = ("row_number", "byte_offset", "column", "reason", "message")
    ROW_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BYTE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    row_number: int
    byte_offset: int
    column: str
    reason: str
    message: str
    def __init__(self, row_number: _Optional[int] = ..., byte_offset: _Optional[int] = ..., column: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class CreateBatchJobRequest(_message.Message):
    __slots__ = ("data_source", "name", "event_name", "default_event_name", "event_columns", "event_data", "columns", "scopes", "tags", "request_id")
    class EventDataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATA_SOURCE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    EVENT_DATA_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    data_source: DataSource
    name: str
    event_name: str
    default_event_name: str
    event_columns: _containers.RepeatedScalarFieldContainer[str]
    event_data: _containers.ScalarMap[str, str]
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    scopes: _containers.RepeatedScalarFieldContainer[BatchJob.Scope]
    tags: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    def __init__(self, data_source: _Optional[_Union[DataSource, _Mapping]] = ..., name: _Optional[str] = ..., event_name: _Optional[str] = ..., default_event_name: _Optional[str] = ..., event_columns: _Optional[_Iterable[str]] = ..., event_data: _Optional[_Mapping[str, str]] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., scopes: _Optional[_Iterable[_Union[BatchJob.Scope, str]]] = ..., tags: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateBatchJobResponse(_message.Message):
    __slots__ = ("batch_job",)
    BATCH_JOB_FIELD_NUMBER: _ClassVar[int]
    batch_job: BatchJob
    def __init__(self, batch_job: _Optional[_Union[BatchJob, _Mapping]] = ...) -> None: ...

class GetBatchJobRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class GetBatchJobResponse(_message.Message):
    __slots__ = ("batch_job",)
    BATCH_JOB_FIELD_NUMBER: _ClassVar[int]
    batch_job: BatchJob
    def __init__(self, batch_job: _Optional[_Union[BatchJob, _Mapping]] = ...) -> None: ...

class ListBatchJobsRequest(_message.Message):
    __slots__ = ("name", "event_name", "tags", "statuses", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    event_name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    statuses: _containers.RepeatedScalarFieldContainer[BatchJob.Status]
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., event_name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., statuses: _Optional[_Iterable[_Union[BatchJob.Status, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBatchJobsResponse(_message.Message):
    __slots__ = ("batch_jobs", "next_page_token")
    BATCH_JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    batch_jobs: _containers.RepeatedCompositeFieldContainer[BatchJob]
    next_page_token: str
    def __init__(self, batch_jobs: _Optional[_Iterable[_Union[BatchJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateBatchJobRequest(_message.Message):
    __slots__ = ("batch_id", "name", "tags", "scopes", "update_mask")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    name: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    scopes: _containers.RepeatedScalarFieldContainer[BatchJob.Scope]
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, batch_id: _Optional[str] = ..., name: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., scopes: _Optional[_Iterable[_Union[BatchJob.Scope, str]]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateBatchJobResponse(_message.Message):
    __slots__ = ("batch_job",)
    BATCH_JOB_FIELD_NUMBER: _ClassVar[int]
    batch_job: BatchJob
    def __init__(self, batch_job: _Optional[_Union[BatchJob, _Mapping]] = ...) -> None: ...

class CancelBatchJobRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class CancelBatchJobResponse(_message.Message):
    __slots__ = ("batch_job",)
    BATCH_JOB_FIELD_NUMBER: _ClassVar[int]
    batch_job: BatchJob
    def __init__(self, batch_job: _Optional[_Union[BatchJob, _Mapping]] = ...) -> None: ...

class ExpireBatchJobRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class ExpireBatchJobResponse(_message.Message):
    __slots__ = ("batch_job",)
    BATCH_JOB_FIELD_NUMBER: _ClassVar[int]
    batch_job: BatchJob
    def __init__(self, batch_job: _Optional[_Union[BatchJob, _Mapping]] = ...) -> None: ...

class DeleteBatchJobRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class DeleteBatchJobResponse(_message.Message):
    __slots__ = ("batch_job",)
    BATCH_JOB_FIELD_NUMBER: _ClassVar[int]
    batch_job: BatchJob
    def __init__(self, batch_job: _Optional[_Union[BatchJob, _Mapping]] = ...) -> None: ...

class WatchBatchJobRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class WatchBatchJobResponse(_message.Message):
    __slots__ = ("batch_job",)
    BATCH_JOB_FIELD_NUMBER: _ClassVar[int]
    batch_job: BatchJob
    def __init__(self, batch_job: _Optional[_Union[BatchJob, _Mapping]] = ...) -> None: ...

class ListBatchJobRowErrorsRequest(_message.Message):
    __slots__ = ("batch_id", "page_size", "page_token")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    page_size: int
    page_token: str
    def __init__(self, batch_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBatchJobRowErrorsResponse(_message.Message):
    __slots__ = ("row_errors", "next_page_token")
    ROW_ERRORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    row_errors: _containers.RepeatedCompositeFieldContainer[RowError]
    next_page_token: str
    def __init__(self, row_errors: _Optional[_Iterable[_Union[RowError, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
