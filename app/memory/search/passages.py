"""Hits grown into what a request is shown: exchanges, merged where they touch, long turns cut.

`SessionIndex.search` finds single messages; a memory has to read as a moment of the
conversation. Here a question brings its answer and a short answer its question
(`companions`), hits next to each other merge into one passage, a pulled-in turn is clipped and
a retrieved turn longer than `turn_budget` shows only the sentences around the piece that
matched (`excerpt`); each passage carries a time label (`when_label`):

    for p in passages(index, hits, turn_tokens=turn_budget(memory_tokens)):
        print(p.when, p.lines)            # 'Thu 2024-05-30 09:58', (('user', 'I grew up in Porto.'),)

Pure functions over a `MessageSource` (the index, or any object with `message` and
`neighbours`), table-tested.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from app.memory.search.retrieval import pieces, sentences
from app.tokens import count_tokens


class MessageSource(Protocol):
    """What passage building reads from an index: messages by id and their neighbours."""

    def message(self, id: int) -> Any: ...  # .id .position .role .text .created

    def neighbours(self, id: int, radius: int) -> list[int]: ...


@dataclass(frozen=True)
class Passage:
    """Consecutive messages shown together as one recollection, oldest first."""

    ids: tuple[int, ...]
    lines: tuple[tuple[str, str], ...]  # (role, text)
    score: float
    reasons: tuple[str, ...] = ()
    position: int = 0
    when: str | None = None
    hit_ids: tuple[int, ...] = field(default=(), compare=False)
    speakers: tuple[str | None, ...] = ()  # per line, the speaker's name when the client sent one
    brief: tuple[tuple[int, str], ...] = ()  # the short form: (line, text) of the hit turns alone, cut (`brief`)


def partner(source: MessageSource, id: int) -> int | None:
    """The other half of an exchange: a user turn's reply, or the user turn an assistant turn answers."""
    role = source.message(id).role
    after = role == "user"
    for other in source.neighbours(id, 1):
        msg = source.message(other)
        if (msg.position > source.message(id).position) == after and msg.role != role:
            return other
    return None


def companions(source: MessageSource, id: int, replies: bool = False) -> list[int]:
    """The turns a retrieved turn needs to be understood: the other side of a question.

    A question and its answer belong together whichever of them was found: an assistant turn that
    asks ("what's your sister called?") brings the user's answer after it, and a user turn that
    answers such a question in a few words ("Mara. She's the chaotic one.") brings the question
    before it, since a bare answer says nothing of what it answers. With `replies`, every turn
    also brings its partner (`partner`): a statement its reply, a reply what it answers.
    """
    found = [p] if replies and (p := partner(source, id)) is not None else []
    here = source.message(id)
    for other in source.neighbours(id, 1):
        if other in found:
            continue
        msg = source.message(other)
        if msg.role == here.role:
            continue
        asker, answer = (here, msg) if msg.position > here.position else (msg, here)
        if not asks(asker.text):
            continue
        if asker is here or len(answer.text.split()) <= SHORT_ANSWER_WORDS:
            found.append(other)
    return found


SHORT_TURN_TOKENS = 64  # a recalled turn this short is shown whole: a cut would drop what it says
SHORT_ANSWER_WORDS = 12  # an answer this short needs its question to be understood
BRIEF_TOKENS = 32  # a retrieved turn in its short form: the sentences around its match, within this


@lru_cache(maxsize=8192)
def asks(text: str) -> bool:
    """Whether a turn asks something near its end (one of its last two sentences is a question).

        >>> asks("Ha. Who's your best friend? You never said."), asks("Why? Anyway. Lovely. Bye.")
        (True, False)
    """
    if "?" not in text[-400:]:
        return False
    return any(s.endswith("?") for s in sentences(text[-400:])[-2:])


