"""Server configuration: defaults < TOML file < environment < command-line flags.

The TOML file (``--config FILE`` or ``BATCHGRPC_CONFIG``) takes the same keys
as the `Config` fields; ``[tls]`` and ``[rate_limits]`` are tables. Unknown
keys are an error, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgrpc.errors import Api


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting."""


@dataclass(frozen=True)
class Rate:
    """A token bucket: `capacity` requests, refilled evenly over `per_seconds`."""

    capacity: int
    per_seconds: float

    @classmethod
    def parse_many(cls, spec: str) -> tuple[Rate, ...]:
        """Parses "10/s,150/min" into buckets; every bucket must allow a request."""
        units = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0, "h": 3600.0}
        rates = []
        for part in spec.split(","):
            match = re.fullmatch(r"\s*(\d+)\s*/\s*([a-z]+)\s*", part)
            if not match or match.group(2) not in units or int(match.group(1)) < 1:
                raise ConfigError(f"rate {part.strip()!r}: expected N/s, N/min or N/h with N >= 1")
            rates.append(cls(int(match.group(1)), units[match.group(2)]))
        return tuple(rates)


#: Upstream's defaults (API.md): Klaviyo bulk burst 10/s + steady 150/min,
#: Klaviyo reads 350/s + 3500/min, Bloomreach 100/s, Extole 100/min.
DEFAULT_RATES: Mapping[Api, str] = {
    Api.BULK_EVENTS: "10/s,150/min",
    Api.EVENTS_READ: "350/s,3500/min",
    Api.TRACKING: "100/s",
    Api.BATCHES: "100/min",
}


@dataclass(frozen=True)
class TlsConfig:
    """Server TLS; a `client_ca_file` turns on mutual TLS (client certs required)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    client_ca_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


@dataclass(frozen=True)
class RateLimitConfig:
    """Per-account, per-API token buckets."""

    enabled: bool = True
    rates: Mapping[Api, tuple[Rate, ...]] = field(
        default_factory=lambda: {api: Rate.parse_many(spec) for api, spec in DEFAULT_RATES.items()}
    )


#: The database file of the default store, in the data directory.
DEFAULT_DATABASE_NAME = "batchgrpc.db"
#: The pepper file's default name, in the data directory.
DEFAULT_PEPPER_NAME = "pepper"


def _cores() -> int:
    # The cores this process may run on, not the machine's: a container or a
    # `taskset` limits what N workers can use.
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class Config:
    """Everything `batchgrpc serve` needs."""

    listen: str = "127.0.0.1:50051"
    #: HOST:PORT of the Prometheus endpoint (`/metrics`); None: none.
    metrics_listen: str | None = None
    data_dir: Path = Path("./batchgrpc-data")
    log_level: str = "info"
    #: Server processes sharing the port (SO_REUSEPORT) and the store.
    workers: int = field(default_factory=_cores)
    #: The store's URL; None is the default, `default_store_url(data_dir)`.
    #: Kept None rather than filled in so that a Config copied with another
    #: `data_dir` (`dataclasses.replace`) follows it, and so that set-up
    #: knows the default is in use (only then is a legacy file renamed).
    store: str | None = None
    #: Where dispatched events go: `log`, `file:///PATH` or a `kafka://` URL
    #: (checked by `sinks.open_sink`).
    sink: str = "log"
    #: A job claimed by a replica that stopped heartbeating is taken over
    #: by another after this many seconds.
    lease_seconds: float = 30.0
    #: The key-hashing pepper; None is `<data_dir>/pepper`.
    pepper_file: Path | None = None
    #: Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    grace_period_seconds: float = 10.0
    #: The transport's receive limit. Above every API's own limit (a tracking
    #: batch may reach 50 x 800 KB), so those limits are enforced with the
    #: API's own error, never the transport's.
    max_receive_message_bytes: int = 64 * 1024 * 1024
    #: How long a `request_id` is remembered.
    idempotency_ttl_seconds: float = 24 * 3600.0
    #: The largest data file (file asset, report, audience list) accepted.
    max_upload_bytes: int = 10 * 1024**3
    #: Batch jobs that read and dispatch at once; the others wait QUEUED.
    max_running_jobs: int = 2
    #: Rows per chunk of a batch job: one store transaction and checkpoint each.
    job_chunk_rows: int = 10_000
    tls: TlsConfig = TlsConfig()
    rate_limits: RateLimitConfig = RateLimitConfig()

    @property
    def store_url(self) -> str:
        """The store's URL, the default one resolved."""
        return self.store if self.store is not None else default_store_url(self.data_dir)

    @property
    def pepper_path(self) -> Path:
        """The pepper file, the default one resolved."""
        return self.pepper_file if self.pepper_file is not None else self.data_dir / DEFAULT_PEPPER_NAME


def default_store_url(data_dir: Path) -> str:
    """`sqlite:///<data_dir>/batchgrpc.db`, with `data_dir` made absolute:
    a URL means the same file whatever the working directory."""
    # Quoted: a "#", "?" or "%" in the path must not read as URL syntax.
    return "sqlite://" + urllib.parse.quote(os.path.abspath(data_dir / DEFAULT_DATABASE_NAME))


_ENV_PREFIX = "BATCHGRPC_"
_INT_SETTINGS = ("max_upload_bytes", "max_running_jobs", "job_chunk_rows")


