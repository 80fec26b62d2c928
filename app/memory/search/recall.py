"""Recall: the memories, summaries and emotional state that go into one request's context.

Holds one in-RAM `SessionIndex` per active session (built from SQLite on first use, kept
current by the background writer's `scored()` callback, dropped with the session's working
memory when idle). `recall()` embeds the query (the one piece of model work on the
time-to-first-token path), searches past turns outside the recent window, turns hits into
`MemoryItem`s that read as exchanges, picks the story so far and relevant older summaries,
and writes the emotion line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.budget import BudgetPlan, split_remaining
from app.context import WHOLE_SHARE, EarlierTurn, MemoryItem
from app.memory.search.index import SessionIndex
from app.memory.search.passages import BRIEF_TOKENS, passages, turn_budget
from app.memory.search.retrieval import build_query, hits_for_budget
from app.memory.search.scoring import RetrievalWeights
from app.sessions import message_hash
from app.tasks import single_flight
from app.tokens import count_message, count_tokens, message_text

LABELS = {"user": "User", "assistant": "Assistant", "tool": "Tool"}


@dataclass(frozen=True, slots=True)
class Continuity:
    """What a stored turn just before the client's window is worth: `top` (about the best
    recollection's score) for the turn just said, halving every `turns` turns back (the client's
    own turns count) and every `hours` of the turn's age. A client that sends only its newest
    message gets the turns it continues; a question asked days after the last turn, or after a
    window of twenty turns, does not pay for an unrelated tail."""

    top: float = 2.0
    turns: float = 4.0
    hours: float = 6.0

    def value(self, back: int, age_seconds: float) -> float:
        return self.top * 0.5 ** (back / self.turns) * 0.5 ** (max(0.0, age_seconds) / 3600 / self.hours)


@dataclass(frozen=True, slots=True)
class RecallSettings:
    k: int = 12
    weights: RetrievalWeights = RetrievalWeights()
    emotion_guidance: bool = True
    summaries: int = 3
    turn_share: float = 0.05  # a retrieved turn longer than this share of the memory tokens is cut
    continuity: Continuity = Continuity()

    @classmethod
    def from_settings(cls, s: Any) -> RecallSettings:
        weights = RetrievalWeights(importance=s.weight_importance, recency=s.weight_recency,
                                   emotion=s.weight_emotion, specificity=s.weight_specificity)
        return cls(k=s.retrieval_k, weights=weights, emotion_guidance=s.emotion_guidance,
                   turn_share=s.recall_turn_share)


@dataclass(slots=True)
class Recalled:
    client_messages: list[dict[str, Any]]
    earlier: list[EarlierTurn] = field(default_factory=list)
    items: list[MemoryItem] = field(default_factory=list)
    summaries: list[MemoryItem] = field(default_factory=list)
    story: MemoryItem | None = None
    emotion_line: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


class Recall:
    def __init__(self, store: Any, embedder: Any, scorer: Any, settings: RecallSettings = RecallSettings(),
                 persona_memory: Any = None, people: Any = None) -> None:
        self.store = store
        self.people = people  # app.memory.people.People: the person's other conversations
        self.embedder = embedder
        self.scorer = scorer
        self.settings = settings
        self.persona_memory = persona_memory  # app.memory.persona.PersonaMemory: earlier system prompts
        self._indexes: dict[str, SessionIndex] = {}
        self._building: dict[str, asyncio.Future] = {}
        self._summaries: dict[str, list[Any]] = {}
        self._forgotten: dict[str, set[int]] = {}
        self._trail: dict[str, deque[tuple[int, str]]] = {}  # (message id, emotion) per session
        self._sizes: dict[str, tuple[int, int]] = {}  # key -> (rows, bytes) when last measured

    # ------------------------------------------------------------------ index lifecycle

    async def index(self, key: str) -> SessionIndex:
        if key in self._indexes:
            return self._indexes[key]
        return await single_flight(self._building, key, lambda: self._load(key))

    async def _load(self, key: str) -> SessionIndex:
        index = SessionIndex()
        rows = await self.store.active_for_index(key)
        _add_rows(index, rows)
        self._remember_emotions(key, [(r.id, r.role, r.emotion) for r in rows])
        self._indexes[key] = index
        return index

    async def scored(self, key: str, rows: list[Any], updates: list[Any]) -> None:
        """The writer's callback: newly scored messages become searchable.

        A session whose index is being loaded gets them once the load is done (the load may have
        read them before their scores were saved); a session not in RAM finds them in the store.
        """
        if key in self._building:
            with contextlib.suppress(Exception):  # a failed load: the next one reads the store
                await asyncio.shield(self._building[key])
        by_id = {u.id: u for u in updates}
        gone = self._forgotten.get(key, set())  # superseded while they were being scored
        merged = [_merge(row, by_id.get(row.id)) for row in rows if row.id not in gone]
        if self.people is not None:
            await self.people.scored(key, merged)
        index = self._indexes.get(key)
        if index is None:
            return
        by_role = {row.id: row.role for row in rows}
        self._remember_emotions(key, [(u.id, by_role.get(u.id), u.emotion) for u in updates])
        _add_rows(index, merged)

    def _remember_emotions(self, key: str, rows: list[tuple[int, str | None, str | None]]) -> None:
        """The user's last five emotions, oldest first, each message once (a message scored while
        its session's index was loading is seen by both)."""
        trail = self._trail.setdefault(key, deque(maxlen=5))
        known = {id for id, _ in trail}
        trail.extend((id, emotion) for id, role, emotion in rows if role == "user" and emotion and id not in known)

    async def apply_changes(self, key: str, rows: list[Any]) -> None:
        """Rows another replica wrote (`store.changed`): superseded ones leave the index, live
        scored turns join it or are updated (adding a known id updates it), summaries reload."""
        self.forget_ids(key, [r.id for r in rows if r.superseded_by is not None])
        self._summaries.pop(key, None)
        live = [r for r in rows if r.superseded_by is None and r.kind == "turn" and r.embedding is not None]
        if not live:
            return
        if self.people is not None:
            await self.people.scored(key, live)
        index = self._indexes.get(key)
        if index is not None:
            self._remember_emotions(key, [(r.id, r.role, r.emotion) for r in live])
            _add_rows(index, live)

    def summaries_changed(self, key: str) -> None:
        self._summaries.pop(key, None)

    def forget_ids(self, key: str, ids: list[int]) -> None:
        """Superseded or deleted messages leave the index, and stay out if scored later."""
        if not ids:
            return
        self._forgotten.setdefault(key, set()).update(ids)
        if self.people is not None:
            self.people.forget_ids(key, ids)
        index = self._indexes.get(key)
        if index is not None:
            index.remove(ids)

    def forget_session(self, key: str) -> None:
        self._indexes.pop(key, None)
        self._summaries.pop(key, None)
        self._forgotten.pop(key, None)
        self._trail.pop(key, None)
        if self.persona_memory is not None:
            self.persona_memory.forget(key)

    def ram_sizes(self) -> dict[str, int]:
        """Estimated bytes of each in-RAM index, measured again only when its row count changed."""
        sizes = {}
        for key, index in self._indexes.items():
            rows, size = self._sizes.get(key, (-1, 0))
            if rows != len(index):
                rows, size = len(index), index.nbytes()
                self._sizes[key] = (rows, size)
            sizes[key] = size
        for key in set(self._sizes) - set(self._indexes):
            del self._sizes[key]
        return sizes

    def indexed_count(self) -> int:
        return sum(len(i) for i in self._indexes.values())

    # ------------------------------------------------------------------ per request

    def embed_early(self, turns: list[dict[str, Any]]) -> EarlyQuery:
        """Start embedding the request's query now, so the model runs while the session is read."""
        return EarlyQuery.start(build_query(turns), self.embedder)

    async def recall(self, key: str, turns: list[dict[str, Any]], stored: list[Any], plan: BudgetPlan,
                     persona: str | None, query: EarlyQuery | None = None, person: Any = None) -> Recalled:
        """`query`: the vector `embed_early` started (embedded here when None); `person`: a
        `people.PersonQuery`, whose other conversations are searched too."""
        client = attach_ids(turns, stored)
        result = Recalled(client_messages=client,
                          earlier=earlier_turns(client, stored, time.time(), self.settings.continuity))
        early = query or self.embed_early(turns)
        text = early.text
        if not text:
            return result
        t0 = time.perf_counter()
        vector = await early.vector()
        result.timings["embed"] = time.perf_counter() - t0  # what is left to wait for, after the sync
        t1 = time.perf_counter()
        index = await self.index(key)
        boundary = recent_boundary(client, stored, plan, persona)
        memory_cap = memory_room(plan, persona, client)
        mood = self._emotion(turns, text, vector)  # read once, for re-scoring and for the mood line
        asked = hits_for_budget(memory_cap, floor=self.settings.k)
        hits = index.search(text, vector, exclude_from_position=boundary, k=asked,
                            weights=self.settings.weights, emotion=mood)
        turn_tokens = turn_budget(memory_cap, self.settings.turn_share)
        found = passages(index, hits, turn_tokens=turn_tokens, brief_tokens=BRIEF_TOKENS,
                         brief_from=int(memory_cap * WHOLE_SHARE))
        result.items = [passage_item(p) for p in found]
        if self.persona_memory is not None:
            result.items += await self.persona_memory.recall(key, text, vector, persona)
        if person is not None and self.people is not None:
            # the person's other conversations fill what this one could not, and at least k
            k = max(self.settings.k, asked - len(hits))
            result.items += await self._elsewhere(result, person, text, vector, k, turn_tokens, mood)
        result.timings["retrieval"] = time.perf_counter() - t1  # the person's other conversations included
        await self._add_summaries(result, key, vector)
        newest = next((m.get("_id") for m in reversed(client) if m.get("role") == "user"), None)
        result.emotion_line = self._emotion_line(key, mood, newest) if self.settings.emotion_guidance else None
        return result

    async def _elsewhere(self, result: Recalled, person: Any, text: str, vector: np.ndarray, k: int,
                         turn_tokens: int | None, mood: Any) -> list[MemoryItem]:
        t0 = time.perf_counter()
        found = await self.people.recall(person, text, vector, k=k, turn_tokens=turn_tokens,
                                         weights=self.settings.weights, emotion=mood)
        result.timings["people"] = time.perf_counter() - t0
        return found

    def _emotion(self, turns: list[dict[str, Any]], query: str, vector: np.ndarray) -> Any:
        """The newest user turn's emotion. The query vector speaks for that turn only when the query
        is that turn alone; a follow-up's query joins earlier turns, whose mood must not leak into
        it ("My dog died." then "They cancelled my flight again!" is anger, not sadness), so then
        the turn is read by its words (embedding it too would cost a second model run before the
        first token)."""
        last = _last_user(turns)
        if not last:
            return None
        return self.scorer.score(last, vector if query.strip() == last.strip() else None)

    async def search(self, key: str, query: str, k: int) -> list[dict[str, Any]]:
        """The memory API's search: every past message is a candidate, scores and reasons shown."""
        vector = await self.embedder.embed_one(query)
        index = await self.index(key)
        hits = index.search(query, vector, exclude_from_position=None, k=k, weights=self.settings.weights)
        return [{"id": h.id, "position": h.position, "role": index.role_of(h.id), "name": index.message(h.id).name,
                 "content": index.text_of(h.id),
                 "score": round(h.score, 4), "cosine": round(h.cosine, 4), "bm25": round(h.bm25, 4),
                 "reasons": list(h.reasons)} for h in hits]

    async def _add_summaries(self, result: Recalled, key: str, vector: np.ndarray) -> None:
        summaries = self._summaries.get(key)
        if summaries is None:
            summaries = [s for s in await self.store.summaries(key) if not s.superseded]
            self._summaries[key] = summaries
        if not summaries:
            return
        story = max(summaries, key=lambda s: (s.end_position, s.level))
        result.story = MemoryItem(text=story.text, score=1.0, reasons=("story so far",), kind="summary",
                                  position=story.start_position)
        others = [s for s in summaries if s is not story and s.embedding is not None]
        ranked = sorted(others, key=lambda s: -float(np.dot(s.embedding, vector)))[:self.settings.summaries]
        result.summaries = [MemoryItem(text=s.text, score=float(np.dot(s.embedding, vector)),
                                       reasons=("related summary",), kind="summary", position=s.start_position,
                                       when=f"messages {s.start_position}-{s.end_position}") for s in ranked]

    def _emotion_line(self, key: str, now: Any, newest: int | None) -> str | None:
        """The mood line; `newest` (the turn `now` reads) is left out of the trail if the writer
        scored it already, so it is not counted twice."""
        if now is None:
            return None
        if now.label == "neutral" or now.confidence < 0.5:
            return None
        trail = [emotion for id, emotion in self._trail.get(key, ()) if id != newest]
        path = " → ".join(trail + [now.label]) if trail else now.label
        return (f"The user's latest message reads as {now.label} (confidence {now.confidence:.2f}, "
                f"intensity {now.intensity:.2f}); recent emotional trajectory: {path}. Respond with matching care.")


