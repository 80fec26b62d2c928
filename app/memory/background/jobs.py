"""Background jobs: named work on one conversation, submitted by requests and done off their path.

A job is a kind and a session key ("score" conversation k, "summary" k, "consolidate" k). Its
work reads what is stored and is idempotent: scoring a conversation with nothing pending does
nothing. So a queue keeps at most one waiting job per (kind, key), and a job submitted while the
same one runs is done once more afterwards. Two implementations:

- `LocalJobs`: asyncio queues in this process (SQLite: one process owns the data directory).
- `PgJobs` (`pg_jobs.py`): a table in PostgreSQL that every replica claims from, so any replica
  does any conversation's work and a dead replica's jobs are taken up by the others.

    jobs = open_jobs(settings)
    jobs.handle("score", writer.run_job)          # before start: one worker per kind
    await jobs.start(); jobs.submit("score", key); ...; await jobs.stop()
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.tasks import cancel

log = logging.getLogger("app.memory.background.jobs")


@dataclass(frozen=True, slots=True)
class Job:
    kind: str
    key: str
    note: str = ""  # a small hint for the worker (the summary model); the newest submit's wins
    attempts: int = 0
    id: int = 0  # the row, on PostgreSQL


Handler = Callable[[Job], Awaitable[None]]


@dataclass(slots=True)
class KindStats:
    """What this process did for one kind of job (counters only grow)."""

    done: int = 0
    failed: int = 0
    reclaimed: int = 0  # taken over from a replica whose lease ran out
    dropped: int = 0  # refused by a full local queue (the sweep submits it again)


@dataclass(frozen=True, slots=True)
class QueueState:
    waiting: int = 0  # jobs not yet claimed (the whole queue, on PostgreSQL)
    claimed: int = 0  # jobs being done right now (by any replica, on PostgreSQL)
    oldest: float = 0.0  # age in seconds of the oldest job, waiting or claimed


class JobQueue(Protocol):
    """What the writer, the summarizer and consolidation need from a queue."""

    backend: str  # "local" | "postgresql"
    stats: dict[str, KindStats]

    def handle(self, kind: str, handler: Handler, *, drain: bool = True) -> None: ...
    def submit(self, kind: str, key: str, note: str = "") -> None: ...
    def depth(self, kind: str | None = None) -> int: ...
    def claimed(self, kind: str | None = None) -> int: ...
    async def state(self) -> QueueState: ...
    async def idle(self, kinds: Iterable[str] | None = None, timeout: float = 30.0) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self, timeout: float = 3.0) -> None: ...


def backoff(attempts: int, base: float = 2.0, cap: float = 300.0) -> float:
    """Seconds before a job that failed `attempts` times (1, 2, ...) is tried again: doubling, capped.

        >>> [backoff(n) for n in (1, 2, 3)], backoff(20)
        ([2.0, 4.0, 8.0], 300.0)
    """
    return min(cap, base * 2.0 ** max(0, min(attempts, 32) - 1))


def open_jobs(settings: Any) -> JobQueue:
    """PostgreSQL's shared queue when DATABASE_URL is set, else this process's (not yet started)."""
    from app.memory.store.postgres.pool import is_postgres_url

    if is_postgres_url(settings.database_url):
        from app.memory.background.pg_jobs import PgJobs

        return PgJobs(settings.database_url, poll=settings.jobs_poll_seconds, lease=settings.jobs_lease_seconds)
    return LocalJobs()


@dataclass(slots=True)
class _Kind:
    handler: Handler
    drain: bool
    queue: asyncio.Queue[str]
    waiting: dict[str, float] = field(default_factory=dict)  # key -> since (monotonic)
    notes: dict[str, str] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    task: asyncio.Task | None = None


class LocalJobs:
    """One asyncio queue and one worker task per kind, in this process; a failed job is logged and
    counted, not retried (the writer's sweep finds its pending messages again)."""

    backend = "local"

    def __init__(self, max_queue: int = 10_000) -> None:
        self.max_queue = max_queue
        self.stats: dict[str, KindStats] = {}
        self._kinds: dict[str, _Kind] = {}

    def handle(self, kind: str, handler: Handler, *, drain: bool = True) -> None:
        """Do `kind`'s jobs with `handler`; `drain`: `stop` lets waiting ones finish first."""
        self._kinds[kind] = _Kind(handler, drain, asyncio.Queue(self.max_queue))
        self.stats.setdefault(kind, KindStats())

    def submit(self, kind: str, key: str, note: str = "") -> None:
        """Queue `key`'s `kind` job unless it is already waiting; never blocks, never raises."""
        entry = self._kinds.get(kind)
        if entry is None:
            return
        if note:
            entry.notes[key] = note
        if key in entry.waiting:
            return
        try:
            entry.queue.put_nowait(key)
            entry.waiting[key] = time.monotonic()
        except asyncio.QueueFull:
            self.stats[kind].dropped += 1

    def depth(self, kind: str | None = None) -> int:
        return sum(len(e.waiting) for k, e in self._kinds.items() if kind in (None, k))

    def claimed(self, kind: str | None = None) -> int:
        return sum(len(e.running) for k, e in self._kinds.items() if kind in (None, k))

    async def state(self) -> QueueState:
        since = [t for e in self._kinds.values() for t in (*e.waiting.values(), *e.running.values())]
        oldest = time.monotonic() - min(since) if since else 0.0
        return QueueState(waiting=self.depth(), claimed=self.claimed(), oldest=oldest)

    async def idle(self, kinds: Iterable[str] | None = None, timeout: float = 30.0) -> bool:
        """Wait until no job of `kinds` (all by default) waits or runs; False on timeout."""
        entries = [e for k, e in self._kinds.items() if kinds is None or k in set(kinds)]
        deadline = time.monotonic() + timeout
        while any(e.waiting or e.running for e in entries):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def start(self) -> None:
        for kind, entry in self._kinds.items():
            entry.task = asyncio.create_task(self._work(kind, entry), name=f"jobs-{kind}")

    async def stop(self, timeout: float = 3.0) -> None:
        """Finish the draining kinds' jobs within `timeout`, then stop every worker."""
        await self.idle([k for k, e in self._kinds.items() if e.drain], timeout)
        for entry in self._kinds.values():
            await cancel(entry.task)
            entry.task = None

    async def _work(self, kind: str, entry: _Kind) -> None:
        while True:
            key = await entry.queue.get()
            entry.running[key] = entry.waiting.pop(key, time.monotonic())
            try:
                await entry.handler(Job(kind, key, entry.notes.pop(key, "")))
                self.stats[kind].done += 1
            except Exception:  # noqa: BLE001 - one bad job must not stop the worker
                self.stats[kind].failed += 1
                log.exception("background job failed", extra={"session_key": key, "kind": kind})
            finally:
                entry.running.pop(key, None)
