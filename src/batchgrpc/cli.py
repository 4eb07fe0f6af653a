"""`batchgrpc serve` and `batchgrpc keys create|list|revoke`; the client
commands (`upload`, `jobs`, `run`, `events`, `track`) are `batchgrpc.client`'s."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from batchgrpc import config as configuration
from batchgrpc import jsonlog
from batchgrpc.auth import ALL_SCOPES, Keyring, PepperError, load_or_create_pepper
from batchgrpc.client import commands as client_commands
from batchgrpc.errors import InvalidArgument
from batchgrpc.store import ApiKey
from batchgrpc.store.factory import StoreUnavailable, open_for_set_up
from batchgrpc.store.sqlite import SchemaTooNew

#: What stops a start with a message and exit code 1 rather than a traceback.
_START_FAILURES: tuple[type[Exception], ...] = (SchemaTooNew, StoreUnavailable, PepperError)


def add_store_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--store",
        metavar="URL",
        help="sqlite:///ABSOLUTE/PATH or postgresql://USER[:PASS]@HOST:PORT/DB"
        " (default sqlite:///<data_dir>/batchgrpc.db)",
    )
    p.add_argument(
        "--pepper-file",
        metavar="PATH",
        help="the key-hashing pepper; every replica of a store needs the same one (default <data_dir>/pepper)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchgrpc", description="gRPC microservice for batch event ingestion.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:50051; port 0 picks one)")
    serve.add_argument(
        "--metrics-listen", metavar="HOST:PORT", help="serve Prometheus metrics at /metrics there (default off)"
    )
    serve.add_argument("--data-dir", help="data directory (default ./batchgrpc-data)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--no-rate-limits", action="store_true", default=None, help="turn per-account rate limits off")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--workers", metavar="N", help="server processes sharing the port (default: the cores)")
    serve.add_argument("--sink", metavar="URL", help="where dispatched events go (default log)")
    serve.add_argument(
        "--lease-seconds", metavar="S", help="a job a replica stopped heartbeating moves to another after S (30)"
    )
    add_store_flags(serve)
    # Internal: how a supervisor starts its workers (supervisor.py).
    serve.add_argument("--worker-of", type=int, metavar="PID", help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, metavar="FD", help=argparse.SUPPRESS)
    serve.add_argument("--worker-index", type=int, metavar="I", help=argparse.SUPPRESS)

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)

    def with_store_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", help="data directory (default ./batchgrpc-data)")
        p.add_argument("--config", help="TOML configuration file (for its data_dir, store, pepper_file)")
        add_store_flags(p)
        p.add_argument("--json", action="store_true", help="print JSON")
        return p

    create = with_store_flags(key_commands.add_parser("create", help="create a key; prints its secret once"))
    create.add_argument("--account", required=True, help="the account (tenant) the key belongs to")
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        metavar="SCOPE",
        help=f"a scope or role to grant; repeat for more ({', '.join(sorted(ALL_SCOPES))})",
    )
    create.add_argument("--public", action="store_true", help="a public key (tracking scopes only)")

    listing = with_store_flags(key_commands.add_parser("list", help="list keys (never their secrets)"))
    listing.add_argument("--account", help="only this account's keys")

    revoke = with_store_flags(key_commands.add_parser("revoke", help="revoke a key"))
    revoke.add_argument("key_id")

    client_commands.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.command in client_commands.COMMANDS:
        return client_commands.run(args)
    try:
        config = configuration.load(
            config_file=args.config,
            overrides={
                "data_dir": args.data_dir,
                "store": args.store,
                "pepper_file": args.pepper_file,
                **(
                    {
                        "listen": args.listen,
                        "metrics_listen": args.metrics_listen,
                        "no_rate_limits": args.no_rate_limits,
                        "log_level": args.log_level,
                        "workers": args.workers,
                        "sink": args.sink,
                        "lease_seconds": args.lease_seconds,
                    }
                    if args.command == "serve"
                    else {}
                ),
            },
        )
        if args.command == "serve":
            from batchgrpc.sinks import open_sink

            open_sink(config.sink)  # a sink URL that cannot work is a configuration error
            return _serve(args, argv, config)
        return asyncio.run(_keys(args, config))
    except configuration.ConfigError as e:
        print(f"batchgrpc: configuration: {e}", file=sys.stderr)
        return 2
    except InvalidArgument as e:
        print(f"batchgrpc: {e.message}", file=sys.stderr)
        return 2
    except _START_FAILURES as e:
        print(f"batchgrpc: cannot start: {e}", file=sys.stderr)
        return 1


def _serve(args: argparse.Namespace, argv: list[str], config: configuration.Config) -> int:
    # The server pulls in grpc; the key commands do not need it.
    from batchgrpc import server, supervisor, tracing

    jsonlog.configure(config.log_level)
    try:
        if args.worker_of is not None:
            if args.ready_fd is None:
                print("batchgrpc: --worker-of needs --ready-fd", file=sys.stderr)
                return 2
            ready = supervisor.become_worker(args.worker_of, args.ready_fd)
            # Every worker exports its own spans; the supervisor serves no call.
            tracing.configure(args.worker_index)
            # One worker reads the store's gauges for the group's metrics.
            asyncio.run(server.serve(config, worker=ready, gauges=args.worker_index in (None, 0)))
        elif config.workers == 1:
            tracing.configure()
            asyncio.run(server.serve(config))
        else:
            return supervisor.supervise(config, argv)
    except (server.PortUnavailable, supervisor.WorkersFailed, supervisor.SupervisorGone) as e:
        print(f"batchgrpc: cannot start: {e}", file=sys.stderr)
        return 1
    finally:
        # What the batch processor still holds goes out before the process does.
        tracing.shutdown()
    return 0


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "account": key.account,
        "scopes": sorted(key.scopes),
        "public": key.public,
        "created_time": _iso(key.created_time),
        "revoked_time": _iso(key.revoked_time) if key.revoked_time else None,
    }


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="seconds")


async def _keys(args: argparse.Namespace, config: configuration.Config) -> int:
    store = await open_for_set_up(config)
    try:
        keyring = Keyring(store.keys, load_or_create_pepper(config.pepper_path))
        if args.keys_command == "create":
            new = await keyring.create(args.account, args.scope, public=args.public)
            if args.json:
                print(
                    json.dumps(
                        {
                            "key_id": new.key.key_id,
                            "secret": new.secret,
                            "token": new.token,
                            "account": new.key.account,
                            "scopes": sorted(new.key.scopes),
                            "public": new.key.public,
                        }
                    )
                )
            else:
                print(
                    f"key id:  {new.key.key_id}\n"
                    f"account: {new.key.account}\n"
                    f"scopes:  {', '.join(sorted(new.key.scopes))}{' (public)' if new.key.public else ''}\n"
                    f"secret:  {new.secret}\n"
                    f"token:   {new.token}\n"
                    "The secret is shown only this once. Send the token as 'Bearer', "
                    "'Klaviyo-API-Key' or 'Token', or key_id:secret as 'Basic'."
                )
            return 0
        if args.keys_command == "list":
            keys = await store.keys.list(args.account)
            if args.json:
                print(json.dumps([_key_json(k) for k in keys]))
            else:
                for k in keys:
                    state = f"revoked {_iso(k.revoked_time)}" if k.revoked_time else "active"
                    kind = "public" if k.public else "private"
                    print(f"{k.key_id}  {k.account}  {kind}  {state}  {','.join(sorted(k.scopes))}")
            return 0
        revoked = await store.keys.revoke(args.key_id, time.time())
        if revoked is None:
            print(f"batchgrpc: no key {args.key_id!r}", file=sys.stderr)
            return 1
        print(json.dumps(_key_json(revoked)) if args.json else f"revoked {revoked.key_id}")
        return 0
    finally:
        await store.close()


if __name__ == "__main__":
    sys.exit(main())
