"""The background summarizer: "summary" jobs on the job queue, at most one at a time per session.

`poke(key)` after each recorded exchange submits one (on PostgreSQL any replica may do it); the
job plans the next span from what is stored
(`summaries.next_span`), asks the upstream model through `complete(messages) -> str`, and
stores the result with its message range. An upstream failure gives an extractive summary
marked `extractive`, which a later pass replaces with a real one. Never on the response path.

    summarizer = Summarizer(store, embedder, jobs=jobs, complete=router_complete, every=20)
    await jobs.start(); summarizer.poke(key, model); await summarizer.idle(); await jobs.stop()
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.memory.background.jobs import Job, JobQueue
from app.memory.background.summaries import (Span, extractive_summary, higher_request, next_higher, next_span,
                                  summary_request)

log = logging.getLogger("app.memory.background.summarizer")
Complete = Callable[[list[dict[str, str]], str], Awaitable[str]]


KIND = "summary"


class Summarizer:
    def __init__(self, store: Any, embedder: Any, *, jobs: JobQueue, complete: Complete | None, every: int = 20,
                 fanout: int = 5, model: str = "", on_written: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.complete = complete
        self.every = every
        self.fanout = fanout
        self.model = model
        self.on_written = on_written
        self.jobs = jobs
        self._models: dict[str, str] = {}
        self._down = False
        jobs.handle(KIND, self.run_job, drain=False)  # a summary is written in one transaction or not at all

    def poke(self, key: str, model: str = "") -> None:
        """Check `key` for due summaries, asking `model` (SUMMARY_MODEL, if set, wins)."""
        self.jobs.submit(KIND, key, self.model or model)

    async def idle(self, timeout: float = 30.0) -> None:
        await self.jobs.idle([KIND], timeout)

    async def run_job(self, job: Job) -> None:
        if job.note:
            self._models[job.key] = job.note
        await self.run_once(job.key)

    async def run_once(self, key: str) -> int:
        """Write every summary that is due for one session; returns how many were written."""
        written = 0
        self._down = False  # set by a failed ask: no upgrades until a later pass
        while await self._step(key):
            written += 1
        return written

    async def _step(self, key: str) -> bool:
        summaries = [s for s in await self.store.summaries(key) if not s.superseded]
        if await self._upgrade_extractive(key, summaries):
            return True
        level0 = [s for s in summaries if s.level == 0]
        until = max((s.end_position for s in level0), default=-1)
        rows = await self.store.messages(key)
        span = next_span(until, [r.position for r in rows], self.every)
        if span is not None:
            await self._summarize_span(key, span, [r for r in rows if span.start <= r.position <= span.end])
            return True
        higher = next_higher(summaries, self.fanout)
        if higher is not None:
            await self._summarize_higher(key, *higher)
            return True
        return False

    async def _summarize_span(self, key: str, span: Span, rows: list[Any], replaces: int | None = None) -> None:
        text, kind = await self._ask(key, summary_request(rows)), "rolling"
        if text is None:
            text, kind = extractive_summary(rows), "extractive"
        await self._save(key, kind, 0, span.start, span.end, text, replaces)

    async def _summarize_higher(self, key: str, level: int, parts: list[Any]) -> None:
        text = await self._ask(key, higher_request([p.text for p in parts]))
        if text is None:
            return  # higher levels wait for a reachable upstream; nothing extractive to add
        await self._save(key, "higher", level, parts[0].start_position, parts[-1].end_position, text, None)

    async def _upgrade_extractive(self, key: str, summaries: list[Any]) -> bool:
        stale = [s for s in summaries if s.kind == "extractive"]
        if not stale or self.complete is None or self._down:
            return False
        first = stale[0]
        rows = [r for r in await self.store.messages(key) if first.start_position <= r.position <= first.end_position]
        text = await self._ask(key, summary_request(rows))
        if text is None:
            return False
        await self._save(key, "rolling", 0, first.start_position, first.end_position, text, first.id)
        return True

    async def _ask(self, key: str, messages: list[dict[str, str]]) -> str | None:
        if self.complete is None:
            return None
        try:
            text = (await self.complete(messages, self._models.get(key, self.model))).strip()
        except Exception as exc:  # noqa: BLE001 - any upstream failure falls back to extractive
            log.warning("summary upstream failed: %s", exc)
            self._down = True
            return None
        return text or None

    async def _save(self, key: str, kind: str, level: int, start: int, end: int, text: str,
                    replaces: int | None) -> None:
        (vector,) = await self.embedder.embed([text], background=True)  # stored: the writer's model
        await self.store.add_summary(key, kind=kind, level=level, start_position=start, end_position=end,
                                     text=text, embedding=vector, supersedes=(replaces,) if replaces else ())
        if self.on_written is not None:
            self.on_written(key)


def router_completion(router: Any) -> Complete:
    """`complete(messages, model)` over the proxy's own router (retries and failover included)."""
    from app.completion import Assembler
    from app.providers.base import UpstreamRequest

    async def complete(messages: list[dict[str, str]], model: str) -> str:
        request = UpstreamRequest(model=model, messages=messages, params={"temperature": 0.2, "max_tokens": 512})
        opened = await router.open(model, request)
        assembler = Assembler()
        async for event in opened.events:
            assembler.add(event)
        return assembler.text

    return complete
