"""Keeping the upstream's credentials out of what clients, logs and reports see.

An upstream that rejects our key may quote it in its error message; a connection error may
quote the base URL, which can carry `user:password@`. Providers pass every message they raise
through `redact` with their own secrets, and name themselves by their configured name.

    >>> redact("Incorrect API key provided: sk-live-1234567890abcdef.", secrets_of("sk-live-1234567890abcdef"))
    'Incorrect API key provided: [redacted].'
    >>> redact("key sk-live-12345678… is invalid", secrets_of("sk-live-1234567890abcdef"))
    'key [redacted]… is invalid'
"""

from __future__ import annotations

from urllib.parse import urlsplit

MASK = "[redacted]"
MIN_FRAGMENT = 8  # a quoted run this long of a secret counts as a quote of it (shorter masks are fine)


def secrets_of(api_key: str = "", base_url: str = "") -> tuple[str, ...]:
    """The strings to hide: the key, and a base URL's user-info (user:password and the password)."""
    found = [api_key.strip()] if api_key.strip() else []
    parts = urlsplit(base_url) if base_url else None
    if parts is not None and parts.password:
        found += [f"{parts.username}:{parts.password}", parts.password]
    return tuple(s for s in found if s)


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret, and every run of `MIN_FRAGMENT`+ characters of one, masked."""
    for secret in secrets:
        if len(secret) < MIN_FRAGMENT:
            text = text.replace(secret, MASK)
            continue
        text = _mask_fragments(text, secret)
    return text


def _mask_fragments(text: str, secret: str) -> str:
    """Mask the longest runs of `secret`'s characters found in `text`, longest first."""
    for size in range(len(secret), MIN_FRAGMENT - 1, -1):
        for start in range(len(secret) - size + 1):
            piece = secret[start:start + size]
            if piece in text:
                text = text.replace(piece, MASK)
    return text
