#!/usr/bin/env python3
"""The real servers the tests need, PostgreSQL and Kafka: each a throwaway
instance on free loopback ports, installed by the project's own files.

    python3 tools/servers.py run [--postgres] [--kafka] -- CMD ARGS...
    python3 tools/servers.py start [--postgres] [--kafka] --state-dir DIR
    python3 tools/servers.py stop --state-dir DIR

`run` starts the servers (both unless told which), runs CMD with
BATCHGRPC_TEST_POSTGRES (a URL) and BATCHGRPC_TEST_KAFKA (host:port) in its
environment, stops the servers however CMD ends and exits with CMD's code. A
server that cannot start fails the run with the end of its log; CMD does not
run. `start` leaves the servers running and writes DIR/env (`export` lines to
source) and DIR/servers.json; `stop` stops what `start` wrote there.

PostgreSQL comes from Debian's packages (apt-get installs them when initdb is
missing and we are root), Kafka's jars from Maven (tools/kafka/pom.xml, fetched
once into target/kafka/libs). Standard library only: this runs with the
system's python3, before or beside the virtualenv.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn

ROOT = Path(__file__).resolve().parent.parent
KAFKA_POM = ROOT / "tools" / "kafka" / "pom.xml"
KAFKA_LOG4J = ROOT / "tools" / "kafka" / "log4j2.properties"
KAFKA_CACHE = ROOT / "target" / "kafka"
#: Where a failed run leaves copies of the servers' logs (the temporary
#: directory that held them is removed).
FAILED_LOGS = ROOT / "target" / "server-logs"

POSTGRES_ENV = "BATCHGRPC_TEST_POSTGRES"
KAFKA_ENV = "BATCHGRPC_TEST_KAFKA"
TEMP_PREFIX = "batchgrpc-servers-"
LOG_TAIL_LINES = 40
#: Fetching the jars the first time takes about a minute; this only bounds a
#: hung download.
PREPARE_SECONDS = 20 * 60
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def temp_base() -> Path:
    """Where the servers' temporary directories go: /tmp for root, whose
    PostgreSQL runs as an account that may not reach $TMPDIR."""
    return Path("/tmp" if os.geteuid() == 0 else tempfile.gettempdir())


def say(message: str) -> None:
    print(f"servers: {message}", file=sys.stderr, flush=True)


class StartError(Exception):
    """Why a server could not start."""


class Cancelled(Exception):
    """Another server failed, or a signal came, while this one was being prepared."""


class Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# --- processes ------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses.
    return stat[stat.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), or None when it no longer
    runs (a zombie has exited). With the pid it names one process, even once
    the pid is reused, so `stop` never signals a stranger."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def wait_gone(pid: int, ticks: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while start_ticks(pid) == ticks:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def stop_group(pid: int, ticks: int | None, first: int, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Stops a server that leads a process group of its own (its children,
    PostgreSQL's backends, are in that group): `first` to the leader, SIGKILL
    if it is still there after 10 s, then SIGKILL to whatever is left of the
    group. True when nothing of it runs any more."""
    alive = ticks is not None and start_ticks(pid) == ticks
    ours = alive or proc is not None
    if alive and ticks is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, first)
        if not wait_gone(pid, ticks, 10):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, ticks, 5)
    # Before reaping the leader: until then its pid, so its group's id, cannot
    # be reused. A group whose leader we never saw alive may be a stranger's.
    if ours:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    if not ours:
        return True
    deadline = time.monotonic() + 5
    while group_members(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


_picked: set[int] = set()
_picked_lock = threading.Lock()


def free_port() -> int:
    """A loopback port that nothing listens on, taken below the kernel's
    ephemeral range: the tests' own servers bind port 0, and outgoing
    connections take local ports, from that range, so neither can take this
    port between our check and the server's bind."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    first = max(1024, low - 12000)
    with _picked_lock:
        for _ in range(200):
            port = random.randrange(first, low) if low > first else 0
            if port in _picked:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                port = probe.getsockname()[1]
            _picked.add(port)
            return int(port)
    raise StartError("found no free loopback port")


def postgres_account() -> pwd.struct_passwd | None:
    """Whom PostgreSQL runs as: initdb and postgres refuse root, so a root run
    uses the `postgres` account Debian's packages create; anyone else runs it
    as themselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise StartError("running as root, and there is no `postgres` account to run PostgreSQL as") from None


# --- servers --------------------------------------------------------------------

_apt_lock = threading.Lock()
_apt_updated = False


class Server:
    """One throwaway server under `root`/<name>: `prepare` (in a thread of its
    own: installs, downloads, initialises), `launch` (from the main thread),
    then `check` until ready, and `stop`."""

    name: ClassVar[str]
    env_var: ClassVar[str]
    #: What the leader gets first when stopping.
    stop_signal: ClassVar[int]
    #: Seconds from launch to ready before the start fails.
    ready_seconds: ClassVar[float]

    def __init__(self, root: Path) -> None:
        self.dir = root / self.name
        self.dir.mkdir()
        self.log = self.dir / f"{self.name}.log"
        self.log.touch()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.ticks: int | None = None
        self.launched_at = 0.0
        self._cancelled = threading.Event()
        self._step: subprocess.Popen[bytes] | None = None
        self._step_lock = threading.Lock()

    # What each server says.
    def prepare(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def value(self) -> str:
        raise NotImplementedError

    def as_owner(self) -> dict[str, Any]:
        """Popen's arguments that run a command as the server's account."""
        return {}

    # Shared.
    def step(self, argv: Sequence[str | Path], what: str, **popen: Any) -> None:
        """Runs one preparation command, its output into the server's log, in
        a session of its own so that `cancel` ends all of it."""
        with self.log.open("ab") as out:
            out.write(f"\n$ {' '.join(map(str, argv))}\n".encode())
            out.flush()
            with self._step_lock:
                if self._cancelled.is_set():
                    raise Cancelled
                self._step = subprocess.Popen(
                    [str(a) for a in argv],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd=self.dir,
                    **popen,
                )
            try:
                code = self._step.wait()
            finally:
                with self._step_lock:
                    self._step = None
        if self._cancelled.is_set():
            raise Cancelled
        if code != 0:
            raise StartError(f"{what} failed (exit code {code})")

    def cancel(self) -> None:
        with self._step_lock:
            self._cancelled.set()
            if self._step is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._step.pid, signal.SIGKILL)

    def need(self, program: str, package: str) -> str:
        """The path of `program`, installed from Debian's `package` when missing."""
        found = shutil.which(program)
        if found is None:
            self.install(package)
            found = shutil.which(program)
        if found is None:
            raise StartError(f"`{program}` is missing, even after installing {package}")
        return found

    def install(self, *packages: str) -> None:
        global _apt_updated
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise StartError(f"{' '.join(packages)} is not installed (on Debian: apt-get install {' '.join(packages)})")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # One apt-get at a time: dpkg takes a lock of its own and fails, not waits.
        with _apt_lock:
            say(f"{self.name}: installing {' '.join(packages)} with apt-get")
            if not _apt_updated:
                self.step(["apt-get", "update"], "apt-get update", env=env)
                _apt_updated = True
            self.step(["apt-get", "install", "-y", "--no-install-recommends", *packages], "apt-get install", env=env)

    def launch(self, *, guard: bool) -> None:
        """Starts the server, leading a session of its own: a Ctrl-C meant for
        CMD does not reach it, and stopping it kills its whole group.

        `guard` (for `run`): the kernel kills the server when this process
        dies, even by SIGKILL, so no server outlives its runner. The kernel
        sends that signal when the *thread* that started the child ends, which
        is why servers are launched from the main thread, never the
        preparing ones."""
        argv = self.command()
        setpriv = shutil.which("setpriv")
        if guard and setpriv is not None:
            argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
        with self.log.open("ab") as out:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.dir,
                **self.as_owner(),
            )
        self.launched_at = time.monotonic()
        self.pid = self.proc.pid
        self.ticks = start_ticks(self.pid)

    def check(self) -> bool:
        """True once the server is ready; StartError if it exited or took too long."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise StartError(f"it exited with code {self.proc.returncode} before it was ready")
        if self.is_ready():
            return True
        if time.monotonic() - self.launched_at > self.ready_seconds:
            raise StartError(f"not ready within {self.ready_seconds:.0f} s")
        return False

    def stop(self) -> bool:
        if self.pid is None:
            return True
        return stop_group(self.pid, self.ticks, self.stop_signal, self.proc)

    def log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(f"  {line}" for line in lines[-LOG_TAIL_LINES:])


class Postgres(Server):
    name = "postgres"
    env_var = POSTGRES_ENV
    # Immediate shutdown (what `pg_ctl -m immediate` sends): no checkpoint,
    # the cluster is thrown away.
    stop_signal = signal.SIGQUIT
    ready_seconds = 60.0

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = 0
        self.bindir = Path()
        self.account: pwd.struct_passwd | None = None
        #: Whether commits are flushed to disk (a benchmark's choice,
        #: `started(durable=True)`); the tests' cluster is thrown away.
        self.durable = False

    def as_owner(self) -> dict[str, Any]:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}

    def find_bindir(self) -> Path | None:
        # Debian keeps each major version's programs off PATH; the newest wins.
        candidates = []
        for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
            with contextlib.suppress(ValueError):
                candidates.append((float(initdb.parent.parent.name), initdb.parent))
        if candidates:
            return max(candidates)[1]
        found = shutil.which("initdb")
        return Path(found).parent if found else None

    def prepare(self) -> None:
        bindir = self.find_bindir()
        if bindir is None:
            self.install("postgresql")
            bindir = self.find_bindir()
        if bindir is None or not (bindir / "postgres").exists():
            raise StartError("PostgreSQL's initdb and postgres are missing, even after installing postgresql")
        self.bindir = bindir
        # Looked up only now: installing PostgreSQL creates the account.
        self.account = postgres_account()
        if self.account is not None:
            # Its own directory only: the checkout may not even be reachable by it.
            os.chown(self.dir, self.account.pw_uid, self.account.pw_gid)
        self.dir.chmod(0o700)
        self.port = free_port()
        self.step(
            [bindir / "initdb", "-D", self.dir / "data", "-A", "trust", "-U", "postgres", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            "initdb",
            **self.as_owner(),
        )  # fmt: skip

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
        }
        if not self.durable:
            # A throwaway cluster: a crash loses it anyway, so durability
            # buys nothing here and costs the tests time.
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        argv = [str(self.bindir / "postgres"), "-D", str(self.dir / "data")]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def is_ready(self) -> bool:
        # What `pg_ctl -w` waits for: the status line of postmaster.pid.
        try:
            lines = (self.dir / "data" / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready"

    def value(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def kafka_cluster_id() -> str:
    """A random Kafka UUID as the storage tool wants it: 16 bytes in
    base64url without padding (what `StorageTool random-uuid` prints, without
    starting a JVM for it)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka never hands out one that starts with "-": a command line would take it for an option.
        if not text.startswith("-"):
            return text


