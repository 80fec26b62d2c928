"""What the model sees on each turn: persona, recollections and recent turns, inside the budget.

    plan = plan_budget(8192, request.response_limit, BudgetSplit())
    built = build_context(persona="You are Ada, a ship's engineer.", client_messages=turns,
                          memories=recalled, summaries=[], story_so_far=None,
                          emotion_line="the user sounds tired", plan=plan, earlier=tail)
    upstream_messages = built.messages   # count_messages(upstream_messages) <= plan.prompt_budget

`built.messages` holds, in order:

1. the persona, as one system message, whole. It is never cut: when it is larger than its share
   it borrows from the others; when it is larger than the whole prompt budget it is still sent
   and `over_budget` is set.
2. the memory block (`app.memory_block`): one fenced system message of recollections, left out
   when nothing was recalled or nothing fits.
3. stored turns from just before the client's window (`earlier`), when they were worth their
   room, oldest first.
4. the client's own turns, unchanged and in their order (only the private `_id` key is removed).
   Only the oldest are dropped, the newest is always kept, and an assistant message with tool
   calls stays together with the tool results that answer it.

How the budget is spent, by value rather than by fixed shares: the persona first and whole;
then the client's own turns, newest first, within the recent share (`budget.split_remaining`).
Everything else competes for the rest on one scale: recollections (recalled turns, summaries,
earlier persona text) by their score, and the stored turns before the window by the value
recall gives them (high for turns just said, low for turns long past or far back), best first,
whatever fits. The mood line and the story so far come first. Then the client's turns grow into
what is left, and recollections take whatever the turns could not use. A recollection with a
short form (`MemoryItem.brief`) goes whole until `WHOLE_SHARE` of the room is used and in brief
after that, so more of them fit; room left over makes short ones whole again, best first. A
recollection whose messages are all among the kept turns is dropped as redundant.
`budget["decision"]` tells what was offered, kept (and how many in brief) and left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.budget import BudgetPlan, split_remaining
from app.memory_block import (Line, MemoryItem, block_cost, candidates, extra, render_within,
                              select, sent)
from app.tokens import REPLY_PRIMING, count_message, count_messages


@dataclass(frozen=True)
class EarlierTurn:
    """A stored turn from just before the client's window, offered as a recent turn.

    `message` is an OpenAI message (with the private `_id` of the stored row); `value` is how
    much it is worth to this request on the recollections' scale (`MemoryItem.score`): recall
    gives the turns just said a high value and older or long-past ones a low one.
    """

    message: dict[str, Any]
    value: float


@dataclass(frozen=True)
class BuiltContext:
    """The upstream messages and an account of how the budget was spent.

    `budget` has tokens per part (persona, memories, recent, priming, response_reserve,
    total_prompt, limit) and the limits (`limits`: the plan; `flow`: the caps after the persona
    took its part). `chosen` lists the recollections sent, in the order they were given room
    (story first, then by score). `dropped` counts client messages left out, recollections that
    did not fit and recollections already present among the recent turns.
    """

    messages: list[dict[str, Any]]
    budget: dict[str, Any]
    chosen: list[MemoryItem] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    over_budget: bool = False
    left_out: list[MemoryItem] = field(default_factory=list)  # offered, not redundant, no room


@dataclass(frozen=True)
class _Group:
    """Client messages that are kept or dropped together (a tool call and its results)."""

    messages: tuple[dict[str, Any], ...]
    ids: frozenset[int]
    cost: int


def build_context(*, persona: str | None, client_messages: Sequence[dict[str, Any]],
                  memories: Sequence[MemoryItem], summaries: Sequence[MemoryItem],
                  story_so_far: MemoryItem | None, emotion_line: str | None,
                  plan: BudgetPlan, earlier: Sequence[EarlierTurn] = ()) -> BuiltContext:
    """Persona, memory block and recent turns for one request, within `plan.prompt_budget`.

    `earlier` are stored turns from before the client's window, newest first, each with its value.
    """
    head = [{"role": "system", "content": persona}] if persona and persona.strip() else []
    head_cost = count_messages(head)
    groups = _groups(client_messages)
    offered = candidates(memories, summaries, story_so_far, emotion_line)
    room = plan.prompt_budget - head_cost
    caps = split_remaining(plan, head_cost)
    recent, tail, fresh, chosen = _fit(groups, offered, [_group([t.message]) for t in earlier],
                                       [t.value for t in earlier], room, caps[1])
    block, chosen, block_tokens = render_within(chosen, room - _cost(tail) - _cost(recent))
    messages = [*head, *block, *(m for g in [*tail[::-1], *recent] for m in g.messages)]
    total = head_cost + block_tokens + _cost(tail) + _cost(recent)  # each part counted once
    dropped = {"messages": len(client_messages) - sum(len(g.messages) for g in recent),
               "memories": len(fresh) - len(chosen), "redundant": len(offered) - len(fresh),
               "earlier": len(earlier) - len(tail)}
    report = _report(plan, caps, head_cost, block_tokens, recent, total)
    report.update(earlier=_cost(tail), decision=_decision(chosen, fresh, earlier, len(tail)))
    return BuiltContext(messages=messages, budget=report, chosen=[sent(ln) for ln in chosen if ln.item],
                        dropped=dropped, over_budget=total > plan.prompt_budget, left_out=_left_out(fresh, chosen))


def _fit(groups: list[_Group], offered: list[Line], earlier: list[_Group], values: list[float], room: int,
         recent_cap: int) -> tuple[list[_Group], list[_Group], list[Line], list[Line]]:
    """(client groups kept, earlier turns kept, non-redundant lines, chosen lines).

    The client's own turns come first, newest first within the recent cap. The rest of the room
    goes by value: recollections by score and the stored turns before the window by their value,
    on one scale, best first, whatever fits (earlier turns newest first and without gaps, and only
    when the whole window is kept). Then the client's turns grow into what is left; a
    recollection whose turns came back is dropped, until nothing changes (the turns only grow,
    so this ends). Last, recollections fill whatever room the turns could not use.
    """
    recent = _newest(groups, recent_cap)
    chain = earlier if len(recent) == len(groups) else []
    fresh = _not_redundant(offered, recent)
    chosen, tail = _by_value(fresh, chain, values, room - _cost(recent))
    fresh = _not_redundant(fresh, recent + tail)
    chosen = _kept(chosen, fresh)
    while len(grown := _newest(groups, room - block_cost(chosen))) > len(recent):
        recent = grown
        fresh = _not_redundant(fresh, recent)
        chosen = _kept(chosen, fresh)
    taken = {_key(ln) for ln in chosen}
    rest = [ln for ln in fresh if _key(ln) not in taken]
    return recent, tail, fresh, select(chosen + rest, room - _cost(recent) - _cost(tail))


def _kept(chosen: list[Line], fresh: list[Line]) -> list[Line]:
    keep = {_key(ln) for ln in fresh}
    return [ln for ln in chosen if _key(ln) in keep]


def _key(line: Line) -> int:
    """One key for a line and its short form (they share their item)."""
    return id(line.item) if line.item is not None else id(line)


def _by_value(lines: list[Line], chain: list[_Group], values: list[float],
              room: int) -> tuple[list[Line], list[_Group]]:
    """Lines and earlier turns taken best value first while they fit (lines in offered order
    among equals; the mood and the story come first). Earlier turns stop at the first that
    does not fit: the ones taken stay next to the window. A line with a short form is taken
    whole until `WHOLE_SHARE` of the room is used, then in brief; what room is left turns
    short forms back into whole lines, best first (`_upgraded`)."""
    order = sorted([(-_value(ln), i, ln) for i, ln in enumerate(lines)] +
                   [(-v, len(lines) + i, g) for i, (g, v) in enumerate(zip(chain, values))], key=lambda x: x[:2])
    chosen: list[Line] = []
    tail: list[_Group] = []
    used, broken, opened, growing = 0, False, set(), False
    whole_room = int(room * WHOLE_SHARE)
    for _, _, part in order:
        if isinstance(part, _Group):
            if growing:  # short forms worth more than this turn grow first
                (chosen, used), growing = _upgraded(chosen, lines, room, used), False
            broken = broken or used + part.cost > room
            if not broken:
                tail.append(part)
                used += part.cost
            continue
        if (form := _form(part, opened, used, whole_room, room)) is not None:
            chosen.append(form)
            used += extra(form, opened)
            opened.update(form.headings)
            growing = growing or form.short
    return _upgraded(chosen, lines, room, used)[0], tail


WHOLE_SHARE = 0.7  # of the room for recollections, filled with whole ones before any is sent in brief


def _form(line: Line, opened: set[str], used: int, whole_room: int, room: int) -> Line | None:
    """The line whole (within `whole_room` when it has a short form), else in brief; None when
    neither fits."""
    if used + extra(line, opened) <= (whole_room if line.brief is not None else room):
        return line
    if line.brief is not None and used + extra(line.brief, opened) <= room:
        return line.brief
    return None


def _upgraded(chosen: list[Line], lines: list[Line], room: int, used: int) -> tuple[list[Line], int]:
    """Short forms turned back into whole lines, best first, while the room lasts; and the room
    then used."""
    wholes = {_key(ln): ln for ln in lines if ln.brief is not None}
    out = []
    for line in chosen:
        whole = wholes.get(_key(line)) if line.short else None
        if whole is not None and used + whole.cost - line.cost <= room:
            used += whole.cost - line.cost
            line = whole
        out.append(line)
    return out, used


def _value(line: Line) -> float:
    return math.inf if line.item is None or line.section == "story" else line.item.score


def _decision(chosen: list[Line], offered: list[Line], earlier: Sequence[EarlierTurn],
              kept: int) -> dict[str, Any]:
    """Why the room went where it did: the values taken and the best left out, per kind."""
    taken = {_key(ln) for ln in chosen}
    left = [_value(ln) for ln in offered if _key(ln) not in taken and ln.item is not None]
    return {"rule": "by value: recollections by score, earlier turns by value, best first; "
                    "whole until the room is 70% used, then in brief",
            "recollections": {"offered": len(offered), "kept": len(chosen),
                              "in_brief": sum(ln.short for ln in chosen),
                              "lowest_kept": _rounded(min((_value(ln) for ln in chosen if ln.item), default=None)),
                              "best_left": _rounded(max(left, default=None))},
            "earlier_turns": {"offered": len(earlier), "kept": kept,
                              "newest_value": round(earlier[0].value, 3) if earlier else None,
                              "best_left": round(earlier[kept].value, 3) if kept < len(earlier) else None}}


def _left_out(fresh: list[Line], chosen: list[Line]) -> list[MemoryItem]:
    """The recollections offered and not already among the turns that found no room, best first."""
    kept = {id(ln.item) for ln in chosen}
    return sorted((ln.item for ln in fresh if ln.item is not None and id(ln.item) not in kept),
                  key=lambda item: -item.score)


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else round(value, 3)


# ---------------------------------------------------------------------- client turns


def _groups(client_messages: Iterable[dict[str, Any]]) -> list[_Group]:
    """The client's messages cut into units: a tool-calling assistant message owns its results."""
    runs: list[list[dict[str, Any]]] = []
    for msg in client_messages:
        if msg.get("role") in ("tool", "function") and runs and _calls_tools(runs[-1][0]):
            runs[-1].append(msg)
        else:
            runs.append([msg])
    return [_group(run) for run in runs]