def load(
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Builds the configuration from a TOML file, the environment and flags.

    `overrides` holds the flags that were given (None values are ignored).
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    config_file = config_file or env.get(_ENV_PREFIX + "CONFIG") or None
    if config_file:
        try:
            with open(config_file, "rb") as f:
                values.update(tomllib.load(f))
        except OSError as e:
            raise ConfigError(f"config file {config_file}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {config_file}: {e}") from e
    for name in (
        "listen",
        "metrics_listen",
        "data_dir",
        "log_level",
        "workers",
        "store",
        "sink",
        "lease_seconds",
        "pepper_file",
        "grace_period_seconds",
        "max_receive_message_bytes",
        *_INT_SETTINGS,
    ):
        if (value := env.get(_ENV_PREFIX + name.upper())) is not None:
            values[name] = value
    tls = dict(values.get("tls", {}))
    for name in ("cert_file", "key_file", "client_ca_file"):
        if (value := env.get(f"{_ENV_PREFIX}TLS_{name.upper()}")) is not None:
            tls[name] = value
    if tls:
        values["tls"] = tls
    if env.get(_ENV_PREFIX + "NO_RATE_LIMITS", "").lower() in ("1", "true", "yes"):
        values.setdefault("rate_limits", {})["enabled"] = False
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name == "no_rate_limits":
            if value:
                values.setdefault("rate_limits", {})["enabled"] = False
        else:
            values[name] = value
    return _build(values)


def _build(values: Mapping[str, Any]) -> Config:
    known = {f.name for f in dataclasses.fields(Config)}
    if unknown := sorted(set(values) - known):
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name == "tls":
            kwargs[name] = _build_tls(value)
        elif name == "rate_limits":
            kwargs[name] = _build_rate_limits(value)
        elif name in ("data_dir", "pepper_file"):
            kwargs[name] = _path(name, value)
        elif name == "workers":
            kwargs[name] = _whole(name, value)
        elif name == "metrics_listen":
            # Empty (an unset-looking BATCHGRPC_METRICS_LISTEN=) is off.
            kwargs[name] = str(value) or None
        elif name == "lease_seconds":
            kwargs[name] = _positive_seconds(name, value)
        elif name in ("grace_period_seconds", "idempotency_ttl_seconds"):
            kwargs[name] = _number(name, value, float)
        elif name in ("max_receive_message_bytes", *_INT_SETTINGS):
            kwargs[name] = _number(name, value, int)
        else:
            kwargs[name] = str(value)
    config = Config(**kwargs)
    _validate(config)
    return config


def _number(name: str, value: Any, kind: type[int] | type[float]) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: {value!r} is not a number") from e
    if number < 0:
        raise ConfigError(f"{name}: must not be negative")
    return number


def _path(name: str, value: Any) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ConfigError(f"{name}: expected a path, got {value!r}")
    return Path(value)


def _whole(name: str, value: Any) -> int:
    # Strict: "2.5" or a TOML 2.5 is a mistake to report, not to round.
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        raise ConfigError(f"{name}: expected a whole number, got {value!r}")
    number = int(value)
    if number < 1:
        raise ConfigError(f"{name}: must be at least 1")
    return number


def _positive_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name}: {value!r} is not a number")
    try:
        seconds = float(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: {value!r} is not a number") from e
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"{name}: expected a number of seconds above 0, got {value!r}")
    return seconds


def _build_tls(value: Any) -> TlsConfig:
    if not isinstance(value, Mapping):
        raise ConfigError("tls: expected a table")
    names = {f.name for f in dataclasses.fields(TlsConfig)}
    if unknown := sorted(set(value) - names):
        raise ConfigError(f"tls: unknown setting(s): {', '.join(unknown)}")
    return TlsConfig(**{k: Path(v) if v else None for k, v in value.items()})


def _build_rate_limits(value: Any) -> RateLimitConfig:
    if not isinstance(value, Mapping):
        raise ConfigError("rate_limits: expected a table")
    rates = dict(RateLimitConfig().rates)
    enabled = True
    for name, spec in value.items():
        if name == "enabled":
            enabled = bool(spec)
            continue
        try:
            api = Api(name)
        except ValueError:
            raise ConfigError(f"rate_limits: unknown API {name!r}") from None
        if api is Api.SYSTEM:
            raise ConfigError("rate_limits: health and reflection are not rate limited")
        rates[api] = Rate.parse_many(str(spec))
    return RateLimitConfig(enabled=enabled, rates=rates)


def _validate(config: Config) -> None:
    for name in ("listen", "metrics_listen"):
        address = getattr(config, name)
        if address is None:
            continue
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"{name}: expected HOST:PORT, got {address!r}")
    if config.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("log_level: expected debug, info, warning or error")
    if config.store is not None:
        # Here, not at first use, so that a bad URL stops `serve` before it
        # starts anything. Imported late: the factory imports this module.
        from batchgrpc.store.factory import parse_store_url

        parse_store_url(config.store)
    for name in _INT_SETTINGS:
        if getattr(config, name) < 1:
            raise ConfigError(f"{name}: must be at least 1")
    tls = config.tls
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ConfigError("tls: cert_file and key_file go together")
    if tls.client_ca_file is not None and not tls.enabled:
        raise ConfigError("tls: client_ca_file needs cert_file and key_file")
