"""A bounded pool of aiosqlite connections by session key, least recently used closed first.

At most `max_open` idle connections stay open; one in use is never closed under its caller, so the
bound is only exceeded while more sessions than that are busy at once. `closed(key)` refuses a key
while the block runs, after its last user left (used to delete a session's files).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite

from app.memory.records import SessionNotFound


class _Entry:
    __slots__ = ("db", "users", "ready")

    def __init__(self) -> None:
        self.db: aiosqlite.Connection | None = None
        self.users = 1
        self.ready = asyncio.Event()


class ConnectionPool:
    """Open connections by key, least recently used first; idle ones closed past `max_open`."""

    def __init__(self, connect: Callable[[str, bool], Any], max_open: int) -> None:
        self._connect = connect
        self.max_open = max(1, max_open)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._closing: set[str] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def use(self, key: str, *, create: bool = False) -> AsyncIterator[aiosqlite.Connection]:
        entry = await self._acquire(key, create)
        try:
            yield entry.db
        finally:
            entry.users -= 1
            await self._trim()

    async def _acquire(self, key: str, create: bool) -> _Entry:
        if self._closed:
            raise RuntimeError("the store is closed")
        if key in self._closing:
            raise SessionNotFound(key)
        entry = self._entries.get(key)
        if entry is None:
            return await self._open(key, create)
        entry.users += 1
        self._entries.move_to_end(key)
        if not entry.ready.is_set():
            try:
                await entry.ready.wait()
            except BaseException:
                entry.users -= 1
                raise
            if entry.db is None:  # the opener failed or was cancelled: try on our own terms
                entry.users -= 1
                return await self._acquire(key, create)
        return entry

    async def _open(self, key: str, create: bool) -> _Entry:
        entry = self._entries[key] = _Entry()
        try:
            entry.db = await self._connect(key, create)
        except BaseException:
            if self._entries.get(key) is entry:
                del self._entries[key]
            raise
        finally:
            entry.ready.set()
        return entry

    async def _trim(self) -> None:
        while len(self._entries) > self.max_open:
            idle = next((k for k, e in self._entries.items() if e.users == 0 and e.db is not None), None)
            if idle is None:
                return
            await self._entries.pop(idle).db.close()

    @asynccontextmanager
    async def closed(self, key: str) -> AsyncIterator[None]:
        """Refuse `key` while the block runs, after its connection's last user left and it closed."""
        self._closing.add(key)
        try:
            entry = self._entries.get(key)
            while entry is not None and (entry.users or not entry.ready.is_set()):
                await asyncio.sleep(0.005)
            if self._entries.get(key) is entry and entry is not None:
                del self._entries[key]
                await entry.db.close()
            yield
        finally:
            self._closing.discard(key)

    async def aclose(self) -> None:
        self._closed = True
        while self._entries:
            _, entry = self._entries.popitem(last=False)
            if entry.db is not None:
                await entry.db.close()
