"""Who a worker is, as the owner of an idempotency claim or a lease, and
whether an owner is known to be dead.

An owner names one process for good: its machine (host, boot, pid
namespace), pid and start time. So a claim or lease of a process that died
on this machine is freed at once, not after its expiry; one on another
machine is left to expire, since nobody here can tell.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def start_ticks(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None when
    there is no such process. With the pid it names one process for good:
    a pid the kernel hands out again has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so count from ")".
    return stat.rpartition(")")[2].split()[19]


def _machine() -> str:
    """What a pid means something in: this host's boot and pid namespace
    (two containers may share a host name and a data dir, never both)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{socket.gethostname()}:{boot}:{namespace}"


def process_owner() -> str:
    """This process, as a claim's owner: its machine, pid and start time."""
    return f"{_machine()}/{os.getpid()}/{start_ticks(os.getpid())}"


def owner_is_gone(owner: str) -> bool:
    """True when `owner` is a process of this machine that no longer runs.
    Elsewhere, or where /proc cannot tell, nobody knows: not gone."""
    machine, _, rest = owner.partition("/")
    pid, _, ticks = rest.partition("/")
    if not machine or machine != _machine() or not pid.isdigit() or ticks == "None":
        return False
    return start_ticks(int(pid)) != ticks
