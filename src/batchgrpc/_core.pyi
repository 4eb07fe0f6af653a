"""The Rust core (`rust_core/`), built by maturin. Hand-written; checked by
`mypy.stubtest` against the built module."""

__all__ = [
    "BULK_EVENTS_MAX_EVENTS",
    "BULK_EVENTS_MAX_REQUEST_BYTES",
    "TRACK_MAX_COMMANDS",
    "TRACK_MAX_COMMAND_BYTES",
    "TRACK_MAX_PROPERTY_VALUE_BYTES",
    "TRACK_MAX_REQUEST_BYTES",
    "__version__",
    "check_bulk_request",
    "check_track_batch",
]

__version__: str

#: Klaviyo's 5 MB request limit, in bytes of the serialized request.
BULK_EVENTS_MAX_REQUEST_BYTES: int
#: Klaviyo's 1,000 events per request.
BULK_EVENTS_MAX_EVENTS: int
#: Bloomreach's 50 commands per batch.
TRACK_MAX_COMMANDS: int
#: Bloomreach: each command under 800 KB.
TRACK_MAX_COMMAND_BYTES: int
#: Bloomreach: each property value under 16 KB.
TRACK_MAX_PROPERTY_VALUE_BYTES: int
#: The largest tracking batch that can be valid.
TRACK_MAX_REQUEST_BYTES: int

def check_bulk_request(request_bytes: int, event_count: int) -> None:
    """Raises `batchgrpc.errors.PayloadTooLarge` over 5 MiB, then
    `batchgrpc.errors.TooManyItems` over 1,000 events."""

def check_track_batch(request_bytes: int, command_bytes: list[int]) -> list[str | None]:
    """Per command, None or the error text of an oversized command. Raises
    `batchgrpc.errors.NoCommands`, `TooManyItems` or `PayloadTooLarge` for
    a batch that fails as a whole."""
