"""The SQL of the PostgreSQL store and the conversions between its rows and the records.

Statements are constant text, so asyncpg prepares each once per connection and reuses it. One
conversation's rows are always reached through `session_key` first (every index starts with it).
Writes run on a connection inside `PgStore._writing` (transaction + the session's advisory lock).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import asyncpg
import numpy as np

from app.memory.records import MessageRow, PersonaChunk, ScoreUpdate, SessionInfo, SummaryRow

COLUMNS = ("id, position, role, name, content, content_hash, created_at, token_count, superseded_by, kind, "
           "emotion, emotion_confidence, emotion_intensity, emotion_probs, importance, embedding, scored_at, "
           "tier, access_count, last_accessed")
SESSION_COLUMNS = ("key, session_id, owner, fingerprint, created_at, last_active, message_count, token_total, "
                   "pending, person, character, scope")
PENDING = "session_key = $1 AND scored_at IS NULL AND superseded_by IS NULL"
ACTIVE_TURNS = "session_key = $1 AND superseded_by IS NULL AND kind = 'turn'"

# --------------------------------------------------------------------------- writes

def begin_locked(key: str) -> str:
    """BEGIN and the session's transaction-scoped advisory lock, in one round trip (simple query:
    the lock id is an integer we computed, never caller text)."""
    return f"BEGIN; SELECT pg_advisory_xact_lock({lock_id(key)})"


LOCK = "SELECT pg_advisory_xact_lock($1)"
# The session as a write starts (after the lock, so in a fresh snapshot): its counters, the last
# position, and of the ids in $2 those still active (position, tokens, pending); `tail_clear`: no
# other active message sits at or after the first of them (a reply then takes their place).
STATE = (
    "SELECT s.seq, s.last_message, s.last_summary, s.last_chunk, s.recent_hashes, "
    "(SELECT COALESCE(MAX(position), 0) FROM messages WHERE session_key = $1) AS last_position, "
    "a.ids, a.positions, a.tokens, a.pending, NOT EXISTS (SELECT 1 FROM messages WHERE session_key = $1 "
    "AND superseded_by IS NULL AND position >= a.first AND NOT (id = ANY($2::int[]))) AS tail_clear "
    "FROM sessions s, LATERAL (SELECT array_agg(id) AS ids, array_agg(position) AS positions, "
    "array_agg(token_count) AS tokens, array_agg(scored_at IS NULL) AS pending, MIN(position) AS first "
    "FROM messages WHERE session_key = $1 AND id = ANY($2::int[]) AND superseded_by IS NULL) AS a "
    "WHERE s.key = $1")
_PENDING_NOW = f"(SELECT COUNT(*) FROM messages WHERE {PENDING})"
# A whole sync plan in one statement: new rows, superseded ones (their vectors dropped), the
# session's counters. Every part reads the snapshot before the statement, hence the pending
# count plus $19 (new rows less the pending ones superseded).
WRITE = (
    "WITH ins AS (INSERT INTO messages (session_key, id, position, role, name, content, content_hash, created_at, "
    "token_count, kind, changed_seq) SELECT $1, *, $2 FROM unnest($3::int[], $4::int[], $5::text[], $6::text[], "
    "$7::text[], $8::text[], $9::float8[], $10::int[], $11::text[])), "
    "sup AS (UPDATE messages m SET superseded_by = u.by, changed_seq = $2 FROM unnest($12::int[], $13::int[]) "
    "AS u(id, by) WHERE m.session_key = $1 AND m.id = u.id), "
    "vec AS (DELETE FROM message_vectors WHERE session_key = $1 AND message_id = ANY($12::int[])) "
    "UPDATE sessions SET seq = $2, last_message = $14, message_count = message_count + $15, "
    "token_total = token_total + $16, last_active = $17, recent_hashes = $18, "
    f"pending = {_PENDING_NOW} + $19 WHERE key = $1 RETURNING pending")
# Background results; returns the ids whose vectors are searchable (active turns).
SAVE_SCORES = (
    "WITH pre AS (SELECT COUNT(*) AS n FROM messages WHERE session_key = $1 AND id = ANY($3::int[]) "
    "AND scored_at IS NULL AND superseded_by IS NULL), "
    "upd AS (UPDATE messages m SET emotion = u.emotion, emotion_confidence = u.confidence, "
    "emotion_intensity = u.intensity, emotion_probs = u.probs, importance = u.importance, "
    "embedding = u.embedding, scored_at = u.scored_at, changed_seq = $2 "
    "FROM unnest($3::int[], $4::text[], $5::float8[], $6::float8[], $7::bytea[], $8::float8[], $9::bytea[], "
    "$10::float8[]) AS u(id, emotion, confidence, intensity, probs, importance, embedding, scored_at) "
    "WHERE m.session_key = $1 AND m.id = u.id RETURNING m.id, m.superseded_by IS NULL AND m.kind = 'turn' AS ok), "
    "vec AS (DELETE FROM message_vectors WHERE session_key = $1 AND message_id = ANY($3::int[])), "
    f"ses AS (UPDATE sessions SET seq = $2, pending = {_PENDING_NOW} - (SELECT n FROM pre) WHERE key = $1) "
    "SELECT id FROM upd WHERE ok")
ADD_VECTORS = "INSERT INTO message_vectors (session_key, message_id, row, embedding) VALUES ($1, $2, $3, $4)"
SET_TIERS = (
    "WITH upd AS (UPDATE messages m SET tier = u.tier, changed_seq = $2, "
    "embedding = CASE WHEN u.drop THEN NULL ELSE m.embedding END "
    "FROM unnest($3::int[], $4::text[], $5::bool[]) AS u(id, tier, drop) WHERE m.session_key = $1 AND m.id = u.id), "
    "vec AS (DELETE FROM message_vectors v USING unnest($3::int[], $5::bool[]) AS u(id, drop) "
    "WHERE v.session_key = $1 AND v.message_id = u.id AND u.drop) "
    "UPDATE sessions SET seq = $2 WHERE key = $1")
TOUCH = ("UPDATE messages SET access_count = access_count + 1, last_accessed = $3 "
         "WHERE session_key = $1 AND id = ANY($2::int[])")
PUT_META = ("INSERT INTO meta (session_key, key, value) SELECT $1, k, v FROM unnest($2::text[], $3::text[]) AS u(k, v) "
            "ON CONFLICT (session_key, key) DO UPDATE SET value = EXCLUDED.value")
ADD_SUMMARY = ("WITH n AS (UPDATE sessions SET last_summary = last_summary + 1 WHERE key = $1 RETURNING last_summary) "
               "INSERT INTO summaries (session_key, id, kind, level, start_position, end_position, text, created_at, "
               "embedding) SELECT $1, n.last_summary, $2, $3, $4, $5, $6, $7, $8 FROM n RETURNING id")
SUPERSEDE_SUMMARIES = "UPDATE summaries SET superseded = TRUE WHERE session_key = $1 AND id = ANY($2::int[])"
KNOWN_CHUNKS = "SELECT hash FROM persona_chunks WHERE session_key = $1 AND hash = ANY($2::text[])"
ADD_CHUNKS = ("INSERT INTO persona_chunks (session_key, id, hash, text, token_count, created_at, embedding) "
              "SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::int[], $6::float8[], $7::bytea[])")
COUNT_CHUNKS = "UPDATE sessions SET last_chunk = $2 WHERE key = $1"

# --------------------------------------------------------------------------- sessions

CREATE_SESSION = ("WITH s AS (INSERT INTO sessions (key, session_id, owner, fingerprint, created_at, last_active) "
                  "VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (key) DO NOTHING RETURNING key) "
                  "INSERT INTO meta (session_key, key, value) SELECT s.key, u.k, u.v FROM s, "
                  "unnest($6::text[], $7::text[]) AS u(k, v)")
GET_SESSION = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE key = $1"
CLAIM = ("UPDATE sessions SET person = COALESCE(person, $2), character = COALESCE(character, $3) WHERE key = $1")
SET_SCOPE = "UPDATE sessions SET scope = $2 WHERE key = $1"
OWNERS = "SELECT DISTINCT owner FROM sessions WHERE session_id = $1"
COUNT_SESSIONS = "SELECT COUNT(*) FROM sessions"
ALL_KEYS = "SELECT key FROM sessions ORDER BY last_active DESC"
PENDING_KEYS = "SELECT key FROM sessions WHERE pending > 0 ORDER BY last_active DESC"
DELETE_SESSION = "DELETE FROM sessions WHERE key = $1"


def owner_clause(owner: str | None, n: int) -> str:
    """`owner IS NULL` or `owner = $n`: two texts rather than IS NOT DISTINCT FROM, which no index serves."""
    return "owner IS NULL" if owner is None else f"owner = ${n}"


def owner_args(owner: str | None) -> tuple:
    return () if owner is None else (owner,)


def of_person(owner: str | None) -> str:
    return (f"SELECT {SESSION_COLUMNS} FROM sessions WHERE {owner_clause(owner, 2)} AND person = $1 "
            "ORDER BY last_active DESC")


def by_fingerprint(owner: str | None) -> str:
    return (f"SELECT key FROM sessions WHERE {owner_clause(owner, 2)} AND fingerprint = $1 "
            "ORDER BY last_active DESC LIMIT 1")


def by_hashes(owner: str | None) -> str:
    """Sessions whose recent hashes overlap $1 (GIN), the most matches first, most recent on ties."""
    return ("SELECT key, (SELECT COUNT(*) FROM unnest(recent_hashes) AS h WHERE h = ANY($1::text[])) AS matches "
            f"FROM sessions WHERE recent_hashes && $1::text[] AND {owner_clause(owner, 2)} "
            "ORDER BY matches DESC, last_active DESC LIMIT 1")


def list_sessions(owner: str | None, every_owner: bool, search: bool) -> str:
    """Most recently active first; $1 limit, $2 offset, then the search pattern, then the owner."""
    clauses = [] if every_owner else [owner_clause(owner, 4 if search else 3)]
    if search:
        clauses.append("session_id ILIKE $3 ESCAPE '\\'")
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    return f"SELECT {SESSION_COLUMNS} FROM sessions {where}ORDER BY last_active DESC LIMIT $1 OFFSET $2"


def info(record: asyncpg.Record | None) -> SessionInfo | None:
    return SessionInfo(*record) if record is not None else None


def lock_id(key: str) -> int:
    """The session's advisory lock: a signed 64-bit hash of its key."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


