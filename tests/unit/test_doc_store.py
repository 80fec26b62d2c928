"""The documents database, on SQLite and on PostgreSQL: chunks arrive and leave only together with
the status that says so."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.documents.chunk import Chunk
from app.documents.store import Document, DocumentStore
from app.documents.store_postgres import PgDocumentStore, numbered
from app.memory.store.postgres.pool import open_pool

CHUNKS = [Chunk("one", ("A", "B"), 1, 1), Chunk("| a |\n| - |\n| 1 |", ("A",), 2, 5, table=True)]


def vectors(n: int) -> np.ndarray:
    return np.eye(n, 384, dtype=np.float32)


@pytest.fixture(params=["sqlite", "postgres"])
def run(request, tmp_path):
    """`run(steps)`: `await steps(store)` on an open store of either backend; its result."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None

    async def go(steps):
        pool = await open_pool(url) if url else None
        store = PgDocumentStore(pool) if pool else DocumentStore(tmp_path / "documents.sqlite")
        await store.open()
        try:
            return await steps(store)
        finally:
            await store.aclose()
            if pool:
                await pool.close()
    return lambda steps: asyncio.run(go(steps))


def test_indexed_writes_chunks_and_status_together_and_replaces_old_ones(run):
    async def steps(store):
        await store.insert(Document("d1", "a.pdf", "upload", "t-1", None, 10, "x"))
        await store.indexed("d1", [Chunk("old", (), 1, 1)], vectors(1), 1)
        stored = await store.indexed("d1", CHUNKS, vectors(2), 2)
        return stored, await store.get("d1"), await store.chunks("d1")
    stored, doc, chunks = run(steps)
    assert (doc.status, doc.pages, doc.chunk_count, doc.scope) == ("indexed", 2, 2, "tenant")
    assert [(c.text, c.heading, c.page, c.table) for c in chunks] == [
        ("one", ("A", "B"), 1, False), ("| a |\n| - |\n| 1 |", ("A",), 2, True)]
    assert [c.id for c in stored] == [c.id for c in chunks]
    assert np.array_equal(chunks[1].embedding, vectors(2)[1])


def test_a_failure_leaves_no_chunk_and_a_deleted_document_gets_none(run):
    async def steps(store):
        await store.insert(Document("d1", "a.pdf", "upload", None, "s", 10, "x"))
        await store.indexed("d1", CHUNKS, vectors(2), 2)
        await store.fail("d1", "the PDF is encrypted")
        failed = await store.get("d1")
        await store.insert(Document("d2", "b.md", "upload", None, None, 10, "x"))
        await store.delete("d2")
        late = await store.indexed("d2", CHUNKS, vectors(2), 1)  # the worker finishing after a delete
        return failed, await store.chunks(), late, await store.get("d2")
    failed, every_chunk, late, gone = run(steps)
    assert (failed.status, failed.error, failed.chunk_count, failed.scope) == \
        ("failed", "the PDF is encrypted", 0, "session:s")
    assert every_chunk == [] and late == [] and gone is None


def test_documents_are_picked_by_source_and_status(run):
    async def steps(store):
        await store.insert(Document("up", "a.pdf", "upload", None, None, 1, "x"))
        await store.insert(Document("fo", "b.md", "folder", None, None, 1, "y", path="b.md"))
        await store.insert(Document("ix", "c.md", "folder", "t-1", None, 1, "z", path="c.md"))
        await store.set_status("ix", "indexing")
        await store.indexed("ix", CHUNKS, vectors(2), 1)
        await store.set_status("fo", "indexing")
        picked = [await store.documents(source=s, statuses=t) for s, t in
                  [(None, ()), ("folder", ()), (None, ("indexed",)), ("upload", ("pending", "indexing")),
                   ("folder", ("pending", "indexing")), ("upload", ("indexed",))]]
        return [[d.id for d in docs] for docs in picked], await store.by_path("c.md"), await store.chunks(limit=1)
    picked, by_path, first = run(steps)
    assert picked == [["up", "fo", "ix"], ["fo", "ix"], ["ix"], ["up"], ["fo"], []]
    assert by_path.id == "ix" and by_path.chunk_count == 2
    assert [(c.document_id, c.ordinal) for c in first] == [("ix", 0)]


def test_a_document_found_twice_at_once_is_kept_once(run):
    async def steps(store):
        first = Document("doc-f", "b.md", "folder", None, None, 1, "old", path="b.md")
        await store.insert(first)
        await store.insert(Document("doc-f", "b.md", "folder", None, None, 2, "new", path="b.md"))
        return await store.documents()
    kept = run(steps)
    assert [(d.id, d.sha256, d.bytes) for d in kept] == [("doc-f", "old", 1)]


@pytest.mark.parametrize("sql, expected", [
    ("", ""), ("WHERE a = ?", "WHERE a = $1"), ("? ? ?", "$1 $2 $3"),
    ("WHERE source = ? AND status IN (?, ?)", "WHERE source = $1 AND status IN ($2, $3)"),
])
def test_numbered_marks(sql, expected):
    assert numbered(sql) == expected
