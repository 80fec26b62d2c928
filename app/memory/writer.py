"""Background work on new messages, off the response path: embed, score emotion and importance.

One owned queue and one worker task, started and drained by the app's lifespan (no daemon
threads, no fire-and-forget tasks). A job names a session; the worker loads that session's
pending messages from the store (so a job lost to a full queue or a restart is only late, never
lost: `catch_up()` finds pending work at start), embeds them in one batch, scores them, saves the
scores in one transaction and hands the vectors to the in-RAM index.

    writer = Writer(store, embedder, scorer, on_scored=recall.scored)
    await writer.start(); writer.submit(key); ...; await writer.stop()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.memory.retrieval import pieces
from app.tasks import cancel

log = logging.getLogger("app.memory.writer")


def embedding_texts(content: str) -> list[str]:
    """The whole message, then its statements when there are several (`retrieval.pieces`):
    a fact in one sentence of a long message must not drown in the average of the rest."""
    parts = pieces(content)
    return [content] if parts == [content] or len(parts) < 2 else [content, *parts]


@dataclass(slots=True)
class WriterStats:
    done: int = 0
    failures: int = 0
    dropped: int = 0


class Writer:
    def __init__(self, store: Any, embedder: Any, scorer: Any, *, importance: Callable[..., float],
                 on_scored: Callable[[str, list[Any], list[Any]], Awaitable[None] | None] | None = None,
                 batch: int = 64, max_queue: int = 10_000) -> None:
        self.store = store
        self.embedder = embedder
        self.scorer = scorer
        self.importance = importance
        self.on_scored = on_scored
        self.batch = batch
        self.stats = WriterStats()
        self._queue: asyncio.Queue[str] = asyncio.Queue(max_queue)
        self._queued: set[str] = set()
        self._task: asyncio.Task | None = None
        self._extra: list[Callable[[], Awaitable[None]]] = []

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="memory-writer")

    def submit(self, key: str) -> None:
        """Ask for `key`'s pending messages to be processed; never blocks, never raises."""
        if key in self._queued:
            return
        try:
            self._queue.put_nowait(key)
            self._queued.add(key)
        except asyncio.QueueFull:
            self.stats.dropped += 1  # still pending in the store; catch_up() or the next submit finds it

    def submit_call(self, call: Callable[[], Awaitable[None]]) -> None:
        """Run a small coroutine on the writer's task (e.g. recording an abandoned reply)."""
        self._extra.append(call)
        self.submit("")

    async def catch_up(self, keys: list[str]) -> None:
        for key in keys:
            self.submit(key)

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until the queue is empty and the worker has finished its job (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._queued or self._extra) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def stop(self, timeout: float = 3.0) -> None:
        """Finish queued work within `timeout`, then stop; what is left stays pending in the store."""
        if self._task is None:
            return
        await self.idle(timeout)
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            key = await self._queue.get()
            try:
                await self._run_extra()
                if key:
                    await self.process(key)
            except Exception:  # noqa: BLE001 - one bad batch must not stop the worker
                self.stats.failures += 1
                log.exception("background memory work failed", extra={"session_key": key})
            finally:
                self._queued.discard(key)

    async def _run_extra(self) -> None:
        while self._extra:
            await self._extra.pop(0)()

    async def process(self, key: str) -> int:
        """Embed and score every pending message of one session; returns how many were done."""
        total = 0
        while rows := await self.store.pending(key, self.batch):
            texts = [embedding_texts(row.content) for row in rows]
            flat = await self.embedder.embed([t for group in texts for t in group], background=True)
            bounds = np.cumsum([0] + [len(group) for group in texts])
            updates = [self._score(row, flat[a:b]) for row, a, b in zip(rows, bounds[:-1], bounds[1:])]
            await self.store.save_scores(key, updates)
            if self.on_scored is not None:
                result = self.on_scored(key, rows, updates)
                if asyncio.iscoroutine(result):
                    await result
            total += len(rows)
            self.stats.done += len(rows)
        return total

    def _score(self, row: Any, vectors: np.ndarray) -> Any:
        """Row 0 is the whole message (emotion reads it); the rest, if any, its sentences."""
        from app.memory.records import ScoreUpdate

        vector = vectors if len(vectors) > 1 else vectors[0]
        emotion = self.scorer.score(row.content, vectors[0])
        importance = self.importance(row.content, row.role, emotion)
        return ScoreUpdate(id=row.id, emotion=emotion.label, emotion_confidence=emotion.confidence,
                           emotion_intensity=emotion.intensity, emotion_probs=emotion.probs,
                           importance=importance, embedding=vector)