# --------------------------------------------------------------------------- reads

MESSAGES = {(superseded, newest): f"SELECT {COLUMNS} FROM messages WHERE session_key = $1 "
            f"{'' if superseded else 'AND superseded_by IS NULL '}"
            f"ORDER BY {'position DESC, id DESC' if newest else 'position, id'} LIMIT $2 OFFSET $3"
            for superseded in (False, True) for newest in (False, True)}
ACTIVE_TAIL = f"SELECT {COLUMNS} FROM messages WHERE {ACTIVE_TURNS} ORDER BY position DESC, id DESC LIMIT $2"
FOR_INDEX = f"SELECT {COLUMNS} FROM messages WHERE {ACTIVE_TURNS} AND embedding IS NOT NULL ORDER BY position, id"
PENDING_ROWS = f"SELECT {COLUMNS} FROM messages WHERE {PENDING} ORDER BY id LIMIT $2"
PENDING_COUNT = f"SELECT COUNT(*) FROM messages WHERE {PENDING}"
TURNS_BEFORE = ("SELECT m.id, (SELECT p.content FROM messages p WHERE p.session_key = $1 AND p.superseded_by IS NULL "
                "AND p.kind = 'turn' AND p.position < m.position ORDER BY p.position DESC LIMIT 1) "
                "FROM messages m WHERE m.session_key = $1 AND m.id = ANY($2::int[])")
