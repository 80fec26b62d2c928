"""Rolling summaries: long chats compressed without losing the moments that matter.

Pure planning and prompting live here; `Summarizer` (below) runs them in the background.

Every `every` new messages, the oldest unsummarised span of `every` messages is summarised by
the upstream model (never twice: spans are planned from the stored summaries' ranges, so a
restart resumes exactly where it stopped). When enough level-0 summaries pile up, `fanout` of
them are summarised again into one level-1 summary, and so on. Without a reachable upstream an
extractive summary (the most important sentences) stands in, marked `extractive`, and is
replaced by a real one on a later pass.

    span = next_span(summarised_until=40, positions=[...], every=20)   # (41, 60) or None
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PROMPT = (
    "You keep the memory of a long conversation between {user} and {assistant}. Summarise the part "
    "of the conversation below in at most {words} words, as a compact narrative in the past tense. "
    "Keep every name, date, number, place, promise, plan, relationship and emotionally important "
    "moment (who felt what and why); drop greetings and small talk. Do not invent anything. "
    "Write only the summary."
)
HIGHER_PROMPT = (
    "Merge these consecutive summaries of a long conversation into one summary of at most {words} "
    "words, in order, keeping every name, date, number, promise, relationship and emotionally "
    "important moment. Write only the summary."
)


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    level: int = 0


def next_span(summarised_until: int, positions: Sequence[int], every: int) -> Span | None:
    """The next `every` active positions after `summarised_until`, once there are that many."""
    pending = [p for p in positions if p > summarised_until]
    if len(pending) < every:
        return None
    chosen = pending[:every]
    return Span(chosen[0], chosen[-1])


def next_higher(summaries: Sequence[Any], fanout: int) -> tuple[int, list[Any]] | None:
    """`fanout` consecutive summaries of the lowest level that has that many not yet merged."""
    by_level: dict[int, list[Any]] = {}
    for s in summaries:
        by_level.setdefault(s.level, []).append(s)
    for level in sorted(by_level):
        merged_until = max((s.end_position for s in by_level.get(level + 1, ())), default=-1)
        free = sorted((s for s in by_level[level] if s.start_position > merged_until),
                      key=lambda s: s.start_position)
        if len(free) >= fanout:
            return level + 1, free[:fanout]
    return None


def transcript(messages: Sequence[Any], names: dict[str, str] | None = None) -> str:
    names = names or {"user": "User", "assistant": "Assistant"}
    return "\n".join(f"{names.get(m.role, m.role.title())}: {m.content}" for m in messages)


def summary_request(messages: Sequence[Any], words: int = 180, user: str = "the user",
                    assistant: str = "the assistant") -> list[dict[str, str]]:
    system = PROMPT.format(user=user, assistant=assistant, words=words)
    return [{"role": "system", "content": system}, {"role": "user", "content": transcript(messages)}]


def higher_request(texts: Sequence[str], words: int = 250) -> list[dict[str, str]]:
    joined = "\n\n".join(f"[{i + 1}] {t}" for i, t in enumerate(texts))
    return [{"role": "system", "content": HIGHER_PROMPT.format(words=words)}, {"role": "user", "content": joined}]


SENTENCE = re.compile(r"(?<=[.!?])\s+")


def extractive_summary(messages: Sequence[Any], max_sentences: int = 6) -> str:
    """The most important sentences, in conversation order, labelled by speaker.

    A message's importance (0..1, None counts as 0.3) ranks its sentences; longer sentences win ties.
    """
    scored = []
    for order, m in enumerate(messages):
        for sentence in SENTENCE.split(m.content.strip()):
            if len(sentence.split()) >= 3:
                weight = (m.importance if m.importance is not None else 0.3) + min(len(sentence), 200) / 2000
                scored.append((weight, order, m.role, sentence.strip()))
    best = sorted(sorted(scored, reverse=True)[:max_sentences], key=lambda s: s[1])
    return " ".join(f"{'User' if role == 'user' else 'Assistant'}: {text}" for _, _, role, text in best)
