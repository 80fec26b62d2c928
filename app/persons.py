"""Whose conversation it is, which character it is with, and how far recall may reach (pure).

A person sits above conversations: the same caller across LiveKit rooms, the same SillyTavern
user across chats. The client names the person; the proxy never guesses one:

1. the `X-User-Id` header,
2. `metadata.user_id`,
3. OpenAI's `user` field (OpenAI's own meaning: the end user).

`user` still names the conversation when neither `X-Session-Id` is sent (app.sessions), so a
client that sends only `user` keeps one conversation per user, exactly as before.

    >>> person_id(None, {"user_id": "caller-7"}, None)
    'caller-7'
    >>> person_id("  ann ", None, "bob")
    'ann'

The scope of recall across conversations:

- `session`: this conversation only (as before people existed);
- `character`: the person's conversations with the same character (the default): facts about
  the user carry across chats with one character, one character's story never reaches another;
- `person`: all of the person's conversations.

The character is recognised from the system prompt the way a conversation's opening is: the
first line of the first system message (SillyTavern's names the character; a voice agent's
instructions name its role), hashed.

    >>> character_key([{"role": "system", "content": "You are Juniper.\\nBe brief."}]) == \\
    ...     character_key([{"role": "system", "content": "You are  Juniper."}])
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.sessions import PERSONA_ROLES, normalise_text
from app.tokens import message_text

SCOPES = ("session", "character", "person")
CHARACTER_CHARS = 200  # of the first system line that name the character


def person_id(header: str | None, metadata: Mapping[str, Any] | None, user: str | None) -> str | None:
    """The person the client named: `X-User-Id`, `metadata.user_id`, else `user`; None if none."""
    meta = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    if isinstance(meta, int) and not isinstance(meta, bool):
        meta = str(meta)
    for candidate in (header, meta, user):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return None


def character_key(messages: Sequence[Mapping[str, Any]]) -> str:
    """A hex digest of the first line of the first system message ('' without a system message).

        >>> character_key([{"role": "user", "content": "hi"}])
        ''
    """
    first = next((m for m in messages if m.get("role") in PERSONA_ROLES), None)
    if first is None:
        return ""
    line = normalise_text(message_text(first).strip().split("\n", 1)[0])[:CHARACTER_CHARS]
    return hashlib.sha256(line.encode()).hexdigest()[:32] if line else ""


def parse_scope(value: Any) -> str | None:
    """A scope name from a header or setting ('' or None: not given); anything else is ValueError.

        >>> parse_scope(" Session "), parse_scope(""), parse_scope("user")
        ('session', None, 'person')
    """
    if value is None or not str(value).strip():
        return None
    scope = str(value).strip().lower()
    scope = {"user": "person", "off": "session", "conversation": "session"}.get(scope, scope)
    if scope not in SCOPES:
        raise ValueError(f"memory scope must be one of {', '.join(SCOPES)}, not {value!r}")
    return scope


def effective_scope(requested: str | None, conversation: str | None, default: str) -> str:
    """The request's scope, else the conversation's setting, else the default; `session` from
    either the request or the conversation always wins (a conversation set apart stays apart).

        >>> effective_scope(None, None, "character"), effective_scope("person", None, "character")
        ('character', 'person')
        >>> effective_scope("person", "session", "character"), effective_scope("session", None, "person")
        ('session', 'session')
    """
    if conversation == "session" or requested == "session":
        return "session"
    return requested or conversation or default


def ago(seconds: float) -> str:
    """A duration as people say it: 'just now', '5 minutes ago', '3 days ago', '2 years ago'.

        >>> [ago(s) for s in (10, 300, 7200, 86400 * 3, 86400 * 45, 86400 * 800)]
        ['just now', '5 minutes ago', '2 hours ago', '3 days ago', '1 month ago', '2 years ago']
    """
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400), ("day", 86400),
                       ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def elsewhere_label(created: float | None, now: float, where: str | None = None) -> str:
    """Where and when a recollection from another conversation was said, as the model reads it.

        >>> elsewhere_label(1_700_000_000 - 3 * 86400, 1_700_000_000, "room-a")[:48]
        'in an earlier conversation (room-a), 3 days ago,'
        >>> elsewhere_label(None, 1.0)
        'in an earlier conversation'
    """
    place = f"in an earlier conversation ({where})" if where else "in an earlier conversation"
    if created is None or created <= 0:
        return place
    date = datetime.fromtimestamp(created).strftime("%a %Y-%m-%d")
    return f"{place}, {ago(max(0.0, now - created))}, {date}"


def shown_name(session_id: str) -> str | None:
    """A conversation's id as a place name, or None for ids the proxy made up (`auto-…`).

        >>> shown_name("livekit-room-a"), shown_name("auto-9f2c")
        ('livekit-room-a', None)
    """
    return None if session_id.startswith("auto-") else session_id[:64]
