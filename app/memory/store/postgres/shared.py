"""One asyncpg pool per database for the whole process, handed to every part that keeps rows there
(request log, rate limits, documents, and any store that adopts it), closed once by the lifespan.

    pools = Pools(size=settings.database_pool_size)
    stack.push_async_callback(pools.aclose)
    pool = await pools.get(settings.database_url)    # opened on first use, the same pool after

An instance lives on the app's state, never at module level: two apps in one process (as in the
tests) each own their pools.
"""

from __future__ import annotations

import asyncio

import asyncpg

from app.memory.store.postgres.pool import open_pool


class Pools:
    def __init__(self, size: int = 10) -> None:
        self.size = size
        self._pools: dict[str, asyncpg.Pool] = {}
        self._lock = asyncio.Lock()

    async def get(self, dsn: str) -> asyncpg.Pool:
        """The pool for `dsn`, opened the first time it is asked for (callers at once share it)."""
        async with self._lock:
            if dsn not in self._pools:
                self._pools[dsn] = await open_pool(dsn, min_size=1, max_size=self.size)
            return self._pools[dsn]

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()
