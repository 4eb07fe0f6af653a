"""The data-file store's clean-up on start: another worker's upload in
progress (same data dir) is kept; what a dead process left is removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from batchgrpc.batches.files import DiskFiles
from batchgrpc.owner import start_ticks


def test_start_removes_only_the_parts_of_writers_that_are_gone(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    pid = int(dead.stdout)
    live = root / f".file_a.{os.getpid()}-{start_ticks(os.getpid())}.00000000.part"
    gone = root / f".file_b.{pid}-{start_ticks(os.getpid())}.00000000.part"
    old = root / ".file_c.00000000.part"
    for part in (live, gone, old):
        part.write_bytes(b"x")
    DiskFiles(root, 1024)
    assert sorted(p.name for p in root.iterdir()) == [live.name]
