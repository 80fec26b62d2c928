"""The SQL of one session's file, run on its connection's thread (`migrations.run`): each write one
transaction, each read one query. The store (`app.memory.store.sqlite.store`) only decides what to run where.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from app.memory.store.sqlite.migrations import transaction
from app.memory.records import (Applied, MessageRow, NewMessage, PersonaChunk, ScoreUpdate, SessionStats,
                                SummaryRow)
from app.sessions import message_hash

COLUMNS = ("id, position, role, name, content, content_hash, created_at, token_count, superseded_by, kind, "
            "emotion, emotion_confidence, emotion_intensity, emotion_probs, importance, embedding, scored_at, "
            "tier, access_count, last_accessed")
# Without statistics the planner would walk every active row; the partial index holds only pending ones.
PENDING = "messages INDEXED BY messages_pending WHERE scored_at IS NULL AND superseded_by IS NULL"
_INSERT = ("INSERT INTO messages (position, role, name, content, content_hash, created_at, token_count, kind) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)


def blob(vector: Sequence[float] | np.ndarray | bytes | None) -> bytes | None:
    if vector is None or isinstance(vector, bytes):
        return vector
    return np.asarray(vector, dtype=np.float32).tobytes()


def _row(t: tuple) -> MessageRow:
    row = MessageRow(*t)
    row.emotion_probs = _vector(row.emotion_probs)
    row.embedding = _vector(row.embedding)
    return row


def rows(conn: sqlite3.Connection, query: str, params: tuple) -> list[MessageRow]:
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
        row = MessageRow(0, position, m.role, m.name, m.content, m.content_hash or message_hash(m.role, m.content),
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


def apply(conn: sqlite3.Connection, append: list[NewMessage], supersede: list[tuple[int, NewMessage | None]],
           now: float) -> Applied:
    with transaction(conn):
        tx = _Tx(conn, now)
        for old_id, new in supersede:
            tx.out.replacements.append(_replace(tx, old_id, new))
        tx.out.appended = [tx.insert(message) for message in append]
        tx.out.pending = pending_count(conn)
    return tx.out


def _replace(tx: _Tx, old_id: int, new: NewMessage | None) -> int:
    old = tx.active(old_id)
    if old is None:
        return tx.insert(new) if new is not None else -1
    new_id = tx.insert(new, old[0]) if new is not None else -1
    tx.supersede(old_id, new_id, old[1])
    return new_id


def reply(conn: sqlite3.Connection, reply: NewMessage, replaces: list[int], now: float) -> Applied:
    with transaction(conn):
        tx = _Tx(conn, now)
        olds = {i: old for i in dict.fromkeys(replaces) if (old := tx.active(i)) is not None}
        reply_id = tx.insert(reply, _reply_position(conn, olds))
        for old_id, (_, tokens) in olds.items():
            tx.supersede(old_id, reply_id, tokens)
        tx.out.appended = [reply_id]
        tx.out.pending = pending_count(conn)
    return tx.out


def _reply_position(conn: sqlite3.Connection, olds: dict[int, tuple[int, int]]) -> int | None:
    """The first replaced message's position if only replaced messages sit at or after it, else None (the end)."""
    if not olds:
        return None
    first = min(position for position, _ in olds.values())
    tail = conn.execute("SELECT id FROM messages WHERE superseded_by IS NULL AND position >= ?", (first,))
    return first if all(message_id in olds for (message_id,) in tail) else None


def pending_count(conn: sqlite3.Connection) -> int:
    return _scalar(conn, f"SELECT COUNT(*) FROM {PENDING}", ())


def turns_before(conn: sqlite3.Connection, ids: Sequence[int]) -> dict[int, str]:
    """For each message id, the text of the live turn just before it in the conversation."""
    query = ("SELECT m.id, (SELECT p.content FROM messages p WHERE p.position < m.position AND p.kind = 'turn' "
             "AND p.superseded_by IS NULL ORDER BY p.position DESC LIMIT 1) FROM messages m WHERE m.id = ?")
    out = {}
    for id in ids:
        row = conn.execute(query, (id,)).fetchone()
        if row and row[1]:
            out[row[0]] = row[1]
    return out


