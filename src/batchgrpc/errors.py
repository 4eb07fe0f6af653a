"""Domain errors, the catalogue of reason codes, and their gRPC status.

Servicers and the rest of the code raise these; one interceptor
(`batchgrpc.interceptor`) turns them into a `google.rpc.Status` with rich
details. Nothing else calls `context.abort`.

Every error carries:
- a gRPC code (what the client should do next),
- a `Reason` from the catalogue below (AIP-193 `ErrorInfo.reason`),
- the upstream API's own code, per API, in `ErrorInfo.metadata["code"]`,
- optional field violations (`BadRequest`) and a retry delay (`RetryInfo`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

#: `ErrorInfo.domain` of every error this service emits.
DOMAIN = "batchgrpc"
#: The most characters of what a client sent that an error echoes (API.md).
MAX_ECHO = 256
#: The serialized `google.rpc.Status` stays under this, so that with the
#: rate-limit trailers it passes every client's metadata limit (gRPC's
#: default is 8 KiB, and the details travel base64-encoded). Violations past
#: it are counted, not listed.
MAX_STATUS_BYTES = 4096


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """At most `limit` characters of `text`, marked when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Api(enum.StrEnum):
    """The API families, for rate limits and upstream error codes."""

    BATCHES = "batches"
    BULK_EVENTS = "bulk_events"
    EVENTS_READ = "events_read"
    TRACKING = "tracking"
    #: Health and reflection: no key, no limits.
    SYSTEM = "system"


class Reason(enum.StrEnum):
    """Every `ErrorInfo.reason` the server can emit, in one place."""

    MISSING_CREDENTIALS = "MISSING_CREDENTIALS"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    API_KEY_REVOKED = "API_KEY_REVOKED"
    MISSING_SCOPE = "MISSING_SCOPE"
    PROJECT_TOKEN_MISMATCH = "PROJECT_TOKEN_MISMATCH"
    RATE_LIMITED = "RATE_LIMITED"
    MISSING_REVISION = "MISSING_REVISION"
    INVALID_REVISION = "INVALID_REVISION"
    UNKNOWN_REVISION = "UNKNOWN_REVISION"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    AMBIGUOUS_CREDENTIALS = "AMBIGUOUS_CREDENTIALS"
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    TOO_MANY_ITEMS = "TOO_MANY_ITEMS"
    NO_COMMANDS = "NO_COMMANDS"
    INVALID_JOB_SPEC = "INVALID_JOB_SPEC"
    INVALID_DATA_FILE = "INVALID_DATA_FILE"
    REQUEST_IN_PROGRESS = "REQUEST_IN_PROGRESS"
    BATCH_JOB_NOT_FOUND = "BATCH_JOB_NOT_FOUND"
    BATCH_JOB_INVALID_STATE_TRANSITION = "BATCH_JOB_INVALID_STATE_TRANSITION"
    BATCH_JOB_DELETE_NOT_ALLOWED = "BATCH_JOB_DELETE_NOT_ALLOWED"
    BATCH_JOB_UNAUTHORIZED_SCOPES = "BATCH_JOB_UNAUTHORIZED_SCOPES"
    DATA_SOURCE_NOT_FOUND = "DATA_SOURCE_NOT_FOUND"
    DATA_SOURCE_NOT_READY = "DATA_SOURCE_NOT_READY"
    DATA_SOURCE_IN_USE = "DATA_SOURCE_IN_USE"
    DATA_SOURCE_ALREADY_COMPLETE = "DATA_SOURCE_ALREADY_COMPLETE"
    UPLOAD_IN_PROGRESS = "UPLOAD_IN_PROGRESS"
    NOT_FOUND = "NOT_FOUND"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path as the upstream API names it, and why."""

    field: str
    description: str
    reason: str = ""


class BatchgrpcError(Exception):
    """Base of every error a client may see. Subclasses fix code and reason."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    reason: ClassVar[Reason] = Reason.INTERNAL
    #: Upstream's own code per API; `default_upstream_code` for the others.
    upstream_codes: ClassVar[Mapping[Api, str]] = {}
    default_upstream_code: ClassVar[str] = "internal"

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        upstream: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        #: Upstream's code for this very error, where it depends on more than
        #: the class (upstream names a missing file asset apart from a report).
        self.upstream = upstream
        self.violations = tuple(violations)
        self.metadata = dict(metadata or {})
        self.retry_after = retry_after

    def upstream_code(self, api: Api) -> str:
        if self.upstream is not None:
            return self.upstream
        return self.upstream_codes.get(api, self.default_upstream_code)

    def to_status(self, api: Api) -> status_pb2.Status:
        """The `google.rpc.Status` for this error, as seen by a caller of `api`.

        Every text is clipped, and violations are listed while the status
        fits `MAX_STATUS_BYTES`: a client's long values can never push the
        trailers past the transport's limit (which a client would see as
        RESOURCE_EXHAUSTED, a retryable code)."""
        status = status_pb2.Status(code=_RPC_CODES[self.code], message=clip(self.message, 1024))
        metadata = {"code": self.upstream_code(api), **self.metadata}
        info = error_details_pb2.ErrorInfo(
            reason=self.reason.value,
            domain=DOMAIN,
            metadata={clip(k, 64): clip(v) for k, v in metadata.items()},
        )
        if self.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(self.retry_after * 1e9))
            retry: error_details_pb2.RetryInfo | None = error_details_pb2.RetryInfo(retry_delay=delay)
        else:
            retry = None
        bad = error_details_pb2.BadRequest()
        room = MAX_STATUS_BYTES - status.ByteSize() - info.ByteSize() - (retry.ByteSize() if retry else 0) - 256
        for v in self.violations:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=clip(v.field), description=clip(v.description, 512), reason=v.reason
            )
            # A field of the repeated detail costs its size plus a few bytes of framing.
            room -= violation.ByteSize() + 4
            if room < 0:
                break
            bad.field_violations.append(violation)
        if len(bad.field_violations) < len(self.violations):
            info.metadata["field_violations"] = str(len(self.violations))
            info.metadata["field_violations_listed"] = str(len(bad.field_violations))
        status.details.add().Pack(info)
        if self.violations:
            status.details.add().Pack(bad)
        if retry is not None:
            status.details.add().Pack(retry)
        return status


