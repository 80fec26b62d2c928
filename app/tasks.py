"""Owned background tasks: started by the lifespan, cancelled and awaited by it.

    task = asyncio.create_task(worker(), name="worker")
    ...
    await cancel(task)   # returns once the task has really finished
"""

from __future__ import annotations

import asyncio
import contextlib


async def cancel(task: asyncio.Task | None) -> None:
    """Cancel `task` and wait until it has finished (None and finished tasks are fine)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
