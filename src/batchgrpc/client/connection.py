"""A synchronous gRPC connection to a running server, and what its errors
mean for the command line: retries where a retry is safe, and an exit code
for each kind of failure.

Retried, after the wait the server asks for: RESOURCE_EXHAUSTED and ABORTED
that carry a `google.rpc.RetryInfo` (a rate limit, or the same `request_id`
still being processed). Retried a few times with backoff: UNAVAILABLE, but
only for calls that are safe to repeat (reads, and creates that carry a
`request_id`). Everything else ends the command with its message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from batchgrpc.client.failures import CommandFailed, Exit
from batchgrpc.client.output import Output

T = TypeVar("T")

#: The Klaviyo API revision sent with every events.v1 call (the server takes
#: any `YYYY-MM-DD`; this is the one its contract was written against).
REVISION = "2026-07-15"
#: Replies can hold up to 1,000 row errors; the transport's 4 MB default
#: is not a limit this client wants to hit.
MAX_RECEIVE_BYTES = 64 * 1024 * 1024
#: Waits between attempts while the server cannot be reached.
UNAVAILABLE_BACKOFF = (0.5, 1.0, 2.0, 4.0)


_EXIT_BY_CODE = {
    grpc.StatusCode.UNAUTHENTICATED: Exit.UNAUTHORIZED,
    grpc.StatusCode.PERMISSION_DENIED: Exit.UNAUTHORIZED,
    grpc.StatusCode.UNAVAILABLE: Exit.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: Exit.UNAVAILABLE,
}


@dataclass(frozen=True)
class Failure:
    """What a failed call said: its code, message and rich details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    violations: tuple[tuple[str, str], ...] = ()
    retry_after: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, error: grpc.RpcError) -> Failure:
        call: grpc.Call = error  # type: ignore[assignment]  # every RpcError a stub raises is also its Call
        reason, violations, retry_after = "", [], None
        metadata: dict[str, str] = {}
        try:
            status = rpc_status.from_call(call)
        except ValueError:
            status = None  # details that do not match the call's status: ignore them
        for detail in status.details if status is not None else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations = [(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_after = retry.retry_delay.ToNanoseconds() / 1e9
        if retry_after is None:
            # A server (or proxy) that sends only the header.
            for key, value in call.trailing_metadata() or ():
                if key == "retry-after" and isinstance(value, str) and value.isdigit():
                    retry_after = float(value)
        return cls(call.code(), call.details() or "", reason, tuple(violations), retry_after, metadata)

    def describe(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.reason:
            text += f" ({self.reason})"
        return text + "".join(f"\n  {path}: {why}" for path, why in self.violations)

    @property
    def exit_code(self) -> Exit:
        return _EXIT_BY_CODE.get(self.code, Exit.REFUSED)

    @property
    def waits(self) -> bool:
        """Whether the server asked to be called again later."""
        return self.retry_after is not None and self.code in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.ABORTED,
        )


@dataclass(frozen=True)
class Target:
    """Where the server is and how to reach it."""

    address: str
    token: str = ""
    tls: bool = False
    ca_file: Path | None = None


class Connection:
    """One channel to the server and the calls made on it."""

    def __init__(self, target: Target, out: Output, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not target.token:
            raise CommandFailed("no API key: pass --token or set BATCHGRPC_TOKEN", Exit.USAGE)
        if not target.token.isascii() or not target.token.isprintable() or " " in target.token:
            # grpc would refuse it as a header value with a bare INTERNAL.
            raise CommandFailed("the token has characters no API key has (a stray newline?)", Exit.USAGE)
        self._out = out
        self._sleep = sleep
        options = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
        if target.tls or target.ca_file is not None:
            try:
                roots = target.ca_file.read_bytes() if target.ca_file is not None else None
            except OSError as e:
                raise CommandFailed(f"--ca-file: {e.strerror}: {target.ca_file}", Exit.USAGE) from None
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self.channel = grpc.secure_channel(target.address, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(target.address, options=options)
        self.metadata = (("authorization", f"Bearer {target.token}"),)
        self.events_metadata = (*self.metadata, ("revision", REVISION))

    def close(self) -> None:
        self.channel.close()

    def call(self, what: str, attempt: Callable[[], T], *, repeatable: bool = True) -> T:
        """`attempt()` (one RPC), again while the server asks for a wait,
        and again after UNAVAILABLE when `repeatable`. `what` names the call
        in messages."""
        unavailable = iter(UNAVAILABLE_BACKOFF)
        while True:
            try:
                return attempt()
            except grpc.RpcError as error:
                failure = Failure.of(error)
                self.wait_or_raise(what, failure, unavailable if repeatable else iter(()))

    def wait_or_raise(self, what: str, failure: Failure, unavailable: Iterator[float]) -> None:
        """Sleeps as `failure` asks (a rate limit, a request in progress, an
        unreachable server with backoff left); otherwise raises it."""
        if failure.waits:
            assert failure.retry_after is not None
            self._out.note(f"{what}: {failure.message} Waiting {failure.retry_after:.1f} s as the server asks.")
            self._sleep(failure.retry_after)
            return
        if failure.code == grpc.StatusCode.UNAVAILABLE and (delay := next(unavailable, None)) is not None:
            self._out.note(f"{what}: server unavailable ({failure.message}); trying again in {delay:.1f} s.")
            self._sleep(delay)
            return
        raise CommandFailed(f"{what}: {failure.describe()}", failure.exit_code)
