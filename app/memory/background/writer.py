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

from app.memory.search.passages import clip_end
from app.memory.search.retrieval import pieces
from app.tasks import cancel

log = logging.getLogger("app.memory.background.writer")


def embedding_texts(content: str, before: str | None = None) -> list[str]:
    """The whole message, then its statements when there are several (`retrieval.pieces`), then
    the message read after the turn `before` it (`in_context`), when it is short.

        >>> embedding_texts("They're a real support.", before="How is your family?")
        ["They're a real support.", "They're a real support.", "How is your family?\\nThey're a real support."]

    A fact in one sentence of a long message must not drown in the average of the rest. A short
    reply means little alone ("They're a real support." is about a family only after "How is
    your family?"), so it gets a vector of itself after the turn it answers. Row 0 is what the
    scorers read; the index keeps the rows after it (`recall.index_vectors`).
    """
    parts = pieces(content)
    statements = [content] if parts == [content] or len(parts) < 2 else parts
    context = in_context(content, before)
    if context is None:
        return [content] if len(statements) == 1 else [content, *statements]
    return [content, *statements, context]


CONTEXT_WORDS = 48  # a message this short is also embedded after the turn before it
CONTEXT_MIX = 0.3  # how far each statement's vector moves towards the message read in context
CONTEXT_CHARS = 240  # of the turn before: its end, where the question usually is


def in_context(content: str, before: str | None) -> str | None:
    """A short message after the end of the turn before it, as one text to embed; None when the
    message is long enough to stand alone or has no turn before it."""
    if not before or not before.strip() or len(content.split()) > CONTEXT_WORDS:
        return None
    return f"{clip_end(before.strip(), CONTEXT_CHARS)}\n{content}"


def moved_in_context(vectors: np.ndarray, contextual: bool) -> np.ndarray:
    """A message's vectors as stored: with the message read in context (`embedding_texts`, the
    last vector), each statement's vector moves towards it by `CONTEXT_MIX` and the context
    vector itself is not kept, so the index holds no more vectors than without it.

    Measured, a short reply read after a question matches later questions by the question's
    wording too ("Any fun plans for the summer?" lends itself to "Researching adoption
    agencies"). Row 0, the whole message as said, stays as it is: it is what the scorers read.
    """
    if not contextual:
        return vectors
    context = vectors[-1]
    out = np.array(vectors[:-1], dtype=np.float32, copy=True)
    out[1:] += CONTEXT_MIX * context
    out[1:] /= np.linalg.norm(out[1:], axis=1, keepdims=True)
    return out


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
            before = await self.store.turns_before(key, [row.id for row in rows])
            texts = [embedding_texts(row.content, before.get(row.id)) for row in rows]
            flat = await self._embed([t for group in texts for t in group])
            bounds = np.cumsum([0] + [len(group) for group in texts])
            updates = [self._score(row, flat[a:b], before.get(row.id))
                       for row, a, b in zip(rows, bounds[:-1], bounds[1:])]
            await self.store.save_scores(key, updates)
            if self.on_scored is not None:
                result = self.on_scored(key, rows, updates)
                if asyncio.iscoroutine(result):
                    await result
            total += len(rows)
            self.stats.done += len(rows)
        return total

    async def _embed(self, texts: list[str]) -> np.ndarray:
        """Each text's vector, every distinct text embedded once (a short message is its own statement)."""
        unique = list(dict.fromkeys(texts))
        vectors = await self.embedder.embed(unique, background=True)
        place = {text: i for i, text in enumerate(unique)}
        return np.asarray(vectors)[[place[t] for t in texts]]

    def _score(self, row: Any, vectors: np.ndarray, before: str | None = None) -> Any:
        """Row 0 is the whole message (emotion reads it); the rest, if any, its sentences."""
        from app.memory.records import ScoreUpdate

        vectors = moved_in_context(vectors, in_context(row.content, before) is not None)
        vector = vectors if len(vectors) > 1 else vectors[0]
        emotion = self.scorer.score(row.content, vectors[0])
        importance = self.importance(row.content, row.role, emotion)
        return ScoreUpdate(id=row.id, emotion=emotion.label, emotion_confidence=emotion.confidence,
                           emotion_intensity=emotion.intensity, emotion_probs=emotion.probs,
                           importance=importance, embedding=vector)
