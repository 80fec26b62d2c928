import time
from dataclasses import dataclass

import pytest

from app.memory.background.tiers import LONG_TERM, SHORT_TERM, WORKING, TierChange, TierPolicy, consolidate, strength

NOW = 1_800_000_000.0


@dataclass
class Row:
    id: int
    importance: float | None
    access_count: int = 0
    age_days: float = 0.0
    tier: str = WORKING
    has_embedding: bool = True

    @property
    def created_at(self) -> float:
        return NOW - self.age_days * 86400


@pytest.mark.parametrize("importance, accesses, age, expected_order", [
    (0.9, 0, 0, "high"), (0.2, 0, 0, "low"), (0.2, 7, 0, "boosted")])
def test_strength_orders_importance_and_access(importance, accesses, age, expected_order):
    value = strength(importance, accesses, age, 30)
    assert {"high": value >= 0.6, "low": value < 0.6, "boosted": value >= 0.6}[expected_order]


def test_strength_decays_with_age():
    assert strength(0.8, 0, 90, 30) < strength(0.8, 0, 0, 30)


def test_consolidate_promotes_demotes_and_never_demotes_long_term():
    policy = TierPolicy(working_messages=2)
    rows = [Row(1, 0.9, age_days=1), Row(2, 0.1, age_days=1), Row(3, 0.1, tier=LONG_TERM, age_days=400),
            Row(4, 0.1, access_count=15), Row(5, 0.2), Row(6, 0.2)]
    changes = {c.id: c.tier for c in consolidate(rows, NOW, policy)}
    assert changes == {1: LONG_TERM, 2: SHORT_TERM, 4: LONG_TERM}


def test_old_unimportant_short_term_embeddings_are_dropped_only_when_asked():
    rows = [Row(1, 0.1, age_days=10, tier=SHORT_TERM), Row(2, 0.1)]
    assert consolidate(rows, NOW, TierPolicy(working_messages=1)) == []
    dropped = consolidate(rows, NOW, TierPolicy(working_messages=1, drop_embedding_days=7))
    assert dropped == [TierChange(1, SHORT_TERM, True)]


def test_consolidating_a_thousand_rows_is_fast():
    rows = [Row(i, (i % 10) / 10, access_count=i % 4, age_days=i / 100) for i in range(1000)]
    t0 = time.perf_counter()
    changes = consolidate(rows, NOW, TierPolicy())
    assert time.perf_counter() - t0 < 0.5
    assert {c.tier for c in changes} == {LONG_TERM, SHORT_TERM}
