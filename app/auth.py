"""API keys: who is calling, and which tenant their conversations belong to.

    ring = KeyRing(["sk-alice", "sha256:9f86d08…"], admin_keys=["sk-root"])
    ring.authenticate("Bearer sk-alice")   # -> Principal(tenant="t-3b1f…", admin=False)
    ring.authenticate("Bearer wrong")      # -> None

A key is given in clear or as `sha256:<64 hex digits>` (the digest of the key's UTF-8 bytes, e.g.
`printf %s "$KEY" | sha256sum`), so a config file need not hold the key itself. Keys are only
ever held and compared as SHA-256 digests: the presented key is hashed once and compared with
every configured digest by `hmac.compare_digest`, without stopping at the first match, so the
time taken says nothing about which key, or how much of one, matched.

A principal's `tenant` names the owner of its conversations in storage. It is derived from the
key's digest (never the key), so the clear and the hashed form of one key are the same tenant,
and a key that is removed and added back finds its conversations again. With no keys configured
every caller is `ANONYMOUS` (tenant None), which is how storage was keyed before keys existed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

HASHED_PREFIX = "sha256:"
TENANT_PREFIX = "t-"
TENANT_HEX = 16  # 64 bits of the digest's own hash: unique among any realistic number of keys


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: the tenant owning its conversations, and whether it may see everyone's."""

    tenant: str | None
    admin: bool = False

    @property
    def keyed(self) -> bool:
        return self.tenant is not None


ANONYMOUS = Principal(tenant=None)


def key_digest(entry: str) -> bytes:
    """The SHA-256 digest a configured key stands for; ValueError for a malformed `sha256:` entry.

        >>> key_digest("sha256:" + "ab" * 32) == bytes.fromhex("ab" * 32)
        True
        >>> key_digest("secret") == hashlib.sha256(b"secret").digest()
        True
    """
    entry = entry.strip()
    if not entry:
        raise ValueError("an API key may not be empty")
    if entry.lower().startswith(HASHED_PREFIX):
        hexdigits = entry[len(HASHED_PREFIX):]
        if len(hexdigits) != 64:
            raise ValueError("a hashed API key is `sha256:` followed by 64 hex digits")
        try:
            return bytes.fromhex(hexdigits)
        except ValueError:
            raise ValueError("a hashed API key is `sha256:` followed by 64 hex digits") from None
    return hashlib.sha256(entry.encode()).digest()


def tenant_of(digest: bytes) -> str:
    """The tenant id of a key, from its digest: `t-` and 16 hex digits of the digest's own hash."""
    return TENANT_PREFIX + hashlib.sha256(b"tenant\x00" + digest).hexdigest()[:TENANT_HEX]


def bearer_token(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` header (scheme case-insensitive), else None.

        >>> bearer_token("Bearer sk-1"), bearer_token("bearer  sk-1 "), bearer_token("Basic eDp5")
        ('sk-1', 'sk-1', None)
    """
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    principal: Principal


class KeyRing:
    """The configured keys; `enabled` once any key (admin or not) is set."""

    def __init__(self, keys: Iterable[str] = (), admin_keys: Iterable[str] = ()) -> None:
        entries: dict[bytes, _Entry] = {}
        for entry, admin in [*((k, False) for k in keys), *((k, True) for k in admin_keys)]:
            digest = key_digest(entry)
            admin = admin or (digest in entries and entries[digest].principal.admin)
            entries[digest] = _Entry(digest, Principal(tenant_of(digest), admin=admin))
        self._entries = tuple(entries.values())

    @property
    def enabled(self) -> bool:
        return bool(self._entries)

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The caller's principal: ANONYMOUS when no keys are set; None for a missing or wrong key."""
        if not self._entries:
            return ANONYMOUS
        token = bearer_token(authorization)
        if token is None:
            return None
        presented = hashlib.sha256(token.encode()).digest()
        found = None
        for entry in self._entries:  # every entry, every time: no early exit to time
            if hmac.compare_digest(presented, entry.digest):
                found = entry.principal
        return found


def is_loopback(host: str) -> bool:
    """Whether a bind address or host name stays on this machine.

        >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0")
        (True, True, True, False)
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
