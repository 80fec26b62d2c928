"""Summaries as jobs on PostgreSQL's queue: poked by one replica, written by the summarizer of
another, asking the model the poke named (the job's note). Real server, real model, SQLite store."""

from __future__ import annotations

import pytest

from app.memory.background.pg_jobs import PgJobs
from app.memory.background.summarizer import Summarizer
from app.memory.embedding.embedder import Embedder
from app.memory.records import NewMessage
from app.memory.store.sqlite.store import Store

pytestmark = pytest.mark.anyio
KEY = "0123456789abcdef"


async def test_a_poke_on_one_replica_is_summarized_by_another_with_its_model(tmp_path, pg_url, onnx_backend):
    store = Store(tmp_path / "data")
    await store.open()
    await store.create_session(KEY, "chat-1")
    await store.append(KEY, [NewMessage(role=("user", "assistant")[i % 2], content=f"Line {i} about the harbour.",
                                        token_count=5) for i in range(8)])
    asked: list[str] = []

    async def complete(messages: list[dict[str, str]], model: str) -> str:
        asked.append(model)
        return f"Summary number {len(asked)}."

    embedder = Embedder(onnx_backend)
    await embedder.start()
    poker, worker = PgJobs(pg_url), PgJobs(pg_url, poll=5.0)
    summarizer = Summarizer(store, embedder, jobs=worker, complete=complete, every=4)
    await worker.start()
    await poker.start()
    try:
        poker.submit("summary", KEY, "model-of-the-request")  # what `poke(key, model)` submits
        assert await poker.idle(["summary"], timeout=30)
        await summarizer.idle(5)
    finally:
        await poker.stop()
        await worker.stop()
        await embedder.aclose()
    summaries = await store.summaries(KEY)
    await store.aclose()
    assert [(s.start_position, s.end_position, s.text) for s in summaries if s.level == 0] == [
        (1, 4, "Summary number 1."), (5, 8, "Summary number 2.")]
    assert asked == ["model-of-the-request"] * 2
    assert worker.stats["summary"].done == 1
