"""The store factory: store URLs, opening a store by URL, and set-up's rename
of the old default database file, on real files."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from batchgrpc import config as configuration
from batchgrpc.config import ConfigError
from batchgrpc.store import ApiKey
from batchgrpc.store.factory import (
    LEGACY_DATABASE_NAME,
    PostgresUrl,
    SqliteUrl,
    StoreUnavailable,
    open_for_set_up,
    open_store,
    parse_store_url,
)
from batchgrpc.store.postgres import PostgresStore
from batchgrpc.store.sqlite import DATABASE_NAME, SqliteStore
from tests.servers import postgres_database


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/lib/batchgrpc/batchgrpc.db", "/var/lib/batchgrpc/batchgrpc.db"),
        # The spelling some tools use for an absolute path: the same file.
        ("sqlite:////var/lib/batchgrpc/batchgrpc.db", "/var/lib/batchgrpc/batchgrpc.db"),
        ("sqlite:///srv/with%20space/a%23b.db", "/srv/with space/a#b.db"),
        ("sqlite:///srv/./x/../events.db", "/srv/events.db"),
    ],
)
def test_sqlite_urls_name_an_absolute_file(url: str, path: str) -> None:
    assert parse_store_url(url) == SqliteUrl(Path(path))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:batchgrpc.db", "is not an absolute path: expected sqlite:///ABSOLUTE/PATH"),
        ("sqlite://batchgrpc.db", "is not an absolute path: expected sqlite:///ABSOLUTE/PATH"),
        ("sqlite://host/var/x.db", "is not an absolute path"),
        ("sqlite:/var/x.db", "is not an absolute path"),
        ("sqlite:///", "names a directory, not a database file"),
        ("sqlite:///var/lib/", "names a directory, not a database file"),
        ("sqlite:///var/x.db?mode=ro", "has a query or fragment"),
        ("sqlite:///var/x%00.db", "cannot hold NUL"),
        ("batchgrpc.db", "is not a URL: expected sqlite:///ABSOLUTE/PATH or postgresql://USER[:PASS]@HOST:PORT/DB"),
        ("mysql://ann@db:3306/events", "unknown scheme 'mysql'"),
        ("postgres://ann@db:5432/events", "unknown scheme 'postgres'"),
    ],
)
def test_bad_sqlite_and_unknown_urls_say_what_is_expected(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^store: .*" + message.replace("?", r"\?").replace("[", r"\[")):
        parse_store_url(url)


def test_postgresql_urls_are_parsed_with_the_password_kept_out_of_sight() -> None:
    parsed = parse_store_url("postgresql://ann%40ops:p%3Ass@db.internal:6432/events")
    assert parsed == PostgresUrl("ann@ops", "p:ss", "db.internal", 6432, "events")
    assert "p:ss" not in repr(parsed)
    assert parse_store_url("postgresql://ann@[::1]:5432/events") == PostgresUrl("ann", None, "::1", 5432, "events")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://db:5432/events", "names no user"),
        ("postgresql://ann:secret@:5432/events", "names no host"),
        ("postgresql://ann:secret@db/events", "names no port"),
        ("postgresql://ann:secret@db:99999/events", "the port must be a number from 1 to 65535"),
        ("postgresql://ann:secret@db:port/events", "the port must be a number from 1 to 65535"),
        ("postgresql://ann:secret@db:5432", "names no database"),
        ("postgresql://ann:secret@db:5432/a/b", "names no database"),
        ("postgresql://ann:secret@db:5432/events?sslmode=require", "has a query or fragment"),
    ],
)
def test_bad_postgresql_urls_say_what_is_expected_and_never_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_store_url(url)
    assert message in str(caught.value)
    assert "expected postgresql://USER[:PASS]@HOST:PORT/DB" in str(caught.value)
    assert "secret" not in str(caught.value)


async def test_a_postgresql_url_opens_the_database_it_names() -> None:
    async with postgres_database() as url:
        store = await open_store(url)
        try:
            assert isinstance(store, PostgresStore)
            assert store.uploads is not None
            await store.keys.create(ApiKey("bgk_f", "acme", b"h" * 32, frozenset({"events:read"}), False, 1.0))
            assert (await store.keys.get("bgk_f")) is not None
        finally:
            await store.close()


async def test_a_postgresql_server_that_refuses_says_so_without_the_password() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(StoreUnavailable) as caught:
        await open_store(f"postgresql://ann:secret@127.0.0.1:{port}/events")
    assert f"cannot open postgresql://ann:***@127.0.0.1:{port}/events" in str(caught.value)
    assert "secret" not in str(caught.value)


async def test_a_sqlite_url_opens_that_file_and_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "made" / "here" / "events.db"
    store = await open_store(f"sqlite://{path}")
    try:
        await store.keys.create(ApiKey("bgk_a", "acme", b"h" * 32, frozenset({"events:read"}), False, 1.0))
    finally:
        await store.close()
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT key_id FROM api_keys").fetchall() == [("bgk_a",)]


def legacy_with_wal(data_dir: Path) -> None:
    """An old-name database whose last commits are only in its WAL: the
    process that made them was SIGKILLed, as a server can be."""
    data_dir.mkdir()
    script = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode=WAL')\n"
        "db.execute('PRAGMA wal_autocheckpoint=0')\n"
        "db.execute('CREATE TABLE kept (n INTEGER)')\n"
        "db.executemany('INSERT INTO kept VALUES (?)', [(i,) for i in range(1000)])\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(data_dir / LEGACY_DATABASE_NAME)], check=False)
    assert Path(f"{data_dir / LEGACY_DATABASE_NAME}-wal").stat().st_size > 0


async def test_set_up_renames_the_old_default_file_with_what_its_wal_held(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    legacy_with_wal(data)
    config = dataclasses.replace(configuration.Config(), data_dir=data)
    with caplog.at_level(logging.INFO, logger="batchgrpc.store"):
        store = await open_for_set_up(config)
    await store.close()
    # The old file and its WAL are gone; the writers' lock file is the new one's.
    assert sorted(os.listdir(data)) == [DATABASE_NAME, f"{DATABASE_NAME}-writer"]
    with sqlite3.connect(data / DATABASE_NAME) as db:
        assert db.execute("SELECT COUNT(*) FROM kept").fetchone() == (1000,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    (renamed,) = [r for r in caplog.records if r.getMessage() == "renamed the database file"]
    assert renamed.fields == {"from": str(data / LEGACY_DATABASE_NAME), "to": str(data / DATABASE_NAME)}  # type: ignore[attr-defined]

    # Once: the next set-up finds the new file and renames nothing.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="batchgrpc.store"):
        await (await open_for_set_up(config)).close()
    assert not caplog.records


async def test_an_old_file_still_open_elsewhere_is_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    old = await SqliteStore.open(data / LEGACY_DATABASE_NAME)  # an older server, still running
    try:
        config = dataclasses.replace(configuration.Config(), data_dir=data)
        with pytest.raises(StoreUnavailable, match="is an older batchgrpc still running on it"):
            await open_for_set_up(config)
        assert not (data / DATABASE_NAME).exists()
        assert (data / LEGACY_DATABASE_NAME).exists()
    finally:
        await old.close()


async def test_no_rename_when_the_new_file_exists_or_a_store_url_is_given(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    legacy_with_wal(data)
    # A URL someone wrote names its file exactly, even the default one.
    named = dataclasses.replace(configuration.Config(), data_dir=data, store=f"sqlite://{data / DATABASE_NAME}")
    await (await open_for_set_up(named)).close()
    assert (data / LEGACY_DATABASE_NAME).exists()
    # Both files now: the new one is used, the old one left as it is.
    with caplog.at_level(logging.WARNING, logger="batchgrpc.store"):
        await (await open_for_set_up(dataclasses.replace(named, store=None))).close()
    assert (data / LEGACY_DATABASE_NAME).exists()
    assert [r.getMessage() for r in caplog.records] == [
        "both database files exist; using the new one, the old one is left untouched"
    ]
