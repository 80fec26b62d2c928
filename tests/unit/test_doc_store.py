"""The documents database: chunks arrive and leave only together with the status that says so."""

from __future__ import annotations

import asyncio

import numpy as np

from app.documents.chunk import Chunk
from app.documents.store import Document, DocumentStore

CHUNKS = [Chunk("one", ("A", "B"), 1, 1), Chunk("| a |\n| - |\n| 1 |", ("A",), 2, 5, table=True)]


def vectors(n: int) -> np.ndarray:
    return np.eye(n, 384, dtype=np.float32)


def run(tmp_path, steps):
    async def go():
        store = DocumentStore(tmp_path / "documents.sqlite")
        await store.open()
        try:
            return await steps(store)
        finally:
            await store.aclose()
    return asyncio.run(go())


def test_indexed_writes_chunks_and_status_together_and_replaces_old_ones(tmp_path):
    async def steps(store):
        await store.insert(Document("d1", "a.pdf", "upload", "t-1", None, 10, "x"))
        await store.indexed("d1", [Chunk("old", (), 1, 1)], vectors(1), 1)
        stored = await store.indexed("d1", CHUNKS, vectors(2), 2)
        return stored, await store.get("d1"), await store.chunks("d1")
    stored, doc, chunks = run(tmp_path, steps)
    assert (doc.status, doc.pages, doc.chunk_count, doc.scope) == ("indexed", 2, 2, "tenant")
    assert [(c.text, c.heading, c.page, c.table) for c in chunks] == [
        ("one", ("A", "B"), 1, False), ("| a |\n| - |\n| 1 |", ("A",), 2, True)]
    assert [c.id for c in stored] == [c.id for c in chunks]
    assert np.array_equal(chunks[1].embedding, vectors(2)[1])


def test_a_failure_leaves_no_chunk_and_a_deleted_document_gets_none(tmp_path):
    async def steps(store):
        await store.insert(Document("d1", "a.pdf", "upload", None, "s", 10, "x"))
        await store.indexed("d1", CHUNKS, vectors(2), 2)
        await store.fail("d1", "the PDF is encrypted")
        failed = await store.get("d1")
        await store.insert(Document("d2", "b.md", "upload", None, None, 10, "x"))
        await store.delete("d2")
        late = await store.indexed("d2", CHUNKS, vectors(2), 1)  # the worker finishing after a delete
        return failed, await store.chunks(), late, await store.get("d2")
    failed, every_chunk, late, gone = run(tmp_path, steps)
    assert (failed.status, failed.error, failed.chunk_count, failed.scope) == \
        ("failed", "the PDF is encrypted", 0, "session:s")
    assert every_chunk == [] and late == [] and gone is None