@dataclass(slots=True)
class EarlyQuery:
    """A request's query text and the embedding of it, already under way."""

    text: str
    task: asyncio.Task | None = None

    @classmethod
    def start(cls, text: str, embedder: Any) -> EarlyQuery:
        task = asyncio.ensure_future(embedder.embed_one(text)) if text else None
        return cls(text=text, task=task)

    async def vector(self) -> np.ndarray:
        return await self.task

    async def discard(self) -> None:
        """The request failed before using the vector: stop waiting for it, quietly."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.task is not None:
            with contextlib.suppress(BaseException):
                await self.task


def attach_ids(turns: list[dict[str, Any]], stored: list[Any]) -> list[dict[str, Any]]:
    """The client's turns with `_id` = the stored message each one is, matched from the end by hash."""
    ids: dict[str, list[int]] = {}
    for row in stored:
        ids.setdefault(row.content_hash, []).append(row.id)
    out = []
    for message in reversed(turns):
        found = ids.get(message_hash(message.get("role", "user"), message_text(message)))
        out.append({**message, "_id": found.pop()} if found else dict(message))
    return out[::-1]


def earlier_turns(client: list[dict[str, Any]], stored: list[Any], now: float,
                  continuity: Continuity = Continuity()) -> list[EarlierTurn]:
    """Stored turns from before the client's window, newest first, each valued by `continuity`."""
    ids = {m["_id"] for m in client if "_id" in m}
    positions = {row.id: row.position for row in stored}
    first = min((positions[i] for i in ids if i in positions), default=None)
    earlier = [row for row in stored if row.id not in ids and row.role in ("user", "assistant")
               and (first is None or row.position < first)]
    return [EarlierTurn(message=_as_message(row),
                        value=continuity.value(len(client) + back, now - (row.created_at or now)))
            for back, row in enumerate(reversed(earlier))]


