"""The knowledge base in PostgreSQL: `documents` and `document_chunks`, chunk vectors as pgvector
`vector(384)`, the same interface and the same all-or-nothing rule as the SQLite store.

    store = PgDocumentStore(pool)        # the process's pool (app.memory.store.postgres.shared)
    await store.open()                   # the migrations of kind "documents"
    await store.indexed(doc_id, chunks, vectors, pages)

A document's chunks are written in the transaction that marks it indexed, and removed in the one
that marks it failed or deletes it. Two replicas indexing the same document queue on its row
(the status UPDATE comes first), so its chunks are never a mix of two runs. Each of those
transactions sends a NOTIFY on `documents_changed` ("<origin> <document id>") as it commits;
`follow` listens on one pooled connection and tells the library of other replicas' changes. If
that connection dies (the server restarted, the connection was cut), `follow` listens again on a
new one as soon as it can, then reports `EVERYTHING`: notices sent in between were lost, so the
library reloads all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any

import asyncpg
import numpy as np

from app.documents.chunk import Chunk
from app.documents.store import COLUMNS, EVERYTHING, Document, StoredChunk, matching
from app.memory.store.postgres.migrations import migrate, migration

log = logging.getLogger(__name__)

KIND = "documents"
RELISTEN_WAIT = (0.1, 5.0)  # seconds between attempts to listen again: first, at most
CHANNEL = "documents_changed"
NAMES = [f.name for f in fields(Document)]
CHUNK_COLUMNS = "id, document_id, ordinal, page, heading, text, token_count, is_table, embedding"


@migration(KIND)
async def m001_documents(conn: asyncpg.Connection) -> None:
    # As SQLite's documents schema; headings as a text array, the vector as pgvector's type.
    await conn.execute("""
        CREATE TABLE documents (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            source TEXT NOT NULL,
            path TEXT UNIQUE,
            owner TEXT,
            session_id TEXT,
            bytes BIGINT NOT NULL,
            sha256 TEXT NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            pages INTEGER,
            chunk_count INTEGER NOT NULL DEFAULT 0,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX documents_owner ON documents (owner, session_id);
        CREATE TABLE document_chunks (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            page INTEGER,
            heading TEXT[] NOT NULL,
            text TEXT NOT NULL,
            token_count INTEGER NOT NULL,
            is_table BOOLEAN NOT NULL DEFAULT false,
            embedding vector(384) NOT NULL
        );
        CREATE INDEX document_chunks_document ON document_chunks (document_id, ordinal);
    """)


class PgDocumentStore:
    """`pool` is the process's pool, not owned here (closing the store leaves it open)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.origin = secrets.token_hex(8)  # this store's own notices are not news to it
        self._listening: tuple[asyncpg.Connection, Callable] | None = None
        self._tell: Callable[[str], None] | None = None
        self._relisten: asyncio.Task | None = None
        self.relistens = 0  # how many times the listener was lost and set up again

    async def open(self) -> None:
        await migrate(self.pool, KIND)

    async def follow(self, changed: Callable[[str], None]) -> None:
        """Call `changed(doc_id)` for each document another store indexes, fails or deletes, and
        `changed(EVERYTHING)` after listening was lost and set up again."""
        self._tell = changed
        await self._listen()

    async def _listen(self) -> None:
        def heard(_conn, _pid, _channel, payload: str) -> None:
            origin, _, doc_id = payload.partition(" ")
            if origin != self.origin and self._tell is not None:
                self._tell(doc_id)
        conn = await self.pool.acquire()
        await conn.add_listener(CHANNEL, heard)
        conn.add_termination_listener(self._lost)
        self._listening = (conn, heard)

    def _lost(self, conn: asyncpg.Connection) -> None:
        if self._listening is None or self._listening[0] is not conn or self._tell is None:
            return  # closed on purpose
        self._listening = None
        log.warning("lost the connection listening for document changes; listening again")
        self._relisten = asyncio.get_running_loop().create_task(self._listen_again(conn), name="documents-relisten")

    async def _listen_again(self, dead: asyncpg.Connection) -> None:
        with contextlib.suppress(Exception):
            await self.pool.release(dead)
        wait, most = RELISTEN_WAIT
        while self._tell is not None:
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.sleep(wait)
                wait = min(wait * 2, most)
                continue
            self.relistens += 1
            self._tell(EVERYTHING)  # what was sent while nobody listened
            return

    async def aclose(self) -> None:
        self._tell = None
        if self._relisten is not None:
            self._relisten.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relisten
        if self._listening is not None:
            conn, heard = self._listening
            self._listening = None
            conn.remove_termination_listener(self._lost)
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await conn.remove_listener(CHANNEL, heard)
            await self.pool.release(conn)

    async def _changed(self, conn: asyncpg.Connection, doc_id: str) -> None:
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{self.origin} {doc_id}")

    async def insert(self, doc: Document) -> None:
        """Add `doc`; one whose id is taken already is left as it is (replicas scanning one folder at once)."""
        doc.created_at = doc.updated_at = time.time()
        values = asdict(doc)
        marks = ", ".join(f"${i}" for i in range(1, len(NAMES) + 1))
        await self.pool.execute(f"INSERT INTO documents ({', '.join(NAMES)}) VALUES ({marks}) ON CONFLICT DO NOTHING",
                                *[values[n] for n in NAMES])

    async def get(self, doc_id: str) -> Document | None:
        rows = await self._select("WHERE id = $1", [doc_id])
        return rows[0] if rows else None

    async def by_path(self, path: str) -> Document | None:
        rows = await self._select("WHERE path = $1", [path])
        return rows[0] if rows else None

    async def documents(self, *, source: str | None = None, statuses: tuple[str, ...] = ()) -> list[Document]:
        """Every document, or those from `source` ("upload", "folder") in one of `statuses`."""
        conditions, values = matching(source, statuses)
        return await self._select(numbered(f"WHERE {' AND '.join(conditions)}") if conditions else "", values)

    async def _select(self, where: str, args: list[Any]) -> list[Document]:
        rows = await self.pool.fetch(f"SELECT {COLUMNS} FROM documents {where} ORDER BY created_at, id", *args)
        return [Document(**dict(row)) for row in rows]

    async def set_status(self, doc_id: str, status: str) -> None:
        await _update(self.pool, doc_id, {"status": status})

    async def replace_file(self, doc: Document) -> None:
        """A folder file that changed: pending again, with its new size and hash (old chunks kept
        until the new ones are ready)."""
        await _update(self.pool, doc.id, {"status": "pending", "error": None, "bytes": doc.bytes,
                                          "sha256": doc.sha256})

    async def indexed(self, doc_id: str, chunks: list[Chunk], vectors: np.ndarray, pages: int) -> list[StoredChunk]:
        """Replace the document's chunks and mark it indexed, in one transaction; [] if it was deleted."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await _update(conn, doc_id, {"status": "indexed", "error": None, "pages": pages,
                                                "chunk_count": len(chunks)}):
                return []
            await conn.execute("DELETE FROM document_chunks WHERE document_id = $1", doc_id)
            await conn.executemany(
                "INSERT INTO document_chunks (document_id, ordinal, page, heading, text, token_count, is_table, "
                "embedding) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [(doc_id, i, c.page, list(c.heading), c.text, c.tokens, c.table, np.asarray(v, dtype=np.float32))
                 for i, (c, v) in enumerate(zip(chunks, vectors))])
            await self._changed(conn, doc_id)
            return await _chunks(conn, doc_id, -1, 0)

    async def fail(self, doc_id: str, reason: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM document_chunks WHERE document_id = $1", doc_id)
            await _update(conn, doc_id, {"status": "failed", "error": reason, "chunk_count": 0})
            await self._changed(conn, doc_id)

    async def delete(self, doc_id: str) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM document_chunks WHERE document_id = $1", doc_id)
            await self._changed(conn, doc_id)
            return await conn.execute("DELETE FROM documents WHERE id = $1", doc_id) != "DELETE 0"

    async def chunks(self, doc_id: str | None = None, limit: int = -1, offset: int = 0) -> list[StoredChunk]:
        """One document's chunks in order, or (None) every indexed document's, for the search index."""
        async with self.pool.acquire() as conn:
            return await _chunks(conn, doc_id, limit, offset)


def numbered(sql: str) -> str:
    """SQLite's "?" marks as PostgreSQL's $1, $2... (the text around them has no "?" of its own).

        >>> numbered("WHERE a = ? AND b IN (?, ?)")
        'WHERE a = $1 AND b IN ($2, $3)'
    """
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


async def _update(conn: asyncpg.Connection | asyncpg.Pool, doc_id: str, values: dict[str, Any]) -> bool:
    values = {**values, "updated_at": time.time()}
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, start=2))
    return await conn.execute(f"UPDATE documents SET {sets} WHERE id = $1", doc_id, *values.values()) != "UPDATE 0"


async def _chunks(conn: asyncpg.Connection, doc_id: str | None, limit: int, offset: int) -> list[StoredChunk]:
    where = "WHERE document_id = $3" if doc_id is not None else \
        "WHERE document_id IN (SELECT id FROM documents WHERE status = 'indexed')"
    rows = await conn.fetch(f"SELECT {CHUNK_COLUMNS} FROM document_chunks {where} ORDER BY document_id, ordinal "
                            "LIMIT $1 OFFSET $2", None if limit < 0 else limit, offset,
                            *([doc_id] if doc_id is not None else []))
    return [StoredChunk(id=r["id"], document_id=r["document_id"], ordinal=r["ordinal"], page=r["page"],
                        heading=tuple(r["heading"]), text=r["text"], tokens=r["token_count"], table=r["is_table"],
                        embedding=r["embedding"].to_numpy().astype(np.float32, copy=False)) for r in rows]