#: The broker's JVM: 256 MB of heap is plenty for the tests' few messages,
#: and the serial collector starts fewer threads on two cores.
KAFKA_JVM = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Djava.awt.headless=true"]
#: The storage tool runs for a second or two: the first JIT tier is enough.
KAFKA_TOOL_JVM = ["-Xmx128m", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-XX:TieredStopAtLevel=1"]
KAFKA_STARTED = b"Kafka Server started"


class Kafka(Server):
    name = "kafka"
    env_var = KAFKA_ENV
    # Its log dirs are thrown away: a controlled shutdown (seconds) buys nothing.
    stop_signal = signal.SIGKILL
    ready_seconds = 180.0

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = self.controller_port = 0
        self.java = ""
        self.libs = Path()
        self._read = 0
        self._tail = b""

    def prepare(self) -> None:
        self.java = self.need("java", "default-jre-headless")
        self.libs = self.fetch_libs()
        self.port, self.controller_port = free_port(), free_port()
        endpoints = f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
        settings = {
            # One KRaft node that is both broker and controller.
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": endpoints,
            "advertised.listeners": endpoints,
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "1",
            # The internal topics cannot have more replicas than the one broker.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # One partition each instead of 50: the first consumer group and the
            # first transactional producer create them, and wait for it.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.num.partitions": "1",
            # A group's first member is assigned at once, not after 3 s.
            "group.initial.rebalance.delay.ms": "0",
        }
        properties = self.dir / "server.properties"
        properties.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        self.step(
            [self.java, *KAFKA_TOOL_JVM, f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", "-cp", f"{self.libs}/*",
             "kafka.tools.StorageTool", "format", "--standalone", "-t", kafka_cluster_id(), "-c", properties],
            "formatting Kafka's log dir (kafka.tools.StorageTool)",
        )  # fmt: skip

    def fetch_libs(self) -> Path:
        """The broker's jars, fetched with Maven the first time (or when
        tools/kafka/pom.xml changed) into target/kafka/libs."""
        libs = KAFKA_CACHE / "libs"
        want = hashlib.sha256(KAFKA_POM.read_bytes()).hexdigest()
        KAFKA_CACHE.mkdir(parents=True, exist_ok=True)
        with (KAFKA_CACHE / ".lock").open("w") as lock:
            # Another run in this checkout may be fetching them right now.
            fcntl.flock(lock, fcntl.LOCK_EX)
            with contextlib.suppress(OSError):
                if (libs / ".pom-sha256").read_text() == want:
                    return libs
            mvn = self.need("mvn", "maven")
            partial = KAFKA_CACHE / "libs.partial"
            shutil.rmtree(partial, ignore_errors=True)
            began = time.monotonic()
            say("kafka: fetching the broker's jars with Maven into target/kafka/libs (once)")
            self.step(
                [mvn, "-B", "-q", "-Dstyle.color=never", "-f", KAFKA_POM, "dependency:copy-dependencies",
                 "-DincludeScope=runtime", f"-DoutputDirectory={partial}"],
                "fetching Kafka's jars (mvn dependency:copy-dependencies)",
            )  # fmt: skip
            (partial / ".pom-sha256").write_text(want)
            shutil.rmtree(libs, ignore_errors=True)
            partial.rename(libs)
            jars = len(list(libs.glob("*.jar")))
            say(f"kafka: fetched {jars} jars in {time.monotonic() - began:.1f} s")
        return libs

    def command(self) -> list[str]:
        return [
            self.java, *KAFKA_JVM, f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", "-cp", f"{self.libs}/*",
            "kafka.Kafka", str(self.dir / "server.properties"),
        ]  # fmt: skip

    def is_ready(self) -> bool:
        with self.log.open("rb") as log:
            log.seek(self._read)
            new = log.read()
        self._read += len(new)
        # With the end of the last look, in case the line was being written then.
        text = self._tail + new
        self._tail = text[-len(KAFKA_STARTED) :]
        return KAFKA_STARTED in text

    def value(self) -> str:
        return f"127.0.0.1:{self.port}"


KINDS: dict[str, type[Server]] = {"postgres": Postgres, "kafka": Kafka}


# --- a set of servers -----------------------------------------------------------


def write_json(path: Path, data: object) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


class Signals:
    """SIGINT, SIGTERM and SIGHUP. Until CMD runs they are only noted, and
    start-up gives up at its next look (`raise_if_received`) and stops what it
    started; while CMD runs each is forwarded to it; once stopping begins they
    are ignored, so that a second Ctrl-C cannot leave a server behind."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.stopping:
            return
        if self.child is None:
            self.received.append(signum)
        else:
            self.forward(signum)

    def forward(self, signum: int) -> None:
        assert self.child is not None
        if self.child.returncode is not None:
            return
        if signum == signal.SIGINT and _terminal_sent_it():
            return
        with contextlib.suppress(ProcessLookupError):
            self.child.send_signal(signum)

    def raise_if_received(self) -> None:
        if self.received:
            raise Interrupted(self.received[0])


def _terminal_sent_it() -> bool:
    """Whether our process group is the terminal's foreground group: then a
    Ctrl-C has reached CMD (which shares our group) already, and forwarding
    it would make it a second one."""
    try:
        tty = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(tty) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(tty)


class Cluster:
    """The servers of one run (or one `start`), all under one temporary directory."""

    def __init__(self, kinds: Sequence[str], signals: Signals, *, runner: bool, durable: bool = False) -> None:
        self.signals = signals
        self.began = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=temp_base()))
        self.root.chmod(0o755)
        if runner:
            # A runner killed before it could stop its servers leaves this
            # behind for the next one to clear (`sweep`).
            write_json(self.root / "runner.json", {"pid": os.getpid(), "ticks": start_ticks(os.getpid())})
        self.servers = [KINDS[kind](self.root) for kind in kinds]
        for server in self.servers:
            if isinstance(server, Postgres):
                server.durable = durable
        self._threads: list[threading.Thread] = []

    def start(self, *, guard: bool) -> None:
        """Prepares the servers side by side, launches them, and waits until
        each is ready, saying when; StartError with the failing one's log."""
        errors: list[tuple[Server, BaseException]] = []

        def prepare(server: Server) -> None:
            try:
                server.prepare()
            except Cancelled:
                pass
            except BaseException as error:  # noqa: BLE001 - any failure of one fails the start, with its reason
                errors.append((server, error))
                for other in self.servers:
                    other.cancel()

        self._threads = [threading.Thread(target=prepare, args=(s,), name=s.name, daemon=True) for s in self.servers]
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + PREPARE_SECONDS
        while alive := [thread for thread in self._threads if thread.is_alive()]:
            self.signals.raise_if_received()
            if time.monotonic() > deadline:
                raise StartError(f"preparing the servers took over {PREPARE_SECONDS} s")
            alive[0].join(0.1)
        if errors:
            self.fail(*errors[0])

        for server in self.servers:
            server.launch(guard=guard)
        self.record()
        pending = list(self.servers)
        while pending:
            self.signals.raise_if_received()
            for server in list(pending):
                try:
                    ready = server.check()
                except StartError as error:
                    self.fail(server, error)
                if ready:
                    pending.remove(server)
                    seconds = time.monotonic() - self.began
                    say(f"{server.name} ready in {seconds:.1f} s at {server.value()} (pid {server.pid})")
            time.sleep(0.05)

    def fail(self, server: Server, error: BaseException) -> NoReturn:
        reason = str(error) if isinstance(error, StartError) else f"{type(error).__name__}: {error}"
        raise StartError(
            f"{server.name} could not start: {reason}\n"
            f"the last lines of its log (all of it: {FAILED_LOGS / server.log.name}):\n{server.log_tail()}"
        )

    def env(self) -> dict[str, str]:
        return {server.env_var: server.value() for server in self.servers}

    def record(self) -> None:
        """What `sweep` needs, beside the servers."""
        write_json(self.root / "servers.json", self.state())

    def state(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "servers": [
                {"name": s.name, "pid": s.pid, "ticks": s.ticks, "stop_signal": int(s.stop_signal), "log": str(s.log),
                 "env": {s.env_var: s.value()}}
                for s in self.servers
                if s.pid is not None
            ],
        }  # fmt: skip

    def keep_logs(self) -> None:
        """Copies the servers' logs where they outlive the temporary directory."""
        FAILED_LOGS.mkdir(parents=True, exist_ok=True)
        for server in self.servers:
            with contextlib.suppress(OSError):
                shutil.copyfile(server.log, FAILED_LOGS / server.log.name)

    def stop(self) -> bool:
        """Stops every server and removes the temporary directory; False (and
        says so) when something of a server still runs."""
        self.signals.stopping = True
        for server in self.servers:
            server.cancel()
        for thread in self._threads:
            thread.join(30)
        clean = True
        for server in self.servers:
            if not server.stop():
                say(f"{server.name}'s process group {server.pid} still runs: {group_members(server.pid or 0)}")
                clean = False
        shutil.rmtree(self.root, ignore_errors=True)
        return clean


def started(kinds: Sequence[str], signals: Signals, *, runner: bool, durable: bool = False) -> Cluster:
    """A cluster whose servers are all ready; if one cannot start (its log is
    kept in target/server-logs) or a signal comes first, none is left running.
    `durable`: PostgreSQL flushes every commit to disk (fsync, synchronous
    commit and full-page writes at their defaults), for a benchmark that
    compares its durable writes with SQLite's."""
    servers = Cluster(kinds, signals, runner=runner, durable=durable)
    try:
        servers.start(guard=runner)
    except BaseException as error:
        if isinstance(error, StartError):
            servers.keep_logs()
        servers.stop()
        raise
    return servers


def stop_recorded(state: dict[str, Any]) -> bool:
    clean = True
    for entry in state.get("servers", []):
        if not stop_group(int(entry["pid"]), entry["ticks"], int(entry["stop_signal"])):
            say(f"{entry['name']}'s process group {entry['pid']} still runs: {group_members(int(entry['pid']))}")
            clean = False
    if state.get("root"):
        shutil.rmtree(state["root"], ignore_errors=True)
    return clean


def sweep() -> None:
    """Stops and removes what runners killed before they could stop their
    servers (SIGKILL) left behind: their servers died with them where
    `setpriv` exists, but not their directories."""
    for root in temp_base().glob(f"{TEMP_PREFIX}*"):
        try:
            runner = json.loads((root / "runner.json").read_text())
        except (OSError, ValueError):
            continue  # a `start`'s, or one still being made
        if runner["ticks"] is not None and start_ticks(int(runner["pid"])) == runner["ticks"]:
            continue
        try:
            state = json.loads((root / "servers.json").read_text())
        except (OSError, ValueError):
            state = {}
        say(f"removing {root}, left by a runner that died (pid {runner['pid']})")
        stop_recorded(state)
        shutil.rmtree(root, ignore_errors=True)


# --- commands -------------------------------------------------------------------


def exit_code(returncode: int) -> int:
    """A child's exit code as a shell reports it: 128 + N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def run(kinds: Sequence[str], cmd: Sequence[str]) -> int:
    signals = Signals()
    sweep()
    try:
        servers = started(kinds, signals, runner=True)
    except StartError as error:
        say(str(error))
        return 1
    except Interrupted as interrupted:
        say(f"{interrupted} while starting: stopped")
        return 128 + interrupted.signum

    returncode = 1
    try:
        try:
            # A runner killed outright (SIGKILL) takes its servers with it, and
            # CMD gets a SIGTERM: its servers are gone.
            setpriv = shutil.which("setpriv")
            argv = [setpriv, "--pdeathsig", "TERM", "--", *cmd] if setpriv else list(cmd)
            signals.child = subprocess.Popen(argv, env={**os.environ, **servers.env()})
        except OSError as error:
            say(f"cannot run {cmd[0]}: {error}")
            returncode = 127
        else:
            # What came after the start-up's last look, before CMD was there.
            for signum in signals.received:
                signals.forward(signum)
            returncode = exit_code(signals.child.wait())
    finally:
        if returncode != 0:
            servers.keep_logs()
            say(f"CMD exited with {returncode}: the servers' logs are in {FAILED_LOGS}")
        began = time.monotonic()
        clean = servers.stop()
        say(f"stopped {', '.join(s.name for s in servers.servers)} in {time.monotonic() - began:.1f} s")
    if not clean:
        return returncode or 1
    return returncode


def start(kinds: Sequence[str], state_dir: Path) -> int:
    state_file = state_dir / "servers.json"
    with contextlib.suppress(OSError, ValueError):
        old = json.loads(state_file.read_text())
        if any(e["ticks"] is not None and start_ticks(int(e["pid"])) == e["ticks"] for e in old.get("servers", [])):
            say(f"the servers of {state_dir} still run: `stop --state-dir {state_dir}` first")
            return 1
        stop_recorded(old)
    signals = Signals()
    sweep()
    try:
        servers = started(kinds, signals, runner=False)
    except StartError as error:
        say(str(error))
        return 1
    except Interrupted as interrupted:
        say(f"{interrupted} while starting: stopped")
        return 128 + interrupted.signum
    state_dir.mkdir(parents=True, exist_ok=True)
    write_json(state_file, servers.state())
    exports = "".join(f"export {key}={value}\n" for key, value in servers.env().items())
    (state_dir / "env").write_text(exports)
    sys.stdout.write(exports)
    say(f"logs in {servers.root}; `source {state_dir / 'env'}` to use them, `stop --state-dir {state_dir}` after")
    return 0


def stop(state_dir: Path) -> int:
    state_file = state_dir / "servers.json"
    try:
        state = json.loads(state_file.read_text())
    except OSError:
        say(f"nothing to stop: no {state_file}")
        return 0
    clean = stop_recorded(state)
    state_file.unlink()
    with contextlib.suppress(FileNotFoundError):
        (state_dir / "env").unlink()
    say(f"stopped {', '.join(e['name'] for e in state.get('servers', [])) or 'nothing'}")
    return 0 if clean else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def with_kinds(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary)
        sub.add_argument("--postgres", action="store_true", help="start PostgreSQL (both when neither is named)")
        sub.add_argument("--kafka", action="store_true", help="start Kafka (both when neither is named)")
        return sub

    run_parser = with_kinds("run", "start the servers, run CMD with their addresses, stop them")
    run_parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    start_parser = with_kinds("start", "start the servers and leave them running")
    start_parser.add_argument("--state-dir", type=Path, required=True)
    stop_parser = commands.add_parser("stop", help="stop what `start` started")
    stop_parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "stop":
        return stop(args.state_dir)
    kinds = [kind for kind in KINDS if getattr(args, kind)] or list(KINDS)
    if args.command == "start":
        return start(kinds, args.state_dir)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("run needs a command after --")
    return run(kinds, cmd)


if __name__ == "__main__":
    sys.exit(main())