def passages(source: MessageSource, hits: Sequence[Any], *, pair: bool = True, replies: bool = False,
             neighbour_chars: int = 600, turn_tokens: int | None = None,
             brief_tokens: int | None = None, brief_from: int = 0) -> list[Passage]:
    """Hits grown into exchanges and merged where they touch, in the order of their best hit.

    With `pair`, a question brings its answer and an answer its question (`companions`); with
    `replies` too, every retrieved turn brings its partner. Measured on the recall benchmark,
    bare statements without the reply they drew fit more recollections in the budget and find
    more (0.83 against 0.80 at 2k on the tuning seed): a reply worth recalling is found on its own.
    A pulled-in turn is clipped to `neighbour_chars` (and to about `turn_tokens` when given),
    keeping its end when it comes before a hit (the question a hit answers ends the turn that
    asks it) and its start when it follows one. A retrieved turn longer than
    `turn_tokens` (None: never) is cut to the sentences around the piece that matched (`excerpt`,
    using the hit's `piece`): one long role-play reply would otherwise fill the memory share alone.
    With `brief_tokens`, a passage also carries its short form (`Passage.brief`): the hit turns
    alone, each cut to the sentences around its matched piece within `brief_tokens`, for the
    planner to use when the whole passage no longer fits; only passages after the best ones
    that fill about `brief_from` tokens whole get one (the planner sends those whole anyway).
    """
    source = _Remembering(source)
    groups = _runs(source, _members(source, hits, pair, replies), {h.id for h in hits})
    best = {h.id: h for h in hits}
    out = sorted((_passage(source, run, best, neighbour_chars, turn_tokens) for run in groups), key=lambda p: -p.score)
    return out if brief_tokens is None else _with_briefs(source, out, best, brief_tokens, brief_from)


def _with_briefs(source: MessageSource, out: list[Passage], best: Mapping[int, Any], tokens: int,
                 after: int) -> list[Passage]:
    """Passages with their short forms, from where the best ones whole fill `after` tokens
    (counted high, at three characters each, so that none the planner may need goes without)."""
    filled = 0
    for i, passage in enumerate(out):
        if filled >= after * 3:
            short = _brief([source.message(id) for id in passage.ids], passage.lines, best, tokens)
            out[i] = dataclasses.replace(passage, brief=short)
        filled += sum(len(text) + 12 for _, text in passage.lines)  # a speaker's label and the line's framing
    return out


def excerpt(text: str, around: str, max_tokens: int, count: Callable[[str], int] | None = None) -> str:
    """The sentences of `text` that hold `around`, widened with the next and previous ones while
    the whole stays within `max_tokens`; a cut is marked with "…".

        >>> excerpt("Rain again. I grew up in Porto. The cat is asleep. Tea time.", "I grew up in Porto.", 10,
        ...         count=lambda s: len(s.split()))
        '… I grew up in Porto. The cat is asleep. …'

    `around` is one of the text's pieces (`pieces`): whole sentences, or a clause of one. A
    text that does not hold it, or fits already, comes back whole; the matched sentences
    always stay, however long.
    """
    count = count or count_tokens
    if count(text) <= max_tokens:
        return text
    said = sentences(text)
    core = _holding(text, said, around)
    if not core:
        return text
    low, high = core[0], core[-1]
    used = count(" ".join(said[low: high + 1]))
    grew = True
    while grew:
        grew = False
        for i in (high + 1, low - 1):
            if 0 <= i < len(said) and not low <= i <= high and used + count(said[i]) + 1 <= max_tokens:
                used += count(said[i]) + 1
                low, high, grew = min(low, i), max(high, i), True
    return ("… " if low > 0 else "") + " ".join(said[low: high + 1]) + (" …" if high < len(said) - 1 else "")


def _holding(text: str, said: list[str], around: str) -> list[int]:
    """The sentences `around` overlaps: by place in `text` (a clause may run across a sentence
    break, "Rainy again. I grew up in Porto"), else by containment (pieces join sentences with
    a space where the text may have had a line break)."""
    start = text.find(around)
    if start < 0:
        return [i for i, s in enumerate(said) if s in around or around in s]
    end, held, pos = start + len(around), [], 0
    for i, sentence in enumerate(said):
        at = text.find(sentence, pos)
        pos = at + len(sentence)
        if at < end and pos > start:
            held.append(i)
    return held


