"""Access keys and roles. An ingest key may only send events; a read key may query and watch live;
an admin key may do everything. Keys are compared in constant time and never logged."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable
from enum import StrEnum

from pydantic import SecretStr

from shared.errors import Forbidden, Unauthorized


class Role(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


# Which roles each key kind grants; admin implies everything.
GRANTS: dict[Role, frozenset[Role]] = {
    Role.INGEST: frozenset({Role.INGEST}),
    Role.READ: frozenset({Role.READ}),
    Role.ADMIN: frozenset({Role.INGEST, Role.READ, Role.ADMIN}),
}


class KeyRing:
    """The configured keys, checked in constant time against every one of them."""

    def __init__(
        self, ingest: Iterable[SecretStr], read: Iterable[SecretStr], admin: Iterable[SecretStr]
    ) -> None:
        self._keys: list[tuple[bytes, Role]] = [
            *((k.get_secret_value().encode(), Role.INGEST) for k in ingest),
            *((k.get_secret_value().encode(), Role.READ) for k in read),
            *((k.get_secret_value().encode(), Role.ADMIN) for k in admin),
        ]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def kind_of(self, presented: str | None) -> Role | None:
        """The kind of a presented key, or None. Every configured key is compared (no early exit)."""
        if not presented:
            return None
        candidate = presented.encode()
        found: Role | None = None
        for key, role in self._keys:
            if hmac.compare_digest(key, candidate):
                found = role
        return found

    def authorize(self, presented: str | None, needed: Role) -> Role:
        """Return the key's kind if it grants `needed`; 401 for a missing/unknown key, 403 otherwise."""
        kind = self.kind_of(presented)
        if kind is None:
            message = "missing access key" if not presented else "unknown access key"
            raise Unauthorized(f"{message}: send 'Authorization: Bearer <key>'")
        if needed not in GRANTS[kind]:
            needs = f"an {needed.value} or admin key" if needed != Role.ADMIN else "an admin key"
            raise Forbidden(f"this {kind.value} key lacks the {needed.value} role; {needs} is needed")
        return kind


def bearer_token(authorization: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>`."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def basic_username(authorization: str | None) -> str | None:
    """The username of HTTP Basic auth: Segment sends its write key as `writeKey:`."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None
