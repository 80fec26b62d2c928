"""The query's embedding starts before the session is read, and a failed request drops it quietly."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.memory.search.recall import EarlyQuery

pytestmark = pytest.mark.anyio


class SlowEmbedder:
    """Embeds after a delay, counting the calls that ran to the end."""

    def __init__(self, delay: float = 0.05) -> None:
        self.delay = delay
        self.finished = 0
        self.started = 0

    async def embed_one(self, text: str) -> np.ndarray:
        self.started += 1
        await asyncio.sleep(self.delay)
        self.finished += 1
        return np.full(4, len(text), dtype=np.float32)


async def test_the_embedding_runs_while_other_work_goes_on():
    embedder = SlowEmbedder(0.05)
    early = EarlyQuery.start("where did I grow up?", embedder)
    await asyncio.sleep(0.06)  # the session is being read meanwhile
    assert embedder.finished == 1
    assert (await early.vector())[0] == len("where did I grow up?")


async def test_no_query_text_starts_nothing():
    embedder = SlowEmbedder()
    early = EarlyQuery.start("", embedder)
    assert early.task is None and embedder.started == 0
    await early.discard()


async def test_discard_cancels_an_unfinished_embedding_without_raising():
    embedder = SlowEmbedder(1.0)
    early = EarlyQuery.start("hello", embedder)
    await asyncio.sleep(0)
    await early.discard()
    assert early.task.cancelled() and embedder.finished == 0


async def test_discard_swallows_a_failed_embedding():
    class Broken:
        async def embed_one(self, text: str) -> np.ndarray:
            raise RuntimeError("model gone")

    early = EarlyQuery.start("hello", Broken())
    await asyncio.sleep(0)
    await early.discard()
    with pytest.raises(RuntimeError):
        await early.vector()
