"""Memory tiers and consolidation: what stays close, what is kept forever, what may fade.

    working     the most recent turns, also held in RAM (WorkingMemory); always in context
    short_term  recent history in SQLite: searchable, but its embedding may be dropped after
                SHORT_TERM_EMBEDDING_DAYS if it never proved important (the text is always kept)
    long_term   important messages (by importance, or by how often retrieval chose them),
                and every summary: kept indefinitely, embeddings included

A message's *strength* is its importance, boosted by each retrieval (access) and decaying with
age (half-life); promotion to long_term happens when strength passes a threshold, and
long_term is never demoted. `consolidate()` is pure and handles thousands of rows in
milliseconds; the consolidation task applies its result in one transaction.

    changes = consolidate(rows, now=time.time(), policy=TierPolicy())
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WORKING, SHORT_TERM, LONG_TERM = "working", "short_term", "long_term"


@dataclass(frozen=True, slots=True)
class TierPolicy:
    working_messages: int = 64
    promote_strength: float = 0.6
    access_boost: float = 0.15
    half_life_days: float = 30.0
    drop_embedding_days: float = 0.0  # 0 keeps short-term embeddings forever


@dataclass(frozen=True, slots=True)
class TierChange:
    id: int
    tier: str
    drop_embedding: bool = False


def strength(importance: float | None, access_count: int, age_days: float, half_life_days: float) -> float:
    """Importance plus a boost per retrieval, decayed by age; in 0..~1.5."""
    base = (importance if importance is not None else 0.3) + 0.15 * math.log1p(access_count) / math.log(2)
    decay = 0.5 ** (max(age_days, 0.0) / half_life_days) if half_life_days > 0 else 1.0
    return base * (0.5 + 0.5 * decay)


def tier_for(row: Any, rank_from_end: int, now: float, policy: TierPolicy) -> str:
    if row.tier == LONG_TERM:
        return LONG_TERM
    age_days = (now - row.created_at) / 86400
    if strength(row.importance, row.access_count, age_days, policy.half_life_days) >= policy.promote_strength:
        return LONG_TERM
    return WORKING if rank_from_end < policy.working_messages else SHORT_TERM


def consolidate(rows: Sequence[Any], now: float, policy: TierPolicy) -> list[TierChange]:
    """Tier changes for one session's active rows (in position order); only rows that change."""
    changes = []
    total = len(rows)
    for i, row in enumerate(rows):
        tier = tier_for(row, total - 1 - i, now, policy)
        drop = (tier == SHORT_TERM and policy.drop_embedding_days > 0 and row.has_embedding
                and (now - row.created_at) / 86400 > policy.drop_embedding_days)
        if tier != row.tier or drop:
            changes.append(TierChange(row.id, tier, drop))
    return changes