def turn_budget(memory_tokens: int, share: float = 0.05, floor: int = 32) -> int | None:
    """How long one retrieved turn may be before it is cut: `share` of the memory share, at least
    `floor` tokens (share 0: never cut).

        >>> turn_budget(683), turn_budget(2000), turn_budget(683, share=0)
        (34, 100, None)

    Measured on the recall benchmark with role-play-long turns (about 90 tokens each, `lengthen`),
    at 1,000 turns and 1k / 2k / 4k tokens, by answer text: never cut 0.567 / 0.687 / 0.789, cut
    at a quarter of the share 0.599 / 0.683 / 0.789, at 64 tokens 0.627 / 0.729 / 0.820, at this
    default 0.673 / 0.764 / 0.820. Short turns are not cut, so the usual benchmark is unchanged.
    """
    return max(floor, int(memory_tokens * share)) if share > 0 else None


class _Remembering:
    """A message source that looks each message and neighbourhood up once (passages ask often)."""

    def __init__(self, source: MessageSource) -> None:
        self.source = source
        self._messages: dict[int, Any] = {}
        self._neighbours: dict[tuple[int, int], list[int]] = {}

    def message(self, id: int) -> Any:
        if id not in self._messages:
            self._messages[id] = self.source.message(id)
        return self._messages[id]

    def neighbours(self, id: int, radius: int) -> list[int]:
        if (id, radius) not in self._neighbours:
            self._neighbours[id, radius] = self.source.neighbours(id, radius)
        return self._neighbours[id, radius]


def _members(source: MessageSource, hits: Sequence[Any], pair: bool, replies: bool) -> dict[int, int]:
    """Every message to show, id -> position."""
    members: dict[int, int] = {}
    for hit in hits:
        members[hit.id] = source.message(hit.id).position
        for other in companions(source, hit.id, replies) if pair else ():
            members.setdefault(other, source.message(other).position)
    return members


def _runs(source: MessageSource, members: dict[int, int], hits: set[int]) -> list[list[int]]:
    """Members cut into runs of messages that follow each other in the conversation, and runs cut
    again where the day changes between hits (a passage carries one date: the day of its first
    message); a pulled-in turn stays with its hit whatever the day."""
    runs: list[list[int]] = []
    for id in sorted(members, key=lambda i: (members[i], i)):
        last = runs[-1][-1] if runs else None
        if last is not None and id in source.neighbours(last, 1) and members[id] > members[last]:
            runs[-1].append(id)
        else:
            runs.append([id])
    return [day for run in runs for day in _by_day(source, run, hits)]


def _by_day(source: MessageSource, run: list[int], hits: set[int]) -> list[list[int]]:
    days: list[list[int]] = [[run[0]]]
    for before, id in zip(run, run[1:]):
        if _same_day(source.message(id).created, source.message(before).created):
            days[-1].append(id)
        else:
            days.append([id])
    out: list[list[int]] = []
    for day in days:  # a day without a hit joins the one before it (or after it, first)
        if out and not hits.intersection(day):
            out[-1] += day
        elif out and not hits.intersection(out[-1]):
            out[-1] += day
        else:
            out.append(day)
    return out


def _same_day(a: float | None, b: float | None) -> bool:
    return when_label(a) == when_label(b)


def _passage(source: MessageSource, run: list[int], best: Mapping[int, Any], neighbour_chars: int,
             turn_tokens: int | None) -> Passage:
    msgs = [source.message(i) for i in run]
    hits = [best[i] for i in run if i in best]
    limit = neighbour_chars if turn_tokens is None else min(neighbour_chars, 4 * turn_tokens)
    last_hit = max(m.position for m in msgs if m.id in best)
    lines = tuple((m.role, _shown(m.text, best[m.id], turn_tokens) if m.id in best
                   else clip_end(m.text, limit) if m.position < last_hit else clip(m.text, limit)) for m in msgs)
    reasons = tuple(dict.fromkeys(r for h in hits for r in h.reasons))
    return Passage(ids=tuple(run), lines=lines, score=max(h.score for h in hits), reasons=reasons,
                   position=msgs[0].position, when=when_label(msgs[0].created), hit_ids=tuple(h.id for h in hits),
                   speakers=tuple(getattr(m, "name", None) for m in msgs))


