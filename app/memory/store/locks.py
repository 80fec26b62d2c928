"""Per-conversation locks within one process, shared by both stores.

A writing request holds its conversation's lock from sync to reply (`MemoryService`), so two
requests of one conversation in this process never interleave; across replicas the database's
advisory lock and versions do that (`protocol.py`). A lock lives as long as someone holds or
awaits it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.memory.records import check_key


class SessionLocks:
    """Mixed into a store: `lock_for(key)` and `session_lock(key)`."""

    def lock_for(self, key: str) -> asyncio.Lock:
        locks = self.__dict__.setdefault("_locks", weakref.WeakValueDictionary())
        lock = locks.get(check_key(key))
        if lock is None:
            lock = locks[key] = asyncio.Lock()
        return lock

    @asynccontextmanager
    async def session_lock(self, key: str) -> AsyncIterator[None]:
        """Serialise a read-plan-write sequence on one session in this process (not re-entrant)."""
        async with self.lock_for(key):
            yield
