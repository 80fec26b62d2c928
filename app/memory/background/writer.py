"""Background work on new messages, off the response path: embed, score emotion and importance.

A job names a session ("score", key) on the job queue (`jobs.py`: this process's queues on
SQLite, a table every replica claims from on PostgreSQL). Its worker loads that session's
pending messages from the store, embeds them in one batch, scores them, saves the scores in one
transaction and hands the vectors to this process's index. A job lost between a commit and its
submit (a crash, a full queue) is only late, never lost: a sweep at start and every
`sweep_every` seconds submits every session with pending messages (`store.keys_with_pending`).
Small calls that belong to this process (recording an abandoned reply) run on a task of its own.

    writer = Writer(store, embedder, scorer, jobs=jobs, importance=score_importance, on_scored=recall.scored)
    await jobs.start(); await writer.start(); writer.submit(key); ...; await writer.stop(); await jobs.stop()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.memory.background.jobs import Job, JobQueue
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
    done: int = 0  # messages embedded and scored here
    failures: int = 0  # small calls that raised


KIND = "score"


class Writer:
    def __init__(self, store: Any, embedder: Any, scorer: Any, *, jobs: JobQueue, importance: Callable[..., float],
                 on_scored: Callable[[str, list[Any], list[Any]], Awaitable[None] | None] | None = None,
                 batch: int = 64, sweep_every: float = 15.0, context_on_query_model: bool = False) -> None:
        self.store = store
        self.context_on_query_model = context_on_query_model  # the message read in context: the int8 copy
        self.embedder = embedder
        self.scorer = scorer
        self.importance = importance
        self.on_scored = on_scored
        self.batch = batch
        self.jobs = jobs
        self.sweep_every = sweep_every
        self.stats = WriterStats()
        self._calls: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._calling = False
        self._tasks: list[asyncio.Task] = []
        jobs.handle(KIND, self.run_job)

    @property
    def depth(self) -> int:
        return self.jobs.depth(KIND)

    async def start(self) -> None:
        """Submit what a previous run left pending, then start the small calls' task and the sweep."""
        await self._sweep_once()
        self._tasks = [asyncio.create_task(self._run_calls(), name="memory-writer-calls")]
        if self.sweep_every > 0:
            self._tasks.append(asyncio.create_task(self._sweep(), name="memory-writer-sweep"))

    def submit(self, key: str) -> None:
        """Ask for `key`'s pending messages to be processed; never blocks, never raises."""
        self.jobs.submit(KIND, key)

    def submit_call(self, call: Callable[[], Awaitable[None]]) -> None:
        """Run a small coroutine on this process's writer task (e.g. recording an abandoned reply)."""
        self._calls.put_nowait(call)

    async def catch_up(self) -> int:
        """Submit every session with pending messages; returns how many."""
        keys = await self.store.keys_with_pending()
        for key in keys:
            self.submit(key)
        return len(keys)

    async def idle(self, timeout: float = 30.0) -> None:
        """Wait until the small calls are done and no scoring job waits or runs (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._calling or not self._calls.empty()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self.jobs.idle([KIND], max(0.0, deadline - time.monotonic()))

    async def stop(self, timeout: float = 3.0) -> None:
        """Finish queued work within `timeout`, then stop; what is left stays pending in the store."""
        if not self._tasks:
            return
        await self.idle(timeout)
        for task in self._tasks:
            await cancel(task)
        self._tasks = []

    async def run_job(self, job: Job) -> None:
        await self.process(job.key)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_every)
            await self._sweep_once()

    async def _sweep_once(self) -> None:
        try:
            await self.catch_up()
        except Exception:  # noqa: BLE001 - the next sweep tries again
            log.exception("sweeping for pending messages failed")

    async def _run_calls(self) -> None:
        while True:
            call = await self._calls.get()
            self._calling = True
            try:
                await call()
            except Exception:  # noqa: BLE001 - one bad call must not stop the task
                self.stats.failures += 1
                log.exception("background memory call failed")
            finally:
                self._calling = False

    async def process(self, key: str) -> int:
        """Embed and score every pending message of one session; returns how many were done."""
        total = 0
        while rows := await self.store.pending(key, self.batch):
            before = await self.store.turns_before(key, [row.id for row in rows])
            texts = [embedding_texts(row.content, before.get(row.id)) for row in rows]
            nudges = [in_context(row.content, before.get(row.id)) is not None for row in rows]
            flat = await self._embed(texts, nudges)
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

    async def _embed(self, groups: list[list[str]], nudges: list[bool]) -> np.ndarray:
        """Each text's vector, in order, every distinct text embedded once (a short message is its
        own statement). A group's last text, when `nudges` says it is the message read in context,
        goes to the queries' model with `context_on_query_model`: its vector only moves the
        statements' by `CONTEXT_MIX`, and the int8 copy runs it in about 40% of the CPU time."""
        quick = [self.context_on_query_model and nudge for nudge in nudges]
        stored = [t for group, q in zip(groups, quick) for t in (group[:-1] if q else group)]
        context = [group[-1] for group, q in zip(groups, quick) if q]
        main, nudging = await asyncio.gather(self._unique(stored, False), self._unique(context, True))
        parts = iter(main), iter(nudging)
        return np.stack([next(parts[1] if q and i == len(group) - 1 else parts[0])
                         for group, q in zip(groups, quick) for i in range(len(group))])

    async def _unique(self, texts: list[str], query_model: bool) -> np.ndarray:
        unique = list(dict.fromkeys(texts))
        if not unique:
            return np.zeros((0, 0), dtype=np.float32)
        options = {"query_model": True} if query_model else {}
        vectors = await self.embedder.embed(unique, background=True, **options)
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
