"""The knowledge base on disk: one SQLite file (DATA_DIR/documents.sqlite) of documents and chunks,
or, with DATABASE_URL, PostgreSQL's tables (app.documents.store_postgres); both fit `DocumentStorage`.

    store = DocumentStore(data_dir / "documents.sqlite")
    await store.open()
    await store.insert(document)                       # status "pending"
    await store.indexed(doc_id, chunks, vectors, pages)  # all chunks and the status in one transaction
    await store.fail(doc_id, "the PDF is encrypted")   # no chunk left behind
    await store.aclose()

A document's chunks are only ever written together with the status that says they are all
there, and removed together with the status that says why they are not, so a crash, a failure
or a delete mid-way never leaves part of a document searchable.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import aiosqlite
import numpy as np

from app.documents.chunk import Chunk
from app.memory.store.sqlite.migrations import open_database, run, transaction

COLUMNS = "id, name, source, path, owner, session_id, bytes, sha256, status, error, pages, chunk_count, " \
          "created_at, updated_at"


@dataclass(slots=True)
class Document:
    id: str
    name: str
    source: str  # "upload" or "folder"
    owner: str | None
    session_id: str | None
    bytes: int
    sha256: str
    status: str = "pending"  # pending -> indexing -> indexed | failed
    path: str | None = None
    error: str | None = None
    pages: int | None = None
    chunk_count: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def scope(self) -> str:
        """`global`, `tenant` (every conversation of its owner) or `session:<id>`."""
        if self.session_id is not None:
            return f"session:{self.session_id}"
        return "tenant" if self.owner is not None else "global"

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "object": "document", "name": self.name, "source": self.source, "path": self.path,
                "scope": self.scope, "status": self.status, "error": self.error, "bytes": self.bytes,
                "pages": self.pages, "chunks": self.chunk_count, "created_at": int(self.created_at),
                "updated_at": int(self.updated_at)}


@dataclass(frozen=True, slots=True)
class StoredChunk:
    id: int
    document_id: str
    ordinal: int
    page: int | None
    heading: tuple[str, ...]
    text: str
    tokens: int
    table: bool
    embedding: np.ndarray

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "object": "document.chunk", "document_id": self.document_id, "index": self.ordinal,
                "page": self.page, "heading": list(self.heading), "text": self.text, "tokens": self.tokens,
                "table": self.table}


HEADING_SEPARATOR = "\x1f"
EVERYTHING = ""  # what `follow` reports when any document may have changed unheard of


class DocumentStorage(Protocol):
    """What the library (app.documents.library) asks of wherever documents are kept. `follow(changed)`
    has `changed(doc_id)` called whenever another process indexes, fails or deletes a document, and
    `changed(EVERYTHING)` when changes may have been missed."""

    async def open(self) -> None: ...
    async def aclose(self) -> None: ...
    async def follow(self, changed: Callable[[str], None]) -> None: ...
    async def insert(self, doc: Document) -> None: ...
    async def get(self, doc_id: str) -> Document | None: ...
    async def by_path(self, path: str) -> Document | None: ...
    async def documents(self, *, source: str | None = None, statuses: tuple[str, ...] = ()) -> list[Document]: ...
    async def set_status(self, doc_id: str, status: str) -> None: ...
    async def replace_file(self, doc: Document) -> None: ...
    async def indexed(self, doc_id: str, chunks: list[Chunk], vectors: np.ndarray,
                      pages: int) -> list[StoredChunk]: ...
    async def fail(self, doc_id: str, reason: str) -> None: ...
    async def delete(self, doc_id: str) -> bool: ...
    async def chunks(self, doc_id: str | None = None, limit: int = -1, offset: int = 0) -> list[StoredChunk]: ...


def matching(source: str | None, statuses: tuple[str, ...]) -> tuple[list[str], list[Any]]:
    """The conditions of `documents()` and their values, in order ("?" marks each value's place).

        >>> matching("upload", ("pending", "indexing"))
        (['source = ?', 'status IN (?, ?)'], ['upload', 'pending', 'indexing'])
    """
    conditions, values = [], []
    if source is not None:
        conditions.append("source = ?")
        values.append(source)
    if statuses:
        conditions.append(f"status IN ({', '.join('?' * len(statuses))})")
        values.extend(statuses)
    return conditions, values


class DocumentStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await open_database(self.path, "documents")

    async def aclose(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def follow(self, changed: Callable[[str], None]) -> None:
        """Nothing to follow: only this process writes the file."""

    async def _run(self, fn, *args):
        return await run(self._db, fn, *args)

    async def insert(self, doc: Document) -> None:
        """Add `doc`; one whose id is taken already is left as it is (a folder file found twice at once)."""
        await self._run(_insert, doc)

    async def get(self, doc_id: str) -> Document | None:
        rows = await self._run(_select, "WHERE id = ?", (doc_id,))
        return rows[0] if rows else None

    async def by_path(self, path: str) -> Document | None:
        rows = await self._run(_select, "WHERE path = ?", (path,))
        return rows[0] if rows else None

    async def documents(self, *, source: str | None = None, statuses: tuple[str, ...] = ()) -> list[Document]:
        """Every document, or those from `source` ("upload", "folder") in one of `statuses`."""
        conditions, values = matching(source, statuses)
        return await self._run(_select, f"WHERE {' AND '.join(conditions)}" if conditions else "", tuple(values))

    async def set_status(self, doc_id: str, status: str) -> None:
        await self._run(_update, doc_id, {"status": status})

    async def replace_file(self, doc: Document) -> None:
        """A folder file that changed: pending again, with its new size and hash (old chunks kept
        until the new ones are ready)."""
        await self._run(_update, doc.id, {"status": "pending", "error": None, "bytes": doc.bytes,
                                          "sha256": doc.sha256})

    async def indexed(self, doc_id: str, chunks: list[Chunk], vectors: np.ndarray, pages: int) -> list[StoredChunk]:
        """Replace the document's chunks and mark it indexed, in one transaction; [] if it was deleted."""
        return await self._run(_write_chunks, doc_id, chunks, vectors, pages)

    async def fail(self, doc_id: str, reason: str) -> None:
        await self._run(_fail, doc_id, reason)

    async def delete(self, doc_id: str) -> bool:
        return await self._run(_delete, doc_id)

    async def chunks(self, doc_id: str | None = None, limit: int = -1, offset: int = 0) -> list[StoredChunk]:
        """One document's chunks in order, or (None) every indexed document's, for the search index."""
        return await self._run(_chunks, doc_id, limit, offset)


def _insert(conn: sqlite3.Connection, doc: Document) -> None:
    doc.created_at = doc.updated_at = time.time()
    values = asdict(doc)
    names = [f.name for f in fields(Document)]
    conn.execute(f"INSERT OR IGNORE INTO documents ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                 [values[n] for n in names])


def _select(conn: sqlite3.Connection, where: str, args: tuple) -> list[Document]:
    rows = conn.execute(f"SELECT {COLUMNS} FROM documents {where} ORDER BY created_at, id", args).fetchall()
    return [Document(**dict(zip(COLUMNS.split(", "), row))) for row in rows]


def _update(conn: sqlite3.Connection, doc_id: str, values: dict[str, Any]) -> int:
    values = {**values, "updated_at": time.time()}
    sets = ", ".join(f"{k} = ?" for k in values)
    return conn.execute(f"UPDATE documents SET {sets} WHERE id = ?", [*values.values(), doc_id]).rowcount


def _write_chunks(conn: sqlite3.Connection, doc_id: str, chunks: list[Chunk], vectors: np.ndarray,
                  pages: int) -> list[StoredChunk]:
    with transaction(conn):
        if not _update(conn, doc_id, {"status": "indexed", "error": None, "pages": pages,
                                      "chunk_count": len(chunks)}):
            return []
        conn.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
        conn.executemany(
            "INSERT INTO chunks (document_id, ordinal, page, heading, text, token_count, is_table, embedding) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(doc_id, i, c.page, HEADING_SEPARATOR.join(c.heading), c.text, c.tokens, int(c.table),
              np.asarray(v, dtype=np.float32).tobytes()) for i, (c, v) in enumerate(zip(chunks, vectors))])
    return _chunks(conn, doc_id, -1, 0)


