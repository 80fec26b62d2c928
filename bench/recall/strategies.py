"""What goes into the context for one question, three ways, packed by the product's own builder.

- recency: what a client that trims the oldest turns sends (no memories at all);
- cosine: plain cosine top-k over single past messages, the newest user turn as the query,
  filling the same memory share (what a vector-storage extension does);
- product: `SessionIndex` + `app.memory.search.retrieval` (hybrid search, re-scoring, passages);
- summaries: the product plus rolling summaries (the story so far and the three summaries
  closest to the query), here the extractive kind the proxy writes when no model is reachable,
  so the benchmark needs no model.

Each returns the built context; `covered()` says which message ids and text reached it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.budget import BudgetSplit, plan_budget, split_remaining
from app.context import WHOLE_SHARE, BuiltContext, MemoryItem, build_context
from app.memory.search.index import SessionIndex
from app.memory.search.passages import BRIEF_TOKENS, passages, turn_budget, when_label
from app.memory.search.recall import memory_room, passage_item
from app.memory.search.retrieval import build_query, hits_for_budget
from app.memory.search.scoring import RetrievalWeights
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
            k: int | None = None, max_turns: int = 3, min_terms: int = 2, pair: bool = True, replies: bool = False,
            neighbour_chars: int = 600, turn_share: float = 0.05, **_: Any) -> BuiltContext:
    """The newest user turn (with the turns before it when it is vague) as the query, hybrid search, passages."""
    query = build_query(probe.window, max_turns=max_turns, min_terms=min_terms)
    memory_cap = memory_room(probe.plan, None, probe.window)
    k = k or hits_for_budget(memory_cap)
    hits = index.search(query, embed([query])[0], exclude_from_position=probe.boundary(), k=k, weights=weights)
    return pack(probe, [passage_item(p) for p in passages(index, hits, pair=pair, replies=replies,
                                                          neighbour_chars=neighbour_chars,
                                                          turn_tokens=turn_budget(memory_cap, turn_share),
                                                          brief_tokens=BRIEF_TOKENS,
                                                          brief_from=int(memory_cap * WHOLE_SHARE))])


def summaries(probe: Probe, *, index: SessionIndex, embed: Embed, spans: list[dict[str, Any]],
              **kwargs: Any) -> BuiltContext:
    """The product's memories plus the story so far and related summaries of finished spans."""
    query = build_query(probe.window)
    memory_cap = memory_room(probe.plan, None, probe.window)
    hits = index.search(query, embed([query])[0], exclude_from_position=probe.boundary(),
                        k=hits_for_budget(memory_cap), weights=kwargs.get("weights", RetrievalWeights()))
    items = [passage_item(p) for p in passages(index, hits, turn_tokens=turn_budget(memory_cap),
                                               brief_tokens=BRIEF_TOKENS, brief_from=int(memory_cap * WHOLE_SHARE))]
    before = probe.history[-1]["position"] if probe.history else -1
    done = [s for s in spans if s["end"] <= before]
    if not done:
        return pack(probe, items)
    story = MemoryItem(text=done[-1]["text"], kind="summary", reasons=("story so far",), position=done[-1]["start"])
    vector = embed([query])[0]
    ranked = sorted(done[:-1], key=lambda s: -float(s["vector"] @ vector))[:3]
    related = [MemoryItem(text=s["text"], kind="summary", score=float(s["vector"] @ vector),
                          reasons=("related summary",), position=s["start"]) for s in ranked]
    return build_context(persona=None, client_messages=probe.window, memories=items, summaries=related,
                         story_so_far=story, emotion_line=None, plan=probe.plan)


def extractive_spans(messages: list[dict[str, Any]], embed: Embed, every: int = 20) -> list[dict[str, Any]]:
    """What the summarizer's extractive fallback writes for each finished span of `every` messages."""
    from types import SimpleNamespace

    from app.importance import score_importance
    from app.memory.background.summaries import extractive_summary

    spans = []
    for start in range(0, len(messages) - every + 1, every):
        chunk = messages[start:start + every]
        rows = [SimpleNamespace(role=m["role"], content=m["text"], importance=score_importance(m["text"], m["role"]))
                for m in chunk]
        spans.append({"start": chunk[0]["position"], "end": chunk[-1]["position"], "text": extractive_summary(rows)})
    if spans:
        for span, vector in zip(spans, embed([s["text"] for s in spans])):
            span["vector"] = vector
    return spans


def covered(built: BuiltContext, probe: Probe) -> tuple[set[int], str]:
    """(message ids in the context, the context's text)."""
    kept = probe.window[built.dropped["messages"]:]
    ids = {m["_id"] for m in kept if "_id" in m}
    ids |= {i for item in built.chosen for i in item.message_ids}
    return ids, "\n".join(str(m.get("content") or "") for m in built.messages)


def _last_user(window: list[dict[str, Any]]) -> str:
    return next(m["content"] for m in reversed(window) if m["role"] == "user")


STRATEGIES = {"recency": recency, "cosine": cosine, "product": product, "summaries": summaries}