class InvalidArgument(BatchgrpcError):
    """The request itself is wrong; retrying it unchanged cannot help."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = Reason.INVALID_ARGUMENT
    upstream_codes: ClassVar[Mapping[Api, str]] = {Api.BATCHES: "invalid_parameter", Api.TRACKING: "bad_request"}
    default_upstream_code = "invalid"


class _CoreLimitError(InvalidArgument):
    """Raised from the Rust core with `(message, field)`: a request over a limit."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, violations=[FieldViolation(field, message, self.reason)])
        self.field = field


class PayloadTooLarge(_CoreLimitError):
    reason = Reason.PAYLOAD_TOO_LARGE


class TooManyItems(_CoreLimitError):
    reason = Reason.TOO_MANY_ITEMS


class NoCommands(_CoreLimitError):
    reason = Reason.NO_COMMANDS


class InvalidJobSpec(_CoreLimitError):
    """A batch job's column rules or event settings are invalid (raised from
    the Rust core with the request field at fault)."""

    reason = Reason.INVALID_JOB_SPEC


class DataFileError(BatchgrpcError):
    """A data file that cannot be read as its format says (no header, an
    unterminated quote, an unreadable JSON document, a required column absent).

    Raised from the Rust core with `(message, file_reason, offset)`; a batch
    job that meets it FAILS with `file_reason` as its error code.
    """

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = Reason.INVALID_DATA_FILE
    default_upstream_code = "file_asset_file_processing_error"

    def __init__(self, message: str, file_reason: str, offset: int) -> None:
        super().__init__(message, metadata={"file_error": file_reason, "offset": str(offset)})
        self.file_reason = file_reason
        self.offset = offset


class MalformedRequest(InvalidArgument):
    """Bytes that do not decode as the RPC's request message."""

    reason = Reason.MALFORMED_REQUEST


class RequestIdReused(BatchgrpcError):
    """A `request_id` sent again with a different request."""

    code = grpc.StatusCode.ALREADY_EXISTS
    reason = Reason.REQUEST_ID_REUSED
    default_upstream_code = "request_id_reused"


class MissingRevision(InvalidArgument):
    reason = Reason.MISSING_REVISION


class InvalidRevision(InvalidArgument):
    reason = Reason.INVALID_REVISION


class UnknownRevision(BatchgrpcError):
    """A well-formed revision upstream does not document: its 404."""

    code = grpc.StatusCode.NOT_FOUND
    reason = Reason.UNKNOWN_REVISION
    default_upstream_code = "not_found"


class Unauthenticated(BatchgrpcError):
    """No valid credential. The message never says which part was wrong."""

    code = grpc.StatusCode.UNAUTHENTICATED
    reason = Reason.INVALID_CREDENTIALS
    upstream_codes: ClassVar[Mapping[Api, str]] = {
        Api.BATCHES: "missing_access_token",
        # Klaviyo tells credentials that are wrong from none at all.
        Api.BULK_EVENTS: "authentication_failed",
        Api.EVENTS_READ: "authentication_failed",
        Api.TRACKING: "access_key_not_found",
    }


class MissingCredentials(Unauthenticated):
    reason = Reason.MISSING_CREDENTIALS
    upstream_codes: ClassVar[Mapping[Api, str]] = {
        **Unauthenticated.upstream_codes,
        Api.BULK_EVENTS: "not_authenticated",
        Api.EVENTS_READ: "not_authenticated",
    }


class AmbiguousCredentials(Unauthenticated):
    reason = Reason.AMBIGUOUS_CREDENTIALS


