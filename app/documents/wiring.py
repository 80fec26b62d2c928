"""The knowledge base built from settings and owned by the lifespan: store, library, folder watch.

Opened in that order, closed in reverse: the watcher stops first, then the indexing worker (an
upload it was working on is resumed at the next start), then the database.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from app.config import Settings
from app.documents.library import Library, LibrarySettings
from app.documents.store import DocumentStore
from app.documents.watch import DocumentFolder
from app.tasks import cancel


async def start_documents(settings: Settings, embedder: Any, stack: AsyncExitStack, metrics: Any = None) -> Library:
    store = DocumentStore(settings.data_dir / "documents.sqlite")
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
