"""Configuration: defaults, TOML, environment and flags, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgrpc import config
from batchgrpc.errors import Api


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