PERSONA_CHUNKS = ("SELECT id, hash, text, token_count, created_at, embedding FROM persona_chunks "
                  "WHERE session_key = $1 ORDER BY id")
CHUNK_HASHES = "SELECT hash FROM persona_chunks WHERE session_key = $1"
META = "SELECT key, value FROM meta WHERE session_key = $1 AND value IS NOT NULL"
STATS = ("SELECT COUNT(*) FILTER (WHERE superseded_by IS NULL), COUNT(*) FILTER (WHERE superseded_by IS NOT NULL), "
         "COALESCE(SUM(token_count) FILTER (WHERE superseded_by IS NULL), 0), "
         "COUNT(*) FILTER (WHERE scored_at IS NULL AND superseded_by IS NULL), MIN(created_at), MAX(created_at) "
         "FROM messages WHERE session_key = $1")
SUMMARIES = {superseded: "SELECT id, kind, level, start_position, end_position, text, created_at, embedding, "
             f"superseded FROM summaries WHERE session_key = $1 {'' if superseded else 'AND NOT superseded '}"
             "ORDER BY level, start_position, id" for superseded in (False, True)}
# One query on the hot path: the sequence, and when it moved past $2 every message row changed since.
CHANGED = (f"SELECT s.seq, {', '.join('m.' + c for c in COLUMNS.split(', '))} FROM sessions s "
           "LEFT JOIN messages m ON m.session_key = s.key AND s.seq <> $2 AND m.changed_seq > $2 "
           "WHERE s.key = $1 ORDER BY m.position, m.id")
