#!/usr/bin/env python3
"""`make serve-cluster`: the deployment the service is built for, on this
machine, to try by hand: N `batchgrpc serve` replicas (default 3) on one
PostgreSQL database, every event sent to one Kafka topic.

    python tools/cluster.py [--replicas N] [--port 50051] [--workers 1] [--dir target/cluster]
    python tools/cluster.py events [--dir target/cluster]

PostgreSQL and Kafka come from `tools/servers.py start --state-dir
DIR/servers`; when a run killed before it could stop them (SIGKILL) left
them running there, they are reused. Each start is a fresh cluster: the
database `batchgrpc` and the topic `events` (3 partitions) are made anew
(an old topic would hold positions a new database never made, and the
relay would take them as delivered), and so are the replicas' data
directories DIR/replica-K. Replica K listens on 127.0.0.1:PORT+K-1, or on a
free port when that one is taken; all share DIR/pepper. The first replica
makes the first admin key, printed once with a grpcurl line to try.

Ctrl-C (or SIGTERM, SIGHUP) stops the replicas (SIGTERM, then SIGKILL after
15 s), then PostgreSQL and Kafka. A replica that exits meanwhile (kill one
to watch another take its jobs over) is reported; the rest run on. The
replicas die with this process even when it is killed outright; PostgreSQL
and Kafka then stay, for the next run to reuse (or `python3
tools/servers.py stop --state-dir DIR/servers`).

`events` follows the topic as a `read_committed` consumer, one line per
event: what the replicas have delivered.

Runs with the virtualenv's python (psycopg, confluent-kafka, batchgrpc).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import servers

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "batchgrpc"
TOPIC = "events"
PARTITIONS = 3
#: A replica's graceful stop (its grace period, 10 s) and then some.
STOP_SECONDS = 15.0
START_SECONDS = 60.0
#: The event of the grpcurl line the greeting suggests.
TRY_EVENT = {"project_token": "default", "customer_ids": {"registered": "ann"}, "event_type": "login"}


def say(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


class Stop(Exception):
    """A signal asked us to stop."""


@dataclass
class Replica:
    number: int
    proc: subprocess.Popen[bytes]
    data_dir: Path
    out: Path
    log: Path
    port: int = 0
    reported: bool = False


# --- PostgreSQL and Kafka -------------------------------------------------------


def running_servers(state_dir: Path) -> dict[str, str] | None:
    """The addresses of the servers a `start` left running in `state_dir`,
    when both still run."""
    try:
        state = json.loads((state_dir / "servers.json").read_text())
    except (OSError, ValueError):
        return None
    env: dict[str, str] = {}
    for entry in state.get("servers", []):
        if entry["ticks"] is None or servers.start_ticks(int(entry["pid"])) != entry["ticks"]:
            return None
        env |= entry["env"]
    return env if {servers.POSTGRES_ENV, servers.KAFKA_ENV} <= env.keys() else None


def servers_script(*args: str) -> None:
    # The system's python3 would do as well: servers.py needs the standard library only.
    subprocess.run([sys.executable, str(ROOT / "tools" / "servers.py"), *args], check=True, stdout=subprocess.DEVNULL)


def start_servers(state_dir: Path) -> dict[str, str]:
    env = running_servers(state_dir)
    if env is not None:
        say(f"reusing the PostgreSQL and Kafka an earlier run left running ({state_dir})")
        return env
    if (state_dir / "servers.json").exists():
        # Some of them died: start both afresh.
        servers_script("stop", "--state-dir", str(state_dir))
    servers_script("start", "--state-dir", str(state_dir))
    env = running_servers(state_dir)
    if env is None:
        raise RuntimeError(f"tools/servers.py start left no running servers in {state_dir}")
    return env


def fresh_database(admin_url: str) -> str:
    """An empty database `batchgrpc`, as a store URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    return admin_url.rsplit("/", 1)[0] + f"/{DATABASE}"


