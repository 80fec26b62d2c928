"""The conversation store's tables on PostgreSQL: numbered migrations of kind ``"store"``.

Every conversation's rows carry its `session_key`; ids (messages, summaries, persona chunks) are
numbered per conversation from counters on the session row, exactly as in a SQLite file, so the
API gives the same ids on both backends and `migrate-store` copies them as they are.

`sessions.recent_hashes` holds the content hashes of the last turns written (`find_by_hashes`,
through a GIN index). `sessions.seq` is the conversation's write sequence; each message row remembers in `changed_seq`
the write that last inserted or changed it, so another replica fetches exactly what it missed
(`PgStore.changed`). Child rows go with their session (ON DELETE CASCADE).

A shipped migration is never edited: the next change is the next function here, with a test that
upgrades a database the previous one left.
"""

from __future__ import annotations

import asyncpg
import numpy as np

from app.memory.store.postgres.migrations import migration

DIM = 384  # all-MiniLM-L6-v2: the width of every stored vector


@migration("store")
async def m001_initial(conn: asyncpg.Connection) -> None:
    await conn.execute("""
        CREATE TABLE sessions (
            key TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            owner TEXT,
            fingerprint TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            last_active DOUBLE PRECISION NOT NULL,
            message_count INTEGER NOT NULL DEFAULT 0,
            token_total BIGINT NOT NULL DEFAULT 0,
            pending INTEGER NOT NULL DEFAULT 0,
            person TEXT,
            character TEXT,
            scope TEXT,
            seq BIGINT NOT NULL DEFAULT 0,
            last_message INTEGER NOT NULL DEFAULT 0,
            last_summary INTEGER NOT NULL DEFAULT 0,
            last_chunk INTEGER NOT NULL DEFAULT 0,
            recent_hashes TEXT[] NOT NULL DEFAULT '{}'
        );
        CREATE INDEX sessions_owner_fingerprint ON sessions (owner, fingerprint);
        CREATE INDEX sessions_owner_active ON sessions (owner, last_active);
        CREATE INDEX sessions_owner_person ON sessions (owner, person, last_active);
        CREATE INDEX sessions_session_id ON sessions (session_id);
        CREATE INDEX sessions_active ON sessions (last_active);
        CREATE INDEX sessions_recent_hashes ON sessions USING gin (recent_hashes);

        CREATE TABLE messages (
            session_key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
            id INTEGER NOT NULL,
            position INTEGER NOT NULL,
            role TEXT NOT NULL,
            name TEXT,
            content TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            token_count INTEGER NOT NULL DEFAULT 0,
            superseded_by INTEGER,
            kind TEXT NOT NULL DEFAULT 'turn',
            emotion TEXT,
            emotion_confidence DOUBLE PRECISION,
            emotion_intensity DOUBLE PRECISION,
            emotion_probs BYTEA,
            importance DOUBLE PRECISION,
            embedding BYTEA,
            scored_at DOUBLE PRECISION,
            tier TEXT NOT NULL DEFAULT 'working',
            access_count INTEGER NOT NULL DEFAULT 0,
            last_accessed DOUBLE PRECISION,
            changed_seq BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (session_key, id)
        );
        CREATE INDEX messages_position ON messages (session_key, position);
        CREATE INDEX messages_active_turns ON messages (session_key, position)
            WHERE superseded_by IS NULL AND kind = 'turn';
        CREATE INDEX messages_pending ON messages (session_key, id)
            WHERE scored_at IS NULL AND superseded_by IS NULL;
        CREATE INDEX messages_changed ON messages (session_key, changed_seq);

        CREATE TABLE meta (
            session_key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT,
            PRIMARY KEY (session_key, key)
        );

        CREATE TABLE summaries (
            session_key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
            id INTEGER NOT NULL,
            kind TEXT NOT NULL,
            level INTEGER NOT NULL DEFAULT 0,
            start_position INTEGER NOT NULL,
            end_position INTEGER NOT NULL,
            text TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            embedding BYTEA,
            superseded BOOLEAN NOT NULL DEFAULT FALSE,
            PRIMARY KEY (session_key, id)
        );

        CREATE TABLE persona_chunks (
            session_key TEXT NOT NULL REFERENCES sessions (key) ON DELETE CASCADE,
            id INTEGER NOT NULL,
            hash TEXT NOT NULL,
            text TEXT NOT NULL,
            token_count INTEGER NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL,
            embedding BYTEA,
            PRIMARY KEY (session_key, id),
            UNIQUE (session_key, hash)
        );

    """)


@migration("store")
async def m002_message_vectors(conn: asyncpg.Connection) -> None:
    """Piece vectors of active turns for database-side search, filled from the stored embeddings."""
    await conn.execute(f"""
        CREATE TABLE message_vectors (
            session_key TEXT NOT NULL,
            message_id INTEGER NOT NULL,
            row SMALLINT NOT NULL,
            embedding vector({DIM}) NOT NULL,
            PRIMARY KEY (session_key, message_id, row),
            FOREIGN KEY (session_key, message_id) REFERENCES messages (session_key, id) ON DELETE CASCADE
        );
        CREATE INDEX message_vectors_hnsw ON message_vectors USING hnsw (embedding vector_cosine_ops);
    """)
    rows = await conn.fetch("SELECT session_key, id, embedding FROM messages WHERE embedding IS NOT NULL "
                            "AND superseded_by IS NULL AND kind = 'turn'")
    records = [vector for r in rows for vector in vector_records(r[0], r[1], r[2])]
    if records:
        await conn.copy_records_to_table("message_vectors", records=records)


@migration("store")
async def m003_lighter_vector_index(conn: asyncpg.Connection) -> None:
    """The HNSW index over each message's whole vector (row 0) only, with a smaller graph.

    Keeping the first index current cost the server 2-4 ms of CPU per vector written, several
    vectors per turn, on the cores that serve requests, while the search that answers requests
    is the in-RAM scan (bench/README.md). One vector per message and `m = 8, ef_construction =
    32` cut that upkeep by most of it; `search_vectors` walks the index over whole messages,
    and its exact form still compares every piece.
    """
    await conn.execute("""
        DROP INDEX IF EXISTS message_vectors_hnsw;
        CREATE INDEX message_vectors_hnsw ON message_vectors USING hnsw (embedding vector_cosine_ops)
            WITH (m = 8, ef_construction = 32) WHERE row = 0;
    """)


def vector_records(key: str, message_id: int, blob: bytes | None) -> list[tuple[str, int, int, np.ndarray]]:
    """`message_vectors` rows for one message's embedding (k pieces of DIM float32), none if it has none."""
    if blob is None or len(blob) % (4 * DIM):
        return []
    pieces = np.frombuffer(blob, dtype=np.float32).reshape(-1, DIM)
    return [(key, message_id, row, piece) for row, piece in enumerate(pieces)]
