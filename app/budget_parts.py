"""Pure: a preview's budget as the parts of one bar, the way the inspector page draws it.

    budget_parts(built.budget, built.chosen)
    # {"persona": 120, "memories": 300, "summaries": 80, "earlier": 0, "recent": 900,
    #  "reply_reserve": 1638, "free": 4-digit rest}

The parts add up to the context size: the prompt's parts (persona, the memory block split into
its summaries and everything else, the stored turns before the client's window, the client's
recent turns with the reply's priming) plus the reply reserve and the room left unused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from app.tokens import count_tokens

SUMMARY_KINDS = frozenset({"summary"})


def budget_parts(budget: Mapping[str, Any], chosen: Iterable[Any]) -> dict[str, int]:
    """Tokens per part; `chosen` are the recollections sent (their kind splits the memory block)."""
    block = int(budget.get("memories", 0))
    summaries = min(block, sum(count_tokens(item.text) for item in chosen if item.kind in SUMMARY_KINDS))
    prompt = int(budget.get("total_prompt", 0))
    return {"persona": int(budget.get("persona", 0)), "memories": block - summaries, "summaries": summaries,
            "earlier": int(budget.get("earlier", 0)),
            "recent": int(budget.get("recent", 0)) + int(budget.get("priming", 0)),
            "reply_reserve": int(budget.get("response_reserve", 0)),
            "free": max(0, int(budget.get("limit", 0)) - prompt)}