def save_scores(conn: sqlite3.Connection, updates: list[ScoreUpdate], now: float) -> int:
    params = [(u.emotion, u.emotion_confidence, u.emotion_intensity, blob(u.emotion_probs), u.importance,
               blob(u.embedding), now if u.scored_at is None else u.scored_at, u.id) for u in updates]
    with transaction(conn):
        conn.executemany("UPDATE messages SET emotion = ?, emotion_confidence = ?, emotion_intensity = ?, "
                         "emotion_probs = ?, importance = ?, embedding = ?, scored_at = ? WHERE id = ?", params)
        return pending_count(conn)


def touch(conn: sqlite3.Connection, ids: list[int], now: float) -> None:
    with transaction(conn):
        conn.executemany("UPDATE messages SET access_count = access_count + 1, last_accessed = ? WHERE id = ?",
                         [(now, i) for i in ids])


def set_tiers(conn: sqlite3.Connection, rows: list[tuple[str, int, int]]) -> None:
    with transaction(conn):
        conn.executemany("UPDATE messages SET tier = ?, embedding = CASE WHEN ? THEN NULL ELSE embedding END "
                         "WHERE id = ?", rows)


def put_meta(conn: sqlite3.Connection, values: dict[str, str | None], overwrite: bool) -> None:
    verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
    with transaction(conn):
        conn.executemany(f"{verb} INTO meta (key, value) VALUES (?, ?)", list(values.items()))


def meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {k: v for k, v in conn.execute("SELECT key, value FROM meta") if v is not None}


def stats(conn: sqlite3.Connection) -> SessionStats:
    active, superseded, tokens, first, last = conn.execute(
        "SELECT COALESCE(SUM(superseded_by IS NULL), 0), COALESCE(SUM(superseded_by IS NOT NULL), 0), "
        "COALESCE(SUM(CASE WHEN superseded_by IS NULL THEN token_count END), 0), MIN(created_at), MAX(created_at) "
        "FROM messages").fetchone()
    return SessionStats(active, superseded, pending_count(conn), tokens, first, last)


def add_summary(conn: sqlite3.Connection, row: tuple, supersedes: list[int]) -> int:
    with transaction(conn):
        summary_id = conn.execute("INSERT INTO summaries (kind, level, start_position, end_position, text, "
                                  "created_at, embedding) VALUES (?, ?, ?, ?, ?, ?, ?)", row).lastrowid
        conn.executemany("UPDATE summaries SET superseded = 1 WHERE id = ?", [(i,) for i in supersedes])
    return summary_id


def summaries(conn: sqlite3.Connection, include_superseded: bool) -> list[SummaryRow]:
    where = "" if include_superseded else "WHERE superseded = 0"
    rows = conn.execute("SELECT id, kind, level, start_position, end_position, text, created_at, embedding, "
                        f"superseded FROM summaries {where} ORDER BY level, start_position, id")
    return [SummaryRow(*t[:7], _vector(t[7]), bool(t[8])) for t in rows]


def add_persona_chunks(conn: sqlite3.Connection, chunks: list[PersonaChunk], now: float) -> list[PersonaChunk]:
    added = []
    with transaction(conn):
        for c in chunks:
            cursor = conn.execute("INSERT OR IGNORE INTO persona_chunks (hash, text, token_count, created_at, "
                                  "embedding) VALUES (?, ?, ?, ?, ?)",
                                  (c.hash, c.text, c.token_count, now, blob(c.embedding)))
            if cursor.rowcount:
                added.append(replace(c, id=cursor.lastrowid, created_at=now))
    return added


def persona_chunks(conn: sqlite3.Connection) -> list[PersonaChunk]:
    rows = conn.execute("SELECT id, hash, text, token_count, created_at, embedding FROM persona_chunks ORDER BY id")
    return [PersonaChunk(id=i, hash=h, text=t, token_count=n, created_at=c, embedding=_vector(e))
            for i, h, t, n, c, e in rows]


def persona_chunk_hashes(conn: sqlite3.Connection) -> set[str]:
    return {h for (h,) in conn.execute("SELECT hash FROM persona_chunks")}
