"""Copying one whole conversation into PostgreSQL as it is, with COPY: ids, positions, what
superseded what, scores, embeddings and piece vectors. Used by `migrate-store`; runs inside the
transaction `PgStore.import_session` opened under the session's advisory lock.
"""

from __future__ import annotations

import asyncpg

from app.memory.records import MessageRow, PersonaChunk, SessionInfo, SummaryRow
from app.memory.store.postgres import store_sql as sql
from app.memory.store.postgres.schema import vector_records
from app.memory.store.postgres.writes import recent

_SESSION = ("key", "session_id", "owner", "fingerprint", "created_at", "last_active", "message_count",
            "token_total", "pending", "person", "character", "scope", "seq", "last_message", "last_summary",
            "last_chunk", "recent_hashes")
_MESSAGE = ("session_key", *sql.COLUMNS.split(", "), "changed_seq")
_SUMMARY = ("session_key", "id", "kind", "level", "start_position", "end_position", "text", "created_at",
            "embedding", "superseded")
_CHUNK = ("session_key", "id", "hash", "text", "token_count", "created_at", "embedding")
_COUNT = "SELECT (SELECT COUNT(*) FROM messages WHERE session_key = $1), EXISTS (SELECT 1 FROM sessions WHERE key = $1)"


async def copy_session(conn: asyncpg.Connection, info: SessionInfo, meta: dict[str, str], messages: list[MessageRow],
                       summaries: list[SummaryRow], chunks: list[PersonaChunk]) -> bool:
    """Replace whatever partial copy of the session exists by this one; False (and nothing
    written) when the database already holds at least as many of its messages."""
    held, exists = await conn.fetchrow(_COUNT, info.key)
    if exists and held >= len(messages):
        return False
    await conn.execute(sql.DELETE_SESSION, info.key)
    key = info.key
    last = (max((m.id for m in messages), default=0), max((s.id for s in summaries), default=0),
            max((c.id for c in chunks), default=0))
    await _copy(conn, "sessions", _SESSION, [(*_session_values(info), 1, *last, window(messages))])
    await _copy(conn, "meta", ("session_key", "key", "value"), [(key, k, v) for k, v in meta.items()])
    await _copy(conn, "messages", _MESSAGE, [(key, *_message_values(m), 1) for m in messages])
    await _copy(conn, "summaries", _SUMMARY, [(key, *_summary_values(s)) for s in summaries])
    await _copy(conn, "persona_chunks", _CHUNK, [(key, *_chunk_values(c)) for c in chunks])
    await _copy(conn, "message_vectors", ("session_key", "message_id", "row", "embedding"), _vectors(key, messages))
    return True


async def _copy(conn: asyncpg.Connection, table: str, columns: tuple[str, ...], records: list[tuple]) -> None:
    if records:
        await conn.copy_records_to_table(table, records=records, columns=list(columns))


def window(messages: list[MessageRow]) -> list[str]:
    """The hashes `find_by_hashes` would hold after these writes: the turns' in the order written."""
    return recent([], [m.content_hash for m in sorted(messages, key=lambda m: m.id) if m.kind == "turn"])


def _vectors(key: str, messages: list[MessageRow]) -> list[tuple]:
    searchable = (m for m in messages if m.superseded_by is None and m.kind == "turn" and m.embedding is not None)
    return [v for m in searchable for v in vector_records(key, m.id, sql.blob(m.embedding))]


def _session_values(info: SessionInfo) -> tuple:
    return (info.key, info.session_id, info.owner, info.fingerprint, info.created_at, info.last_active,
            info.message_count, info.token_total, info.pending, info.person, info.character, info.scope)


def _message_values(m: MessageRow) -> tuple:
    return (m.id, m.position, m.role, m.name, m.content, m.content_hash, m.created_at, m.token_count,
            m.superseded_by, m.kind, m.emotion, m.emotion_confidence, m.emotion_intensity, sql.blob(m.emotion_probs),
            m.importance, sql.blob(m.embedding), m.scored_at, m.tier, m.access_count, m.last_accessed)


def _summary_values(s: SummaryRow) -> tuple:
    return (s.id, s.kind, s.level, s.start_position, s.end_position, s.text, s.created_at, sql.blob(s.embedding),
            bool(s.superseded))


def _chunk_values(c: PersonaChunk) -> tuple:
    return (c.id, c.hash, c.text, c.token_count, c.created_at, sql.blob(c.embedding))
