"""Which conversation a chat request belongs to.

A client may name its conversation; most do not. The resolution order is:

1. the `X-Session-Id` header,
2. the request's `user` field,
3. `metadata.session_id`,
4. otherwise a fingerprint of the conversation's opening.

Whose conversation it is (the person above conversations) is app.persons' question; `user`
names the person too when nothing more specific does.

    >>> explicit_session_id(None, "alice", None)
    'alice'
    >>> opening_fingerprint([{"role": "system", "content": "You are Seraphina."},
    ...                      {"role": "assistant", "content": "*She smiles.* Welcome."},
    ...                      {"role": "user", "content": "Hi!"}]) is not None
    True

The fingerprint covers the first line of the first system message, every message before the first
user message (a character's greeting) and that first user message. Two chats with the same character
share the system prompt and the greeting but not, in practice, the first thing the user says; a
growing conversation keeps its opening, so the fingerprint stays put. Whitespace is normalised, so
a client that trims or re-wraps text still matches. Only the system prompt's first line counts:
clients append activated lore and dates further down, and that must not split a conversation.

When a client trims the front of a long conversation (SillyTavern does, keeping its system prompt),
the opening is gone and the fingerprint is new. `message_hashes` is the way back: see there.

Sessions are stored under a file name that is `session_key(owner, session_id)`, a hex digest, so
no session id, however hostile, can name a path outside the data directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from app.tokens import message_text

MAX_SESSION_ID_LENGTH = 128
SYSTEM_PREFIX_CHARS = 200  # of the first system message's first line that enter the fingerprint
PERSONA_ROLES = frozenset({"system", "developer"})
HASH_CHARS = 32  # hex characters of a message hash (128 bits)

# Letters and digits of any script, space, and a few punctuation marks seen in user ids, e-mail
# addresses and room names. Slashes, backslashes, quotes and control characters are refused: the
# storage name is a hash anyway, but an id that looks like a path is a mistake worth reporting.
_SESSION_ID = re.compile(r"[\w .:@+=#~-]+")
_ALLOWED_TEXT = "letters, digits, spaces and - _ . : @ + = # ~"


def explicit_session_id(header: str | None, user: str | None, metadata: Mapping[str, Any] | None) -> str | None:
    """The session id the client named, first of header, `user`, `metadata.session_id`; None if none.

        >>> explicit_session_id("  chat-7 ", "alice", {"session_id": "m"})
        'chat-7'
        >>> explicit_session_id("", None, {"session_id": "m"})
        'm'

    Blank values are skipped, surrounding whitespace is dropped; validity is `validate_session_id`'s job.
    """
    for candidate in (header, user, _metadata_session_id(metadata)):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


def _metadata_session_id(metadata: Mapping[str, Any] | None) -> str | None:
    if not isinstance(metadata, Mapping):
        return None
    value = metadata.get("session_id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else None


def validate_session_id(session_id: Any) -> str:
    """`session_id` itself when it is 1-128 letters, digits, spaces or `-_.:@+=#~`; else ValueError.

        >>> validate_session_id("user@example.com:chat 1")
        'user@example.com:chat 1'
        >>> validate_session_id("a\\nb")
        Traceback (most recent call last):
        ...
        ValueError: session id may contain only letters, digits, spaces and - _ . : @ + = # ~; found '\\n'
    """
    if not isinstance(session_id, str):
        raise ValueError(f"session id must be a string, not {type(session_id).__name__}")
    if not 1 <= len(session_id) <= MAX_SESSION_ID_LENGTH:
        raise ValueError(f"session id must be 1 to {MAX_SESSION_ID_LENGTH} characters long, "
                         f"got {len(session_id)}")
    if not _SESSION_ID.fullmatch(session_id):
        bad = next(ch for ch in session_id if not _SESSION_ID.fullmatch(ch))
        raise ValueError(f"session id may contain only {_ALLOWED_TEXT}; found {bad!r}")
    return session_id


def session_key(owner: str | None, session_id: str) -> str:
    """The storage name of a session: a 64-character hex digest of its owner and id.

        >>> len(session_key(None, "../../etc/passwd"))
        64
        >>> session_key("key-1", "chat") != session_key("key-2", "chat")
        True

    `owner` is the id of the API key the session belongs to (None while keys are not in use);
    the same session id under two owners gives two sessions.
    """
    material = json.dumps([owner, session_id], ensure_ascii=True)
    return hashlib.sha256(material.encode()).hexdigest()


def normalise_text(text: str) -> str:
    """Text with every run of whitespace made one space and the ends trimmed."""
    return " ".join(text.split())


def message_hash(role: str, text: str) -> str:
    """The one hash of a message: its role and its text with whitespace normalised.

        >>> message_hash("user", "Hello,\\n  world ") == message_hash("user", "Hello, world")
        True

    Every message the proxy stores and every message it compares is hashed with this function
    (replies and imports included), or a resent history no longer lines up with what was stored.
    A speaker's name is left out: a client that adds or drops names has not changed the message.
    """
    material = role.lower() + "\x1f" + normalise_text(text)
    return hashlib.sha256(material.encode()).hexdigest()[:HASH_CHARS]


def message_hashes(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """`message_hash` of each OpenAI-style message; list-of-parts content is flattened to its text.

    Finding a conversation from a front-trimmed window: when the opening fingerprint is unknown,
    take the hashes of the incoming non-system messages *except the last* (the newest user message
    has not been stored yet) and keep the last few (16 is plenty). The session whose recently
    stored messages share the most of them, at least two, is the one the window was cut from.
    Keep, per session, the hashes of its last messages written (a small table hash -> session
    key) and count matches there; a window only ever shows recent messages, so nothing older is
    needed. Two chats that share only a greeting still differ in the user's messages, so require
    two matches, or all of them when fewer were asked about.
    """
    return [message_hash(str(m.get("role") or "user"), message_text(m)) for m in messages]


def opening_fingerprint(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """A stable hex digest of the conversation's opening, or None before the user has said anything.

        >>> opening_fingerprint([{"role": "system", "content": "Persona"},
        ...                      {"role": "assistant", "content": "Greeting"}]) is None
        True

    None means the conversation cannot be told apart yet (only a persona and a greeting, which
    every new chat with that character shares): serve such a request without recording it; the
    greeting arrives again with the first user message.
    """
    opening = _opening(messages)
    if opening is None:
        return None
    system = _system_prefix(messages)
    material = json.dumps([system, opening], ensure_ascii=True)
    return hashlib.sha256(material.encode()).hexdigest()


def _opening(messages: Sequence[Mapping[str, Any]]) -> list[list[str]] | None:
    """Role, name and normalised text of the non-system messages up to the first user message."""
    opening = []
    for message in messages:
        role = str(message.get("role") or "user")
        if role in PERSONA_ROLES:
            continue
        opening.append([role, message.get("name") or "", normalise_text(message_text(message))])
        if role == "user":
            return opening
    return None


def _system_prefix(messages: Sequence[Mapping[str, Any]]) -> str:
    """The first line of the first system message, normalised, at most `SYSTEM_PREFIX_CHARS` long.

    Clients that merge their system prompts join the parts with newlines, so the first line is the
    main prompt (SillyTavern's names the character) and what follows may change turn by turn.
    """
    if not messages or messages[0].get("role") not in PERSONA_ROLES:
        return ""
    first_line = message_text(messages[0]).strip().split("\n", 1)[0]
    return normalise_text(first_line)[:SYSTEM_PREFIX_CHARS]