def _as_message(row: Any) -> dict[str, Any]:
    message = {"role": row.role, "content": row.content, "_id": row.id}
    return {**message, "name": row.name} if getattr(row, "name", None) else message


def memory_room(plan: BudgetPlan, persona: str | None, client: list[dict[str, Any]]) -> int:
    """The prompt tokens left for recollections: what the persona and the client's own turns
    within the recent share leave (the room the builder gives out by value)."""
    left = plan.prompt_budget - count_tokens(persona or "")
    _, recent_cap = split_remaining(plan, count_tokens(persona or ""))
    used = 0
    for message in reversed(client):
        if used + (cost := count_message(message)) > recent_cap and used:
            break
        used += cost
    return max(0, left - used)


def recent_boundary(client: list[dict[str, Any]], stored: list[Any], plan: BudgetPlan,
                    persona: str | None) -> int | None:
    """The position from which the client's stored turns will surely be in context (newest first
    up to the recent cap); turns before it, stored ones before the window included, are searched."""
    _, recent_cap = split_remaining(plan, count_tokens(persona or ""))
    positions = {row.id: row.position for row in stored}
    used, boundary = 0, None
    for message in reversed(client):
        used += count_message(message)
        if used > recent_cap:
            break
        boundary = positions.get(message.get("_id"), boundary)
    return boundary