def fresh_topic(bootstrap: str) -> None:
    """An empty topic `events`: deleted when there, then made."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    if TOPIC in admin.list_topics(timeout=30).topics:
        admin.delete_topics([TOPIC])[TOPIC].result(30)
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])[TOPIC].result(30)
            return
        except KafkaException as e:
            # The deleted one may take a moment to be gone.
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# --- replicas -------------------------------------------------------------------


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def log_entries(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(errors="replace")
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.startswith("{")]


def start_replica(number: int, port: int, directory: Path, args: list[str]) -> Replica:
    """`python -m batchgrpc serve` in a session of its own (Ctrl-C reaches
    us, and we stop it), killed by the kernel if this process dies."""
    data_dir = directory / f"replica-{number}"
    shutil.rmtree(data_dir, ignore_errors=True)
    out, log = directory / f"replica-{number}.out", directory / f"replica-{number}.log"
    argv = [sys.executable, "-m", "batchgrpc", "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir),
            *args]  # fmt: skip
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        argv = [setpriv, "--pdeathsig", "KILL", "--", *argv]
    # This checkout's code, even from a worktree whose virtualenv is another's.
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    with out.open("wb") as stdout, log.open("wb") as stderr:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": path},
        )
    return Replica(number, proc, data_dir, out, log)


def wait_listening(replica: Replica) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if replica.proc.poll() is not None:
            tail = "\n".join(replica.log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"replica {replica.number} exited with code {replica.proc.returncode}:\n{tail}")
        if listening := [e for e in log_entries(replica.log) if e.get("msg") == "listening"]:
            replica.port = int(listening[0]["port"])
            return
        time.sleep(0.05)
    raise RuntimeError(f"replica {replica.number} was not listening within {START_SECONDS:.0f} s ({replica.log})")


def stop_replicas(replicas: list[Replica]) -> None:
    for replica in replicas:
        if replica.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(replica.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for replica in replicas:
        with contextlib.suppress(subprocess.TimeoutExpired):
            replica.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        # Whatever is left of its session (a supervisor's workers).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(replica.proc.pid, signal.SIGKILL)
        replica.proc.wait()


def greeting(replicas: list[Replica], url: str, bootstrap: str, token: str | None) -> str:
    first = replicas[0]
    grpcurl = ROOT / "target" / "go-bin" / "grpcurl"
    tool = str(grpcurl.relative_to(ROOT)) if grpcurl.exists() else "grpcurl"
    lines = [
        f"{len(replicas)} replicas on {url}, every event to kafka://{bootstrap}/{TOPIC} ({PARTITIONS} partitions):",
        *(f"  replica {r.number}: 127.0.0.1:{r.port}  pid {r.proc.pid}  log {r.log}" for r in replicas),
    ]
    if token is None:
        lines.append(f"The first key was not printed: see {first.out}")
        token = "$TOKEN"
    else:
        lines += ['The first admin key (account "default", every scope), shown only this once:', f"  {token}"]
    lines += [
        "Try it (any replica answers for all):",
        f"  {tool} -plaintext -H 'authorization: Bearer {token}' -d '{json.dumps(TRY_EVENT)}' \\",
        f"    127.0.0.1:{first.port} batchgrpc.track.v2.TrackingService/AddEvent",
        "  python tools/cluster.py events     # the topic, as a read_committed consumer sees it",
        "Ctrl-C stops the replicas, PostgreSQL and Kafka.",
    ]
    return "\n".join(lines)


# --- commands -------------------------------------------------------------------


class Signals:
    """SIGINT, SIGTERM and SIGHUP raise `Stop`, but not while `tools/servers.py
    start` runs (it would be killed halfway, leaving what it started behind:
    the signal waits for it to finish) nor once stopping has begun (a second
    Ctrl-C must not cut the stop short)."""

    def __init__(self) -> None:
        self.held = False
        self.stopping = False
        self.received: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
        if self.stopping:
            return
        if self.held:
            self.received.append(signum)
            return
        raise Stop(signal.Signals(signum).name)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        self.held = True
        try:
            yield
        finally:
            self.held = False
        if self.received:
            raise Stop(signal.Signals(self.received[0]).name)


def serve(replica_count: int, base_port: int, workers: int, directory: Path) -> int:
    signals = Signals()
    directory.mkdir(parents=True, exist_ok=True)
    state_dir = directory / "servers"
    replicas: list[Replica] = []
    try:
        with signals.holding():
            env = start_servers(state_dir)
        url = fresh_database(env[servers.POSTGRES_ENV])
        bootstrap = env[servers.KAFKA_ENV]
        fresh_topic(bootstrap)
        args = ["--workers", str(workers), "--store", url, "--sink", f"kafka://{bootstrap}/{TOPIC}",
                "--pepper-file", str(directory / "pepper")]  # fmt: skip
        # The first alone: it migrates the database and makes the first key.
        for number in range(1, replica_count + 1):
            port = base_port + number - 1
            replicas.append(start_replica(number, port if port_free(port) else 0, directory, args))
            if number == 1:
                wait_listening(replicas[0])
        for replica in replicas[1:]:
            wait_listening(replica)
        token = re.search(r"token:\s+(bgk_\S+)", replicas[0].out.read_text())
        (directory / "cluster.json").write_text(
            json.dumps({"store": url, "kafka": bootstrap, "topic": TOPIC, "ports": [r.port for r in replicas]}) + "\n"
        )
        print(greeting(replicas, url, bootstrap, token.group(1) if token else None), flush=True)
        while True:
            for replica in replicas:
                if replica.proc.poll() is not None and not replica.reported:
                    replica.reported = True
                    say(f"replica {replica.number} exited with code {replica.proc.returncode} (log: {replica.log})")
            if all(r.reported for r in replicas):
                say("every replica has exited")
                return 1
            time.sleep(0.5)
    except Stop as stop:
        say(f"{stop}: stopping")
        return 0
    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
        say(str(error))
        return 1
    finally:
        signals.stopping = True
        began = time.monotonic()
        stop_replicas(replicas)
        if (state_dir / "servers.json").exists():
            servers_script("stop", "--state-dir", str(state_dir))
        say(f"stopped {len(replicas)} replicas, PostgreSQL and Kafka in {time.monotonic() - began:.1f} s")


def events(directory: Path) -> int:
    """Prints every event of the topic as it arrives, from the start."""
    import uuid

    from confluent_kafka import Consumer, TopicPartition

    try:
        cluster = json.loads((directory / "cluster.json").read_text())
    except OSError:
        say(f"no cluster here: {directory / 'cluster.json'} is missing (make serve-cluster first)")
        return 1
    consumer = Consumer(
        {
            "bootstrap.servers": cluster["kafka"],
            "group.id": f"cluster-events-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(cluster["topic"], p, 0) for p in range(PARTITIONS)])
    try:
        while True:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error() is not None:
                say(str(message.error()))
                continue
            headers = {k: v.decode() for k, v in message.headers() or []}
            key = (message.key() or b"").decode()
            value = (message.value() or b"").decode()
            print(f"[{message.partition()}] position {headers.get('position')} {key}: {value}", flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=("serve", "events"), default="serve")
    parser.add_argument("--replicas", type=int, default=3, help="replicas to start (default 3)")
    parser.add_argument("--port", type=int, default=50051, help="replica K listens on PORT+K-1 when it is free")
    parser.add_argument("--workers", type=int, default=1, help="server processes per replica (default 1)")
    parser.add_argument("--dir", type=Path, default=ROOT / "target" / "cluster", help="where it all lives")
    args = parser.parse_args(argv)
    if args.command == "events":
        return events(args.dir)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    return serve(args.replicas, args.port, args.workers, args.dir)


if __name__ == "__main__":
    sys.exit(main())