def _fail(conn: sqlite3.Connection, doc_id: str, reason: str) -> None:
    with transaction(conn):
        conn.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
        _update(conn, doc_id, {"status": "failed", "error": reason, "chunk_count": 0})


def _delete(conn: sqlite3.Connection, doc_id: str) -> bool:
    with transaction(conn):
        conn.execute("DELETE FROM chunks WHERE document_id = ?", (doc_id,))
        return conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount > 0


def _chunks(conn: sqlite3.Connection, doc_id: str | None, limit: int, offset: int) -> list[StoredChunk]:
    where = "WHERE document_id = ?" if doc_id is not None else \
        "WHERE document_id IN (SELECT id FROM documents WHERE status = 'indexed')"
    rows = conn.execute("SELECT id, document_id, ordinal, page, heading, text, token_count, is_table, embedding "
                        f"FROM chunks {where} ORDER BY document_id, ordinal LIMIT ? OFFSET ?",
                        ((doc_id,) if doc_id is not None else ()) + (limit, offset)).fetchall()
    return [StoredChunk(id=r[0], document_id=r[1], ordinal=r[2], page=r[3],
                        heading=tuple(h for h in r[4].split(HEADING_SEPARATOR) if h), text=r[5], tokens=r[6],
                        table=bool(r[7]), embedding=np.frombuffer(r[8], dtype=np.float32)) for r in rows]
