"""The writer's work goes through the job queue: on PostgreSQL's queue a job submitted by one
replica is done by another, and the sweep finds messages whose job was never submitted. The
store here is SQLite: the queue does not care which store (real model, real files, real server)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest

from app.emotion import EmotionScorer
from app.importance import score_importance
from app.memory.background.jobs import LocalJobs
from app.memory.background.pg_jobs import PgJobs
from app.memory.background.writer import Writer
from app.memory.embedding.embedder import Embedder
from app.memory.records import NewMessage
from app.memory.store.sqlite.store import Store

pytestmark = pytest.mark.anyio
KEY = "0123456789abcdef"
TEXTS = ["My sister Ana moved to Lisbon last spring.", "That sounds like a big change!",
         "She loves it there, the light is amazing."]


@asynccontextmanager
async def writer_on(store: Store, backend, jobs, **options):
    """A started writer on `jobs`, its embedder on the real model; stopped after."""
    embedder = Embedder(backend)
    await embedder.start()
    scored: list[int] = []
    writer = Writer(store, embedder, EmotionScorer.load(), jobs=jobs, importance=score_importance,
                    on_scored=lambda key, rows, updates: scored.extend(r.id for r in rows), **options)
    await jobs.start()
    await writer.start()
    try:
        yield writer, scored
    finally:
        await writer.stop()
        await jobs.stop()
        await embedder.aclose()


async def conversation(tmp_path) -> Store:
    store = Store(tmp_path / "data")
    await store.open()
    await store.create_session(KEY, "chat-1")
    return store


async def add(store: Store, texts: list[str]) -> list[int]:
    roles = ("user", "assistant")
    return await store.append(KEY, [NewMessage(role=roles[i % 2], content=t, token_count=len(t.split()))
                                    for i, t in enumerate(texts)])


async def test_a_job_submitted_by_one_replica_is_done_by_the_writer_of_another(tmp_path, pg_url, onnx_backend):
    store = await conversation(tmp_path)
    ids = await add(store, TEXTS)
    submitter = PgJobs(pg_url)  # a replica that only answered the request
    await submitter.start()
    async with writer_on(store, onnx_backend, PgJobs(pg_url, poll=5.0), sweep_every=0) as (writer, scored):
        await writer.idle(5)  # the start sweep ran (nothing was pending in the registry's eyes yet)
        submitter.submit("score", KEY)
        await submitter.flush()
        for _ in range(200):
            if not await store.pending(KEY, 10):
                break
            await asyncio.sleep(0.05)
        assert await store.pending(KEY, 10) == []
        assert sorted(scored) == sorted(ids)
        rows = await store.messages(KEY)
        assert all(r.embedding is not None and r.emotion for r in rows)
        assert writer.jobs.stats["score"].done >= 1
    await submitter.stop()
    await store.aclose()


@pytest.mark.parametrize("queue", ["local", "postgresql"])
async def test_the_sweep_finds_messages_whose_job_was_never_submitted(tmp_path, pg_url, onnx_backend, queue):
    store = await conversation(tmp_path)
    await add(store, TEXTS[:1])  # committed before a crash: no job was ever submitted
    jobs = LocalJobs() if queue == "local" else PgJobs(pg_url)
    async with writer_on(store, onnx_backend, jobs, sweep_every=0.3) as (writer, scored):
        await writer.idle(10)
        assert len(scored) == 1  # the sweep at start
        await add(store, TEXTS[1:])  # again committed, never submitted
        for _ in range(100):
            if len(scored) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(scored) == 3  # a later sweep
        assert await store.pending(KEY, 10) == []
    await store.aclose()
