"""Persona memory: what earlier system prompts said, offered back when it is relevant again.

A chat's system prompt changes over time: SillyTavern adds and drops world-info entries as the
story moves, character cards get edited, a LiveKit agent hands off to one with new instructions.
What an older prompt said ("The Silver Gate of Varnholm opens only at moonrise.") often still
holds in the story, but the client no longer sends it. So every distinct prompt a session sends
is cut into overlapping chunks (`persona_text`), and each chunk is stored once per
session (by hash) with its vectors: the chunk, then its sentences (`retrieval.pieces`), so a
fact in one sentence is not averaged away. That happens on the background writer's task.

On a request, the chunks are scored against the query vector recall already computed (best
sentence, plus the share of the query's words they hold), and the relevant ones become memory
items of kind "persona" holding only the sentences that neither the current prompt nor a better
chunk already shows, so nothing in the context appears twice:

    persona = PersonaMemory(store, embedder, PersonaSettings())
    writer.submit_call(lambda: persona.remember(key, [old_prompt, new_prompt]))  # background
    items = await persona.recall(key, query, query_vector, current_prompt)       # per request

A session's chunks are held in RAM as one matrix (`ChunkSet`) from their first use, so scoring
them is one matrix-vector product; `forget(key)` drops them with the session.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.context import MemoryItem
from app.memory.persona_text import coverage, flat, prompt_chunks, shared_words, unseen, vector_texts
from app.memory.records import PersonaChunk, SessionNotFound
from app.memory.search.retrieval import query_terms, sentences, tokenize

REASON = "earlier persona text"


@dataclass(frozen=True, slots=True)
class PersonaSettings:
    """Chunk size and overlap in tokens; at most `k` chunks per request scoring at least `min_score`
    (best cosine + `word_weight` × share of the query's words held)."""

    chunk_tokens: int = 128
    chunk_overlap: int = 32
    k: int = 3
    min_score: float = 0.4
    word_weight: float = 0.25

    @classmethod
    def from_settings(cls, s: Any) -> PersonaSettings:
        return cls(chunk_tokens=s.persona_chunk_tokens, chunk_overlap=s.persona_chunk_overlap,
                   k=s.persona_recall_k, min_score=s.persona_min_score)


@dataclass(frozen=True, slots=True)
class PersonaHit:
    """One chunk worth showing: `text` is what it adds (`parts`: its sentences), `words` the query
    words it shares."""

    id: int
    text: str
    score: float
    cosine: float
    words: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()


# ---------------------------------------------------------------------- one session's chunks


@dataclass(frozen=True, slots=True)
class _View:
    """A chunk as seen against one current prompt: its new sentences and the vector rows that speak
    for them (`scale` < 1 when no row speaks for them alone: the share of the text that is new)."""

    sentences: tuple[str, ...]
    rows: np.ndarray
    scale: float
    words: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Parts:
    """A chunk's sentences (as given, flat, as words) and the flat texts of its statement rows."""

    sentences: tuple[str, ...]
    flat: tuple[str, ...]
    words: tuple[frozenset[str], ...]
    pieces: tuple[str, ...]


class ChunkSet:
    """One session's persona chunks as arrays, so scoring all of them is one matrix-vector product.

    Chunk i owns the vector rows `starts[i]`..`starts[i+1]`: the whole chunk first, then its
    statements (`vector_texts`). Words map to the chunks holding them, so the share of a query's
    words each chunk holds costs a few postings walks. What each chunk adds to the current prompt
    is cached until the prompt changes.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.ids: list[int] = []
        self.texts: list[str] = []
        self.words: list[frozenset[str]] = []
        self.starts = np.zeros(0, dtype=np.int64)
        self.vectors = np.zeros((0, dim), dtype=np.float32)
        self._postings: dict[str, list[int]] = {}
        self._current: str | None = None
        self._seen = ""
        self._views: dict[int, _View | None] = {}
        self._parts: dict[int, _Parts] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, chunks: Iterable[PersonaChunk]) -> None:
        """Append chunks that have vectors and are not held yet (adding one twice keeps one)."""
        known = set(self.ids)
        blocks, starts = [], []
        rows = len(self.vectors)
        for chunk in chunks:
            vectors = np.zeros((0, self.dim)) if chunk.embedding is None else \
                np.asarray(chunk.embedding, dtype=np.float32).reshape(-1, self.dim)
            if not len(vectors) or chunk.id in known:
                continue
            starts.append(rows)
            rows += len(vectors)
            blocks.append(vectors)
            self._index(chunk.id, chunk.text)
            known.add(chunk.id)
        if blocks:
            self.vectors = np.vstack([self.vectors, *blocks])
            self.starts = np.concatenate([self.starts, np.asarray(starts, dtype=np.int64)])

    def _index(self, id: int, text: str) -> None:
        words = frozenset(tokenize(text))
        for word in words:
            self._postings.setdefault(word, []).append(len(self.ids))
        self.ids.append(id)
        self.texts.append(text)
        self.words.append(words)

    def cosines(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(cosine of every row with the query, best row per chunk).

        einsum, not `@`: BLAS splits a product this small over threads, and on a busy machine a
        descheduled thread makes it wait a time slice (p95 9 ms against 0.4 ms at 3,000 rows).
        """
        cosine = np.einsum("ij,j->i", self.vectors, vector)
        return cosine, np.maximum.reduceat(cosine, self.starts)

    def coverages(self, terms: dict[str, float]) -> np.ndarray:
        """`coverage` of every chunk."""
        shares = np.zeros(len(self.ids))
        total = sum(terms.values())
        for term, weight in terms.items() if total else ():
            shares[self._postings.get(term, [])] += weight / total
        return shares

    def rows(self, i: int) -> range:
        return range(int(self.starts[i]), int(self.starts[i + 1]) if i + 1 < len(self) else len(self.vectors))

    def view(self, i: int, current: str, shown: str = "") -> _View | None:
        """What chunk i adds to the prompt `current` and to `shown` (flat text already offered):
        None when they hold all of it. Cached per chunk while the prompt stays the same."""
        if current != self._current:
            self._current, self._seen, self._views = current, flat(current), {}
        if shown:
            return self._view(i, f"{self._seen} {shown}")
        if i not in self._views:
            self._views[i] = self._view(i, self._seen)
        return self._views[i]

    def _view(self, i: int, seen: str) -> _View | None:
        parts = self._parts_of(i)
        new = [n for n, text in enumerate(parts.flat) if text not in seen]
        if not new:
            return None
        rows, said = self.rows(i), tuple(parts.sentences[n] for n in new)
        if len(new) == len(parts.flat):
            return _View(said, np.asarray(rows), 1.0, self.words[i])
        fresh = [r for r, text in zip(rows[1:], parts.pieces) if text not in seen]
        scale = 1.0 if fresh else sum(map(len, said)) / max(1, len(self.texts[i]))
        return _View(said, np.asarray(fresh or [rows[0]]), scale, frozenset().union(*(parts.words[n] for n in new)))

    def _parts_of(self, i: int) -> _Parts:
        if i not in self._parts:
            said = tuple(sentences(self.texts[i]))
            texts = vector_texts(self.texts[i])  # rows stored by another version of `pieces`: only the whole
            rows = tuple(map(flat, texts[1:])) if len(texts) == len(self.rows(i)) else ()
            self._parts[i] = _Parts(said, tuple(map(flat, said)), tuple(frozenset(tokenize(t)) for t in said), rows)
        return self._parts[i]


# ---------------------------------------------------------------------- ranking (pure over a ChunkSet)


def rank(chunks: ChunkSet, vector: np.ndarray, terms: dict[str, float], current: str | None,
         settings: PersonaSettings) -> list[PersonaHit]:
    """Up to `k` chunks worth offering for this query, best first, each cut to what is not yet in context.

    A chunk's score is its best cosine plus `word_weight` times the share of the query's words it
    holds, counting only the sentences that neither the current prompt nor a chunk chosen before
    it holds (its vector rows for those sentences, or its whole row scaled by their share).
    Scores over whole chunks bound those from above, so chunks are scored exactly best bound
    first, and one whose new part shrank when a better one was chosen is scored again (it can
    only lose): the result equals scoring every chunk again after each choice.
    """
    if not len(chunks) or settings.k <= 0:
        return []
    cosine, best = chunks.cosines(vector)
    bound = best + settings.word_weight * chunks.coverages(terms) if terms else best
    order = np.argsort(bound, kind="stable")
    pending = order[bound[order] >= settings.min_score].tolist()  # popped from the end: best bound first
    heap: list[tuple[float, int, PersonaHit]] = []  # (-score, chunk, hit): scored, not yet chosen
    chosen: list[PersonaHit] = []
    shown = ""
    while len(chosen) < settings.k:
        while pending and (not heap or bound[pending[-1]] > -heap[0][0]):
            i = pending.pop()
            _push(heap, i, _exact(chunks, i, cosine, terms, chunks.view(i, current or ""), settings), settings)
        if not heap:
            break
        _, i, hit = heapq.heappop(heap)
        if any(flat(part) in shown for part in hit.parts):
            _push(heap, i, _exact(chunks, i, cosine, terms, chunks.view(i, current or "", shown), settings), settings)
        else:
            chosen.append(hit)
            shown += " " + flat(hit.text)
    return chosen


def _push(heap: list, i: int, hit: PersonaHit | None, settings: PersonaSettings) -> None:
    if hit is not None and hit.score >= settings.min_score:
        heapq.heappush(heap, (-hit.score, i, hit))


def _exact(chunks: ChunkSet, i: int, cosine: np.ndarray, terms: dict[str, float], view: _View | None,
           settings: PersonaSettings) -> PersonaHit | None:
    if view is None:
        return None
    dense = float(cosine[view.rows].max()) * view.scale
    score = dense + settings.word_weight * coverage(terms, view.words)
    return PersonaHit(chunks.ids[i], " ".join(view.sentences), score, dense, shared_words(terms, view.words),
                      view.sentences)


def matches(chunks: ChunkSet, vector: np.ndarray, terms: dict[str, float], k: int,
            settings: PersonaSettings) -> list[PersonaHit]:
    """Whole chunks by score, current prompt included (the memory API's search)."""
    if not len(chunks) or k <= 0:
        return []
    _, best = chunks.cosines(vector)
    scores = best + settings.word_weight * chunks.coverages(terms) if terms else best
    order = [int(i) for i in np.argsort(-scores, kind="stable")[:k] if scores[i] >= settings.min_score]
    return [PersonaHit(chunks.ids[i], chunks.texts[i], float(scores[i]), float(best[i]),
                       shared_words(terms, chunks.words[i])) for i in order]


def memory_item(hit: PersonaHit) -> MemoryItem:
    reasons = [REASON, f"meaning {hit.cosine:.2f}"] + (["words: " + ", ".join(hit.words[:5])] if hit.words else [])
    return MemoryItem(text=hit.text, score=hit.score, reasons=tuple(reasons), kind="persona", position=hit.id)


# ---------------------------------------------------------------------- per session, with storage


class PersonaMemory:
    """Stores persona chunks (background) and offers the relevant ones (per request).

    Holds one `ChunkSet` per session from its first use until `forget`; chunks stored later are
    appended to it, so nothing is reloaded while the session is active.
    """

    def __init__(self, store: Any, embedder: Any, settings: PersonaSettings = PersonaSettings()) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self._sets: dict[str, ChunkSet] = {}
        self._loading: dict[str, asyncio.Future] = {}

    async def remember(self, key: str, prompts: Sequence[str]) -> int:
        """Chunk, embed and store what is new in these prompts; returns how many chunks were added.

        Runs on the background writer's task: chunking a long prompt counts tokens for a while, so
        it runs in a thread, and embedding yields to requests (`background=True`).
        """
        s = self.settings
        chunks = await asyncio.to_thread(prompt_chunks, [p for p in prompts if p], s.chunk_tokens, s.chunk_overlap)
        known = await self.store.persona_chunk_hashes(key)
        new = [c for c in chunks if c[0] not in known]
        if not new:
            return 0
        groups = [vector_texts(text) for _, text, _ in new]
        flat_vectors = await self.embedder.embed([t for g in groups for t in g], background=True)
        bounds = np.cumsum([0] + [len(g) for g in groups])
        rows = [PersonaChunk(hash=h, text=text, token_count=tokens, embedding=flat_vectors[a:b])
                for (h, text, tokens), a, b in zip(new, bounds[:-1], bounds[1:])]
        try:
            added = await self.store.add_persona_chunks(key, rows)
        except SessionNotFound:  # deleted meanwhile
            return 0
        await self._extend(key, added)
        return len(added)

    async def recall(self, key: str, query: str, vector: np.ndarray, current: str | None) -> list[MemoryItem]:
        """Memory items for the chunks relevant to `query` that `current` (the prompt sent) lacks."""
        chunks = await self.chunks(key)
        if not len(chunks):
            return []
        return [memory_item(h) for h in rank(chunks, vector, query_terms(query), current, self.settings)]

    async def search(self, key: str, query: str, vector: np.ndarray, k: int,
                     current: str | None) -> list[dict[str, Any]]:
        """The memory API's view: whole matching chunks, and whether the current prompt holds them."""
        chunks = await self.chunks(key)
        seen = flat(current or "")
        return [{"kind": "persona", "id": h.id, "position": None, "role": "system", "content": h.text,
                 "score": round(h.score, 4), "cosine": round(h.cosine, 4), "bm25": None,
                 "reasons": list(memory_item(h).reasons), "in_current_persona": not unseen(h.text, seen)}
                for h in matches(chunks, vector, query_terms(query), k, self.settings)]

    async def count(self, key: str) -> int:
        return len(await self.store.persona_chunk_hashes(key))

    async def chunks(self, key: str) -> ChunkSet:
        """The session's chunks, loaded from the store once (concurrent callers share one load)."""
        await self._loaded(key)
        if (found := self._sets.get(key)) is not None:
            return found
        done = self._loading[key] = asyncio.get_running_loop().create_future()
        try:
            chunks = ChunkSet(self.embedder.dim)
            chunks.add(await self.store.persona_chunks(key))
            self._sets[key] = chunks
            return chunks
        finally:
            del self._loading[key]
            done.set_result(None)  # says "finished"; a waiter finding no set loads it itself

    async def _loaded(self, key: str) -> None:
        while (done := self._loading.get(key)) is not None:
            await asyncio.shield(done)

    async def _extend(self, key: str, added: list[PersonaChunk]) -> None:
        """New chunks join the session's set if it is in RAM (a load in flight may predate them)."""
        await self._loaded(key)
        if key in self._sets:
            self._sets[key].add(added)

    def forget(self, key: str) -> None:
        self._sets.pop(key, None)

    def held(self) -> int:
        """Chunks held in RAM across sessions."""
        return sum(len(c) for c in self._sets.values())
