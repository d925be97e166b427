"""API keys: hashed records, scopes, collection restrictions, and the start-up exposure check.

No gRPC here: ``api/auth.py`` applies a :class:`KeyRing` to every call, ``metrics.py`` to every
scrape. A key is a random string (``emb_`` + 32 random bytes, URL-safe base64) shown once when
it is made; the server stores only its SHA-256 (a fast hash is right for 256 random bits: there
is nothing to guess, and a per-call slow hash would cost milliseconds on every request).

Scopes are cumulative: ``read`` < ``write`` < ``admin`` (a write key can read, an admin key can
do everything). A key restricted to collections sees only those: other collections do not exist
for it (NOT_FOUND, the message a missing collection gives), ``ListCollections`` leaves them out,
and creating or importing a collection under another name is PERMISSION_DENIED.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import FailedPrecondition, InvalidArgument

__all__ = ["SCOPES", "Scope", "ApiKeyRecord", "Principal", "KeyRing", "new_key", "hash_key", "key_line",
           "is_loopback", "check_exposure", "BEARER"]

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[str, ...] = ("read", "write", "admin")  # each includes the ones before it
BEARER = "bearer "
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_COLLECTION = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ApiKeyRecord(BaseModel):
    """One line of the key file (or one entry of ``EMBCLUSTER_API_KEYS``): never the key itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Who holds the key (for logs; never secret).")
    sha256: str = Field(description="SHA-256 of the key, 64 lowercase hex digits.")
    scopes: tuple[Scope, ...] = Field(("read",), min_length=1, description="read, write and/or admin.")
    collections: tuple[str, ...] = Field((), description="Collections the key may use; empty = all.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("name must match [A-Za-z0-9_.@-]{1,64}")
        return value

    @field_validator("sha256")
    @classmethod
    def _hash(cls, value: str) -> str:
        value = value.lower()
        if not _HEX64.fullmatch(value):
            raise ValueError("sha256 must be 64 hex digits (the hash, never the key; see `embcluster keys create`)")
        return value

    @field_validator("collections")
    @classmethod
    def _collections(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in value if not _COLLECTION.fullmatch(c)]
        if bad:
            raise ValueError(f"collection names must match [A-Za-z0-9_-]{{1,64}}: {bad[:3]}")
        return value


@dataclass(frozen=True)
class Principal:
    """The caller a key identified: its name, highest scope and collection restriction."""

    name: str
    level: int  # index of the highest scope in SCOPES
    collections: frozenset[str] | None  # None = every collection

    def can(self, scope: str) -> bool:
        """Whether the key holds ``scope`` (or a higher one)."""
        return self.level >= SCOPES.index(scope)

    def sees(self, collection: str) -> bool:
        """Whether the key may use ``collection``."""
        return self.collections is None or collection in self.collections


def hash_key(key: str) -> str:
    """SHA-256 hex of a key, as stored in the key file."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits)."""
    return "emb_" + secrets.token_urlsafe(32)


def key_line(record: ApiKeyRecord) -> str:
    """The record as one JSON line of the key file."""
    return json.dumps(record.model_dump(mode="json"), separators=(", ", ": "))


class KeyRing:
    """The configured keys; :meth:`authenticate` maps a presented key to its :class:`Principal`.

    Every stored hash is compared with :func:`hmac.compare_digest` (no early exit), so the time
    taken says nothing about which bytes matched.
    """

    def __init__(self, records: Iterable[ApiKeyRecord] = ()) -> None:
        self.records = tuple(records)
        self._entries = [(bytes.fromhex(r.sha256), Principal(
            r.name, max(SCOPES.index(s) for s in r.scopes),
            frozenset(r.collections) if r.collections else None)) for r in self.records]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @classmethod
    def load(cls, path: Path | None, extra: Iterable[ApiKeyRecord] = ()) -> "KeyRing":
        """The keys of a key file (JSON lines; blank lines and ``#`` comments skipped) plus ``extra``.

        Raises:
            InvalidArgument: unreadable file or a bad line (named by number; no line content echoed).
        """
        records = list(extra)
        if path is not None:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise InvalidArgument(f"api_keys_file {str(path)!r} cannot be read: {type(exc).__name__}") from None
            for number, line in enumerate(text.splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    records.append(ApiKeyRecord.model_validate_json(line))
                except ValidationError as exc:
                    why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors())
                    raise InvalidArgument(f"api_keys_file {str(path)!r} line {number}: {why}"[:500]) from None
        names = [r.name for r in records]
        if len(set(names)) != len(names):
            raise InvalidArgument("api keys: every key needs its own name")
        return cls(records)

    def authenticate(self, key: str) -> Principal | None:
        """The principal of ``key``, or None for an unknown key."""
        digest = hashlib.sha256(key.encode("utf-8", "replace")).digest()
        found = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, digest):
                found = principal
        return found

    def from_header(self, value: str | None) -> Principal | None:
        """The principal of an ``authorization: Bearer <key>`` value (None when absent or unknown)."""
        if not value or len(value) > 512 or value[:7].lower() != BEARER:
            return None
        return self.authenticate(value[7:].strip())

    def http_status(self, header: str | None) -> int:
        """The answer of an HTTP endpoint (metrics) to an ``Authorization`` header: 200 for a key
        with the read scope and no collection restriction (the series name every collection),
        403 for a restricted key, 401 otherwise."""
        principal = self.from_header(header)
        if principal is None:
            return 401
        return 200 if principal.collections is None and principal.can("read") else 403


def is_loopback(host: str) -> bool:
    """Whether a bind address reaches this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_exposure(binds: dict[str, str], has_keys: bool, insecure_open: bool) -> list[str]:
    """Refuse an open server on a non-loopback address; returns warnings for what is allowed.

    Args:
        binds: What binds where, e.g. ``{"gRPC": "0.0.0.0", "metrics": "127.0.0.1"}``.
        has_keys: API keys are configured.
        insecure_open: The operator asked for an open server (``--insecure-open``).

    Raises:
        FailedPrecondition: a non-loopback address, no keys, and no ``insecure_open``.
    """
    exposed = [f"{what} on {host}" for what, host in binds.items() if not is_loopback(host)]
    if not exposed or has_keys:
        return []
    if not insecure_open:
        raise FailedPrecondition(
            f"refusing to serve {', '.join(exposed)} without API keys: anyone who can reach it could read, "
            "export and delete every collection. Configure keys (EMBCLUSTER_API_KEYS_FILE, see `embcluster "
            "keys create`), bind 127.0.0.1, or pass --insecure-open (EMBCLUSTER_INSECURE_OPEN=true)")
    return [f"serving {', '.join(exposed)} with no authentication (--insecure-open): any client may read, "
            "change and delete every collection"]