class ApiKeyRevoked(Unauthenticated):
    reason = Reason.API_KEY_REVOKED


class PermissionDenied(BatchgrpcError):
    """A valid key that may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    reason = Reason.MISSING_SCOPE
    upstream_codes: ClassVar[Mapping[Api, str]] = {
        Api.BATCHES: "scopes_denied",
        Api.BULK_EVENTS: "permission_denied",
        Api.EVENTS_READ: "permission_denied",
        Api.TRACKING: "not_authorized",
    }


class ProjectTokenMismatch(PermissionDenied):
    reason = Reason.PROJECT_TOKEN_MISMATCH


class RateLimited(BatchgrpcError):
    """Over the account's rate limit; `retry_after` says when to come back."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = Reason.RATE_LIMITED
    upstream_codes: ClassVar[Mapping[Api, str]] = {
        Api.BATCHES: "too_many_requests",
        Api.BULK_EVENTS: "throttled",
        Api.EVENTS_READ: "throttled",
        Api.TRACKING: "too_many_requests",
    }


class RequestInProgress(BatchgrpcError):
    """The same `request_id` is being processed right now; retry shortly."""

    code = grpc.StatusCode.ABORTED
    reason = Reason.REQUEST_IN_PROGRESS
    default_upstream_code = "request_in_progress"


class NotFound(BatchgrpcError):
    """No such record for this account (another account's is not found either)."""

    code = grpc.StatusCode.NOT_FOUND
    reason = Reason.NOT_FOUND
    default_upstream_code = "not_found"


class BatchJobNotFound(BatchgrpcError):
    """No such job for this account (another account's job is not found either)."""

    code = grpc.StatusCode.NOT_FOUND
    reason = Reason.BATCH_JOB_NOT_FOUND
    default_upstream_code = "batch_job_not_found"

    def __init__(self, job_id: str = "") -> None:
        super().__init__("Batch job not found", metadata={"batch_job_id": job_id} if job_id else None)


class InvalidStateTransition(BatchgrpcError):
    """A status move the job's lifecycle does not allow."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = Reason.BATCH_JOB_INVALID_STATE_TRANSITION
    default_upstream_code = "batch_job_invalid_state_transition"

    def __init__(self, job_id: str, current: str, target: str, message: str | None = None) -> None:
        super().__init__(
            message or f"Batch job {job_id} cannot go from {current} to {target}.",
            metadata={"batch_job_id": job_id, "current_status": current, "target_status": target},
        )


class DeleteNotAllowed(BatchgrpcError):
    """Only a job in a terminal status may be deleted."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = Reason.BATCH_JOB_DELETE_NOT_ALLOWED
    default_upstream_code = "batch_job_delete_not_allowed"

    def __init__(self, job_id: str, current: str) -> None:
        super().__init__(
            f"Batch job {job_id} is {current}: only a DONE, FAILED, CANCELED or EXPIRED job can be deleted.",
            metadata={"batch_job_id": job_id, "current_status": current},
        )


class UnauthorizedScopes(InvalidArgument):
    """Job scopes the caller does not hold itself."""

    reason = Reason.BATCH_JOB_UNAUTHORIZED_SCOPES
    upstream_codes: ClassVar[Mapping[Api, str]] = {}
    default_upstream_code = "batch_job_unauthorized_scopes"


class DataSourceNotFound(BatchgrpcError):
    """No such file asset, report or audience list for this account."""

    code = grpc.StatusCode.NOT_FOUND
    reason = Reason.DATA_SOURCE_NOT_FOUND


class DataSourceNotReady(BatchgrpcError):
    """A report not DONE or an audience list not READY."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = Reason.DATA_SOURCE_NOT_READY
    default_upstream_code = "batch_job_data_source_not_ready"


class DataSourceInUse(BatchgrpcError):
    """A data source that an unfinished batch job still reads."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = Reason.DATA_SOURCE_IN_USE
    default_upstream_code = "file_asset_in_use"


class DataSourceComplete(BatchgrpcError):
    """A report or audience list whose content was uploaded already."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = Reason.DATA_SOURCE_ALREADY_COMPLETE
    default_upstream_code = "data_source_already_complete"


class UploadInProgress(BatchgrpcError):
    """Another upload to the same report or audience list is running."""

    code = grpc.StatusCode.ABORTED
    reason = Reason.UPLOAD_IN_PROGRESS
    default_upstream_code = "upload_in_progress"


class Internal(BatchgrpcError):
    """A bug or an unexpected failure; details go to the log, not the client."""

    def __init__(self) -> None:
        super().__init__("Internal error.")


# grpc.StatusCode values are (int, name) pairs; google.rpc.Code wants the int.
_RPC_CODES = {status: status.value[0] for status in grpc.StatusCode}
assert _RPC_CODES[grpc.StatusCode.INVALID_ARGUMENT] == code_pb2.INVALID_ARGUMENT
