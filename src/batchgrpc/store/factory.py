"""The store chosen by URL: the one place that turns `--store` into a `Store`.

- ``sqlite:///ABSOLUTE/PATH``: the embedded SQLite store in that file
  (``sqlite:///var/lib/batchgrpc/batchgrpc.db`` is ``/var/lib/batchgrpc/batchgrpc.db``,
  as a ``file://`` URL reads; the four-slash spelling some tools write for an
  absolute path means the same file).
- ``postgresql://USER[:PASS]@HOST:PORT/DB``: the PostgreSQL store on that
  database, which replicas share (`postgres.py`); it migrates it at start.

The rest of the code sees only the `Store` protocol that `open_store` returns.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import psycopg.conninfo
import psycopg_pool

from batchgrpc.config import Config, ConfigError
from batchgrpc.store import Store
from batchgrpc.store.postgres import PostgresStore, SchemaTooNew
from batchgrpc.store.sqlite import SqliteStore

log = logging.getLogger("batchgrpc.store")

SQLITE_FORM = "sqlite:///ABSOLUTE/PATH"
POSTGRESQL_FORM = "postgresql://USER[:PASS]@HOST:PORT/DB"
#: The default database file's name before `batchgrpc.db`.
LEGACY_DATABASE_NAME = "batchgrpc.sqlite3"


class StoreUnavailable(RuntimeError):
    """The store named by a valid URL cannot be opened; the message says why."""


@dataclass(frozen=True)
class SqliteUrl:
    path: Path


@dataclass(frozen=True)
class PostgresUrl:
    user: str
    #: Kept out of repr, so that a logged or raised URL never shows it.
    password: str | None = field(repr=False)
    host: str
    port: int
    database: str


StoreUrl = SqliteUrl | PostgresUrl


def parse_store_url(url: str) -> StoreUrl:
    """Parses a store URL; a ConfigError says what is expected."""
    scheme, sep, _ = url.partition(":")
    if not sep:
        raise ConfigError(f"store: {_shown(url)!r} is not a URL: expected {SQLITE_FORM} or {POSTGRESQL_FORM}")
    if scheme == "sqlite":
        return _parse_sqlite(url)
    if scheme == "postgresql":
        return _parse_postgresql(url)
    raise ConfigError(f"store: unknown scheme {scheme!r}: expected {SQLITE_FORM} or {POSTGRESQL_FORM}")


def _parse_sqlite(url: str) -> SqliteUrl:
    if not url.startswith("sqlite:///"):
        raise ConfigError(f"store: {url!r} is not an absolute path: expected {SQLITE_FORM}")
    parts = urllib.parse.urlsplit(url)
    if parts.query or parts.fragment:
        raise ConfigError(f"store: {url!r} has a query or fragment: expected {SQLITE_FORM}")
    raw = urllib.parse.unquote(parts.path)
    # "sqlite:////abs" (the four-slash spelling) is "/abs" too; POSIX would
    # otherwise keep a leading "//" as something else than "/".
    path = "/" + raw.lstrip("/")
    if path == "/" or raw.endswith("/"):
        raise ConfigError(f"store: {url!r} names a directory, not a database file: expected {SQLITE_FORM}")
    if "\0" in path:
        raise ConfigError(f"store: {url!r}: a path cannot hold NUL")
    return SqliteUrl(Path(os.path.normpath(path)))


def _parse_postgresql(url: str) -> PostgresUrl:
    expected = f"expected {POSTGRESQL_FORM}"
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"store: {_shown(url)!r}: the port must be a number from 1 to 65535; {expected}") from None
    if not parts.username:
        raise ConfigError(f"store: {_shown(url)!r} names no user; {expected}")
    if not parts.hostname:
        raise ConfigError(f"store: {_shown(url)!r} names no host; {expected}")
    if port is None or port == 0:
        raise ConfigError(f"store: {_shown(url)!r} names no port; {expected}")
    database = urllib.parse.unquote(parts.path.removeprefix("/"))
    if not database or "/" in database:
        raise ConfigError(f"store: {_shown(url)!r} names no database (one path segment); {expected}")
    if parts.query or parts.fragment:
        raise ConfigError(f"store: {_shown(url)!r} has a query or fragment; {expected}")
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return PostgresUrl(urllib.parse.unquote(parts.username), password, parts.hostname, port, database)


def _shown(url: str) -> str:
    """The URL with any password masked: error messages end up in logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


