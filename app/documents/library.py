"""The knowledge base at work: documents added, indexed by an owned worker, searched per request.

    library = Library(store, embedder, LibrarySettings.from_settings(settings), uploads_dir)
    await library.start()                 # loads the index, resumes unfinished uploads, starts the worker
    doc = await library.add_upload("manual.pdf", tmp_file, owner="t-1", session_id=None)  # "pending"
    items = await library.recall(text, vector, owner="t-1", session_id="story")  # MemoryItems to plan
    await library.stop()

Indexing runs on one worker task fed by a queue (parse and chunk on a thread, embed on the
embedder's background lane, then one transaction): a document is either fully searchable or not
at all, and a bad file ends as `failed` with its reason, never as an error the service dies of.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.memory_block import MemoryItem
from app.documents.chunk import Chunk, chunk_pages, citation
from app.documents.index import DocumentIndex, Hit
from app.documents.parse import ParseError, parse
from app.documents.store import EVERYTHING, Document, DocumentStorage
from app.tasks import cancel

log = logging.getLogger("app.documents")
PENDING = ("pending", "indexing")  # not yet searchable, not failed
EMBED_BATCH = 32


class Embeds(Protocol):
    """What the library needs of the embedder (app.memory.embedding.embedder.Embedder)."""

    @property
    def dim(self) -> int: ...

    async def embed(self, texts: Sequence[str], *, background: bool = False) -> np.ndarray: ...

    async def embed_one(self, text: str) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class LibrarySettings:
    chunk_tokens: int = 200
    recall_k: int = 4
    min_score: float = 0.35
    max_upload_bytes: int = 50 << 20
    max_unpacked_bytes: int = 200 << 20

    @classmethod
    def from_settings(cls, s: Any) -> LibrarySettings:
        return cls(chunk_tokens=s.docs_chunk_tokens, recall_k=s.docs_recall_k, min_score=s.docs_min_score,
                   max_upload_bytes=s.docs_max_upload_bytes, max_unpacked_bytes=s.docs_max_unpacked_bytes)


@dataclass(frozen=True, slots=True)
class _Job:
    doc_id: str
    name: str
    file: Path
    owned: bool  # an upload's copy, removed once indexed


class Library:
    def __init__(self, store: DocumentStorage, embedder: Embeds, settings: LibrarySettings, uploads: Path) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.uploads = uploads
        self.index = DocumentIndex(embedder.dim)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self._changes: asyncio.Queue[str] = asyncio.Queue()  # documents another replica changed
        self._follower: asyncio.Task | None = None
        self.failures = 0

    async def start(self) -> None:
        self.uploads.mkdir(parents=True, exist_ok=True)
        for stale in self.uploads.glob("incoming-*"):  # a request cut off before its document was made
            stale.unlink(missing_ok=True)
        await self.store.follow(self._changes.put_nowait)  # before loading: no change falls in between
        docs = {d.id: d for d in await self.store.documents(statuses=("indexed",))}
        by_doc: dict[str, list] = {}
        for chunk in await self.store.chunks():
            by_doc.setdefault(chunk.document_id, []).append(chunk)
        for doc_id, chunks in by_doc.items():
            self.index.put(docs[doc_id], chunks)
        await self._resume_uploads()
        self._worker = asyncio.create_task(self._work(), name="documents-indexer")
        self._follower = asyncio.create_task(self._follow(), name="documents-follower")

    async def stop(self) -> None:
        await cancel(self._worker)
        await cancel(self._follower)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def _resume_uploads(self) -> None:
        """Uploads a stop interrupted are indexed again; one whose file is gone has failed."""
        for doc in await self.store.documents(source="upload", statuses=PENDING):
            file = self.uploads / doc.id
            if file.exists():
                self._queue.put_nowait(_Job(doc.id, doc.name, file, owned=True))
            else:
                await self.store.fail(doc.id, "indexing was interrupted and the upload is gone; upload it again")

    # ------------------------------------------------------------------ adding and removing

    async def add_upload(self, name: str, file: Path, *, owner: str | None, session_id: str | None) -> Document:
        """Take over `file` (moved into the uploads folder) and queue it; the document is pending."""
        doc = Document(id="doc-" + secrets.token_hex(12), name=name, source="upload", owner=owner,
                       session_id=session_id, bytes=file.stat().st_size, sha256=await _sha256(file))
        kept = self.uploads / doc.id
        await asyncio.to_thread(shutil.move, file, kept)
        await self.store.insert(doc)
        self._queue.put_nowait(_Job(doc.id, name, kept, owned=True))
        return doc

    async def add_folder_file(self, file: Path, relative: str) -> Document | None:
        """A file of DOCS_DIR, new or changed: (re)queued unless indexed with the same content."""
        size, digest = file.stat().st_size, await _sha256(file)
        doc = await self.store.by_path(relative)
        if doc is not None and doc.sha256 == digest and doc.status in ("indexed", "pending", "indexing", "failed"):
            return doc
        fresh = Document(id=folder_id(relative), name=Path(relative).name, source="folder", owner=None,
                         session_id=None, bytes=size, sha256=digest, path=relative)
        await (self.store.replace_file(fresh) if doc is not None else self.store.insert(fresh))
        if size > self.settings.max_upload_bytes:
            await self.store.fail(fresh.id, f"the file is {size:,} bytes; DOCS_MAX_UPLOAD_BYTES is "
                                            f"{self.settings.max_upload_bytes:,}")
            self.index.remove(fresh.id)
            return fresh
        self._queue.put_nowait(_Job(fresh.id, fresh.name, file, owned=False))
        return fresh

    async def remove(self, doc_id: str) -> bool:
        self.index.remove(doc_id)
        (self.uploads / doc_id).unlink(missing_ok=True)
        return await self.store.delete(doc_id)

    async def remove_folder_file(self, relative: str) -> None:
        doc = await self.store.by_path(relative)
        if doc is not None:
            await self.remove(doc.id)

    async def folder_paths(self) -> list[str]:
        return [d.path for d in await self.store.documents(source="folder") if d.path]

    # ------------------------------------------------------------------ the worker

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            await self._settle(job)
            if job.owned:  # kept only when a stop interrupts it, to be resumed
                job.file.unlink(missing_ok=True)

    async def _settle(self, job: _Job) -> None:
        """Index one document; any failure ends as its `failed` status with the reason."""
        try:
            await self._index_one(job)
        except ParseError as exc:
            await self._fail(job, str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the worker
            log.exception("indexing %s failed", job.name)
            await self._fail(job, f"internal error while indexing: {type(exc).__name__}: {exc}")

    async def _index_one(self, job: _Job) -> None:
        await self.store.set_status(job.doc_id, "indexing")
        pages, chunks = await asyncio.to_thread(self._read, job)
        vectors = await self._embed([embedding_text(c) for c in chunks])
        stored = await self.store.indexed(job.doc_id, chunks, vectors, pages)
        doc = await self.store.get(job.doc_id)
        if stored and doc is not None:
            self.index.put(doc, stored)
        log.info("indexed %s: %d pages, %d chunks", job.name, pages, len(chunks))

    async def _follow(self) -> None:
        """A document another replica indexed, failed or deleted enters or leaves this index."""
        while True:
            doc_id = await self._changes.get()
            try:
                await self._reload(doc_id)
            except Exception:  # noqa: BLE001 - the next change or start brings it in
                log.exception("reloading document %s failed", doc_id)

    async def _reload(self, doc_id: str) -> None:
        if doc_id == EVERYTHING:
            return await self._reload_all()
        doc = await self.store.get(doc_id)
        if doc is None or doc.status != "indexed":
            self.index.remove(doc_id)
        else:
            self.index.put(doc, await self.store.chunks(doc_id))

    async def _reload_all(self) -> None:
        """Every indexed document loaded again, and those no longer indexed dropped."""
        docs = {d.id: d for d in await self.store.documents(statuses=("indexed",))}
        for gone in set(self.index.ids()) - set(docs):
            self.index.remove(gone)
        for doc in docs.values():
            self.index.put(doc, await self.store.chunks(doc.id))

    def _read(self, job: _Job) -> tuple[int, list[Chunk]]:
        return read_document(job.file, job.name, self.settings)

    async def _embed(self, texts: list[str]) -> np.ndarray:
        parts = [await self.embedder.embed(texts[i:i + EMBED_BATCH], background=True)
                 for i in range(0, len(texts), EMBED_BATCH)]
        return np.concatenate(parts)

    async def _fail(self, job: _Job, reason: str) -> None:
        self.failures += 1
        self.index.remove(job.doc_id)
        await self.store.fail(job.doc_id, reason)

    async def idle(self) -> None:
        """Wait until every queued document is done (tests, benchmarks, the CLI's server side)."""
        while self._queue.qsize() or await self.store.documents(statuses=PENDING):
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ reading

    def hits(self, vector: np.ndarray, *, owner: str | None, session_id: str | None, k: int | None = None,
             min_score: float | None = None, any_session: bool = False) -> list[Hit]:
        return self.index.search(vector, owner=owner, session_id=session_id,
                                 k=self.settings.recall_k if k is None else k,
                                 min_score=self.settings.min_score if min_score is None else min_score,
                                 any_session=any_session)

    def recall(self, vector: np.ndarray | None, *, owner: str | None, session_id: str | None) -> list[MemoryItem]:
        """The chunks worth offering to this conversation's context, as memory-block items."""
        if vector is None:
            return []
        return [document_item(h) for h in self.hits(vector, owner=owner, session_id=session_id)]

    async def search(self, query: str, k: int, *, owner: str | None, session_id: str | None) -> list[dict]:
        """The search API's view: every visible chunk is a candidate, scores shown."""
        vector = await self.embedder.embed_one(query)
        return [{"object": "document.chunk", "document_id": h.document.id, "name": h.document.name,
                 "citation": citation(h.document.name, _chunk(h)), "page": h.chunk.page,
                 "heading": list(h.chunk.heading), "content": h.chunk.text, "score": round(h.score, 4)}
                for h in self.hits(vector, owner=owner, session_id=session_id, k=k, min_score=-1.0)]


def read_document(file: Path, name: str, settings: LibrarySettings) -> tuple[int, list[Chunk]]:
    """(pages, chunks) of one file; ParseError with the reason when it cannot be indexed."""
    pages = parse(file, name, max_unpacked=settings.max_unpacked_bytes)
    chunks = chunk_pages(pages, settings.chunk_tokens)
    if not chunks:
        raise ParseError(f"no text found in {name}")
    return len(pages), chunks


def document_item(hit: Hit) -> MemoryItem:
    """A hit as the planner's candidate: its text, its citation (shown before it) and its cosine."""
    return MemoryItem(text=hit.chunk.text, score=hit.score, reasons=("document",), kind="document",
                      position=hit.chunk.ordinal, when=citation(hit.document.name, _chunk(hit))[1:-1])


def _chunk(hit: Hit) -> Chunk:
    return Chunk(hit.chunk.text, hit.chunk.heading, hit.chunk.page, hit.chunk.tokens, hit.chunk.table)


def embedding_text(chunk: Chunk) -> str:
    """What is embedded: the heading path, then the text (a section's title says what it is about)."""
    return f"{' > '.join(chunk.heading)}\n{chunk.text}" if chunk.heading else chunk.text


def folder_id(relative: str) -> str:
    """A folder document's id, the same every time for the same path."""
    return "doc-" + hashlib.sha256(f"folder:{relative}".encode()).hexdigest()[:24]


async def _sha256(file: Path) -> str:
    def digest() -> str:
        h = hashlib.sha256()
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    return await asyncio.to_thread(digest)
