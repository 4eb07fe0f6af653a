"""`batchgrpc serve` and `batchgrpc keys create|list|revoke`."""

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
from batchgrpc.auth import ALL_SCOPES, Keyring, load_or_create_pepper
from batchgrpc.errors import InvalidArgument
from batchgrpc.store import ApiKey
from batchgrpc.store.sqlite import SqliteStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchgrpc", description="gRPC microservice for batch event ingestion.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC server")
    serve.add_argument("--listen", help="HOST:PORT to listen on (default 127.0.0.1:50051; port 0 picks one)")
    serve.add_argument("--data-dir", help="data directory (default ./batchgrpc-data)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--no-rate-limits", action="store_true", default=None, help="turn per-account rate limits off")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)

    def with_store_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", help="data directory (default ./batchgrpc-data)")
        p.add_argument("--config", help="TOML configuration file (for its data_dir)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = configuration.load(
            config_file=args.config,
            overrides={
                "data_dir": args.data_dir,
                **(
                    {"listen": args.listen, "no_rate_limits": args.no_rate_limits, "log_level": args.log_level}
                    if args.command == "serve"
                    else {}
                ),
            },
        )
    except configuration.ConfigError as e:
        print(f"batchgrpc: configuration: {e}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from batchgrpc import server  # the server pulls in grpc; the key commands do not need it

        jsonlog.configure(config.log_level)
        asyncio.run(server.serve(config))
        return 0
    try:
        return asyncio.run(_keys(args, config))
    except InvalidArgument as e:
        print(f"batchgrpc: {e.message}", file=sys.stderr)
        return 2


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
    store = await SqliteStore.open(config.data_dir)
    try:
        keyring = Keyring(store.keys, load_or_create_pepper(config.data_dir))
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
