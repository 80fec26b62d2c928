"""The user's emotional trajectory counts each message once, however its scores arrive."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.emotion import Emotion
from app.memory.search.recall import Recall
from app.memory.records import MessageRow, ScoreUpdate

pytestmark = pytest.mark.anyio


def row(id: int, role: str, emotion: str | None = None) -> MessageRow:
    return MessageRow(id=id, position=id, role=role, name=None, content=f"message {id}", content_hash=str(id),
                      created_at=0.0, token_count=3, emotion=emotion)


class SlowStore:
    """Reads a session's rows for its index after `delay`, as they are at that moment."""

    def __init__(self, rows: list[MessageRow], delay: float = 0.0) -> None:
        self.rows, self.delay = rows, delay

    async def active_for_index(self, key: str) -> list[MessageRow]:
        await asyncio.sleep(self.delay)
        return list(self.rows)


ANGER = Emotion("anger", 0.9, 0.5, (0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01))


def trail_of(recall: Recall, newest: int | None = None) -> str:
    return recall._emotion_line("s", ANGER, newest).split("trajectory: ")[1].split(".")[0]


async def test_a_message_scored_while_the_index_loads_is_counted_once():
    stored = [row(1, "user", "sadness"), row(2, "assistant", "joy")]  # the load will read 1 as scored
    recall = Recall(SlowStore(stored, delay=0.05), embedder=None, scorer=None)
    loading = asyncio.create_task(recall.index("s"))
    await asyncio.sleep(0.01)
    await recall.scored("s", [row(1, "user")], [ScoreUpdate(id=1, emotion="sadness")])  # arrives mid-load
    await loading
    assert trail_of(recall) == "sadness → anger"


async def test_scores_for_a_session_not_in_ram_wait_for_its_load_and_a_rescore_counts_once():
    recall = Recall(SlowStore([row(1, "user")]), embedder=None, scorer=None)
    await recall.scored("s", [row(1, "user")], [ScoreUpdate(id=1, emotion="fear")])  # no index yet: nothing held
    assert "s" not in recall._trail
    await recall.index("s")
    for _ in range(2):
        await recall.scored("s", [row(1, "user")], [ScoreUpdate(id=1, emotion="fear", embedding=np.ones(384))])
    assert trail_of(recall) == "fear → anger"


async def test_the_turn_being_answered_is_not_counted_twice_when_the_writer_was_quicker():
    recall = Recall(SlowStore([row(1, "user", "sadness"), row(3, "user", "anger")]), embedder=None, scorer=None)
    await recall.index("s")
    assert trail_of(recall, newest=3) == "sadness → anger"
    assert trail_of(recall, newest=None) == "sadness → anger → anger"
