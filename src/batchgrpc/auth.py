"""API keys, the four credential schemes, scopes and roles, and who may call what.

A key is a `key_id` plus a secret. Callers present it as one of:
- ``Bearer <token>`` (batches), ``Klaviyo-API-Key <token>`` (bulk events),
  ``Token <token>`` (tracking, public keys), where token = ``<key_id>.<secret>``;
- ``Basic base64(<key_id>:<secret>)`` (tracking, private keys).

Only HMAC-SHA-256(pepper, key_id ":" secret) is stored; the pepper is a file
(`--pepper-file`, by default in the data directory), never in the database, so
a copy of the database alone reveals nothing usable. Every replica of one store
must be given the same file. Hashes are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from batchgrpc.errors import (
    Api,
    ApiKeyRevoked,
    FieldViolation,
    InvalidArgument,
    MissingCredentials,
    PermissionDenied,
    Unauthenticated,
)
from batchgrpc.store import ApiKey, KeyStore

BATCHES_READ = "batches:read"
BATCHES_WRITE = "batches:write"
EVENTS_READ = "events:read"
EVENTS_WRITE = "events:write"
CUSTOMERS_SET = "customers:set"
EVENTS_SET = "events:set"
CLIENT_ADMIN = "CLIENT_ADMIN"
CLIENT_SUPERUSER = "CLIENT_SUPERUSER"

API_SCOPES = frozenset({BATCHES_READ, BATCHES_WRITE, EVENTS_READ, EVENTS_WRITE, CUSTOMERS_SET, EVENTS_SET})
#: Roles restrict who may see or change a batch job (its `scopes`).
ROLES = frozenset({CLIENT_ADMIN, CLIENT_SUPERUSER})
ALL_SCOPES = API_SCOPES | ROLES
#: What a public key may hold: it may track and nothing else, as upstream's
#: public (`Token`) access.
PUBLIC_SCOPES = frozenset({CUSTOMERS_SET, EVENTS_SET})
#: The key created on first start for account `default`.
ADMIN_SCOPES = API_SCOPES | {CLIENT_SUPERUSER}

KEY_ID_PREFIX = "bgk_"
_PEPPER_BYTES = 32
_TOKEN_SCHEMES = ("bearer", "klaviyo-api-key", "token")
SCHEMES_HELP = "Bearer, Klaviyo-API-Key, Token or Basic"


@dataclass(frozen=True)
class Principal:
    """Who is calling: attached to every authenticated call."""

    key_id: str
    account: str
    scopes: frozenset[str]
    public: bool


@dataclass(frozen=True)
class Policy:
    """What a method needs: its API (limits, error codes) and one of `scopes`.

    Empty `scopes` means any valid key (the method checks finer rights itself).
    """

    api: Api
    scopes: frozenset[str] = frozenset()
    #: Klaviyo-style methods require the `revision` request metadata.
    revision: bool = False
    authenticated: bool = True


def _policies() -> dict[str, Policy]:
    def service(name: str, api: Api, methods: dict[str, Iterable[str]], revision: bool = False) -> dict[str, Policy]:
        return {f"/{name}/{method}": Policy(api, frozenset(scopes), revision) for method, scopes in methods.items()}

    read, write = [BATCHES_READ], [BATCHES_WRITE]
    policies: dict[str, Policy] = {}
    batches = "batchgrpc.batches.v6."
    policies |= service(
        batches + "BatchJobService",
        Api.BATCHES,
        {
            "CreateBatchJob": write,
            "GetBatchJob": read,
            "ListBatchJobs": read,
            "UpdateBatchJob": write,
            "CancelBatchJob": write,
            "ExpireBatchJob": write,
            "DeleteBatchJob": write,
            "WatchBatchJob": read,
            "ListBatchJobRowErrors": read,
        },
    )
    policies |= service(
        batches + "FileAssetService",
        Api.BATCHES,
        {"UploadFileAsset": write, "GetFileAsset": read, "ListFileAssets": read, "DeleteFileAsset": write},
    )
    policies |= service(
        batches + "ReportService",
        Api.BATCHES,
        {"CreateReport": write, "UploadReportResult": write, "GetReport": read, "ListReports": read},
    )
    policies |= service(
        batches + "AudienceListService",
        Api.BATCHES,
        {
            "CreateAudienceList": write,
            "UploadAudienceListMembers": write,
            "GetAudienceList": read,
            "ListAudienceLists": read,
        },
    )
    events = "batchgrpc.events.v1."
    policies |= service(
        events + "EventBulkCreateJobService",
        Api.BULK_EVENTS,
        {"CreateEventBulkCreateJob": [EVENTS_WRITE]},
        revision=True,
    )
    policies |= service(
        events + "EventBulkCreateJobService",
        Api.EVENTS_READ,
        {"GetEventBulkCreateJob": [EVENTS_READ]},
        revision=True,
    )
    policies |= service(
        events + "ProfileService",
        Api.EVENTS_READ,
        {"GetProfile": [EVENTS_READ], "ListProfiles": [EVENTS_READ]},
        revision=True,
    )
    policies |= service(
        events + "EventService",
        Api.EVENTS_READ,
        {"ListEvents": [EVENTS_READ], "GetEvent": [EVENTS_READ]},
        revision=True,
    )
    policies |= service(
        "batchgrpc.track.v2.TrackingService",
        Api.TRACKING,
        {
            # Per command: a key without the command's scope gets that
            # command's "Not authorized", as upstream.
            "Batch": [],
            "UpdateCustomerProperties": [CUSTOMERS_SET],
            "AddEvent": [EVENTS_SET],
            "GetSystemTime": [],
        },
    )
    return policies


#: Every RPC of the contract and what it needs. A test checks it covers the
#: descriptors exactly; a method missing here is refused, never let through.
POLICIES: dict[str, Policy] = _policies()
#: Health and reflection: open to anyone, never rate limited.
SYSTEM_SERVICE_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.v1alpha.", "/grpc.reflection.v1.")
SYSTEM_POLICY = Policy(Api.SYSTEM, authenticated=False)
#: A method of ours with no policy: nobody may call it.
UNLISTED_POLICY = Policy(Api.SYSTEM, frozenset({"nobody"}))


def policy_for(method: str) -> Policy:
    if method.startswith(SYSTEM_SERVICE_PREFIXES):
        return SYSTEM_POLICY
    return POLICIES.get(method, UNLISTED_POLICY)


def authorize(principal: Principal, policy: Policy, method: str) -> None:
    """Raises PermissionDenied unless `principal` may call a method with `policy`."""
    if principal.public and policy.api is not Api.TRACKING:
        raise PermissionDenied("Public keys may only be used with the tracking API.", metadata={"method": method})
    if policy.scopes and not policy.scopes & principal.scopes:
        needed = " or ".join(sorted(policy.scopes))
        raise PermissionDenied(
            f"The API key lacks the scope this call needs: {needed}.",
            metadata={"method": method, "required_scopes": ",".join(sorted(policy.scopes))},
        )


class PepperError(RuntimeError):
    """The pepper file is missing (where it must exist) or damaged."""


def load_or_create_pepper(path: Path) -> bytes:
    """The server-side secret mixed into every key hash, read from `path`;
    created (0600, its directory 0700) when missing. Only set-up calls this:
    a worker reads the file its supervisor made (`load_pepper`)."""
    if path.exists():
        return load_pepper(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Written whole under a name of its own, then linked into place: a
    # replica starting at the same moment reads either no file or all of
    # it, and of two set-ups racing, the first link wins for both.
    draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(_PEPPER_BYTES))
            f.flush()
            os.fsync(f.fileno())
        # Another set-up linked its own first: both use that one.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        os.unlink(draft)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return load_pepper(path)


def load_pepper(path: Path) -> bytes:
    """The pepper in `path`, which must exist."""
    try:
        pepper = path.read_bytes()
    except FileNotFoundError:
        raise PepperError(f"pepper file {path} does not exist") from None
    if len(pepper) != _PEPPER_BYTES:
        raise PepperError(f"pepper file {path} is damaged: expected {_PEPPER_BYTES} bytes")
    return pepper


@dataclass(frozen=True)
class NewKey:
    """A key just created: the only time its secret exists outside the caller."""

    key: ApiKey
    secret: str

    @property
    def token(self) -> str:
        """What follows `Bearer`, `Klaviyo-API-Key` or `Token`."""
        return f"{self.key.key_id}.{self.secret}"

    @property
    def basic(self) -> str:
        """The `Basic` credential: base64 of key_id:secret."""
        return base64.b64encode(f"{self.key.key_id}:{self.secret}".encode()).decode()


class Keyring:
    """Creates keys and resolves credentials to a `Principal`."""

    def __init__(self, keys: KeyStore, pepper: bytes, clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self._pepper = pepper
        self._clock = clock

    def _hash(self, key_id: str, secret: str) -> bytes:
        return hmac.new(self._pepper, f"{key_id}:{secret}".encode(), hashlib.sha256).digest()

    def _new(self, account: str, scopes: Iterable[str], public: bool) -> NewKey:
        scopes = frozenset(scopes)
        problems = validate_key_request(account, scopes, public)
        if problems:
            raise InvalidArgument("; ".join(v.description for v in problems), violations=problems)
        key_id = KEY_ID_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode().lower()
        secret = secrets.token_urlsafe(32)
        key = ApiKey(
            key_id=key_id,
            account=account,
            secret_hash=self._hash(key_id, secret),
            scopes=scopes,
            public=public,
            created_time=self._clock(),
        )
        return NewKey(key, secret)

    async def create(self, account: str, scopes: Iterable[str], *, public: bool = False) -> NewKey:
        new = self._new(account, scopes, public)
        await self._keys.create(new.key)
        return new

    async def create_first_admin(self, account: str = "default") -> NewKey | None:
        """Creates the admin key when the store has no keys at all."""
        new = self._new(account, ADMIN_SCOPES, False)
        return new if await self._keys.create_if_none(new.key) else None

    async def authenticate(self, authorization: str | None) -> Principal:
        key_id, secret = parse_authorization(authorization)
        key = await self._keys.get(key_id)
        # Hash even for an unknown key id, so timing does not tell which ids exist.
        digest = self._hash(key_id, secret)
        if key is None or not hmac.compare_digest(digest, key.secret_hash):
            raise Unauthenticated(f"Invalid API key. Send a valid key as {SCHEMES_HELP}.")
        if key.revoked:
            raise ApiKeyRevoked("This API key has been revoked.", metadata={"key_id": key.key_id})
        return Principal(key_id=key.key_id, account=key.account, scopes=key.scopes, public=key.public)


def parse_authorization(value: str | None) -> tuple[str, str]:
    """Splits an `authorization` value of any of the four schemes into key id and secret."""
    if not value or not value.strip():
        raise MissingCredentials(f"Missing credentials: send an authorization header ({SCHEMES_HELP}).")
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    scheme = scheme.lower()
    if scheme in _TOKEN_SCHEMES:
        key_id, dot, secret = credential.partition(".")
    elif scheme == "basic":
        try:
            decoded = base64.b64decode(credential, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated("Malformed Basic credentials: expected base64(key_id:secret).") from None
        key_id, dot, secret = decoded.partition(":")
    else:
        raise Unauthenticated(f"Unsupported authorization scheme: use {SCHEMES_HELP}.")
    if not dot or not key_id.startswith(KEY_ID_PREFIX) or not secret:
        raise Unauthenticated(f"Malformed API key. Send a valid key as {SCHEMES_HELP}.")
    return key_id, secret


def validate_key_request(account: str, scopes: frozenset[str], public: bool) -> list[FieldViolation]:
    problems = []
    if not account or len(account) > 255 or not account.replace("-", "").replace("_", "").isalnum():
        problems.append(FieldViolation("account", "account must be 1-255 letters, digits, '-' or '_'"))
    if not scopes:
        problems.append(FieldViolation("scopes", "at least one scope is required"))
    if unknown := sorted(scopes - ALL_SCOPES):
        problems.append(
            FieldViolation("scopes", f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(sorted(ALL_SCOPES))}")
        )
    if public and (extra := sorted(scopes - PUBLIC_SCOPES)):
        problems.append(
            FieldViolation(
                "scopes", f"a public key may hold only {', '.join(sorted(PUBLIC_SCOPES))}, not {', '.join(extra)}"
            )
        )
    return problems