def _brief(msgs: list[Any], lines: tuple[tuple[str, str], ...], best: Mapping[int, Any],
           tokens: int) -> tuple[tuple[int, str], ...]:
    """The hit turns alone, each cut to `tokens` around its matched piece; () when that is the
    passage as it stands (no pulled-in turn, nothing cut)."""
    short = tuple((i, brief(lines[i][1], best[m.id], tokens)) for i, m in enumerate(msgs) if m.id in best)
    return () if len(short) == len(lines) and all(t == lines[i][1] for i, t in short) else short


def brief(text: str, hit: Any, tokens: int) -> str:
    """A retrieved turn in short: the sentences around its matched piece within `tokens` (its
    opening when no piece matched); a turn that short already comes back whole.

        >>> from types import SimpleNamespace as Hit
        >>> said = "I grew up in Porto, by the river. My sister Mara lives in Lisbon now. The cat sleeps all day."
        >>> brief(said, Hit(piece=1), 12), brief(said, Hit(piece=-1), 10)
        ('… My sister Mara lives in Lisbon now. …', 'I grew up in Porto, by the river. My…')
    """
    if len(text) <= tokens * 2 or count_tokens(text) <= tokens:  # a token is at least 2 characters
        return text
    parts = _pieces_of(text)
    piece = getattr(hit, "piece", -1)
    return excerpt(text, parts[piece], tokens) if 0 <= piece < len(parts) else clip(text, tokens * 4)


def _shown(text: str, hit: Any, turn_tokens: int | None) -> str:
    """A retrieved turn as shown: whole, or cut around its matched piece when over `turn_tokens`."""
    piece = getattr(hit, "piece", -1)
    if turn_tokens is None or piece < 0 or len(text) <= max(turn_tokens, SHORT_TURN_TOKENS) * 2:  # a token > 2 chars
        return text
    if count_tokens(text) <= max(turn_tokens, SHORT_TURN_TOKENS):
        return text
    parts = _pieces_of(text)
    return excerpt(text, parts[piece], turn_tokens) if piece < len(parts) else text


@lru_cache(maxsize=1024)
def _pieces_of(text: str) -> tuple[str, ...]:
    """`pieces` of a recalled turn, kept: the same memories come back turn after turn, and cutting
    a long role-play turn into pieces again took about 0.1 ms each time."""
    return tuple(pieces(text))


def clip_end(text: str, max_chars: int) -> str:
    """The end of `text`, cut at a word boundary to at most `max_chars` characters, with an ellipsis.

        >>> clip_end("Lovely day. So what's your sister called?", 32)
        "…So what's your sister called?"

    A pulled-in turn before a hit is the question it answers or what it goes on from: its end.
    """
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    tail = text[-(max_chars - 1):]
    if not text[-max_chars].isspace() and " " in tail:
        tail = tail.split(" ", 1)[1]  # no half word
    return "…" + tail.lstrip()


def clip(text: str, max_chars: int) -> str:
    """`text` cut at a word boundary to at most `max_chars` characters, with an ellipsis.

        >>> clip("one two three four", 10)
        'one two…'
    """
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1].rsplit(" ", 1)[0] if " " in text[: max_chars - 1] else text[: max_chars - 1]
    return cut.rstrip() + "…"


@lru_cache(maxsize=4096)
def when_label(created: float | None) -> str | None:
    """A timestamp as the model should read it: weekday and date (local time).

    The date matters: "when did I tell you about the move?" can only be answered from it. The
    memory block writes it once above every moment of that day, so the time of day is left out.
    """
    if created is None or not math.isfinite(created) or created <= 0:
        return None
    return datetime.fromtimestamp(created).strftime("%a %Y-%m-%d")