SEQ = "SELECT seq FROM sessions WHERE key = $1"
# Through the HNSW index, which holds each message's whole vector (row 0: migration m003).
SEARCH = ("SELECT message_id, embedding <=> $2 AS distance FROM message_vectors WHERE session_key = $1 "
          "AND row = 0 ORDER BY embedding <=> $2 LIMIT $3")
# The same, exact: `+ 0` keeps the HNSW index from supplying the order, so every piece is compared.
SEARCH_EXACT = ("SELECT message_id, embedding <=> $2 AS distance FROM message_vectors WHERE session_key = $1 "
                "ORDER BY (embedding <=> $2) + 0 LIMIT $3")


def vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32)


def blob(values: Sequence[float] | np.ndarray | bytes | None) -> bytes | None:
    if values is None or isinstance(values, bytes):
        return values
    return np.asarray(values, dtype=np.float32).tobytes()


def message(record: asyncpg.Record | tuple) -> MessageRow:
    row = MessageRow(*record)
    row.emotion_probs = vector(row.emotion_probs)
    row.embedding = vector(row.embedding)
    return row


def summary(record: asyncpg.Record) -> SummaryRow:
    return SummaryRow(*record[:7], vector(record[7]), bool(record[8]))


def chunk(record: asyncpg.Record) -> PersonaChunk:
    i, h, text, tokens, created, embedding = record
    return PersonaChunk(id=i, hash=h, text=text, token_count=tokens, created_at=created, embedding=vector(embedding))


def columns(rows: Sequence[MessageRow]) -> list[list]:
    """The WRITE arrays of new rows ($3-$11)."""
    fields = ("id", "position", "role", "name", "content", "content_hash", "created_at", "token_count", "kind")
    return [[getattr(r, f) for r in rows] for f in fields]


def score_columns(updates: Sequence[ScoreUpdate], now: float) -> list[list]:
    """The SAVE_SCORES arrays ($3-$10) of background results (`scored_at` None: now)."""
    return [[u.id for u in updates], [u.emotion for u in updates], [u.emotion_confidence for u in updates],
            [u.emotion_intensity for u in updates], [blob(u.emotion_probs) for u in updates],
            [u.importance for u in updates], [blob(u.embedding) for u in updates],
            [now if u.scored_at is None else u.scored_at for u in updates]]


def chunk_columns(chunks: Sequence[PersonaChunk]) -> list[list]:
    """The ADD_CHUNKS arrays ($2-$7) of chunks with their ids set."""
    return [[c.id for c in chunks], [c.hash for c in chunks], [c.text for c in chunks],
            [c.token_count for c in chunks], [c.created_at for c in chunks], [blob(c.embedding) for c in chunks]]
