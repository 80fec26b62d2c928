"""The knowledge base on PostgreSQL with the real embedder: an upload is indexed into the database,
found by a question, and a second library on the same database (another replica, or a restart)
builds its index from the rows and finds it too; a deleted document leaves no chunk behind. Two
libraries running at once follow each other's uploads and deletions."""

from __future__ import annotations

import asyncio
import contextlib

from app.documents.library import Library, LibrarySettings
from app.documents.store_postgres import PgDocumentStore
from app.memory.embedding.embedder import Embedder
from app.memory.store.postgres.pool import open_pool
from tests import docfiles as make

QUESTION = "Where does the tortoise hibernate in winter?"


async def open_library(url: str, backend, uploads) -> Library:
    store = PgDocumentStore(await open_pool(url, max_size=4))
    await store.open()
    embedder = Embedder(backend, cache_size=64, background_threads=0)
    await embedder.start()
    library = Library(store, embedder, LibrarySettings(), uploads)
    await library.start()
    return library


@contextlib.asynccontextmanager
async def two_libraries(url: str, backend, tmp_path):
    """Two libraries on one database at once, as two replicas run them."""
    first = await open_library(url, backend, tmp_path / "a")
    second = await open_library(url, backend, tmp_path / "b")
    try:
        yield first, second
    finally:
        await close(first)
        await close(second)


async def close(library: Library) -> None:
    await library.stop()
    await library.embedder.aclose()
    await library.store.aclose()
    await library.store.pool.close()


def test_a_document_indexed_by_one_library_is_found_by_another_on_the_same_database(pg_url, onnx_backend, tmp_path):
    file = make.make_markdown(tmp_path / "garden.md", [("Pets", "The tortoise hibernates in the potting shed."),
                                                       ("Tools", "The spare key hangs behind the clock.")])

    async def steps():
        first = await open_library(pg_url, onnx_backend, tmp_path / "a")
        try:
            doc = await first.add_upload("garden.md", file, owner="t-1", session_id=None)
            await first.idle()
            found_here = await first.search(QUESTION, 1, owner="t-1", session_id="chat")
        finally:
            await close(first)
        second = await open_library(pg_url, onnx_backend, tmp_path / "b")
        try:
            found_there = await second.search(QUESTION, 1, owner="t-1", session_id="chat")
            hidden = await second.search(QUESTION, 1, owner="t-2", session_id="chat")
            stored = await second.store.get(doc.id)
            await second.remove(doc.id)
            return found_here, found_there, hidden, stored, await second.store.chunks()
        finally:
            await close(second)

    found_here, found_there, hidden, stored, left = asyncio.run(steps())
    assert stored.status == "indexed" and stored.chunk_count >= 1
    assert "potting shed" in found_here[0]["content"] and found_here[0]["name"] == "garden.md"
    assert found_there == found_here  # the same chunk, the same score, from the rows alone
    assert hidden == [] and left == []


async def eventually(check, seconds: float = 10.0):
    """`await check()` until it is truthy (another replica's change arrives by NOTIFY); its last answer."""
    for _ in range(int(seconds / 0.05)):
        answer = await check()
        if answer:
            return answer
        await asyncio.sleep(0.05)
    return answer


def test_two_libraries_running_at_once_follow_each_others_changes(pg_url, onnx_backend, tmp_path):
    file = make.make_markdown(tmp_path / "garden.md", [("Pets", "The tortoise hibernates in the potting shed.")])

    async def steps():
        async with two_libraries(pg_url, onnx_backend, tmp_path) as (first, second):
            ask = lambda: second.search(QUESTION, 1, owner=None, session_id="chat")  # noqa: E731
            assert await ask() == []
            doc = await first.add_upload("garden.md", file, owner=None, session_id=None)
            await first.idle()
            arrived = await eventually(ask)
            await first.remove(doc.id)
            gone = await eventually(lambda: _none(ask))
            return arrived, gone

    arrived, gone = asyncio.run(steps())
    assert arrived and "potting shed" in arrived[0]["content"]
    assert gone


async def _none(ask) -> bool:
    return await ask() == []


def test_a_library_whose_listening_connection_is_cut_listens_again_and_catches_up(pg_url, onnx_backend, tmp_path):
    """A change made while the listener was down arrives anyway: the library reloads all of it."""
    file = make.make_markdown(tmp_path / "garden.md", [("Pets", "The tortoise hibernates in the potting shed.")])

    async def steps():
        async with two_libraries(pg_url, onnx_backend, tmp_path) as (first, second):
            ask = lambda: second.search(QUESTION, 1, owner=None, session_id="chat")  # noqa: E731
            listener, _ = second.store._listening
            await second.store.pool.execute("SELECT pg_terminate_backend($1)", listener.get_server_pid())
            doc = await first.add_upload("garden.md", file, owner=None, session_id=None)  # maybe unheard
            await first.idle()
            arrived = await eventually(ask)
            relistens = second.store.relistens
            await first.remove(doc.id)
            gone = await eventually(lambda: _none(ask))  # heard on the new listener
            return arrived, relistens, gone

    arrived, relistens, gone = asyncio.run(steps())
    assert relistens == 1
    assert arrived and "potting shed" in arrived[0]["content"]
    assert gone
