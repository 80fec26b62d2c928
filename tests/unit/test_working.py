"""Working memory: a bounded, exact suffix of each session's active turns, evicted when idle."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.memory.working import WorkingMemory, WorkingMessage


@dataclass
class Row:
    """Stands in for a store row: only the attributes working memory reads."""

    id: int
    position: int
    role: str = "user"
    name: str | None = None
    content: str = ""
    content_hash: str = ""
    token_count: int = 1
    kind: str = "turn"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rows(*positions: int) -> list[Row]:
    return [Row(id=p, position=p, content=f"m{p}") for p in positions]


def ids(messages) -> list[int]:
    return [m.id for m in messages]


def test_get_misses_until_loaded_and_returns_a_copy():
    working = WorkingMemory(max_messages=4)
    assert working.get("k") is None
    loaded = working.load("k", rows(1, 2, 3))
    assert ids(loaded) == [1, 2, 3] and isinstance(loaded[0], WorkingMessage)
    got = working.get("k")
    got.clear()
    assert ids(working.get("k")) == [1, 2, 3]
    assert len(working) == 1 and "k" in working


def test_load_keeps_only_the_most_recent_messages():
    working = WorkingMemory(max_messages=3)
    assert ids(working.load("k", rows(1, 2, 3, 4, 5))) == [3, 4, 5]


# held positions, complete?, added positions, removed ids -> held ids afterwards (None: forgotten)
APPLY_CASES = [
    ("append to a short conversation", [1, 2], None, [3, 4], [], [1, 2, 3, 4]),
    ("append past the bound drops the oldest", [1, 2, 3, 4], None, [5, 6], [], [3, 4, 5, 6]),
    ("supersede in place", [1, 2, 3], None, [(30, 2)], [2], [1, 30, 3]),
    ("removal shrinks the window", [1, 2, 3, 4], None, [], [4], [1, 2, 3]),
    ("replacement before a partial window is not held", [5, 6, 7, 8], False, [(40, 2)], [2], [5, 6, 7, 8]),
    ("replacement before a complete window is held", [5, 6], True, [(40, 2)], [], [40, 5, 6]),
    ("every held message of a partial window removed", [5, 6, 7, 8], False, [9], [5, 6, 7, 8], None),
    ("unknown ids are ignored", [1, 2], None, [], [99], [1, 2]),
]


@pytest.mark.parametrize("case, held, complete, added, removed, expected", APPLY_CASES,
                         ids=[c[0] for c in APPLY_CASES])
def test_apply_mirrors_a_commit(case, held, complete, added, removed, expected):
    working = WorkingMemory(max_messages=4)
    working.load("k", rows(*held), complete=complete)
    new = [Row(id=a[0], position=a[1]) if isinstance(a, tuple) else Row(id=a, position=a) for a in added]
    assert working.apply("k", added=new, removed=removed) is (expected is not None)
    got = working.get("k")
    assert (None if got is None else ids(got)) == expected


def test_apply_ignores_sessions_not_held_and_non_turns():
    working = WorkingMemory()
    assert working.apply("absent", added=rows(1)) is False
    assert working.get("absent") is None
    working.load("k", rows(1))
    working.apply("k", added=[Row(id=2, position=2, kind="persona"), Row(id=3, position=3)])
    assert ids(working.get("k")) == [1, 3]


def test_complete_is_inferred_from_a_short_load():
    working = WorkingMemory(max_messages=3)
    working.load("short", rows(5, 6))          # fewer than asked for: the whole conversation
    working.load("full", rows(5, 6, 7))        # a full window: older turns may exist
    for key in ("short", "full"):
        working.apply(key, added=[Row(id=99, position=1)])
    assert ids(working.get("short")) == [99, 5, 6]
    assert ids(working.get("full")) == [5, 6, 7]


def test_evict_idle_returns_the_keys_of_sessions_unused_long_enough():
    clock = Clock()
    working = WorkingMemory(idle_seconds=60, clock=clock)
    working.load("old", rows(1))
    clock.now += 30
    working.load("recent", rows(1))
    clock.now += 40
    assert working.evict_idle() == ["old"]
    working.get("recent")                       # use keeps it alive
    clock.now += 59
    assert working.evict_idle(clock.now) == []
    assert working.evict_idle(clock.now + 1) == ["recent"]
    assert len(working) == 0


def test_max_sessions_drops_the_least_recently_used():
    working = WorkingMemory(max_sessions=2)
    working.load("a", rows(1))
    working.load("b", rows(1))
    working.get("a")
    working.load("c", rows(1))
    assert ("a" in working, "b" in working, "c" in working) == (True, False, True)


def test_forget_and_size_stats():
    working = WorkingMemory()
    working.load("a", [Row(id=1, position=1, content="hello"), Row(id=2, position=2, content="hi")])
    working.load("b", rows(1))
    stats = working.stats()
    assert (stats.sessions, stats.messages, stats.content_bytes) == (2, 3, 5 + 2 + 2)
    assert working.message_count() == 3
    assert working.forget("a") is True and working.forget("a") is False
    assert len(working) == 1
