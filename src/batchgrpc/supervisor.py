"""`batchgrpc serve --workers N` with N > 1: one supervisor, N worker processes.

The supervisor does the set-up once (`server.set_up`: migrations, the pepper
file, the first admin key, printed once), reserves the port, then starts N
workers. Each is a fresh interpreter, ``python -m batchgrpc serve ...
--worker-of PID --ready-fd FD``, started with `subprocess`: never a fork of a
process that has started grpc or an event loop. Every worker serves the same
HOST:PORT with SO_REUSEPORT, so the kernel spreads new connections over them,
and opens the one store; it skips the set-up.

- **Ready.** A worker writes its port to a pipe once its server has started;
  the supervisor logs the one `listening` line when every worker has.
- **Stop.** SIGTERM or SIGINT is forwarded to every worker as SIGTERM; each
  drains as a lone server does (health NOT_SERVING, calls finish within the
  grace period); the supervisor exits 0 when all have, SIGKILLing any still
  there after the grace period plus a margin.
- **A dead worker** is logged and replaced. One that dies soon after it
  started is replaced after a backoff that doubles each time, so a crash
  loop does not spin.
- **A killed supervisor** takes its workers along: each asks the kernel for
  a SIGTERM when its parent dies (PR_SET_PDEATHSIG), and drains.

- **Metrics** (`--metrics-listen`): every worker counts into
  prometheus-client's multiprocess files, in a temporary directory made
  empty for this run and removed after; the supervisor serves their sum
  (`metrics.serve_group`) and drops a dead worker's live gauges. Worker 0
  alone reads the store's gauges.

The supervisor is one thread with no event loop while workers run: it waits
in `select` on the workers' ready pipes and on a wake-up pipe that signals
(SIGCHLD, SIGTERM, SIGINT) write to. With metrics on, prometheus-client's
HTTP server adds one thread, which only reads the metrics files; workers
are still started by fork and exec at once (`subprocess`), which another
thread cannot disturb.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from batchgrpc import metrics, server
from batchgrpc.config import Config

log = logging.getLogger("batchgrpc.supervisor")

#: A worker that lived at least this long was healthy: its death is replaced at once.
STABLE_SECONDS = 10.0
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 10.0
#: Past the grace period, what a worker gets to stop its jobs and close the store.
DRAIN_MARGIN_SECONDS = 5.0
#: How long the first start of every worker may take (a cold interpreter,
#: the Rust extension, grpc) before the start counts as failed.
READY_TIMEOUT_SECONDS = 60.0

_PR_SET_PDEATHSIG = 1


class WorkersFailed(RuntimeError):
    """The workers could not all start; the message says which and how."""


class SupervisorGone(RuntimeError):
    """A worker found its supervisor gone before it could follow it."""


@dataclass
class _Worker:
    """One slot of N: the process in it now, and its history."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    #: The read end of the ready pipe, until the worker reports ready.
    ready_pipe: int | None = None
    ready: bool = False
    started: float = 0.0
    #: Deaths in a row, each soon after a start.
    failures: int = 0
    #: When a replacement is due (monotonic), if one is.
    restart_at: float | None = None


def supervise(config: Config, argv: Sequence[str]) -> int:
    """Runs the workers until SIGTERM/SIGINT; returns the exit code.

    `argv` is the command line (``serve ...``) each worker is started with,
    plus its own port and internal flags. Set-up failures raise (a bad store,
    a schema too new, the port in use) before any worker starts."""
    asyncio.run(_set_up(config))
    # asyncio.run has closed its loop and joined its threads, and the store
    # closed its own: the workers start from a process with one thread.
    holders, port = reserve_port(config.listen)
    metrics_dir = None
    exporter = None
    try:
        if config.metrics_listen is not None:
            metrics_dir = _metrics_dir()
            try:
                exporter = metrics.serve_group(config.metrics_listen, metrics_dir)
            except metrics.MetricsUnavailable as e:
                raise server.PortUnavailable(str(e)) from None
        return _Supervisor(config, argv, port, metrics_dir).run()
    finally:
        if exporter is not None:
            exporter.stop()
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        for holder in holders:
            holder.close()


async def _set_up(config: Config) -> None:
    done = await server.set_up(config)
    try:
        if done.first_admin_key is not None:
            server.announce_first_key(done.first_admin_key)
    finally:
        await done.store.close()


