"""The preview's budget as the parts of one bar: they add up to the context size."""

from __future__ import annotations

import pytest

from app.budget_parts import budget_parts
from app.memory_block import MemoryItem
from app.tokens import count_tokens

BUDGET = {"persona": 40, "memories": 120, "recent": 300, "priming": 3, "earlier": 50, "response_reserve": 200,
          "total_prompt": 513, "limit": 800}
SUMMARY = MemoryItem(text="They met at the harbour and argued about the boat.", kind="summary")
MOMENT = MemoryItem(text="I sold the boat in May.", kind="memory")


@pytest.mark.parametrize("chosen, summaries", [
    ([], 0), ([MOMENT], 0), ([SUMMARY], count_tokens(SUMMARY.text)), ([SUMMARY, MOMENT], count_tokens(SUMMARY.text)),
])
def test_summaries_are_split_from_the_memory_block(chosen, summaries):
    parts = budget_parts(BUDGET, chosen)
    assert parts["summaries"] == summaries
    assert parts["memories"] + parts["summaries"] == BUDGET["memories"]


def test_the_parts_add_up_to_the_context_size():
    parts = budget_parts(BUDGET, [SUMMARY])
    assert parts == {"persona": 40, "memories": 120 - parts["summaries"], "summaries": parts["summaries"],
                     "earlier": 50, "recent": 303, "reply_reserve": 200, "free": 287}
    assert sum(parts.values()) == BUDGET["limit"] + BUDGET["response_reserve"]


@pytest.mark.parametrize("budget, free", [
    ({**BUDGET, "total_prompt": 900}, 0),  # over budget: nothing left, never negative
    ({"limit": 100}, 100),
])
def test_free_room_is_never_negative(budget, free):
    assert budget_parts(budget, [])["free"] == free


def test_summaries_never_exceed_the_block_they_are_part_of():
    long_summary = MemoryItem(text="word " * 500, kind="summary")
    parts = budget_parts({**BUDGET, "memories": 30}, [long_summary])
    assert parts["summaries"] == 30 and parts["memories"] == 0
