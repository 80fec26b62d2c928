"""Consolidation: the background task that moves messages between memory tiers.

Every CONSOLIDATE_INTERVAL_SECONDS it re-tiers the sessions that were active since the last
pass (`tiers.consolidate`, pure) and applies the changes in one transaction per session; it
never holds a session's lock, so requests are never blocked. `POST /v1/sessions/{id}/consolidate`
runs the same for one session at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from app.memory.background.tiers import TierPolicy, consolidate
from app.tasks import cancel

log = logging.getLogger("app.memory.background.consolidation")


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


class Consolidator:
    def __init__(self, store: Any, active_keys: Callable[[], Iterable[str]], policy: TierPolicy,
                 interval: float) -> None:
        self.store = store
        self.active_keys = active_keys
        self.policy = policy
        self.interval = interval
        self.failures = 0
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="consolidation")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for key in list(self.active_keys()):
                try:
                    await consolidate_session(self.store, key, self.policy)
                except Exception:  # noqa: BLE001 - one session's failure must not stop the pass
                    self.failures += 1
                    log.exception("consolidation failed")
