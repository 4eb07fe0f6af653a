"""Configuration: defaults, TOML, environment and flags, and their errors."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from batchgrpc import config
from batchgrpc.errors import Api
from batchgrpc.store.factory import SqliteUrl, parse_store_url


def test_defaults_are_the_documented_ones() -> None:
    c = config.load(env={})
    assert c.listen == "127.0.0.1:50051"
    assert c.data_dir == Path("./batchgrpc-data")
    assert c.rate_limits.enabled
    assert c.rate_limits.rates[Api.BULK_EVENTS] == (config.Rate(10, 1.0), config.Rate(150, 60.0))
    assert c.rate_limits.rates[Api.TRACKING] == (config.Rate(100, 1.0),)
    assert c.rate_limits.rates[Api.BATCHES] == (config.Rate(100, 60.0),)
    assert c.max_receive_message_bytes > 5 * 1024 * 1024
    assert not c.tls.enabled


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    file = tmp_path / "batchgrpc.toml"
    file.write_text(
        'listen = "0.0.0.0:1"\ndata_dir = "/from/file"\nlog_level = "debug"\n'
        '[rate_limits]\ntracking = "5/s"\nbatches = "7/min"\n'
    )
    c = config.load(
        config_file=file,
        env={"BATCHGRPC_LISTEN": "0.0.0.0:2", "BATCHGRPC_DATA_DIR": "/from/env"},
        overrides={"listen": "0.0.0.0:3", "data_dir": None},
    )
    assert c.listen == "0.0.0.0:3"
    assert c.data_dir == Path("/from/env")
    assert c.log_level == "debug"
    assert c.rate_limits.rates[Api.TRACKING] == (config.Rate(5, 1.0),)
    assert c.rate_limits.rates[Api.BATCHES] == (config.Rate(7, 60.0),)
    assert c.rate_limits.rates[Api.BULK_EVENTS] == (config.Rate(10, 1.0), config.Rate(150, 60.0))


def test_no_rate_limits_from_flag_and_from_env() -> None:
    assert not config.load(env={}, overrides={"no_rate_limits": True}).rate_limits.enabled
    assert not config.load(env={"BATCHGRPC_NO_RATE_LIMITS": "1"}).rate_limits.enabled


def test_tls_from_environment() -> None:
    c = config.load(env={"BATCHGRPC_TLS_CERT_FILE": "/c.pem", "BATCHGRPC_TLS_KEY_FILE": "/k.pem"})
    assert c.tls.enabled
    assert c.tls.cert_file == Path("/c.pem")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('lisen = "x:1"', "unknown setting(s): lisen"),
        ('listen = "nohost"', "listen: expected HOST:PORT"),
        ('[rate_limits]\ntracking = "fast"', "rate 'fast'"),
        ('[rate_limits]\ntracking = "0/s"', "rate '0/s'"),
        ('[rate_limits]\nwebhooks = "1/s"', "unknown API 'webhooks'"),
        ('[tls]\ncert_file = "/c.pem"', "cert_file and key_file go together"),
        ('[tls]\nclient_ca_file = "/ca.pem"', "client_ca_file needs cert_file"),
        ("grace_period_seconds = -1", "must not be negative"),
        ("this is not toml", "config file"),
    ],
)
def test_bad_configuration_is_refused_with_the_setting_named(tmp_path: Path, toml: str, message: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(toml)
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.load(config_file=file, env={})


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="No such file"):
        config.load(config_file=tmp_path / "absent.toml", env={})


def test_deployment_defaults_follow_the_data_dir() -> None:
    c = config.load(env={})
    assert c.workers == len(os.sched_getaffinity(0))
    assert c.store is None
    assert c.store_url == "sqlite://" + os.path.abspath("batchgrpc-data/batchgrpc.db")
    assert c.sink == "log"
    assert c.lease_seconds == 30.0
    assert c.pepper_path == Path("batchgrpc-data/pepper")
    # A copy with another data_dir (as tests make) follows it.
    moved = dataclasses.replace(c, data_dir=Path("/srv/bg data#1"))
    assert moved.store_url == "sqlite:///srv/bg%20data%231/batchgrpc.db"
    assert parse_store_url(moved.store_url) == SqliteUrl(Path("/srv/bg data#1/batchgrpc.db"))
    assert moved.pepper_path == Path("/srv/bg data#1/pepper")


def test_deployment_settings_flag_beats_environment_beats_file(tmp_path: Path) -> None:
    file = tmp_path / "batchgrpc.toml"
    file.write_text(
        "workers = 3\n"
        'store = "sqlite:///from/file.db"\n'
        'sink = "kafka://file:9092/events"\n'
        "lease_seconds = 5\n"
        'pepper_file = "/from/file.pepper"\n'
    )
    from_file = config.load(config_file=file, env={})
    assert (from_file.workers, from_file.store, from_file.sink) == (
        3,
        "sqlite:///from/file.db",
        "kafka://file:9092/events",
    )
    assert (from_file.lease_seconds, from_file.pepper_path) == (5.0, Path("/from/file.pepper"))

    env = {
        "BATCHGRPC_WORKERS": "4",
        "BATCHGRPC_STORE": "sqlite:///from/env.db",
        "BATCHGRPC_SINK": "kafka://env:9092/events",
        "BATCHGRPC_LEASE_SECONDS": "2.5",
        "BATCHGRPC_PEPPER_FILE": "/from/env.pepper",
    }
    from_env = config.load(config_file=file, env=env)
    assert (from_env.workers, from_env.store, from_env.sink) == (4, "sqlite:///from/env.db", "kafka://env:9092/events")
    assert (from_env.lease_seconds, from_env.pepper_path) == (2.5, Path("/from/env.pepper"))

    flags = {
        "workers": "1",
        "store": "sqlite:///from/flag.db",
        "sink": "log",
        "lease_seconds": "0.5",
        "pepper_file": "/from/flag.pepper",
    }
    from_flags = config.load(config_file=file, env=env, overrides=flags)
    assert (from_flags.workers, from_flags.store, from_flags.sink) == (1, "sqlite:///from/flag.db", "log")
    assert (from_flags.lease_seconds, from_flags.pepper_path) == (0.5, Path("/from/flag.pepper"))
    # A flag not given leaves the environment's value.
    partly = config.load(config_file=file, env=env, overrides={"workers": None, "store": None})
    assert (partly.workers, partly.store) == (4, "sqlite:///from/env.db")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("workers", "0", "workers: must be at least 1"),
        ("workers", "two", "workers: expected a whole number, got 'two'"),
        ("workers", "2.5", "workers: expected a whole number, got '2.5'"),
        ("workers", "-1", "workers: expected a whole number"),
        ("lease_seconds", "0", "lease_seconds: expected a number of seconds above 0"),
        ("lease_seconds", "-3", "lease_seconds: expected a number of seconds above 0"),
        ("lease_seconds", "nan", "lease_seconds: expected a number of seconds above 0"),
        ("lease_seconds", "inf", "lease_seconds: expected a number of seconds above 0"),
        ("lease_seconds", "soon", "lease_seconds: 'soon' is not a number"),
        ("store", "sqlite:data/batchgrpc.db", "store: 'sqlite:data/batchgrpc.db' is not an absolute path"),
        ("store", "postgresql://db:5432/events", "store: 'postgresql://db:5432/events' names no user"),
        ("store", "/var/lib/batchgrpc.db", "is not a URL: expected sqlite:///ABSOLUTE/PATH or postgresql://"),
        ("pepper_file", "", "pepper_file: expected a path"),
    ],
)
def test_bad_deployment_settings_are_refused_from_every_source(name: str, value: str, message: str) -> None:
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.load(env={f"BATCHGRPC_{name.upper()}": value})
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.load(env={}, overrides={name: value})


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("workers = 2.5", "workers: expected a whole number, got 2.5"),
        ("workers = true", "workers: expected a whole number, got True"),
        ("workers = 0", "workers: must be at least 1"),
        ("lease_seconds = false", "lease_seconds: False is not a number"),
        ("pepper_file = 7", "pepper_file: expected a path, got 7"),
    ],
)
def test_bad_deployment_settings_in_toml_are_refused(tmp_path: Path, toml: str, message: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(toml)
    with pytest.raises(config.ConfigError, match=re.escape(message)):
        config.load(config_file=file, env={})


def test_metrics_listen_is_off_unless_set_by_flag_environment_or_file(tmp_path: Path) -> None:
    assert config.load(env={}).metrics_listen is None
    file = tmp_path / "c.toml"
    file.write_text('metrics_listen = "127.0.0.1:9001"\n')
    assert config.load(config_file=file, env={}).metrics_listen == "127.0.0.1:9001"
    env = {"BATCHGRPC_METRICS_LISTEN": "127.0.0.1:9002"}
    assert config.load(config_file=file, env=env).metrics_listen == "127.0.0.1:9002"
    flags = {"metrics_listen": "0.0.0.0:9003"}
    assert config.load(config_file=file, env=env, overrides=flags).metrics_listen == "0.0.0.0:9003"
    # Empty is off, as unset.
    assert config.load(env={"BATCHGRPC_METRICS_LISTEN": ""}).metrics_listen is None
    with pytest.raises(config.ConfigError, match="metrics_listen: expected HOST:PORT"):
        config.load(env={"BATCHGRPC_METRICS_LISTEN": "9464"})