def _last_user(turns: list[dict[str, Any]]) -> str:
    for message in reversed(turns):
        if message.get("role") == "user":
            return message_text(message)
    return ""


def _add_rows(index: SessionIndex, rows: list[Any]) -> None:
    rows = [r for r in rows if r.role in LABELS and r.superseded_by is None]
    if rows:
        index.add(ids=[r.id for r in rows], positions=[r.position for r in rows], roles=[r.role for r in rows],
                  texts=[r.content for r in rows], created=[r.created_at for r in rows],
                  embeddings=[index_vectors(r.embedding, index.dim) for r in rows],
                  importance=[r.importance for r in rows], emotions=[r.emotion_probs for r in rows],
                  names=[getattr(r, "name", None) for r in rows])


def index_vectors(embedding: Any, dim: int) -> np.ndarray | None:
    """A stored embedding for the index: the sentence pieces when there are several, else the whole."""
    if embedding is None:
        return None
    matrix = np.asarray(embedding, dtype=np.float32).reshape(-1, dim)
    return matrix[1:] if len(matrix) > 1 else matrix[0]


def _merge(row: Any, update: Any) -> Any:
    if update is not None:
        row.embedding, row.importance, row.emotion_probs = update.embedding, update.importance, update.emotion_probs
    return row


def _speaker(name: str | None) -> str:
    """A client-sent name as a label: one line, at most 64 characters."""
    return " ".join((name or "").split())[:64]


def passage_item(passage: Any) -> MemoryItem:
    """A passage as the model reads it: one line per turn, labelled with its speaker's name or
    role; its short form (`Passage.brief`) rendered the same way."""
    names = passage.speakers or (None,) * len(passage.lines)
    text = _labelled([(role, content, name) for (role, content), name in zip(passage.lines, names)])
    brief = _labelled([(passage.lines[i][0], content, names[i]) for i, content in getattr(passage, "brief", ())])
    return MemoryItem(text=text, message_ids=tuple(passage.ids), score=passage.score, reasons=tuple(passage.reasons),
                      kind="memory", position=passage.position, when=passage.when, brief=brief or None)


def _labelled(lines: list[tuple[str, str, str | None]]) -> str:
    return "\n".join(f"{_speaker(name) or LABELS.get(role, role)}: {content}" for role, content, name in lines)