def reserve_port(listen: str) -> tuple[list[socket.socket], int]:
    """Resolves the port of `listen` (HOST:0 picks a free one) and holds it.

    Returns sockets bound to it with SO_REUSEPORT but not listening: the
    kernel gives connections only to listening sockets (the workers'), and
    while these are bound nobody without SO_REUSEPORT can take the port,
    even between a worker's death and its replacement."""
    host, _, port_text = listen.rpartition(":")
    try:
        addresses = socket.getaddrinfo(
            host.strip("[]"), int(port_text), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise server.PortUnavailable(f"cannot listen on {listen}: {e.strerror}") from None
    unique = list(dict.fromkeys((family, str(address[0])) for family, _, _, _, address in addresses))
    # First bound without SO_REUSEPORT: that fails if anything holds the
    # port, another group of workers included, which SO_REUSEPORT alone
    # would silently join.
    port = int(port_text)
    probes: list[socket.socket] = []
    try:
        for family, address in unique:
            probe = _bound(listen, family, address, port, reuse_port=False)
            probes.append(probe)
            port = probe.getsockname()[1]
    finally:
        for probe in probes:
            probe.close()
    holders: list[socket.socket] = []
    try:
        for family, address in unique:
            holders.append(_bound(listen, family, address, port, reuse_port=True))
    except BaseException:
        for holder in holders:
            holder.close()
        raise
    return holders, port


def _bound(listen: str, family: int, address: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # As grpc's own listening sockets: TIME_WAIT left by a previous
        # server on this port is no conflict.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((address, port))
    except OSError as e:
        sock.close()
        reason = "the port is in use" if e.errno == errno.EADDRINUSE else e.strerror
        raise server.PortUnavailable(f"cannot listen on {listen}: {reason}") from None
    return sock


_METRICS_PREFIX = "batchgrpc-metrics-"


def _metrics_dir() -> str:
    """A new, empty directory for this group's metrics files: counts left by
    an earlier group must not be summed into this one's. In the temporary
    directory, not the data directory, which replicas may share. The
    directories of supervisors that died without removing theirs (SIGKILL)
    are removed first: each is named after its supervisor's pid."""
    for stale in Path(tempfile.gettempdir()).glob(f"{_METRICS_PREFIX}*-*"):
        pid = stale.name.removeprefix(_METRICS_PREFIX).partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{_METRICS_PREFIX}{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class _Supervisor:
    def __init__(self, config: Config, argv: Sequence[str], port: int, metrics_dir: str | None) -> None:
        self._config = config
        self._metrics_dir = metrics_dir
        self._argv = list(argv)
        self._port = port
        self._address = f"{config.listen.rpartition(':')[0]}:{port}"
        self._workers = [_Worker(i) for i in range(config.workers)]
        self._stopping = False

    def run(self) -> int:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        self._wake = wake_read
        previous_wakeup = signal.set_wakeup_fd(wake_write)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        # A handler, even one that does nothing, so that a child's death
        # writes to the wake-up pipe.
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)
        try:
            log.info("starting workers", extra={"fields": {"workers": len(self._workers), "port": self._port}})
            for worker in self._workers:
                self._spawn(worker)
            if not self._start_all():
                # Stopped by a signal before every worker served.
                self._drain()
                return 0
            log.info(
                "listening",
                extra={"fields": server.listening_fields(self._config, self._port, self._pids())},
            )
            self._watch()
            self._drain()
            return 0
        finally:
            self._kill_all()
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(wake_read)
            os.close(wake_write)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def _pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc is not None]

    def _spawn(self, worker: _Worker) -> None:
        ready_read, ready_write = os.pipe()
        env = dict(os.environ)
        if self._metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = self._metrics_dir
        try:
            worker.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "batchgrpc", *self._argv,
                    "--listen", self._address,
                    "--worker-of", str(os.getpid()),
                    "--ready-fd", str(ready_write),
                    "--worker-index", str(worker.index),
                ],
                stdin=subprocess.DEVNULL,
                pass_fds=(ready_write,),
                env=env,
            )  # fmt: skip
        except BaseException:
            os.close(ready_read)
            raise
        finally:
            os.close(ready_write)
        worker.ready_pipe = ready_read
        worker.ready = False
        worker.started = time.monotonic()
        worker.restart_at = None

    def _wait(self, timeout: float) -> None:
        """Waits for a signal, a child's death or a ready worker (at most
        `timeout` seconds) and takes in the ready ones."""
        pipes = {w.ready_pipe: w for w in self._workers if w.ready_pipe is not None}
        try:
            readable, _, _ = select.select([self._wake, *pipes], [], [], max(timeout, 0.0))
        except InterruptedError:  # a signal: its handler has run
            return
        for fd in readable:
            if fd == self._wake:
                while True:
                    try:
                        if not os.read(self._wake, 512):
                            break
                    except BlockingIOError:
                        break
                continue
            worker = pipes[fd]
            # The port once the worker serves; nothing (EOF) if it died first.
            if os.read(fd, 64):
                worker.ready = True
            os.close(fd)
            worker.ready_pipe = None

    def _dead(self) -> list[tuple[_Worker, int]]:
        """The workers that exited since last asked, with their exit codes."""
        dead = []
        for worker in self._workers:
            if worker.proc is not None and (code := worker.proc.poll()) is not None:
                dead.append((worker, code))
        return dead

    def _start_all(self) -> bool:
        """Waits until every worker serves; False if a signal came first.
        Raises WorkersFailed if one exits first or none is quick enough."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not all(w.ready for w in self._workers):
            if self._stopping:
                return False
            for worker, code in self._dead():
                raise WorkersFailed(
                    f"worker {worker.index} (pid {worker.proc.pid if worker.proc else '?'}) {_exit(code)}"
                    " before it was serving; its log says why"
                )
            if time.monotonic() > deadline:
                raise WorkersFailed(f"the workers were not all serving after {READY_TIMEOUT_SECONDS:.0f} s")
            self._wait(min(1.0, deadline - time.monotonic()))
        return True

    def _watch(self) -> None:
        """Until a stop signal: replaces every worker that dies."""
        while not self._stopping:
            now = time.monotonic()
            for worker, code in self._dead():
                assert worker.proc is not None
                lived = now - worker.started
                worker.failures = worker.failures + 1 if lived < STABLE_SECONDS or not worker.ready else 0
                delay = (
                    0.0
                    if worker.failures == 0
                    else min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (worker.failures - 1))
                )
                log.error(
                    "worker died",
                    extra={
                        "fields": {
                            "worker": worker.index,
                            "worker_pid": worker.proc.pid,
                            "exit": _exit(code),
                            "lived_seconds": round(lived, 3),
                            "restart_in_seconds": delay,
                        }
                    },
                )
                if worker.ready_pipe is not None:
                    os.close(worker.ready_pipe)
                    worker.ready_pipe = None
                if self._metrics_dir is not None:
                    metrics.worker_exited(worker.proc.pid, self._metrics_dir)
                worker.proc = None
                worker.restart_at = now + delay
            for worker in self._workers:
                if worker.restart_at is not None and worker.restart_at <= now:
                    try:
                        self._spawn(worker)
                    except OSError as e:
                        worker.failures += 1
                        worker.restart_at = now + MAX_BACKOFF_SECONDS
                        log.error("cannot start a worker", extra={"fields": {"worker": worker.index, "error": str(e)}})
                        continue
                    assert worker.proc is not None
                    fields = {"worker": worker.index, "worker_pid": worker.proc.pid}
                    log.info("worker started", extra={"fields": fields})
            due = [w.restart_at for w in self._workers if w.restart_at is not None]
            self._wait(min([1.0, *(t - time.monotonic() for t in due)]))

    def _drain(self) -> None:
        grace = self._config.grace_period_seconds
        log.info("stopping", extra={"fields": {"grace_seconds": grace, "worker_pids": self._pids()}})
        for worker in self._workers:
            worker.restart_at = None
            if worker.proc is not None and worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace + DRAIN_MARGIN_SECONDS
        while (alive := [w for w in self._workers if w.proc is not None and w.proc.poll() is None]) and (
            time.monotonic() < deadline
        ):
            self._wait(min(0.5, deadline - time.monotonic()))
        for worker in alive:
            assert worker.proc is not None
            log.warning("worker did not stop in time; killed", extra={"fields": {"worker_pid": worker.proc.pid}})
        self._kill_all()
        log.info("stopped")

    def _kill_all(self) -> None:
        for worker in self._workers:
            if worker.proc is not None and worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()
            if worker.ready_pipe is not None:
                os.close(worker.ready_pipe)
                worker.ready_pipe = None


def _exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def become_worker(supervisor_pid: int, ready_fd: int) -> Callable[[int], None]:
    """In a worker, before anything else: follow the supervisor in death.
    Returns what `server.serve` calls once this worker serves."""
    libc = ctypes.CDLL(None, use_errno=True)
    # SIGTERM, not SIGKILL: a worker whose supervisor was killed still
    # drains its calls and stops its jobs at a checkpoint.
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    # The supervisor may have died before the line above took effect.
    if os.getppid() != supervisor_pid:
        raise SupervisorGone(f"the supervisor (pid {supervisor_pid}) is gone")

    def ready(port: int) -> None:
        try:
            os.write(ready_fd, f"{port}\n".encode())
        except BrokenPipeError:
            pass  # the supervisor is gone, and its death signal on the way
        finally:
            os.close(ready_fd)

    return ready
