"""Recall across a person's conversations: one search index per person, held in RAM.

A person's other conversations are searched in the same request as the current one, so they
must not cost a file open each: the first request of a person reads every conversation of
theirs once into one `SessionIndex` (a message's id there is its conversation's number times
2**32 plus its own id), and from then on the background writer's callbacks keep it current, the
way the per-conversation indexes are kept. A search masks the rows by conversation (not the
current one, none set apart, and with the `character` scope only those with the same
character), so one matrix product covers all of them:

    people = People(store)
    items = await people.recall(PersonQuery(owner, "caller-7", key, character, scope="character"),
                                text, vector, k=12, turn_tokens=40, weights=weights, now=time.time())
    items[0].kind, items[0].when      # 'elsewhere', 'in an earlier conversation (room-a), 3 days ago, Thu …'

Each person's index leaves RAM when the person has been idle for SESSION_IDLE_SECONDS, or first
of all when MEMORY_RAM_MB is reached (`ram_sizes`, `drop`).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.context import MemoryItem
from app.memory.search.index import SessionIndex
from app.tasks import single_flight
from app.memory.search.passages import passages
from app.memory.search.recall import LABELS, passage_item
from app.memory.search.retrieval import pieces, query_terms, tokenize
from app.persons import effective_scope, elsewhere_label, shown_name

SHIFT = 32  # a message's id in a person's index: conversation number << SHIFT | its own id
PREFIX = "person:"  # how a person's index is named among the caches (MEMORY_RAM_MB)


@dataclass(frozen=True, slots=True)
class PersonQuery:
    """Who is asking and how far recall may reach: `scope` is what the request asked (None: the
    conversation's setting, else `default`)."""

    owner: str | None
    person: str
    key: str  # the conversation asking (left out of the search)
    character: str = ""
    scope: str | None = None
    default: str = "character"


@dataclass(slots=True)
class Conversation:
    number: int
    key: str
    session_id: str
    character: str
    scope: str | None
    positions: list[int] = field(default_factory=list)  # its messages' own positions, sorted
    ids: list[int] = field(default_factory=list)  # the matching ids in the person's index


class PersonIndex:
    """All of one person's conversations in one `SessionIndex`; a `MessageSource` for passages
    whose neighbours stay inside one conversation."""

    def __init__(self) -> None:
        self.index = SessionIndex()
        self.conversations: dict[str, Conversation] = {}
        self._by_number: dict[int, Conversation] = {}
        self._next = 0  # position in the person's index: the order messages arrived in
        self.used = time.monotonic()

    def join(self, info: Any) -> Conversation:
        conv = self.conversations.get(info.key)
        if conv is None:
            conv = Conversation(len(self._by_number) + 1, info.key, info.session_id, info.character or "", info.scope)
            self.conversations[info.key] = conv
            self._by_number[conv.number] = conv
        return conv

    def add(self, key: str, rows: list[Any]) -> None:
        conv = self.conversations.get(key)
        rows = [r for r in rows if r.role in LABELS and r.superseded_by is None]
        if conv is None or not rows:
            return
        ids = [conv.number << SHIFT | r.id for r in rows]  # the whole message's vector only: see `whole`
        fresh = [(r, i) for r, i in zip(rows, ids) if i not in self.index]
        positions = list(range(self._next, self._next + len(fresh)))
        self._next += len(fresh)
        place = dict(zip((i for _, i in fresh), positions))
        self.index.add(ids=ids, positions=[place.get(i, 0) for i in ids], roles=[r.role for r in rows],
                       texts=[r.content for r in rows], created=[r.created_at for r in rows],
                       embeddings=[whole(r.embedding, self.index.dim) for r in rows],
                       importance=[r.importance for r in rows], emotions=[r.emotion_probs for r in rows],
                       names=[getattr(r, "name", None) for r in rows])
        for row, gid in fresh:
            at = bisect.bisect(conv.positions, row.position)
            conv.positions.insert(at, row.position)
            conv.ids.insert(at, gid)

    def remove(self, key: str, ids: list[int]) -> None:
        conv = self.conversations.get(key)
        if conv is None:
            return
        gone = {conv.number << SHIFT | i for i in ids}
        self.index.remove(list(gone))
        kept = [(p, i) for p, i in zip(conv.positions, conv.ids) if i not in gone]
        conv.positions, conv.ids = [p for p, _ in kept], [i for _, i in kept]

    def leave(self, key: str) -> None:
        conv = self.conversations.pop(key, None)
        if conv is not None:
            self.index.remove(conv.ids)
            self._by_number.pop(conv.number, None)

    def allowed(self, query: PersonQuery) -> np.ndarray | None:
        """The conversation numbers this query may recall from; None when it may recall nothing."""
        own = self.conversations.get(query.key)
        scope = effective_scope(query.scope, own.scope if own else None, query.default)
        if scope == "session":
            return None
        numbers = [c.number for c in self.conversations.values() if c.key != query.key and c.scope != "session"
                   and (scope == "person" or c.character == query.character)]
        return np.array(numbers, dtype=np.int64) if numbers else None

    def conversation_of(self, id: int) -> Conversation:
        return self._by_number[id >> SHIFT]

    def message(self, id: int) -> Any:
        return self.index.message(id)

    def neighbours(self, id: int, radius: int) -> list[int]:
        conv = self.conversation_of(id)
        at = conv.ids.index(id) if id in self.index else -1
        if at < 0:
            return []
        return conv.ids[max(0, at - radius): at] + conv.ids[at + 1: at + 1 + radius]


class People:
    """Every loaded person's index; built on a person's first request, kept current on write."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._people: dict[tuple[str | None, str], PersonIndex] = {}
        self._building: dict[tuple[str | None, str], asyncio.Future] = {}
        self._member: dict[str, tuple[str | None, str]] = {}  # conversation key -> its person

    async def person(self, owner: str | None, person: str) -> PersonIndex:
        name = (owner, person)
        if name in self._people:
            return self._people[name]
        return await single_flight(self._building, name, lambda: self._adopt(owner, person))

    async def _adopt(self, owner: str | None, person: str) -> PersonIndex:
        name = (owner, person)
        built = await self._build(owner, person)
        self._people[name] = built
        self._member.update({key: name for key in built.conversations})
        return built

    async def _build(self, owner: str | None, person: str) -> PersonIndex:
        built = PersonIndex()
        for info in sorted(await self.store.sessions_of_person(owner, person), key=lambda s: s.created_at):
            built.join(info)
            built.add(info.key, await self.store.active_for_index(info.key))
        return built

    # ------------------------------------------------------------------ kept current

    async def joined(self, info: Any) -> None:
        """A conversation now belongs to its person (`info.person`): its messages are added as scored."""
        name = (info.owner, info.person)
        if name in self._building:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._building[name])
        built = self._people.get(name)
        if built is not None and info.key not in built.conversations:
            built.join(info)
            self._member[info.key] = name
            if info.message_count:  # a conversation from before it had a person brings its past
                built.add(info.key, await self.store.active_for_index(info.key))

    async def scored(self, key: str, rows: list[Any]) -> None:
        name = self._member.get(key)
        if name is None:
            for pending in list(self._building.values()):  # the person may be loading right now
                with contextlib.suppress(Exception):
                    await asyncio.shield(pending)
            name = self._member.get(key)
        if name is not None and name in self._people:
            self._people[name].add(key, rows)

    def forget_ids(self, key: str, ids: list[int]) -> None:
        name = self._member.get(key)
        if name is not None and name in self._people and ids:
            self._people[name].remove(key, ids)

    def forget_session(self, key: str) -> None:
        """A conversation was deleted: it leaves its person's index."""
        name = self._member.pop(key, None)
        if name is not None and name in self._people:
            self._people[name].leave(key)

    def rescope(self, key: str, scope: str | None) -> None:
        """A conversation's own scope changed (`PUT /v1/sessions/{id}/scope`)."""
        name = self._member.get(key)
        conv = self._people[name].conversations.get(key) if name in self._people else None
        if conv is not None:
            conv.scope = scope

    def drop(self, owner: str | None, person: str) -> None:
        built = self._people.pop((owner, person), None)
        for key in built.conversations if built else ():
            self._member.pop(key, None)

    # ------------------------------------------------------------------ reading

    async def recall(self, query: PersonQuery, text: str, vector: Any, *, k: int, turn_tokens: int | None,
                     weights: Any, emotion: Any = None, now: float | None = None) -> list[MemoryItem]:
        """The best passages of the person's other conversations this query may reach."""
        built = await self.person(query.owner, query.person)
        built.used = time.monotonic()
        allowed = built.allowed(query)
        if allowed is None or not len(built.index):
            return []
        hits = built.index.search(text, vector, k=k, weights=weights, emotion=emotion,
                                  only=lambda ids: np.isin(ids >> SHIFT, allowed))
        hits = [with_piece(h, built.index.text_of(h.id), text) for h in hits]
        found = passages(built, hits, turn_tokens=turn_tokens)
        return [_item(built, p, now or time.time()) for p in found]

    async def search(self, owner: str | None, person: str, text: str, vector: Any, k: int,
                     weights: Any) -> list[dict[str, Any]]:
        """The memory API's search over every conversation of the person."""
        built = await self.person(owner, person)
        hits = built.index.search(text, vector, k=k, weights=weights)
        return [_hit_dict(built, h) for h in hits]

    # ------------------------------------------------------------------ RAM

    def ram_sizes(self) -> dict[str, int]:
        return {_name(owner, person): built.index.nbytes() for (owner, person), built in self._people.items()}

    def drop_named(self, name: str) -> bool:
        """Drop the index `ram_sizes` named `name`; False when `name` is not a person's index."""
        for owner, person in list(self._people):
            if _name(owner, person) == name:
                self.drop(owner, person)
                return True
        return False

    def evict_idle(self, idle_seconds: float, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        idle = [name for name, built in self._people.items() if now - built.used > idle_seconds]
        for owner, person in idle:
            self.drop(owner, person)
        return len(idle)

    def indexed_count(self) -> int:
        return sum(len(b.index) for b in self._people.values())


def whole(embedding: Any, dim: int) -> np.ndarray | None:
    """The whole message's vector (the first stored row), not its pieces: a person's index scans
    every conversation of theirs per request, and one vector a message halves that scan and the
    RAM it holds (`bench/README.md`: recall across conversations)."""
    if embedding is None:
        return None
    return np.asarray(embedding, dtype=np.float32).reshape(-1, dim)[0]


def with_piece(hit: Any, text: str, query: str, long_chars: int = 256) -> Any:
    """A hit on a long turn pointed at the piece that shares most words with the query, so the
    passage can show the sentences around it (`passages.excerpt`) as it does for a piece vector.

        >>> from app.memory.search.index import Hit
        >>> text = "I moved here last spring after a long winter of planning. " * 4 + "My sister Mara lives in Lisbon."
        >>> with_piece(Hit(1, 0, 1.0, 0.5, 0.0), text, "where does Mara live?").piece
        4
    """
    if len(text) <= long_chars:
        return hit
    asked = set(query_terms(query))
    shares = [len(asked.intersection(tokenize(p))) for p in pieces(text)]
    best = max(range(len(shares)), key=shares.__getitem__, default=-1)
    return dataclasses.replace(hit, piece=best) if best >= 0 and shares[best] else hit


def _name(owner: str | None, person: str) -> str:
    return f"{PREFIX}{owner or ''}:{person}"


def _item(built: PersonIndex, passage: Any, now: float) -> MemoryItem:
    first = built.message(passage.ids[0])
    where = shown_name(built.conversation_of(passage.ids[0]).session_id)
    plain = passage_item(passage)
    return MemoryItem(text=plain.text, score=passage.score, reasons=("another conversation", *passage.reasons),
                      kind="elsewhere", position=first.created or 0.0,
                      when=elsewhere_label(first.created, now, where))


def _hit_dict(built: PersonIndex, hit: Any) -> dict[str, Any]:
    conv = built.conversation_of(hit.id)
    message = built.message(hit.id)
    return {"session_id": conv.session_id, "id": hit.id & ((1 << SHIFT) - 1), "role": message.role,
            "name": message.name, "content": message.text, "created_at": message.created,
            "score": round(hit.score, 4), "cosine": round(hit.cosine, 4), "bm25": round(hit.bm25, 4),
            "reasons": list(hit.reasons)}
