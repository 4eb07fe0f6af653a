"""How a client command ends: its exit codes, and the error that carries one.

Kept apart from the modules that import grpc and rich, so that `batchgrpc
--help` and the server's commands do not load them.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    """The exit codes scripts can rely on (listed in every command's help)."""

    OK = 0
    #: The batch job FAILED.
    JOB_FAILED = 1
    #: Bad command line, or a file that cannot be read.
    USAGE = 2
    #: The batch job was CANCELED (or EXPIRED).
    JOB_CANCELED = 3
    #: Some lines, events or commands were refused; the rest went in.
    PARTIAL = 4
    #: The server refused the request (invalid, not found, wrong state, ...).
    REFUSED = 5
    #: No valid key, or the key lacks a scope.
    UNAUTHORIZED = 6
    #: The server could not be reached (after retrying).
    UNAVAILABLE = 7
    #: Interrupted (Ctrl-C).
    INTERRUPTED = 130


EXIT_CODES_HELP = """exit codes:
  0    success
  1    the batch job FAILED
  2    bad command line, or a file that cannot be read
  3    the batch job was CANCELED or EXPIRED
  4    some lines, events or commands were refused; the rest were sent
  5    the server refused the request (invalid, not found, wrong state)
  6    not authenticated, or the key lacks a scope
  7    the server could not be reached
  130  interrupted"""


class CommandFailed(Exception):
    """Ends a command with `message` on stderr and `exit_code`."""

    def __init__(self, message: str, exit_code: Exit) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
