"""Working memory: the most recent active turns of each live session, held in RAM.

Every request diffs the client's history against the stored tail of its conversation; holding
that tail here saves a SQLite hop on the hot path. The held messages are always a suffix of the
session's active turns (in position order), so what is here is exactly the last `len(...)` of
them. Pure data structure: no I/O, no clock other than the one passed in.

    working = WorkingMemory(max_messages=64, idle_seconds=1800)
    tail = working.get(key)
    if tail is None:
        tail = working.load(key, await store.active_tail(key, 64))   # cold start
    applied = await store.apply(key, append=new)
    working.apply(key, added=applied.rows, removed=applied.superseded)   # mirror the commit
    evicted = working.evict_idle(time.monotonic())                        # the janitor
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple


class WorkingMessage(NamedTuple):
    """The fields a history diff needs, lighter than a full stored row."""

    id: int
    position: int
    role: str
    name: str | None
    content: str
    content_hash: str
    token_count: int
    created_at: float | None = None  # when it was said: how much a turn before the window is worth

    @classmethod
    def of(cls, row: Any) -> WorkingMessage:
        """From a store row (or anything with these attributes)."""
        if isinstance(row, cls):
            return row
        return cls(row.id, row.position, row.role, row.name, row.content, row.content_hash, row.token_count,
                   getattr(row, "created_at", None))


@dataclass(slots=True, frozen=True)
class WorkingStats:
    sessions: int
    messages: int
    content_bytes: int  # characters of held content (a lower bound on RAM)


class _Held:
    __slots__ = ("messages", "used", "complete")

    def __init__(self, messages: deque[WorkingMessage], used: float, complete: bool) -> None:
        self.messages = messages
        self.used = used
        self.complete = complete  # True when the whole conversation fits (nothing older exists)


class WorkingMemory:
    """Per session a bounded deque of recent turns; least recently used sessions go first."""

    def __init__(self, max_messages: int = 64, idle_seconds: float = 1800, max_sessions: int = 10_000, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_messages = max(1, max_messages)
        self.idle_seconds = idle_seconds
        self.max_sessions = max(1, max_sessions)
        self.clock = clock
        self._held: OrderedDict[str, _Held] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def get(self, key: str) -> list[WorkingMessage] | None:
        """The held tail, oldest first, or None when the session must be loaded from the store."""
        held = self._held.get(key)
        if held is None:
            return None
        self._touch(key, held)
        return list(held.messages)

    def load(self, key: str, rows: Iterable[Any], *, complete: bool | None = None) -> list[WorkingMessage]:
        """Hold `rows` (the store's `active_tail(key, n)` with n >= max_messages, oldest first).

        `complete` says no older active turn exists; by default it is inferred from getting fewer
        rows than `max_messages`."""
        messages = deque((WorkingMessage.of(r) for r in rows), maxlen=self.max_messages)
        if complete is None:
            complete = len(messages) < self.max_messages
        self._held[key] = _Held(messages, self.clock(), complete)
        self._held.move_to_end(key)
        while len(self._held) > self.max_sessions:
            self._held.popitem(last=False)
        return list(messages)

    def apply(self, key: str, added: Iterable[Any] = (), removed: Iterable[int] = ()) -> bool:
        """Mirror a commit: drop `removed` ids, add `added` rows (turns only) in position order.

        Returns False when the session is not held (nothing to do: the next `get` misses and the
        caller loads from the store) or when the held suffix could no longer be kept exact."""
        held = self._held.get(key)
        if held is None:
            return False
        gone = set(removed)
        kept = [m for m in held.messages if m.id not in gone]
        start = kept[0].position if kept and not held.complete else None
        new = [WorkingMessage.of(r) for r in added if getattr(r, "kind", "turn") == "turn"]
        if not kept and not held.complete:
            self.forget(key)  # every held message went: where the suffix starts is unknown
            return False
        kept += [m for m in new if start is None or m.position >= start]
        kept.sort(key=lambda m: (m.position, m.id))
        held.messages = deque(kept, maxlen=self.max_messages)
        held.complete = held.complete and len(kept) <= self.max_messages
        self._touch(key, held)
        return True

    def keys(self) -> list[str]:
        """The sessions held now (the active ones)."""
        return list(self._held)

    def is_complete(self, key: str) -> bool:
        """True when the held tail is the whole conversation (nothing older is stored)."""
        held = self._held.get(key)
        return bool(held and held.complete)

    def forget(self, key: str) -> bool:
        return self._held.pop(key, None) is not None

    def evict_idle(self, now: float | None = None) -> list[str]:
        """Drop sessions unused for `idle_seconds`; returns their keys (for dependent caches)."""
        deadline = (self.clock() if now is None else now) - self.idle_seconds
        evicted = []
        while self._held:
            key, held = next(iter(self._held.items()))
            if held.used > deadline:
                break
            self._held.popitem(last=False)
            evicted.append(key)
        return evicted

    def content_bytes(self) -> dict[str, int]:
        """Characters of message text held per conversation (about its bytes)."""
        return {key: sum(len(m.content) for m in held.messages) for key, held in self._held.items()}

    def message_count(self) -> int:
        return sum(len(held.messages) for held in self._held.values())

    def stats(self) -> WorkingStats:
        content = sum(len(m.content) for held in self._held.values() for m in held.messages)
        return WorkingStats(len(self._held), self.message_count(), content)

    def _touch(self, key: str, held: _Held) -> None:
        held.used = self.clock()
        self._held.move_to_end(key)
