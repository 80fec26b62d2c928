"""What the stored turns before the client's window are worth, and the room left for recollections."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.budget import BudgetSplit, plan_budget
from app.memory.search.recall import Continuity, earlier_turns, memory_room

NOW = 1_700_000_000.0


@pytest.mark.parametrize("back, age_hours, value", [
    (1, 0, 2.0 * 0.5 ** 0.25),  # the turn just before a lone new message
    (4, 0, 1.0),                  # four turns back: half
    (21, 0, 2.0 * 0.5 ** 5.25),   # behind a window of twenty turns: little
    (1, 6, 2.0 * 0.5 ** 1.25),    # six hours old: half again
    (1, 24 * 400, 0.0),           # a chat from last year: nothing
])
def test_continuity_halves_by_turns_back_and_by_age(back, age_hours, value):
    assert Continuity().value(back, age_hours * 3600) == pytest.approx(value, abs=1e-9)


def row(id: int, role: str = "user", created: float | None = NOW) -> SimpleNamespace:
    return SimpleNamespace(id=id, position=id, role=role, content=f"turn {id}", created_at=created, name=None)


def test_earlier_turns_are_the_stored_turns_before_the_window_newest_first():
    stored = [row(1), row(2, "assistant"), row(3, "tool"), row(4), row(5, "assistant", created=None)]
    client = [{"role": "assistant", "content": "turn 5", "_id": 5}, {"role": "user", "content": "new"}]
    tail = earlier_turns(client, stored, NOW)
    assert [t.message["_id"] for t in tail] == [4, 2, 1]  # tool turns are never offered
    assert tail[0].value == pytest.approx(Continuity().value(2, 0))
    assert tail[0].value > tail[1].value > tail[2].value
    assert earlier_turns([{"role": "user", "content": "new"}], stored, NOW)[0].message["_id"] == 5


def test_memory_room_is_what_the_persona_and_the_window_leave():
    plan = plan_budget(2048, 256, BudgetSplit())
    lone = [{"role": "user", "content": "Where did I put the ring?"}]
    assert memory_room(plan, None, lone) > 1750
    long_window = [{"role": "user", "content": "word " * 300} for _ in range(10)]
    assert memory_room(plan, "You are Ada.", long_window) < memory_room(plan, "You are Ada.", lone)
