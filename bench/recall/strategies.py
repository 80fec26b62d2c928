"""What goes into the context for one question, three ways, packed by the product's own builder.

- recency: what a client that trims the oldest turns sends (no memories at all);
- cosine: plain cosine top-k over single past messages, the newest user turn as the query,
  filling the same memory share (what a vector-storage extension does);
- product: `SessionIndex` + `app.memory.retrieval` (hybrid search, re-scoring, passages).

Each returns the built context; `covered()` says which message ids and text reached it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.budget import BudgetSplit, plan_budget, split_remaining
from app.context import BuiltContext, MemoryItem, build_context
from app.memory.index import SessionIndex
from app.memory.retrieval import RetrievalWeights, build_query, passages, when_label
from app.tokens import count_message

LABELS = {"user": "User", "assistant": "Assistant"}
Embed = Callable[[list[str]], np.ndarray]


@dataclass
class Probe:
    """One question in its place: the stored history before it and the client's window."""

    history: list[dict[str, Any]]  # stored messages before the question (generator dicts)
    window: list[dict[str, Any]]  # OpenAI messages the client sends, `_id` on stored ones
    budget: int

    @property
    def plan(self) -> Any:
        return plan_budget(self.budget, None, BudgetSplit())

    def boundary(self) -> int | None:
        """The first position surely kept as a recent turn (newest first within the recent cap)."""
        _, recent_cap = split_remaining(self.plan, 0)
        used, boundary = 0, None
        position = {m["id"]: m["position"] for m in self.history[-len(self.window):]}
        for message in reversed(self.window):
            used += count_message(message)
            if used > recent_cap:
                break
            boundary = position.get(message.get("_id"), boundary)
        return boundary


def client_window(history: list[dict[str, Any]], probe_turns: list[dict[str, str]], budget: int) -> list[dict]:
    """The newest stored turns plus the probe, as many as fit in `budget` tokens (a trimming client)."""
    turns = [{"role": t["role"], "content": t["content"]} for t in probe_turns]
    used = sum(count_message(t) for t in turns)
    kept: list[dict[str, Any]] = []
    for m in reversed(history):
        msg = {"role": m["role"], "content": m["text"], "_id": m["id"]}
        used += count_message(msg)
        if used > budget:
            break
        kept.append(msg)
    return kept[::-1] + turns


def pack(probe: Probe, memories: Sequence[MemoryItem]) -> BuiltContext:
    return build_context(persona=None, client_messages=probe.window, memories=memories, summaries=[],
                         story_so_far=None, emotion_line=None, plan=probe.plan)


def recency(probe: Probe, **_: Any) -> BuiltContext:
    return pack(probe, [])


def cosine(probe: Probe, *, vectors: np.ndarray, rows: dict[int, int], embed: Embed, **_: Any) -> BuiltContext:
    """Single messages by cosine to the newest user turn, best first, before the recent boundary."""
    query = embed([_last_user(probe.window)])[0]
    stop = probe.boundary()
    eligible = [m for m in probe.history if stop is None or m["position"] < stop]
    if not eligible:
        return pack(probe, [])
    scores = vectors[[rows[m["id"]] for m in eligible]] @ query
    best = np.argsort(-scores)[:40]
    items = [MemoryItem(text=f"{LABELS[eligible[i]['role']]}: {eligible[i]['text']}",
                        message_ids=(eligible[i]["id"],), score=float(scores[i]), position=eligible[i]["position"],
                        when=when_label(eligible[i]["created"])) for i in best]
    return pack(probe, items)


def product(probe: Probe, *, index: SessionIndex, embed: Embed, weights: RetrievalWeights = RetrievalWeights(),
            k: int = 12, max_turns: int = 3, min_terms: int = 2, pair: bool = True, neighbour_chars: int = 600,
            **_: Any) -> BuiltContext:
    """The newest user turn (with the turns before it when it is vague) as the query, hybrid search, passages."""
    query = build_query(probe.window, max_turns=max_turns, min_terms=min_terms)
    hits = index.search(query, embed([query])[0], exclude_from_position=probe.boundary(), k=k, weights=weights)
    return pack(probe, [memory_item(p) for p in passages(index, hits, pair=pair, neighbour_chars=neighbour_chars)])


def memory_item(passage: Any) -> MemoryItem:
    text = "\n".join(f"{LABELS.get(role, role)}: {content}" for role, content in passage.lines)
    return MemoryItem(text=text, message_ids=passage.ids, score=passage.score, reasons=passage.reasons,
                      position=passage.position, when=passage.when)


def covered(built: BuiltContext, probe: Probe) -> tuple[set[int], str]:
    """(message ids in the context, the context's text)."""
    kept = probe.window[built.dropped["messages"]:]
    ids = {m["_id"] for m in kept if "_id" in m}
    ids |= {i for item in built.chosen for i in item.message_ids}
    return ids, "\n".join(str(m.get("content") or "") for m in built.messages)


def _last_user(window: list[dict[str, Any]]) -> str:
    return next(m["content"] for m in reversed(window) if m["role"] == "user")


STRATEGIES = {"recency": recency, "cosine": cosine, "product": product}
