"""Consolidation: the background task that moves messages between memory tiers.

Every CONSOLIDATE_INTERVAL_SECONDS it submits a "consolidate" job for each session active in this
process (on PostgreSQL any replica may do it); the job re-tiers the session (`tiers.consolidate`,
pure) and applies the changes in one transaction; it never holds a session's lock, so requests
are never blocked. `POST /v1/sessions/{id}/consolidate` runs the same for one session at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from app.memory.background.jobs import Job, JobQueue
from app.memory.background.tiers import TierPolicy, consolidate
from app.tasks import cancel


async def consolidate_session(store: Any, key: str, policy: TierPolicy, now: float | None = None) -> dict[str, int]:
    rows = await store.messages(key)
    changes = consolidate(rows, time.time() if now is None else now, policy)
    await store.set_tiers(key, changes)
    tiers: dict[str, int] = {}
    for row, tier in _final_tiers(rows, changes):
        tiers[tier] = tiers.get(tier, 0) + 1
    return {"changed": len(changes), **tiers}


def _final_tiers(rows: list[Any], changes: list[Any]) -> Iterable[tuple[Any, str]]:
    new = {c.id: c.tier for c in changes}
    return ((row, new.get(row.id, row.tier)) for row in rows)


KIND = "consolidate"


class Consolidator:
    def __init__(self, store: Any, active_keys: Callable[[], Iterable[str]], policy: TierPolicy,
                 interval: float, *, jobs: JobQueue) -> None:
        self.store = store
        self.active_keys = active_keys
        self.policy = policy
        self.interval = interval
        self.jobs = jobs
        self._task: asyncio.Task | None = None
        jobs.handle(KIND, self.run_job, drain=False)

    async def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="consolidation")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def run_job(self, job: Job) -> None:
        await consolidate_session(self.store, job.key, self.policy)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for key in list(self.active_keys()):
                self.jobs.submit(KIND, key)
