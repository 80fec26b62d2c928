"""What the conversation store reads and writes: rows, new messages, stats, and the session key check.

Plain dataclasses with no database in them, shared by the store, the SQL it runs
(`app.memory.store.sqlite.session_sql`) and the services that build and read rows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

_KEY = re.compile(r"[0-9a-f]{16,64}")


class InvalidSessionKey(ValueError):
    """A session key that is not 16-64 lowercase hex characters."""


class StaleSession(RuntimeError):
    """A conditional write (`apply(..., based_on=v)`) found the conversation at another version:
    another replica wrote first. Bring the caches up to date (`store.changed`) and plan again."""


class SessionNotFound(LookupError):
    """A write to a session whose file does not exist (or is being deleted)."""


def check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidSessionKey(f"invalid session key {key!r}: expected 16-64 lowercase hex characters")
    return key


@dataclass(slots=True, frozen=True, kw_only=True)
class NewMessage:
    """A message to record. `content_hash` defaults to `app.sessions.message_hash(role, content)`."""

    role: str
    content: str
    name: str | None = None
    token_count: int = 0
    content_hash: str | None = None
    kind: str = "turn"  # "turn" | "persona"
    created_at: float | None = None  # None: now


@dataclass(slots=True)
class MessageRow:
    """A stored message; `embedding` and `emotion_probs` are float32 arrays (read-only views)."""

    id: int
    position: int
    role: str
    name: str | None
    content: str
    content_hash: str
    created_at: float
    token_count: int
    superseded_by: int | None = None
    kind: str = "turn"
    emotion: str | None = None
    emotion_confidence: float | None = None
    emotion_intensity: float | None = None
    emotion_probs: np.ndarray | None = None
    importance: float | None = None
    embedding: np.ndarray | None = None
    scored_at: float | None = None
    tier: str = "working"
    access_count: int = 0
    last_accessed: float | None = None

    @property
    def has_embedding(self) -> bool:
        return self.embedding is not None


@dataclass(slots=True, frozen=True, kw_only=True)
class ScoreUpdate:
    """Background results for one message; vectors as float32-convertible sequences or arrays."""

    id: int
    emotion: str | None = None
    emotion_confidence: float | None = None
    emotion_intensity: float | None = None
    emotion_probs: Sequence[float] | np.ndarray | None = None
    importance: float | None = None
    embedding: Sequence[float] | np.ndarray | None = None
    scored_at: float | None = None  # None: now


@dataclass(slots=True, frozen=True)
class SessionStats:
    messages: int = 0  # active (not superseded)
    superseded: int = 0
    pending: int = 0  # active messages still waiting for embedding and scores
    token_total: int = 0  # of active messages
    first_activity: float | None = None
    last_activity: float | None = None


@dataclass(slots=True, frozen=True)
class SummaryRow:
    id: int
    kind: str  # "rolling" | "higher" | "extractive"
    level: int
    start_position: int
    end_position: int
    text: str
    created_at: float
    embedding: np.ndarray | None = None
    superseded: bool = False


@dataclass(slots=True, frozen=True, kw_only=True)
class PersonaChunk:
    """A piece of a system prompt the session sent, stored once per `hash` (see `app.memory.persona`).

    `embedding` holds float32 rows: the chunk, then its sentences when it has several. `id` and
    `created_at` are set by the store (0 on a chunk not stored yet).
    """

    hash: str
    text: str
    token_count: int = 0
    embedding: Sequence[float] | np.ndarray | None = None
    id: int = 0
    created_at: float = 0.0


@dataclass(slots=True)
class Applied:
    """What one write committed: new ids, the rows as stored, the ids it marked superseded."""

    appended: list[int] = field(default_factory=list)
    replacements: list[int] = field(default_factory=list)  # per supersede item: new id, or -1
    superseded: list[int] = field(default_factory=list)
    rows: list[MessageRow] = field(default_factory=list)
    count_delta: int = 0
    token_delta: int = 0
    pending: int = 0  # the session's pending count after the write
    version: int = 0  # the conversation's write sequence after this write (0 where not counted)


@dataclass(slots=True, frozen=True)
class SessionInfo:
    """A registry row. `message_count` and `token_total` count active (not superseded) messages;
    `pending` is how many of them still wait for background embedding and scoring. `person` is
    who it belongs to (app.persons; None: no one), `character` the digest of the system prompt's
    first line it was with, `scope` its own recall scope (None: the default)."""

    key: str
    session_id: str
    owner: str | None
    fingerprint: str | None
    created_at: float
    last_active: float
    message_count: int
    token_total: int
    pending: int = 0
    person: str | None = None
    character: str | None = None
    scope: str | None = None


@dataclass(slots=True, frozen=True)
class Changes:
    """What other processes wrote to a conversation since this one last looked: every message row
    inserted or updated since (superseded ones included, with their embeddings), and the version
    they bring the conversation to."""

    version: int
    rows: list[MessageRow] = field(default_factory=list)
