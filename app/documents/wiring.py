"""The knowledge base built from settings and owned by the lifespan: store, library, folder watch.

Opened in that order, closed in reverse: the watcher stops first, then the indexing worker (an
upload it was working on is resumed at the next start), then the database: DATA_DIR/documents.sqlite,
or PostgreSQL when DATABASE_URL names it (the process's pool, app.memory.store.postgres.shared).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from app.config import Settings
from app.documents.library import Library, LibrarySettings
from app.documents.store import DocumentStorage, DocumentStore
from app.documents.watch import DocumentFolder
from app.tasks import cancel

if TYPE_CHECKING:
    from app.memory.store.postgres.shared import Pools


async def start_documents(settings: Settings, embedder: Any, stack: AsyncExitStack, metrics: Any = None,
                          pools: Pools | None = None) -> Library:
    """With `pools` (DATABASE_URL names PostgreSQL), the documents live in that database."""
    store = await _store(settings, pools)
    await store.open()
    stack.push_async_callback(store.aclose)
    library = Library(store, embedder, LibrarySettings.from_settings(settings),
                      settings.data_dir / "documents" / "uploads")
    await library.start()
    stack.push_async_callback(library.stop)
    folder = DocumentFolder(settings.documents_dir, library)
    await folder.scan()
    if settings.docs_watch:
        stack.push_async_callback(cancel, asyncio.create_task(folder.watch(), name="documents-watch"))
    if metrics is not None:
        metrics.gauge("proxy_document_chunks", "Document chunks in the search index", lambda: len(library.index))
        metrics.gauge("proxy_documents_queue_depth", "Documents waiting to be indexed", lambda: library.depth)
        metrics.gauge("proxy_documents_failed", "Documents whose indexing failed since start",
                      lambda: library.failures)
    return library


async def _store(settings: Settings, pools: Pools | None) -> DocumentStorage:
    if pools is None:
        return DocumentStore(settings.data_dir / "documents.sqlite")
    from app.documents.store_postgres import PgDocumentStore

    return PgDocumentStore(await pools.get(settings.database_url))