async def open_store(url: str) -> Store:
    """Opens (creating and migrating as needed) the store `url` names."""
    parsed = parse_store_url(url)
    if isinstance(parsed, PostgresUrl):
        return await _open_postgres(url, parsed)
    return await SqliteStore.open(parsed.path)


async def _open_postgres(url: str, parsed: PostgresUrl) -> Store:
    conninfo = psycopg.conninfo.make_conninfo(
        host=parsed.host,
        port=parsed.port,
        user=parsed.user,
        password=parsed.password,
        dbname=parsed.database,
        application_name="batchgrpc",
        # A database that does not answer is an error at start, not a hang.
        connect_timeout=10,
    )
    try:
        return await PostgresStore.open(conninfo)
    except (psycopg.Error, psycopg_pool.PoolTimeout) as e:
        raise StoreUnavailable(f"store: cannot open {_shown(url)}: {e}") from e
    except SchemaTooNew as e:
        raise StoreUnavailable(f"store: {_shown(url)}: {e}") from e


async def open_for_set_up(config: Config) -> Store:
    """The store `config` names, opened by set-up (`serve`, or a supervisor
    before its workers, and the `keys` commands): with the default URL, a
    database file of the old default name is renamed to the new one first,
    so that nothing opens an empty new file next to it."""
    if config.store is None:
        default = parse_store_url(config.store_url)
        assert isinstance(default, SqliteUrl)
        # Blocking, but set-up serves nothing yet.
        adopt_legacy_database(default.path)
    return await open_store(config.store_url)


def adopt_legacy_database(database: Path) -> bool:
    """Renames the default database file's old name (`batchgrpc.sqlite3`)
    to `database` when only the old one exists; returns whether it did.

    Called during set-up only, and only for the default URL: a URL someone
    wrote names its file exactly."""
    legacy = database.with_name(LEGACY_DATABASE_NAME)
    if not legacy.exists():
        return False
    if database.exists():
        log.warning(
            "both database files exist; using the new one, the old one is left untouched",
            extra={"fields": {"database": str(database), "ignored": str(legacy)}},
        )
        return False
    # Leaving WAL mode checkpoints the WAL into the file and removes the
    # -wal and -shm files, so the file renamed alone holds every commit.
    # SQLite allows it only with no other connection open, so a server still
    # running on the old file makes this fail instead of losing its writes.
    # mode=rw: never create an empty file here.
    conn = sqlite3.connect(f"file:{urllib.parse.quote(str(legacy))}?mode=rw", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=2000")
        (mode,) = conn.execute("PRAGMA journal_mode=DELETE").fetchone()
    except sqlite3.OperationalError as e:
        raise StoreUnavailable(
            f"cannot rename {legacy} to {database.name}: {e} (is an older batchgrpc still running on it?)"
        ) from e
    finally:
        conn.close()
    leftovers = [p.name for p in (Path(f"{legacy}-wal"), Path(f"{legacy}-shm")) if p.exists()]
    if mode != "delete" or leftovers:
        raise StoreUnavailable(f"cannot rename {legacy} to {database.name}: its WAL could not be checkpointed")
    os.rename(legacy, database)
    directory = os.open(database.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename survives a crash
    finally:
        os.close(directory)
    log.info("renamed the database file", extra={"fields": {"from": str(legacy), "to": str(database)}})
    return True
