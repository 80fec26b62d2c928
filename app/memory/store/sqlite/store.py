"""The conversation store: one SQLite file per session, every message recorded once.

Layout: DATA_DIR/registry.sqlite (see app.memory.store.sqlite.registry) and DATA_DIR/sessions/<key>.sqlite,
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

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import numpy as np

from app.memory.store.sqlite import session_sql as sql
from app.memory.store.sqlite.connections import ConnectionPool
from app.memory.store.sqlite.migrations import open_database, run
from app.memory.store.locks import SessionLocks
from app.memory.records import (Applied, Changes, MessageRow, NewMessage, PersonaChunk, ScoreUpdate, SessionNotFound,
                                SessionStats, SummaryRow, check_key)
from app.memory.store.sqlite.registry import Registry, SessionInfo

T = TypeVar("T")


class Store(SessionLocks):
    """Per-session SQLite files, the registry, a bounded pool of connections and per-session locks."""

    backend = "sqlite"

    def __init__(self, data_dir: Path, *, max_open: int = 64, cache_kib: int = 1024) -> None:
        self.data_dir = Path(data_dir)
        self.sessions_dir = self.data_dir / "sessions"
        self.registry = Registry(self.data_dir / "registry.sqlite")
        self.cache_kib = cache_kib
        self._pool = ConnectionPool(self._connect, max_open)

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


    # ------------------------------------------------------------------ registry

    async def get_session(self, key: str) -> SessionInfo | None:
        return await self.registry.get(check_key(key))

    async def create_session(self, key: str, session_id: str, owner: str | None = None,
                             fingerprint: str | None = None) -> SessionInfo:
        """Create the session's file and registry row; an existing session is returned unchanged."""
        now = time.time()
        meta = {"session_id": session_id, "owner": owner, "created_at": repr(now)}
        async with self._pool.use(check_key(key), create=True) as db:
            await run(db, sql.put_meta, meta, False)
        return await self.registry.create(key, session_id, owner, fingerprint, now)

    async def find_by_fingerprint(self, owner: str | None, fingerprint: str) -> str | None:
        return await self.registry.find_by_fingerprint(owner, fingerprint)

    async def claim_session(self, key: str, person: str | None, character: str | None) -> None:
        """Set the conversation's person and character where it has none yet (app.persons)."""
        await self.registry.claim(check_key(key), person, character)

    async def set_scope(self, key: str, scope: str | None) -> None:
        await self.registry.set_scope(check_key(key), scope)

    async def sessions_of_person(self, owner: str | None, person: str) -> list[SessionInfo]:
        return await self.registry.of_person(owner, person)

    async def find_by_hashes(self, owner: str | None, hashes: Sequence[str], *, min_matches: int = 2) -> str | None:
        """The owner's session whose recent messages share the most of `hashes` (at least
        `min_matches`, or all of them when fewer are given), so a front-trimmed window still matches."""
        return await self.registry.find_by_hashes(owner, list(hashes), min_matches)

    async def list_sessions(self, owner: str | None, limit: int = 50, offset: int = 0, *,
                            every_owner: bool = False, search: str | None = None) -> list[SessionInfo]:
        """The owner's sessions, most recently active first (`every_owner`: everyone's; `search`:
        only the ids containing it)."""
        return await self.registry.list_sessions(owner, limit, offset, every_owner=every_owner, search=search)

    async def owners_of(self, session_id: str) -> list[str | None]:
        """Every owner holding a session of this id (the same id under two keys is two sessions)."""
        return await self.registry.owners_of(session_id)

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
        applied = await self._commit(key, sql.apply, list(messages), [])
        return applied.appended

    async def apply(self, key: str, *, append: Sequence[NewMessage] = (),
                    supersede: Sequence[tuple[int, NewMessage | None]] = (),
                    based_on: int | None = None) -> Applied:
        """Commit a whole sync plan: each `(old_id, new)` replaces an active message in place (`new`
        takes its position; None removes it), then `append` goes at the end. An `old_id` that is
        unknown or already superseded is left alone and its `new` is appended instead (never lost).
        `based_on` is ignored: one process owns the files, so no plan is ever stale."""
        if not append and not supersede:
            return Applied()
        return await self._commit(key, sql.apply, list(append), list(supersede))

    async def record_reply(self, key: str, reply: NewMessage, replaces: Sequence[int] = ()) -> int:
        """Record the model's reply; messages in `replaces` (a regenerated or continued reply) are
        marked superseded by it, and it takes their place when nothing active follows them."""
        return (await self.record(key, reply, replaces)).appended[0]

    async def record(self, key: str, reply: NewMessage, replaces: Sequence[int] = ()) -> Applied:
        """`record_reply`, returning everything committed (to mirror it in working memory)."""
        return await self._commit(key, sql.reply, reply, list(replaces))

    async def save_scores(self, key: str, updates: Sequence[ScoreUpdate]) -> None:
        pending = await self._run(key, sql.save_scores, list(updates), time.time())
        await self.registry.set_pending(key, pending)

    async def touch_accessed(self, key: str, ids: Sequence[int]) -> None:
        """Count a retrieval of these messages (feeds recency and tiering)."""
        if ids:
            await self._run(key, sql.touch, list(ids), time.time())

    async def set_tiers(self, key: str, changes: Sequence[Any]) -> None:
        """Apply consolidation's tier changes (and dropped embeddings) in one transaction."""
        if changes:
            await self._run(key, sql.set_tiers, [(c.tier, int(c.drop_embedding), c.id) for c in changes])

    async def set_persona(self, key: str, text: str) -> None:
        await self._run(key, sql.put_meta, {"persona": text, "persona_updated_at": repr(time.time())}, True)

    async def add_persona_chunks(self, key: str, chunks: Sequence[PersonaChunk]) -> list[PersonaChunk]:
        """Store the chunks whose hash is new, in one transaction; returns those, with ids."""
        if not chunks:
            return []
        return await self._run(key, sql.add_persona_chunks, list(chunks), time.time())

    async def add_summary(self, key: str, *, kind: str, level: int, start_position: int, end_position: int,
                          text: str, embedding: Sequence[float] | np.ndarray | None = None,
                          supersedes: Sequence[int] = ()) -> int:
        row = (kind, level, start_position, end_position, text, time.time(), sql.blob(embedding))
        return await self._run(key, sql.add_summary, row, list(supersedes))

    # ------------------------------------------------------------------ reads (empty for unknown sessions)

    async def messages(self, key: str, *, include_superseded: bool = False, limit: int | None = None,
                       offset: int = 0, newest_first: bool = False) -> list[MessageRow]:
        where = "" if include_superseded else "WHERE superseded_by IS NULL"
        order = "position DESC, id DESC" if newest_first else "position, id"
        query = f"SELECT {sql.COLUMNS} FROM messages {where} ORDER BY {order} LIMIT ? OFFSET ?"
        return await self._read(key, [], sql.rows, query, (-1 if limit is None else limit, offset))

    async def active_tail(self, key: str, n: int) -> list[MessageRow]:
        """The last `n` active turns, oldest first (what working memory holds)."""
        query = (f"SELECT {sql.COLUMNS} FROM messages WHERE superseded_by IS NULL AND kind = 'turn' "
                 "ORDER BY position DESC, id DESC LIMIT ?")
        rows = await self._read(key, [], sql.rows, query, (n,))
        rows.reverse()
        return rows

    async def active_for_index(self, key: str) -> list[MessageRow]:
        """Active turns that have embeddings, in conversation order (to rebuild a search index)."""
        query = (f"SELECT {sql.COLUMNS} FROM messages WHERE superseded_by IS NULL AND kind = 'turn' "
                 "AND embedding IS NOT NULL ORDER BY position, id")
        return await self._read(key, [], sql.rows, query, ())

    async def pending(self, key: str, limit: int) -> list[MessageRow]:
        """Active messages still waiting for background work, oldest first."""
        query = f"SELECT {sql.COLUMNS} FROM {sql.PENDING} ORDER BY id LIMIT ?"
        return await self._read(key, [], sql.rows, query, (limit,))

    async def turns_before(self, key: str, ids: list[int]) -> dict[int, str]:
        """The text of the live turn before each message (`id -> text`; none for the first turn)."""
        return await self._read(key, {}, sql.turns_before, ids)

    async def pending_count(self, key: str) -> int:
        return await self._read(key, 0, sql.pending_count)

    async def persona_chunks(self, key: str) -> list[PersonaChunk]:
        """Every stored chunk of the session's system prompts, oldest first."""
        return await self._read(key, [], sql.persona_chunks)

    async def persona_chunk_hashes(self, key: str) -> set[str]:
        return await self._read(key, set(), sql.persona_chunk_hashes)

    async def get_persona(self, key: str) -> str | None:
        return (await self.meta(key)).get("persona")

    async def meta(self, key: str) -> dict[str, str]:
        """The session's key/value facts: session_id, owner, created_at, persona, persona_updated_at."""
        return await self._read(key, {}, sql.meta)

    async def stats(self, key: str) -> SessionStats:
        return await self._read(key, SessionStats(), sql.stats)

    async def summaries(self, key: str, *, include_superseded: bool = False) -> list[SummaryRow]:
        return await self._read(key, [], sql.summaries, include_superseded)

    # ------------------------------------------------------------------ caches across processes

    async def changed(self, key: str) -> Changes | None:
        """Always None: only this process writes the files (more workers are refused at start)."""
        return None

    def version_seen(self, key: str) -> int | None:
        return None

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
