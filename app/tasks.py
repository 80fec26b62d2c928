"""Owned background tasks: started by the lifespan, cancelled and awaited by it.

    task = asyncio.create_task(worker(), name="worker")
    ...
    await cancel(task)   # returns once the task has really finished
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


async def cancel(task: asyncio.Task | None) -> None:
    """Cancel `task` and wait until it has finished (None and finished tasks are fine)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def single_flight(pending: dict[Hashable, asyncio.Future], key: Hashable, build: Callable[[], Awaitable[T]]) -> T:
    """`build()` once for `key` however many callers ask at the same time: the others await its
    result (shielded: a caller that gives up does not cancel the build). A failed build is
    reported to every waiting caller and then forgotten, so the next call tries again."""
    if key in pending:
        return await asyncio.shield(pending[key])
    future = asyncio.get_running_loop().create_future()
    pending[key] = future
    try:
        result = await build()
        future.set_result(result)
        return result
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: the build's own caller gets it
        raise
    finally:
        pending.pop(key, None)
