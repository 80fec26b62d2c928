"""The conversation store on PostgreSQL: one database shared by every replica (`DATABASE_URL`).

The same answers as the SQLite store (`app.memory.store.sqlite.store.Store`) to the same calls:
ids and positions numbered per conversation, empty reads of unknown sessions, `SessionNotFound`
on writes to them. What differs is that several processes write at once:

- every write is one transaction that first takes the session's advisory lock
  (`pg_advisory_xact_lock`), so writes to one conversation are serialised across replicas;
- a write to messages bumps `sessions.seq` and stamps the rows it touched with it (`changed_seq`);
  `apply(..., based_on=v)` refuses with `StaleSession` when the sequence is no longer `v`;
- `changed(key)` tells a process what others wrote since its caches last looked (the cache rule
  in `app.memory.store.protocol`), in one query.

    store = PgStore("postgresql://user:pass@host/memory", pool_size=10)
    await store.open()                      # the pool, then the "store" migrations
    await store.create_session(key, "chat-42")
    applied = await store.apply(key, append=[NewMessage(role="user", content="hi")], based_on=0)
    await store.aclose()
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import replace
from typing import Any

import asyncpg
import numpy as np

from app.memory.store.locks import SessionLocks
from app.memory.records import (Applied, Changes, MessageRow, NewMessage, PersonaChunk, ScoreUpdate, SessionInfo,
                                SessionNotFound, SessionStats, StaleSession, SummaryRow, check_key)
from app.memory.store.postgres import bulk, schema, writes
from app.memory.store.postgres import store_sql as sql
from app.memory.store.postgres.migrations import migrate
from app.memory.store.postgres.pool import open_pool
from app.memory.store.sqlite.registry import like_escape

MAX_HASHES = 512  # hashes looked up per `find_by_hashes` call, as on SQLite
# Every statement here reaches one conversation through its key, so one plan serves all of them:
# planning each call again (custom plans of the write's one statement) cost about half its CPU.
SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan"}


class PgStore(SessionLocks):
    """Sessions and everything in them, in PostgreSQL; per-session locks within the process too."""

    backend = "postgresql"

    def __init__(self, dsn: str, *, pool_size: int = 10, ef_search: int = 100) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self.ef_search = ef_search
        self._pool: asyncpg.Pool | None = None
        self._seen: dict[str, int] = {}

    async def open(self) -> None:
        """Create the pool and bring the database's "store" tables to the current schema."""
        self._pool = await open_pool(self.dsn, min_size=1, max_size=self.pool_size, reset=_keep_session,
                                     server_settings=SERVER_SETTINGS)
        await migrate(self._pool, "store")

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> PgStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the store is closed")
        return self._pool


    async def health(self) -> str:
        sessions = await self.pool.fetchval(sql.COUNT_SESSIONS)
        stats = self.pool_stats()
        return f"ok ({sessions} sessions, pool {stats['in_use']}/{stats['max']} in use)"

    def pool_stats(self) -> dict[str, int]:
        pool = self.pool
        size = pool.get_size()
        return {"size": size, "in_use": size - pool.get_idle_size(), "max": pool.get_max_size()}

    # ------------------------------------------------------------------ sessions

    async def get_session(self, key: str) -> SessionInfo | None:
        return sql.info(await self.pool.fetchrow(sql.GET_SESSION, check_key(key)))

    async def create_session(self, key: str, session_id: str, owner: str | None = None,
                             fingerprint: str | None = None) -> SessionInfo:
        """Create the session's row and meta; an existing session is returned unchanged."""
        now = time.time()
        meta = {"session_id": session_id, "owner": owner, "created_at": repr(now)}
        await self.pool.execute(sql.CREATE_SESSION, check_key(key), session_id, owner, fingerprint, now,
                                list(meta), list(meta.values()))
        return await self.get_session(key)

    async def find_by_fingerprint(self, owner: str | None, fingerprint: str) -> str | None:
        return await self.pool.fetchval(sql.by_fingerprint(owner), fingerprint, *sql.owner_args(owner))

    async def find_by_hashes(self, owner: str | None, hashes: Sequence[str], *, min_matches: int = 2) -> str | None:
        """The owner's session whose recent messages share the most of `hashes` (at least
        `min_matches`, or all of them when fewer are given), most recently active on ties."""
        recent = list(dict.fromkeys(hashes))[-MAX_HASHES:]
        if not recent:
            return None
        row = await self.pool.fetchrow(sql.by_hashes(owner), recent, *sql.owner_args(owner))
        if row is None or row["matches"] < min(min_matches, len(recent)):
            return None
        return row["key"]

    async def claim_session(self, key: str, person: str | None, character: str | None) -> None:
        await self.pool.execute(sql.CLAIM, check_key(key), person, character)

    async def set_scope(self, key: str, scope: str | None) -> None:
        await self.pool.execute(sql.SET_SCOPE, check_key(key), scope)

    async def sessions_of_person(self, owner: str | None, person: str) -> list[SessionInfo]:
        return [SessionInfo(*r) for r in await self.pool.fetch(sql.of_person(owner), person, *sql.owner_args(owner))]

    async def list_sessions(self, owner: str | None, limit: int = 50, offset: int = 0, *,
                            every_owner: bool = False, search: str | None = None) -> list[SessionInfo]:
        """The owner's sessions, most recently active first (`every_owner`: everyone's; `search`:
        only the ids containing it, any case)."""
        args: list[Any] = [limit, offset]
        if search:
            args.append(f"%{like_escape(search)}%")
        if not every_owner:
            args.extend(sql.owner_args(owner))
        query = sql.list_sessions(owner, every_owner, bool(search))
        return [SessionInfo(*r) for r in await self.pool.fetch(query, *args)]

    async def owners_of(self, session_id: str) -> list[str | None]:
        return [r[0] for r in await self.pool.fetch(sql.OWNERS, session_id)]

    async def all_keys(self) -> list[str]:
        return [r[0] for r in await self.pool.fetch(sql.ALL_KEYS)]

    async def keys_with_pending(self) -> list[str]:
        return [r[0] for r in await self.pool.fetch(sql.PENDING_KEYS)]

    async def delete_session(self, key: str) -> bool:
        """Remove the session and everything in it, after a write in flight on it commits."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.LOCK, sql.lock_id(check_key(key)))
            deleted = await conn.execute(sql.DELETE_SESSION, key)
        self._seen.pop(key, None)
        return deleted != "DELETE 0"

    # ------------------------------------------------------------------ writes (one transaction each)

    async def append(self, key: str, messages: Sequence[NewMessage]) -> list[int]:
        """Record new turns at the end of the conversation; returns their ids in order."""
        if not messages:
            return []
        return (await self.apply(key, append=messages)).appended

    async def apply(self, key: str, *, append: Sequence[NewMessage] = (),
                    supersede: Sequence[tuple[int, NewMessage | None]] = (),
                    based_on: int | None = None) -> Applied:
        """Commit a whole sync plan (as `Store.apply`); with `based_on`, only if the conversation is
        still at that version, else `StaleSession` and nothing written."""
        if not append and not supersede:
            return Applied()
        async with self._writing(key, based_on, writes.state_ids(supersede=supersede)) as w:
            await writes.apply(w, list(append), list(supersede))
        return self._wrote(w)

    async def record_reply(self, key: str, reply: NewMessage, replaces: Sequence[int] = ()) -> int:
        return (await self.record(key, reply, replaces)).appended[0]

    async def record(self, key: str, reply: NewMessage, replaces: Sequence[int] = ()) -> Applied:
        """Record the model's reply, superseding `replaces` (it takes their place when nothing
        active follows them); returns everything committed."""
        async with self._writing(key, None, writes.state_ids(replaces=replaces)) as w:
            await writes.reply(w, reply, list(replaces))
        return self._wrote(w)

    async def save_scores(self, key: str, updates: Sequence[ScoreUpdate]) -> None:
        """Background results, and the piece vectors of the active turns among them."""
        columns = sql.score_columns(updates, time.time())
        async with self._writing(key) as w:
            searchable = await w.conn.fetch(sql.SAVE_SCORES, key, w.version, *columns)
            blobs = dict(zip(columns[0], columns[6]))
            records = [v for (i,) in searchable for v in schema.vector_records(key, i, blobs[i])]
            if records:
                await w.conn.executemany(sql.ADD_VECTORS, records)
        self._wrote(w)

    async def touch_accessed(self, key: str, ids: Sequence[int]) -> None:
        """Count a retrieval of these messages (counters only: no lock, no new version)."""
        if ids:
            await self.pool.execute(sql.TOUCH, check_key(key), list(ids), time.time())

    async def set_tiers(self, key: str, changes: Sequence[Any]) -> None:
        """Apply consolidation's tier changes (and dropped embeddings, with their vectors) in one transaction."""
        if not changes:
            return
        async with self._writing(key) as w:
            await w.conn.execute(sql.SET_TIERS, key, w.version, [c.id for c in changes], [c.tier for c in changes],
                                 [bool(c.drop_embedding) for c in changes])
        self._wrote(w)

    async def set_persona(self, key: str, text: str) -> None:
        values = {"persona": text, "persona_updated_at": repr(time.time())}
        async with self._writing(key) as w:
            await w.conn.execute(sql.PUT_META, key, list(values), list(values.values()))

    async def add_persona_chunks(self, key: str, chunks: Sequence[PersonaChunk]) -> list[PersonaChunk]:
        """Store the chunks whose hash is new, in one transaction; returns those, with ids."""
        if not chunks:
            return []
        now = time.time()
        async with self._writing(key) as w:
            known = {r[0] for r in await w.conn.fetch(sql.KNOWN_CHUNKS, key, [c.hash for c in chunks])}
            fresh = writes.new_chunks(chunks, known)
            added = [replace(c, id=w.state["last_chunk"] + n, created_at=now) for n, c in enumerate(fresh, 1)]
            if added:
                await w.conn.execute(sql.ADD_CHUNKS, key, *sql.chunk_columns(added))
                await w.conn.execute(sql.COUNT_CHUNKS, key, added[-1].id)
        return added

    async def add_summary(self, key: str, *, kind: str, level: int, start_position: int, end_position: int,
                          text: str, embedding: Sequence[float] | np.ndarray | None = None,
                          supersedes: Sequence[int] = ()) -> int:
        async with self._writing(key) as w:
            summary_id = await w.conn.fetchval(sql.ADD_SUMMARY, key, kind, level, start_position, end_position,
                                               text, time.time(), sql.blob(embedding))
            if supersedes:
                await w.conn.execute(sql.SUPERSEDE_SUMMARIES, key, list(supersedes))
        return summary_id

    async def import_session(self, info: SessionInfo, meta: dict[str, str], messages: list[MessageRow],
                             summaries: list[SummaryRow], persona_chunks: list[PersonaChunk]) -> bool:
        """Copy one whole conversation as it is (ids, positions, scores, vectors); False when the
        database already holds at least as many of its messages (a partial copy is replaced)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.LOCK, sql.lock_id(check_key(info.key)))
            copied = await bulk.copy_session(conn, info, meta, messages, summaries, persona_chunks)
        self._seen.pop(info.key, None)
        return copied

    # ------------------------------------------------------------------ reads (empty for unknown sessions)

    async def messages(self, key: str, *, include_superseded: bool = False, limit: int | None = None,
                       offset: int = 0, newest_first: bool = False) -> list[MessageRow]:
        query = sql.MESSAGES[include_superseded, newest_first]
        return [sql.message(r) for r in await self.pool.fetch(query, check_key(key), limit, offset)]

    async def active_tail(self, key: str, n: int) -> list[MessageRow]:
        """The last `n` active turns, oldest first (what working memory holds)."""
        return [sql.message(r) for r in reversed(await self.pool.fetch(sql.ACTIVE_TAIL, check_key(key), n))]

    async def active_for_index(self, key: str) -> list[MessageRow]:
        """Active turns that have embeddings, in conversation order (to rebuild a search index)."""
        return [sql.message(r) for r in await self.pool.fetch(sql.FOR_INDEX, check_key(key))]

    async def pending(self, key: str, limit: int) -> list[MessageRow]:
        return [sql.message(r) for r in await self.pool.fetch(sql.PENDING_ROWS, check_key(key), limit)]

    async def turns_before(self, key: str, ids: list[int]) -> dict[int, str]:
        """The text of the live turn before each message (`id -> text`; none for the first turn)."""
        records = await self.pool.fetch(sql.TURNS_BEFORE, check_key(key), list(ids))
        return {i: text for i, text in records if text}

    async def pending_count(self, key: str) -> int:
        return await self.pool.fetchval(sql.PENDING_COUNT, check_key(key))

    async def persona_chunks(self, key: str) -> list[PersonaChunk]:
        return [sql.chunk(r) for r in await self.pool.fetch(sql.PERSONA_CHUNKS, check_key(key))]

    async def persona_chunk_hashes(self, key: str) -> set[str]:
        return {r[0] for r in await self.pool.fetch(sql.CHUNK_HASHES, check_key(key))}

    async def get_persona(self, key: str) -> str | None:
        return (await self.meta(key)).get("persona")

    async def meta(self, key: str) -> dict[str, str]:
        return dict(await self.pool.fetch(sql.META, check_key(key)))

    async def stats(self, key: str) -> SessionStats:
        active, superseded, tokens, pending, first, last = await self.pool.fetchrow(sql.STATS, check_key(key))
        return SessionStats(active, superseded, pending, tokens, first, last)

    async def summaries(self, key: str, *, include_superseded: bool = False) -> list[SummaryRow]:
        return [sql.summary(r) for r in await self.pool.fetch(sql.SUMMARIES[include_superseded], check_key(key))]

    async def search_vectors(self, key: str, query: np.ndarray, k: int, *, ef_search: int | None = None,
                             exact: bool = False) -> list[tuple[int, float]]:
        """The `k` messages of the conversation whose pieces are nearest `query`: (id, best cosine
        similarity), best first. Through the HNSW index, walked until it has found enough of this
        conversation's pieces (sorting them instead is ruled out); `exact`: compare every piece."""
        vector = np.asarray(query, dtype=np.float32)
        async with self.pool.acquire() as conn, conn.transaction():
            if exact:
                records = await conn.fetch(sql.SEARCH_EXACT, check_key(key), vector, 4 * k)
            else:
                await conn.execute(f"SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL enable_sort = off; "
                                   f"SET LOCAL hnsw.ef_search = {int(ef_search or self.ef_search)}")
                records = await conn.fetch(sql.SEARCH, check_key(key), vector, 4 * k)
        best: dict[int, float] = {}
        for message_id, distance in records:
            best[message_id] = max(best.get(message_id, -2.0), 1.0 - distance)
        return sorted(best.items(), key=lambda item: -item[1])[:k]

    # ------------------------------------------------------------------ caches across processes

    async def changed(self, key: str) -> Changes | None:
        """What others wrote since this process's caches last looked (None: nothing, or the first
        look). A conversation not created yet is at version 0, so a plan made on nothing is stale
        once another replica has created and written it."""
        seen = self._seen.get(check_key(key))
        if seen is None:
            self._seen[key] = await self.pool.fetchval(sql.SEQ, key) or 0
            return None
        records = await self.pool.fetch(sql.CHANGED, key, seen)
        version = records[0][0] if records else 0
        if version == seen:
            return None
        if version < seen and records:  # deleted and created again since: every row is new
            records = await self.pool.fetch(sql.CHANGED, key, -1)
        self._seen[key] = version
        return Changes(version, [sql.message(r[1:]) for r in records if r[1] is not None])

    def version_seen(self, key: str) -> int | None:
        return self._seen.get(key)

    # ------------------------------------------------------------------ plumbing

    @asynccontextmanager
    async def _writing(self, key: str, based_on: int | None = None,
                       ids: Sequence[int] = ()) -> AsyncIterator[writes.Write]:
        """A transaction holding the session's advisory lock, with the session's state read after
        the lock (`ids`: the messages the write names). Committed when the block ends."""
        async with self.pool.acquire() as conn:
            await conn.execute(sql.begin_locked(check_key(key)))
            try:
                state = await conn.fetchrow(sql.STATE, key, list(ids))
                if state is None:
                    raise SessionNotFound(key)
                if based_on is not None and state["seq"] != based_on:
                    raise StaleSession(f"{key} is at version {state['seq']}, not {based_on}")
                yield writes.Write(conn, key, state, time.time())
            except BaseException:
                await _rollback(conn)
                raise
            await conn.execute("COMMIT")

    def _wrote(self, w: writes.Write) -> Applied:
        """The cache rule: follow our own write only when nothing else was written since we looked."""
        if self._seen.get(w.key) == w.before:
            self._seen[w.key] = w.version
        return w.out


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection given back: nothing beyond asyncpg's own rollback of an
    open transaction. The store leaves no session state (its settings are SET LOCAL, its locks
    end with their transaction), so the default reset query would be a wasted round trip."""


async def _rollback(conn: asyncpg.Connection) -> None:
    """Roll back a failed write; if the connection cannot (a cancelled query in flight), the pool's
    release rolls it back or closes it."""
    with suppress(asyncpg.InterfaceError, asyncpg.PostgresError):
        if not conn.is_closed() and conn.is_in_transaction():
            await conn.execute("ROLLBACK")