def _calls_tools(msg: dict[str, Any]) -> bool:
    return msg.get("role") == "assistant" and bool(msg.get("tool_calls") or msg.get("function_call"))


def _group(run: list[dict[str, Any]]) -> _Group:
    public = tuple({k: v for k, v in msg.items() if k != "_id"} for msg in run)
    ids = frozenset(msg["_id"] for msg in run if isinstance(msg.get("_id"), int))
    return _Group(messages=public, ids=ids, cost=sum(count_message(m) for m in public))


def _newest(groups: list[_Group], cap: int) -> list[_Group]:
    """The newest groups that fit in `cap`, oldest first; the newest one is always kept."""
    if not groups:
        return []
    used, start = groups[-1].cost, len(groups) - 1
    while start > 0 and used + groups[start - 1].cost <= cap:
        start -= 1
        used += groups[start].cost
    return groups[start:]


def _cost(groups: Iterable[_Group]) -> int:
    return sum(g.cost for g in groups)


# ---------------------------------------------------------------------- recollections


def _not_redundant(lines: list[Line], recent: list[_Group]) -> list[Line]:
    """Drop recollections whose every message is already among the kept turns."""
    kept: set[int] = set().union(*(g.ids for g in recent))
    return [ln for ln in lines if not _is_redundant(ln, kept)]


def _is_redundant(line: Line, kept: set[int]) -> bool:
    if line.item is None or line.section == "story" or not line.item.message_ids:
        return False
    return set(line.item.message_ids) <= kept


# ---------------------------------------------------------------------- report


def _report(plan: BudgetPlan, caps: tuple[int, int], head_cost: int, block_tokens: int,
            recent: list[_Group], total: int) -> dict[str, Any]:
    return {
        "persona": head_cost - REPLY_PRIMING,
        "memories": block_tokens,
        "recent": _cost(recent),
        "priming": REPLY_PRIMING,
        "response_reserve": plan.response_reserve,
        "total_prompt": total,
        "limit": plan.prompt_budget,
        "limits": plan.limits(),
        "flow": {"memories": caps[0], "recent": caps[1]},
    }
