"""`batchgrpc upload FILE`: a file asset, streamed in chunks from disk."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from batchgrpc.batches.v6 import file_asset_pb2, file_asset_pb2_grpc
from batchgrpc.client.connection import Connection
from batchgrpc.client.failures import CommandFailed, Exit
from batchgrpc.client.output import Output

#: What each stream message carries (the proto's advice).
CHUNK_BYTES = 1024 * 1024

Format = file_asset_pb2.FileAsset.Format


def format_of(name: str | None, path: Path) -> int:
    """A `--format` value (any case) as the enum; else the one the file's
    own extension names, so that `--name` needs none; else unspecified, for
    the server to infer from the name or refuse."""
    if not name:
        name = path.suffix.lstrip(".")
        if name.upper() not in Format.keys():  # noqa: SIM118 - an enum wrapper, not a dict
            return Format.FORMAT_UNSPECIFIED
    try:
        return Format.Value(name.upper())
    except ValueError:
        choices = ", ".join(n for n in (v.name for v in Format.DESCRIPTOR.values) if n != "FORMAT_UNSPECIFIED")
        raise CommandFailed(f"--format {name}: expected one of {choices}", Exit.USAGE) from None


def upload(
    conn: Connection,
    out: Output,
    path: Path,
    *,
    name: str | None = None,
    file_format: str | None = None,
    tags: Sequence[str] = (),
) -> file_asset_pb2.FileAsset:
    """Uploads `path` with a bar of bytes sent; returns the stored asset."""
    try:
        size = path.stat().st_size
        path.open("rb").close()
    except OSError as e:
        raise CommandFailed(f"{path}: {e.strerror}", Exit.USAGE) from None
    metadata = file_asset_pb2.FileAssetMetadata(
        name=name or path.name,
        format=format_of(file_format, path),  # type: ignore[arg-type]  # an enum number, checked above
        tags=tags,
        # One id for every attempt: a retry after a lost answer stores nothing new.
        request_id=f"upload-{uuid.uuid4()}",
    )
    stub = file_asset_pb2_grpc.FileAssetServiceStub(conn.channel)
    with out.bar(f"upload {path.name}", size, unit="bytes") as bar:

        def messages() -> Iterator[file_asset_pb2.UploadFileAssetRequest]:
            # Read as grpc sends, so the file is never held whole.
            yield file_asset_pb2.UploadFileAssetRequest(metadata=metadata)
            sent = 0
            bar.update(0)
            with path.open("rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    yield file_asset_pb2.UploadFileAssetRequest(chunk=chunk)
                    sent += len(chunk)
                    bar.update(sent)

        response = conn.call(f"upload {path.name}", lambda: stub.UploadFileAsset(messages(), metadata=conn.metadata))
        bar.update(response.file_asset.size, status="stored")
    return response.file_asset


def describe(asset: file_asset_pb2.FileAsset) -> str:
    return f"{asset.id}  {asset.name}  {Format.Name(asset.format)}  {asset.size} bytes  sha256 {asset.sha256}"
