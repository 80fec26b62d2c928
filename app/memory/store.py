"""The conversation store: one SQLite file per session, every message recorded once.

Layout: DATA_DIR/registry.sqlite (see app.memory.registry) and DATA_DIR/sessions/<key>.sqlite,
where <key> is the caller's hex digest of owner + session id (`app.sessions.session_key`);
anything but 16-64 lowercase hex characters is refused, so no key can name a path outside
the data directory. Each write is one transaction run on the connection's thread in a single
hop (see `migrations.run`), then one more hop updates the registry's counters.

    store = Store(Path("data"), max_open=64)
    await store.open()
    await store.create_session(key, "chat-42", owner=None, fingerprint=None)
    async with store.session_lock(key):             # read-plan-write without interleaving
        tail = await store.active_tail(key, 64)
        ids = await store.append(key, [NewMessage(role="user", content="hi", token_count=1)])
    await store.aclose()

Reads of a session that has no file return empty results (and create nothing); writes to one
raise `SessionNotFound` until `create_session` made it. At most `max_open` idle connections
stay open: the least recently used is closed past the bound and reopened on its next use. A
connection in use is never closed under its caller, so the bound is only exceeded while more
sessions than that are busy at the same moment.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import numpy as np

from app.memory.migrations import open_database, run, transaction
from app.memory.registry import Registry, SessionInfo

T = TypeVar("T")
_KEY = re.compile(r"[0-9a-f]{16,64}")


class InvalidSessionKey(ValueError):
    """A session key that is not 16-64 lowercase hex characters."""


class SessionNotFound(LookupError):
    """A write to a session whose file does not exist (or is being deleted)."""


def check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidSessionKey(f"invalid session key {key!r}: expected 16-64 lowercase hex characters")
    return key


def content_hash(role: str, content: str) -> str:
    """The default hash of a message; callers that diff histories should pass their own."""
    return hashlib.sha256(f"{role}\x00{content}".encode()).hexdigest()[:32]


@dataclass(slots=True, frozen=True, kw_only=True)
class NewMessage:
    """A message to record. `content_hash` defaults to `content_hash(role, content)`."""

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


class Store:
    """Per-session SQLite files, the registry, a bounded pool of connections and per-session locks."""

    def __init__(self, data_dir: Path, *, max_open: int = 64, cache_kib: int = 1024) -> None:
        self.data_dir = Path(data_dir)
        self.sessions_dir = self.data_dir / "sessions"
        self.registry = Registry(self.data_dir / "registry.sqlite")
        self.cache_kib = cache_kib
        self._pool = _Pool(self._connect, max_open)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def open(self) -> None:
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        await self.registry.open()

    async def aclose(self) -> None:
        """Close every connection (each checkpoints its WAL); safe to call twice."""
        await self._pool.aclose()
        await self.registry.aclose()

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def open_connections(self) -> int:
        return len(self._pool)

    def session_path(self, key: str) -> Path:
        return self.sessions_dir / f"{check_key(key)}.sqlite"

    def lock_for(self, key: str) -> asyncio.Lock:
        """The session's lock; it lives as long as someone holds or awaits it."""
        lock = self._locks.get(check_key(key))
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def session_lock(self, key: str) -> AsyncIterator[None]:
        """Serialise a read-plan-write sequence on one session (not re-entrant)."""
        async with self.lock_for(key):
            yield

    # ------------------------------------------------------------------ registry

    async def get_session(self, key: str) -> SessionInfo | None:
        return await self.registry.get(check_key(key))

    async def create_session(self, key: str, session_id: str, owner: str | None = None,
                             fingerprint: str | None = None) -> SessionInfo:
        """Create the session's file and registry row; an existing session is returned unchanged."""
        now = time.time()
        meta = {"session_id": session_id, "owner": owner, "created_at": repr(now)}
        async with self._pool.use(check_key(key), create=True) as db:
            await run(db, _put_meta, meta, False)
        return await self.registry.create(key, session_id, owner, fingerprint, now)

    async def find_by_fingerprint(self, owner: str | None, fingerprint: str) -> str | None:
        return await self.registry.find_by_fingerprint(owner, fingerprint)

    async def find_by_hashes(self, owner: str | None, hashes: Sequence[str], *, min_matches: int = 2) -> str | None:
        """The owner's session whose recent messages share the most of `hashes` (at least
        `min_matches`, or all of them when fewer are given), so a front-trimmed window still matches."""
        return await self.registry.find_by_hashes(owner, list(hashes), min_matches)

    async def list_sessions(self, owner: str | None, limit: int = 50, offset: int = 0) -> list[SessionInfo]:
        return await self.registry.list_sessions(owner, limit, offset)

    async def all_keys(self) -> list[str]:
        """Every session key, most recently active first."""
        return await self.registry.all_keys()

    async def keys_with_pending(self) -> list[str]:
        """Sessions with messages still waiting for background work (to catch up at start)."""
        return await self.registry.keys_with_pending()

    async def health(self) -> str:
        sessions = await self.registry.count()
        return f"ok ({sessions} sessions, {len(self._pool)} open)"

    async def delete_session(self, key: str) -> bool:
        """Close the session's connection (after its current users finish), remove its .sqlite, -wal
        and -shm files and its registry rows. Hold `session_lock(key)` around it to let a writer
        that is mid-exchange finish first."""
        path = self.session_path(key)
        async with self._pool.closed(key):
            removed = [_unlink(Path(f"{path}{suffix}")) for suffix in ("", "-wal", "-shm")]
            in_registry = await self.registry.delete(key)
        return removed[0] or in_registry

    # ------------------------------------------------------------------ writes (one transaction each)

    async def append(self, key: str, messages: Sequence[NewMessage]) -> list[int]:
        """Record new turns at the end of the conversation; returns their ids in order."""
        if not messages:
            return []
        applied = await self._commit(key, _apply, list(messages), [])
        return applied.appended

    async def apply(self, key: str, *, append: Sequence[NewMessage] = (),
                    supersede: Sequence[tuple[int, NewMessage | None]] = ()) -> Applied:
        """Commit a whole sync plan: each `(old_id, new)` replaces an active message in place (`new`
        takes its position; None removes it), then `append` goes at the end. An `old_id` that is
        unknown or already superseded is left alone and its `new` is appended instead (never lost)."""
        if not append and not supersede:
            return Applied()
        return await self._commit(key, _apply, list(append), list(supersede))

    async def record_reply(self, key: str, reply: NewMessage, replaces: Sequence[int] = ()) -> int:
        """Record the model's reply; messages in `replaces` (a regenerated or continued reply) are
        marked superseded by it, and it takes their place when nothing active follows them."""
        return (await self.record(key, reply, replaces)).appended[0]

    async def record(self, key: str, reply: NewMessage, replaces: Sequence[int] = ()) -> Applied:
        """`record_reply`, returning everything committed (to mirror it in working memory)."""
        return await self._commit(key, _reply, reply, list(replaces))

    async def save_scores(self, key: str, updates: Sequence[ScoreUpdate]) -> None:
        pending = await self._run(key, _save_scores, list(updates), time.time())
        await self.registry.set_pending(key, pending)

    async def touch_accessed(self, key: str, ids: Sequence[int]) -> None:
        """Count a retrieval of these messages (feeds recency and tiering)."""
        if ids:
            await self._run(key, _touch, list(ids), time.time())

    async def set_tiers(self, key: str, changes: Sequence[Any]) -> None:
        """Apply consolidation's tier changes (and dropped embeddings) in one transaction."""
        if changes:
            await self._run(key, _set_tiers, [(c.tier, int(c.drop_embedding), c.id) for c in changes])

    async def set_persona(self, key: str, text: str) -> None:
        await self._run(key, _put_meta, {"persona": text, "persona_updated_at": repr(time.time())}, True)

    async def add_persona_chunks(self, key: str, chunks: Sequence[PersonaChunk]) -> list[PersonaChunk]:
        """Store the chunks whose hash is new, in one transaction; returns those, with ids."""
        if not chunks:
            return []
        return await self._run(key, _add_persona_chunks, list(chunks), time.time())

    async def add_summary(self, key: str, *, kind: str, level: int, start_position: int, end_position: int,
                          text: str, embedding: Sequence[float] | np.ndarray | None = None,
                          supersedes: Sequence[int] = ()) -> int:
        row = (kind, level, start_position, end_position, text, time.time(), _blob(embedding))
        return await self._run(key, _add_summary, row, list(supersedes))

    # ------------------------------------------------------------------ reads (empty for unknown sessions)

    async def messages(self, key: str, *, include_superseded: bool = False, limit: int | None = None,
                       offset: int = 0) -> list[MessageRow]:
        where = "" if include_superseded else "WHERE superseded_by IS NULL"
        query = f"SELECT {_COLUMNS} FROM messages {where} ORDER BY position, id LIMIT ? OFFSET ?"
        return await self._read(key, [], _rows, query, (-1 if limit is None else limit, offset))

    async def active_tail(self, key: str, n: int) -> list[MessageRow]:
        """The last `n` active turns, oldest first (what working memory holds)."""
        query = (f"SELECT {_COLUMNS} FROM messages WHERE superseded_by IS NULL AND kind = 'turn' "
                 "ORDER BY position DESC, id DESC LIMIT ?")
        rows = await self._read(key, [], _rows, query, (n,))
        rows.reverse()
        return rows

    async def active_for_index(self, key: str) -> list[MessageRow]:
        """Active turns that have embeddings, in conversation order (to rebuild a search index)."""
        query = (f"SELECT {_COLUMNS} FROM messages WHERE superseded_by IS NULL AND kind = 'turn' "
                 "AND embedding IS NOT NULL ORDER BY position, id")
        return await self._read(key, [], _rows, query, ())

    async def pending(self, key: str, limit: int) -> list[MessageRow]:
        """Active messages still waiting for background work, oldest first."""
        query = f"SELECT {_COLUMNS} FROM {_PENDING} ORDER BY id LIMIT ?"
        return await self._read(key, [], _rows, query, (limit,))

    async def pending_count(self, key: str) -> int:
        return await self._read(key, 0, _pending_count)

    async def persona_chunks(self, key: str) -> list[PersonaChunk]:
        """Every stored chunk of the session's system prompts, oldest first."""
        return await self._read(key, [], _persona_chunks)

    async def persona_chunk_hashes(self, key: str) -> set[str]:
        return await self._read(key, set(), _persona_chunk_hashes)

    async def get_persona(self, key: str) -> str | None:
        return (await self.meta(key)).get("persona")

    async def meta(self, key: str) -> dict[str, str]:
        """The session's key/value facts: session_id, owner, created_at, persona, persona_updated_at."""
        return await self._read(key, {}, _meta)

    async def stats(self, key: str) -> SessionStats:
        return await self._read(key, SessionStats(), _stats)

    async def summaries(self, key: str, *, include_superseded: bool = False) -> list[SummaryRow]:
        return await self._read(key, [], _summaries, include_superseded)

    # ------------------------------------------------------------------ plumbing

    async def _connect(self, key: str, create: bool) -> aiosqlite.Connection:
        path = self.sessions_dir / f"{key}.sqlite"
        if not create and not path.exists():
            raise SessionNotFound(key)
        return await open_database(path, "session", cache_kib=self.cache_kib)

    async def _run(self, key: str, fn: Callable[..., T], *args: Any) -> T:
        async with self._pool.use(check_key(key)) as db:
            return await run(db, fn, *args)

    async def _read(self, key: str, default: T, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._run(key, fn, *args)
        except SessionNotFound:
            return default

    async def _commit(self, key: str, fn: Callable[..., Applied], *args: Any) -> Applied:
        now = time.time()
        applied = await self._run(key, fn, *args, now)
        hashes = [row.content_hash for row in applied.rows if row.kind == "turn"]
        await self.registry.record_activity(key, applied.count_delta, applied.token_delta, applied.pending,
                                            hashes, now)
        return applied


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


class _Entry:
    __slots__ = ("db", "users", "ready")

    def __init__(self) -> None:
        self.db: aiosqlite.Connection | None = None
        self.users = 1
        self.ready = asyncio.Event()


class _Pool:
    """Open connections by key, least recently used first; idle ones closed past `max_open`."""

    def __init__(self, connect: Callable[[str, bool], Any], max_open: int) -> None:
        self._connect = connect
        self.max_open = max(1, max_open)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._closing: set[str] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def use(self, key: str, *, create: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        entry = await self._acquire(key, create)
        try:
            yield entry.db
        finally:
            entry.users -= 1
            await self._trim()

    async def _acquire(self, key: str, create: bool) -> _Entry:
        if self._closed:
            raise RuntimeError("the store is closed")
        if key in self._closing:
            raise SessionNotFound(key)
        entry = self._entries.get(key)
        if entry is None:
            return await self._open(key, create)
        entry.users += 1
        self._entries.move_to_end(key)
        if not entry.ready.is_set():
            try:
                await entry.ready.wait()
            except BaseException:
                entry.users -= 1
                raise
            if entry.db is None:  # the opener failed or was cancelled: try on our own terms
                entry.users -= 1
                return await self._acquire(key, create)
        return entry

    async def _open(self, key: str, create: bool) -> _Entry:
        entry = self._entries[key] = _Entry()
        try:
            entry.db = await self._connect(key, create)
        except BaseException:
            if self._entries.get(key) is entry:
                del self._entries[key]
            raise
        finally:
            entry.ready.set()
        return entry

    async def _trim(self) -> None:
        while len(self._entries) > self.max_open:
            idle = next((k for k, e in self._entries.items() if e.users == 0 and e.db is not None), None)
            if idle is None:
                return
            await self._entries.pop(idle).db.close()

    @asynccontextmanager
    async def closed(self, key: str) -> AsyncIterator[None]:
        """Refuse `key` while the block runs, after its connection's last user left and it closed."""
        self._closing.add(key)
        try:
            entry = self._entries.get(key)
            while entry is not None and (entry.users or not entry.ready.is_set()):
                await asyncio.sleep(0.005)
            if self._entries.get(key) is entry and entry is not None:
                del self._entries[key]
                await entry.db.close()
            yield
        finally:
            self._closing.discard(key)

    async def aclose(self) -> None:
        self._closed = True
        while self._entries:
            _, entry = self._entries.popitem(last=False)
            if entry.db is not None:
                await entry.db.close()


# --------------------------------------------------------------------------- on the connection's thread

_COLUMNS = ("id, position, role, name, content, content_hash, created_at, token_count, superseded_by, kind, "
            "emotion, emotion_confidence, emotion_intensity, emotion_probs, importance, embedding, scored_at, "
            "tier, access_count, last_accessed")
# Without statistics the planner would walk every active row; the partial index holds only pending ones.
_PENDING = "messages INDEXED BY messages_pending WHERE scored_at IS NULL AND superseded_by IS NULL"
_INSERT = ("INSERT INTO messages (position, role, name, content, content_hash, created_at, token_count, kind) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)


def _blob(vector: Sequence[float] | np.ndarray | bytes | None) -> bytes | None:
    if vector is None or isinstance(vector, bytes):
        return vector
    return np.asarray(vector, dtype=np.float32).tobytes()


def _row(t: tuple) -> MessageRow:
    row = MessageRow(*t)
    row.emotion_probs = _vector(row.emotion_probs)
    row.embedding = _vector(row.embedding)
    return row


def _rows(conn: sqlite3.Connection, query: str, params: tuple) -> list[MessageRow]:
    return [_row(t) for t in conn.execute(query, params)]


def _scalar(conn: sqlite3.Connection, query: str, params: tuple) -> Any:
    return conn.execute(query, params).fetchone()[0]


class _Tx:
    """One write's bookkeeping: the next free position and everything it changed."""

    def __init__(self, conn: sqlite3.Connection, now: float) -> None:
        self.conn = conn
        self.now = now
        self.next_position = _scalar(conn, "SELECT COALESCE(MAX(position), 0) + 1 FROM messages", ())
        self.out = Applied()

    def insert(self, m: NewMessage, position: int | None = None) -> int:
        if position is None:
            position, self.next_position = self.next_position, self.next_position + 1
        row = MessageRow(0, position, m.role, m.name, m.content, m.content_hash or content_hash(m.role, m.content),
                         self.now if m.created_at is None else m.created_at, m.token_count, kind=m.kind)
        row.id = self.conn.execute(_INSERT, (row.position, row.role, row.name, row.content, row.content_hash,
                                             row.created_at, row.token_count, row.kind)).lastrowid
        self.out.rows.append(row)
        self.out.count_delta += 1
        self.out.token_delta += m.token_count
        return row.id

    def active(self, message_id: int) -> tuple[int, int] | None:
        """(position, token_count) of an active message, None if unknown or superseded."""
        return self.conn.execute("SELECT position, token_count FROM messages WHERE id = ? AND superseded_by IS NULL",
                                 (message_id,)).fetchone()

    def supersede(self, message_id: int, by: int, tokens: int) -> None:
        self.conn.execute("UPDATE messages SET superseded_by = ? WHERE id = ?", (by, message_id))
        self.out.superseded.append(message_id)
        self.out.count_delta -= 1
        self.out.token_delta -= tokens


def _apply(conn: sqlite3.Connection, append: list[NewMessage], supersede: list[tuple[int, NewMessage | None]],
           now: float) -> Applied:
    with transaction(conn):
        tx = _Tx(conn, now)
        for old_id, new in supersede:
            tx.out.replacements.append(_replace(tx, old_id, new))
        tx.out.appended = [tx.insert(message) for message in append]
        tx.out.pending = _pending_count(conn)
    return tx.out


def _replace(tx: _Tx, old_id: int, new: NewMessage | None) -> int:
    old = tx.active(old_id)
    if old is None:
        return tx.insert(new) if new is not None else -1
    new_id = tx.insert(new, old[0]) if new is not None else -1
    tx.supersede(old_id, new_id, old[1])
    return new_id


def _reply(conn: sqlite3.Connection, reply: NewMessage, replaces: list[int], now: float) -> Applied:
    with transaction(conn):
        tx = _Tx(conn, now)
        olds = {i: old for i in dict.fromkeys(replaces) if (old := tx.active(i)) is not None}
        reply_id = tx.insert(reply, _reply_position(conn, olds))
        for old_id, (_, tokens) in olds.items():
            tx.supersede(old_id, reply_id, tokens)
        tx.out.appended = [reply_id]
        tx.out.pending = _pending_count(conn)
    return tx.out


def _reply_position(conn: sqlite3.Connection, olds: dict[int, tuple[int, int]]) -> int | None:
    """The first replaced message's position if only replaced messages sit at or after it, else None (the end)."""
    if not olds:
        return None
    first = min(position for position, _ in olds.values())
    tail = conn.execute("SELECT id FROM messages WHERE superseded_by IS NULL AND position >= ?", (first,))
    return first if all(message_id in olds for (message_id,) in tail) else None


def _pending_count(conn: sqlite3.Connection) -> int:
    return _scalar(conn, f"SELECT COUNT(*) FROM {_PENDING}", ())


def _save_scores(conn: sqlite3.Connection, updates: list[ScoreUpdate], now: float) -> int:
    params = [(u.emotion, u.emotion_confidence, u.emotion_intensity, _blob(u.emotion_probs), u.importance,
               _blob(u.embedding), now if u.scored_at is None else u.scored_at, u.id) for u in updates]
    with transaction(conn):
        conn.executemany("UPDATE messages SET emotion = ?, emotion_confidence = ?, emotion_intensity = ?, "
                         "emotion_probs = ?, importance = ?, embedding = ?, scored_at = ? WHERE id = ?", params)
        return _pending_count(conn)


def _touch(conn: sqlite3.Connection, ids: list[int], now: float) -> None:
    with transaction(conn):
        conn.executemany("UPDATE messages SET access_count = access_count + 1, last_accessed = ? WHERE id = ?",
                         [(now, i) for i in ids])


def _set_tiers(conn: sqlite3.Connection, rows: list[tuple[str, int, int]]) -> None:
    with transaction(conn):
        conn.executemany("UPDATE messages SET tier = ?, embedding = CASE WHEN ? THEN NULL ELSE embedding END "
                         "WHERE id = ?", rows)


def _put_meta(conn: sqlite3.Connection, values: dict[str, str | None], overwrite: bool) -> None:
    verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
    with transaction(conn):
        conn.executemany(f"{verb} INTO meta (key, value) VALUES (?, ?)", list(values.items()))


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {k: v for k, v in conn.execute("SELECT key, value FROM meta") if v is not None}


def _stats(conn: sqlite3.Connection) -> SessionStats:
    active, superseded, tokens, first, last = conn.execute(
        "SELECT COALESCE(SUM(superseded_by IS NULL), 0), COALESCE(SUM(superseded_by IS NOT NULL), 0), "
        "COALESCE(SUM(CASE WHEN superseded_by IS NULL THEN token_count END), 0), MIN(created_at), MAX(created_at) "
        "FROM messages").fetchone()
    return SessionStats(active, superseded, _pending_count(conn), tokens, first, last)


def _add_summary(conn: sqlite3.Connection, row: tuple, supersedes: list[int]) -> int:
    with transaction(conn):
        summary_id = conn.execute("INSERT INTO summaries (kind, level, start_position, end_position, text, "
                                  "created_at, embedding) VALUES (?, ?, ?, ?, ?, ?, ?)", row).lastrowid
        conn.executemany("UPDATE summaries SET superseded = 1 WHERE id = ?", [(i,) for i in supersedes])
    return summary_id


def _summaries(conn: sqlite3.Connection, include_superseded: bool) -> list[SummaryRow]:
    where = "" if include_superseded else "WHERE superseded = 0"
    rows = conn.execute("SELECT id, kind, level, start_position, end_position, text, created_at, embedding, "
                        f"superseded FROM summaries {where} ORDER BY level, start_position, id")
    return [SummaryRow(*t[:7], _vector(t[7]), bool(t[8])) for t in rows]


def _add_persona_chunks(conn: sqlite3.Connection, chunks: list[PersonaChunk], now: float) -> list[PersonaChunk]:
    added = []
    with transaction(conn):
        for c in chunks:
            cursor = conn.execute("INSERT OR IGNORE INTO persona_chunks (hash, text, token_count, created_at, "
                                  "embedding) VALUES (?, ?, ?, ?, ?)",
                                  (c.hash, c.text, c.token_count, now, _blob(c.embedding)))
            if cursor.rowcount:
                added.append(replace(c, id=cursor.lastrowid, created_at=now))
    return added


def _persona_chunks(conn: sqlite3.Connection) -> list[PersonaChunk]:
    rows = conn.execute("SELECT id, hash, text, token_count, created_at, embedding FROM persona_chunks ORDER BY id")
    return [PersonaChunk(id=i, hash=h, text=t, token_count=n, created_at=c, embedding=_vector(e))
            for i, h, t, n, c, e in rows]


def _persona_chunk_hashes(conn: sqlite3.Connection) -> set[str]:
    return {h for (h,) in conn.execute("SELECT hash FROM persona_chunks")}
