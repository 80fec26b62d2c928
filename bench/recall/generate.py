"""Long synthetic conversations with planted facts and later questions about them.

    python -m bench.recall.generate --size 1000 --seed 1 > conv.json
    conversation = generate(size=1000, seed=1)    # same seed, same JSON, byte for byte

A person chats with a companion over many sittings (days apart). Facts about the person's life
(`bench.recall.facts`) are dropped into small talk (`bench.recall.filler`), sometimes inside a
longer message, sometimes split across the companion's question and the person's short answer;
distractors (the same kind of fact about someone else) are mixed in. Later the person asks about
them. Question types:

- direct: shares key words with the fact ("What's my sister's name?")
- paraphrase: synonyms and other wording ("What did I say my sibling is called?")
- indirect: refers to the circumstances, not the fact ("Who wanted to borrow my car?")
- contextual: the question alone is vague; the turn before it says what it is about
- multihop: needs two facts from different sittings ("Which city did my sister move to?")
- when: asks for the date the fact was told ("When did I adopt my dog?")

Each question records the message ids that hold each fact it needs (all of them are needed) and
answer strings. Messages carry ids (not positions), roles, texts, timestamps and sitting numbers.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from bench.recall import facts as F
from bench.recall import filler as L

QUESTION_TYPES = ("direct", "paraphrase", "indirect", "contextual")
LEADS = ["", "", "", "Random question: ", "Quick one, ", "Hey, ", "Sorry, my memory is awful. ", "Hmm. "]
ECHOES = ["Oh, good to know!", "Noted, I'll remember that.", "Wow, that's a big one.", "Ha, of course.",
          "That's lovely.", "Oh no, poor you.", "Ooh, tell me more sometime."]


@dataclass
class Message:
    id: int
    position: int
    role: str
    text: str
    created: float
    sitting: int


@dataclass
class Fact:
    key: str
    needed: list[int]  # every one of these messages must be seen to know the fact
    answers: list[str]
    date: str  # the date the fact was told, YYYY-MM-DD
    position: int
    variant: int  # which statement told it (-1: the split form)


@dataclass
class Question:
    id: int
    type: str
    kind: str
    position: int  # asked after messages[:position]
    turns: list[dict[str, str]]  # the probe, ending with the user's question
    facts: list[list[int]]  # per fact, the ids that hold it
    answers: list[str]


@dataclass
class _Plan:
    """Exchange slots (index into the conversation's exchanges) reserved for facts and distractors."""

    slots: dict[int, tuple[str, Any]] = field(default_factory=dict)

    def free(self, rng: random.Random, low: int, high: int) -> int | None:
        options = [i for i in range(low, high) if i not in self.slots and i - 1 not in self.slots]
        return rng.choice(options) if options else None


def generate(size: int, seed: int) -> dict[str, Any]:
    """A conversation of `size` messages with facts and questions, as plain JSON data."""
    rng = random.Random(f"recall-{seed}-{size}")
    exchanges = size // 2
    values = {kind.key: _values(rng, kind.slots) for kind in F.KINDS}
    kinds = _chosen_kinds(rng, exchanges)
    plan = _plan(rng, kinds, exchanges)
    messages, facts = _render(rng, plan, values, exchanges)
    questions = _questions(rng, facts, values, messages)
    return {"seed": seed, "size": len(messages), "messages": [asdict(m) for m in messages],
            "facts": {k: asdict(f) for k, f in facts.items()}, "questions": [asdict(q) for q in questions]}


def _chosen_kinds(rng: random.Random, exchanges: int) -> list[F.FactKind]:
    count = max(5, min(len(F.KINDS), exchanges // 20))
    return rng.sample(F.KINDS, count)


def _plan(rng: random.Random, kinds: list[F.FactKind], exchanges: int) -> _Plan:
    """Facts in the first 70% of the conversation, chain follow-ups after them, distractors anywhere."""
    plan = _Plan()
    last = max(4, int(exchanges * 0.7))
    for kind in kinds:
        slot = plan.free(rng, 2, last)
        if slot is not None:
            plan.slots[slot] = ("fact", kind)
    chained = {k.key: s for s, (t, k) in plan.slots.items() if t == "fact"}
    for chain in F.CHAINS:
        if chain[0] in chained and (slot := plan.free(rng, chained[chain[0]] + exchanges // 10 + 1, last + 1)):
            plan.slots[slot] = ("chain", chain)
    for kind in kinds:
        for text in kind.distractors:
            if (slot := plan.free(rng, 1, exchanges - 1)) is not None:
                plan.slots[slot] = ("distractor", (kind, text))
    return plan


# ---------------------------------------------------------------------- values


def _values(rng: random.Random, slots: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {"other": rng.choice(F.FIRST_NAMES)}  # someone else, for distractors
    for slot, pool in slots.items():
        out.update(_draw(rng, slot, pool))
    return out


def _draw(rng: random.Random, slot: str, pool: str) -> dict[str, str]:
    """One value for a slot (some pools fill several placeholders), plus `other*` distractor values."""
    if pool == "pet":
        animal, young = rng.choice(F.PETS)
        return {"animal": animal, "young": young}
    if pool == "book":
        (title, author), other = rng.sample(F.BOOKS, 2)
        return {"title": title, "author": author, "othertitle": other[0]}
    if pool == "day":
        return {slot: _ordinal(rng.randint(1, 28))}
    simple = {"female": F.FIRST_NAMES[:36], "any": F.FIRST_NAMES, "city": F.CITIES, "company": F.COMPANIES,
              "job": F.JOBS, "food": F.FOODS, "allergen": F.ALLERGENS, "petname": F.PET_NAMES, "car": F.CARS,
              "colour": F.COLOURS, "band": F.BANDS, "instrument": F.INSTRUMENTS, "part": F.BODY_PARTS,
              "fall": F.FALLS, "fear": F.FEARS, "team": F.TEAMS, "street": F.STREETS, "title": F.TITLES,
              "veg": F.VEGETABLES, "month": F.MONTHS, "weekday": L.WEEKDAYS,
              "house": [str(n) for n in range(2, 190)], "small": [str(n) for n in range(2, 10)],
              "code": [f"{n:04d}" for n in range(1000, 9999, 7)],
              "hour": [f"{h}:{m:02d}" for h in (8, 9, 10, 11, 2, 3, 4) for m in (0, 15, 30, 45)]}[pool]
    value, other = rng.sample(simple, 2)
    names = {"female": "other", "any": "other", "petname": "otherpet"}
    return {slot: value, names.get(pool, "other" + slot): other}


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# ---------------------------------------------------------------------- rendering


def lengthen(conversation: dict[str, Any], low: int = 4, high: int = 10) -> dict[str, Any]:
    """The same conversation with long turns, as in role-play: `low`-`high` more sentences each.

    User turns get small talk before and after what they said; assistant turns get more reaction
    and comment before it, so a question they end with stays at the end. Facts, questions,
    answers and timestamps are unchanged: only the haystack around each fact grows.
    """
    rng = random.Random(f"long-{conversation['seed']}-{conversation['size']}")
    messages = []
    for m in conversation["messages"]:
        n = rng.randint(low, high)
        if m["role"] == "user":
            before = rng.randint(0, n)
            text = " ".join(t for t in (_small_talk(rng, before) if before else "", m["text"],
                                        _small_talk(rng, n - before) if n > before else "") if t)
        else:
            text = " ".join([_reply(rng, followup=False) for _ in range(max(1, n // 2))] + [m["text"]])
        messages.append({**m, "text": " ".join(text.split())})
    return {**conversation, "messages": messages}


class _Writer:
    """Appends messages with ids, positions, sittings and timestamps."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.messages: list[Message] = []
        self.sitting = 0
        start = datetime(2024, 1, 8, tzinfo=timezone.utc) + timedelta(days=rng.randint(0, 300))
        self.clock = start.replace(hour=rng.randint(7, 21))

    def new_sitting(self) -> None:
        self.sitting += 1
        day = self.clock.date() + timedelta(days=self.rng.choice([1, 1, 1, 2, 2, 3, 5]))
        self.clock = datetime(day.year, day.month, day.day, self.rng.randint(7, 21), self.rng.randint(0, 59),
                              tzinfo=timezone.utc)

    def say(self, role: str, text: str) -> Message:
        self.clock += timedelta(seconds=self.rng.randint(20, 200))
        pos = len(self.messages)
        msg = Message(id=1000 + 3 * pos, position=pos, role=role, text=_cap(" ".join(text.split())),
                      created=self.clock.timestamp(), sitting=self.sitting)
        self.messages.append(msg)
        return msg


def _render(rng: random.Random, plan: _Plan, values: dict[str, dict[str, str]],
            exchanges: int) -> tuple[list[Message], dict[str, Fact]]:
    w = _Writer(rng)
    facts: dict[str, Fact] = {}
    left_in_sitting = 0
    for i in range(exchanges):
        if left_in_sitting <= 0:
            w.new_sitting()
            left_in_sitting = rng.randint(4, 24)
            if i not in plan.slots:
                w.say("user", rng.choice(L.GREETINGS))
                w.say("assistant", rng.choice(L.GREETING_REPLIES))
                left_in_sitting -= 1
                continue
        left_in_sitting -= 1
        kind, item = plan.slots.get(i, ("filler", None))
        if kind == "fact":
            facts[item.key] = _fact_exchange(w, item, values[item.key])
        elif kind == "chain":
            facts["chain:" + item[0]] = _chain_exchange(w, item, values[item[0]])
        elif kind == "distractor":
            _exchange(w, _fill(item[1], values[item[0].key]), _reply(rng))
        elif left_in_sitting == 0:
            _exchange(w, rng.choice(L.GOODBYES), rng.choice(L.GOODBYE_REPLIES))
        else:
            _exchange(w, _small_talk(rng), _reply(rng))
    return w.messages, facts


def _exchange(w: _Writer, user: str, assistant: str) -> tuple[Message, Message]:
    return w.say("user", user), w.say("assistant", assistant)


def _fact_exchange(w: _Writer, kind: F.FactKind, values: dict[str, str]) -> Fact:
    rng = w.rng
    if kind.split and rng.random() < 0.3:
        w.say("user", _small_talk(rng, sentences=1))
        ask = w.say("assistant", _reply(rng, followup=False) + " " + _fill(kind.split[0], values))
        answer = w.say("user", _fill(kind.split[1], values))
        w.say("assistant", rng.choice(ECHOES) + " " + rng.choice(L.FOLLOWUPS))
        needed, variant = [ask.id, answer.id], -1
    else:
        variant = 0 if kind.event and rng.random() < 0.5 else rng.randrange(len(kind.says))
        statement = _fill(kind.says[variant][0], values)
        user, _ = _exchange(w, _wrap(rng, statement), rng.choice(ECHOES) + " " + rng.choice(L.FOLLOWUPS))
        needed = [user.id]
    first = w.messages[-2 if len(needed) == 1 else -3]
    return Fact(key=kind.key, needed=needed, answers=[_fill(a, values) for a in kind.answer],
                date=datetime.fromtimestamp(first.created, timezone.utc).strftime("%Y-%m-%d"),
                position=first.position, variant=variant)


def _chain_exchange(w: _Writer, chain: tuple, values: dict[str, str]) -> Fact:
    rng = w.rng
    values.update({"city2": rng.choice(F.CITIES), "count2": str(rng.randint(3, 14)),
                   "company2": rng.choice(F.COMPANIES)})
    statement = _fill(rng.choice(chain[1]), values)
    user, _ = _exchange(w, _wrap(rng, statement), rng.choice(ECHOES) + " " + rng.choice(L.FOLLOWUPS))
    return Fact(key="chain:" + chain[0], needed=[user.id], answers=[_fill(a, values) for a in chain[3]],
                date=datetime.fromtimestamp(user.created, timezone.utc).strftime("%Y-%m-%d"),
                position=user.position, variant=0)


def _wrap(rng: random.Random, statement: str) -> str:
    """The statement alone, or between sentences of small talk, as people actually write."""
    before = _small_talk(rng, sentences=1) + " " if rng.random() < 0.4 else ""
    after = " " + _small_talk(rng, sentences=1) if rng.random() < 0.4 else ""
    return before + _cap(statement) + after


def _small_talk(rng: random.Random, sentences: int | None = None) -> str:
    count = sentences or rng.choice([1, 1, 2, 2, 3])
    topics = rng.sample(sorted(L.USER), count)
    return " ".join(_cap(_fill(rng.choice(L.USER[t]), _slot_values(rng))) if rng.random() < 0.6 else _built(rng)
                    for t in topics)


def _built(rng: random.Random) -> str:
    """A sentence from parts: subject, verb, object, tail (thousands of combinations)."""
    return f"{rng.choice(L.SUBJECTS)} {rng.choice(L.VERBS)} {rng.choice(L.OBJECTS)}{rng.choice(L.TAILS)}."


def _reply(rng: random.Random, followup: bool = True) -> str:
    topic = rng.choice(sorted(L.ASSISTANT))
    values = {**_slot_values(rng), "part": rng.choice(L.PARTS_OF_DAY), "object": rng.choice(L.OBJECTS),
              "subject_lower": rng.choice(L.SUBJECTS).lower()}
    parts = [rng.choice(L.REACTIONS), rng.choice(L.ASSISTANT[topic])]
    if rng.random() < 0.5:
        parts.append(_fill(rng.choice(L.COMMENTS), values))
    if followup and rng.random() < 0.7:
        parts.append(_fill(rng.choice(L.ASKS + L.FOLLOWUPS), values))
    return " ".join(p for p in parts if p)


def _slot_values(rng: random.Random) -> dict[str, str]:
    return {"n": str(rng.randint(2, 40)), "k": f"{rng.randint(3, 25)},{rng.randint(100, 999)}",
            "name": rng.choice(F.FIRST_NAMES), "city": rng.choice(F.CITIES), "dish": rng.choice(L.DISHES),
            "relative": rng.choice(L.RELATIVES), "weekday": rng.choice(L.WEEKDAYS), "topic": rng.choice(L.DOC_TOPICS),
            "hour": f"{rng.randint(6, 11)}am", "year": str(rng.randint(2005, 2019))}


def _fill(template: str, values: dict[str, str]) -> str:
    return template.format(**values)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lead(lead: str, question: str) -> str:
    """"Quick one, what's ..." rather than "Quick one, What's ..."."""
    if lead.endswith(", ") and not question.startswith("I "):
        question = question[:1].lower() + question[1:]
    return lead + question


# ---------------------------------------------------------------------- questions


def _questions(rng: random.Random, facts: dict[str, Fact], values: dict[str, dict[str, str]],
               messages: list[Message]) -> list[Question]:
    size = len(messages)
    gap = max(60, size // 20)
    out: list[Question] = []
    kinds = {k.key: k for k in F.KINDS}
    for key, fact in facts.items():
        if key.startswith("chain:"):
            out += _chain_questions(rng, key[6:], fact, facts, values, size, gap)
            continue
        kind = kinds[key]
        told = [t for t in QUESTION_TYPES if t != "indirect" or fact.variant >= 0]  # it asks about the statement
        types = rng.sample(told, 1 if size < 1000 else 2 if size < 5000 else 3)
        if kind.event and fact.variant == 0:
            types.append("when")
        for qtype in types:
            if (pos := _ask_at(rng, fact.position, size, gap)) is not None:
                turns, answers = _probe(rng, qtype, kind, fact, values[key])
                out.append(Question(0, qtype, key, pos, turns, [fact.needed], answers))
    out.sort(key=lambda q: (q.position, q.kind, q.type))
    for i, q in enumerate(out):
        q.id = i
    return out


def _ask_at(rng: random.Random, after: int, size: int, gap: int) -> int | None:
    low = after + gap
    return rng.randint(low, size) if low <= size else None


def _probe(rng: random.Random, qtype: str, kind: F.FactKind, fact: Fact,
           values: dict[str, str]) -> tuple[list[dict[str, str]], list[str]]:
    lead = rng.choice(LEADS)
    if qtype == "direct":
        return [_user(_lead(lead, _fill(rng.choice(kind.direct), values)))], fact.answers
    if qtype == "paraphrase":
        return [_user(_lead(lead, _fill(rng.choice(kind.paraphrase), values)))], fact.answers
    if qtype == "indirect":
        return [_user(_lead(lead, _fill(kind.says[fact.variant][1], values)))], fact.answers
    if qtype == "when":
        event, past = (_fill(e, values) for e in kind.event or ("", ""))
        return [_user(_lead(lead, rng.choice(F.WHEN_QUESTIONS).format(event=event, past=past)))], [fact.date]
    said, reply = rng.choice(F.CONTEXT_LEADS)
    topic = _fill(F.TOPICS[kind.key], values)
    return [_user(said.format(topic=topic)), {"role": "assistant", "content": reply},
            _user(rng.choice(F.CONTEXT_FOLLOWUPS))], fact.answers


def _chain_questions(rng: random.Random, first: str, fact: Fact, facts: dict[str, Fact],
                     values: dict[str, dict[str, str]], size: int, gap: int) -> list[Question]:
    chain = next(c for c in F.CHAINS if c[0] == first)
    base = facts[first]
    pos = _ask_at(rng, max(base.position, fact.position), size, gap)
    if pos is None:
        return []
    text = _lead(rng.choice(LEADS), _fill(rng.choice(chain[2]), values[first]))
    return [Question(0, "multihop", "chain:" + first, pos, [_user(text)], [base.needed, fact.needed], fact.answers)]


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": _cap(text)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recall.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="messages in the conversation")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    json.dump(generate(args.size, args.seed), sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
