"""The per-session search index in RAM: embeddings and BM25 postings over past messages.

One `SessionIndex` holds every message of one conversation that recall may bring back. It is
built from storage when a session wakes up and grows one message at a time as the background
writer scores new turns; nothing is rebuilt on an append:

    index = SessionIndex()
    index.add(ids=[1, 2], positions=[0, 1], roles=["user", "assistant"],
              texts=["My sister Mara moved to Lisbon.", "Lisbon! Lovely."],
              embeddings=[vecs1, None])             # the second is found by words until
    index.set_embedding(2, vec2)                    # its vector arrives
    hits = index.search("where does my sister live?", query_vec, exclude_from_position=40, k=8)
    hits[0].id, hits[0].reasons                      # 1, ('meaning 0.61', 'words: sister')

A message may have one vector (dim,) or one per statement (k, dim), from embedding
`retrieval.pieces(text)`; it scores as its best piece (`app.memory.search.vectors`). Storage is column-wise numpy arrays
grown by doubling (an append copies nothing in the common case) and an inverted index of
`array` postings, so a search is one matrix-vector product plus a few vectorised postings
walks: linear in the number of vectors, about 2 ms at 10k messages on two cores. Removed
messages are masked, not compacted (removal is rare: edits and deletions).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from app.memory.search.postings import Postings
from app.memory.search.retrieval import distinct, entities, query_terms, tokenize
from app.memory.search.scoring import RetrievalWeights, emotion_closeness, fuse, minmax, recency, rescore
from app.memory.search.vectors import PieceVectors, grown
from app.memory.search.when import asked_spans


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved message: final `score`, its raw `cosine` and `bm25`, and why it was chosen.

    `piece` is which of the message's vectors matched best (its place in `retrieval.pieces`
    of the text), -1 when there is nothing to point at (no query vector, one vector).
    """

    id: int
    position: int
    score: float
    cosine: float
    bm25: float
    reasons: tuple[str, ...] = ()
    piece: int = -1


@dataclass(frozen=True, slots=True)
class IndexedMessage:
    id: int
    position: int
    role: str
    text: str
    created: float | None
    name: str | None = None  # the speaker's name, when the client sent one (group chats)


class SessionIndex:
    """Messages of one session, searchable by meaning and by words; see the module docstring."""

    def __init__(self, dim: int = 384, capacity: int = 256) -> None:
        self.dim = dim
        self._n = 0
        self._row: dict[int, int] = {}
        self._roles: list[str] = []
        self._texts: list[str] = []
        self._names: list[str | None] = []  # speakers' names, None where the client sent none
        self._speaker = np.full(capacity, -1, dtype=np.int32)  # per row: its speaker's number, -1 none
        self._speakers: dict[str, int] = {}  # a speaker's name terms -> its number
        self._ids = np.zeros(capacity, dtype=np.int64)
        self._positions = np.zeros(capacity, dtype=np.int64)
        self._created = np.full(capacity, np.nan, dtype=np.float64)
        self._importance = np.full(capacity, np.nan, dtype=np.float32)
        self._lengths = np.zeros(capacity, dtype=np.float32)
        self._alive = np.zeros(capacity, dtype=bool)
        self._vectors = PieceVectors(dim, capacity)  # one or more per message
        self._emotions: np.ndarray | None = None
        self._monotonic = True  # rows were added in position order (the usual case)
        self._order: np.ndarray | None = None  # otherwise: live rows sorted by position, rebuilt lazily
        self._postings = Postings()
        self._names_seen: set[str] = set()  # terms of words seen capitalised inside a sentence, and speakers
        self._live = 0

    def __len__(self) -> int:
        return self._live

    def __contains__(self, id: object) -> bool:
        return id in self._row and bool(self._alive[self._row[id]])

    # ------------------------------------------------------------------ writing

    def add(self, ids: int | Sequence[int], positions: int | Sequence[int], roles: str | Sequence[str],
            texts: str | Sequence[str], created: Any = None, embeddings: Any = None, importance: Any = None,
            emotions: Any = None, names: Any = None) -> None:
        """Add one message (scalars) or many (sequences); a known id is updated instead.

        `embeddings`, `importance`, `emotions` and `created` may be None, or hold None for some
        messages: a message without a vector is still found by its words. `names` are speakers'
        names (a group chat's characters): a name is searchable as a word of its message.
        """
        if isinstance(ids, (int, np.integer)):
            ids, positions, roles, texts = [ids], [positions], [roles], [texts]
            created, embeddings, importance, emotions, names = (
                [v] for v in (created, embeddings, importance, emotions, names))
        n = len(ids)
        columns = [_column(c, n) for c in (created, embeddings, importance, emotions)]
        speakers = _column(names, n)
        for i, id in enumerate(ids):
            extra = [c[i] for c in columns]
            if id in self._row and self._alive[self._row[id]]:
                self._update(self._row[id], *extra)
            else:
                self._append(int(id), int(positions[i]), str(roles[i]), str(texts[i]), *extra,
                             name=str(speakers[i]) if speakers[i] else None)

    def set_embedding(self, id: int, vector: Any) -> None:
        """Give a message its vector once it is computed; unknown ids are ignored."""
        row = self._row.get(id)
        if row is not None:
            self._vectors.put(row, vector)

    def set_scores(self, id: int, importance: float | None = None, emotion: Any = None) -> None:
        row = self._row.get(id)
        if row is not None:
            self._update(row, None, None, importance, emotion)

    def remove(self, ids: Sequence[int]) -> None:
        """Forget messages (superseded or deleted); unknown ids are ignored."""
        for id in ids:
            row = self._row.pop(id, None)
            if row is None or not self._alive[row]:
                continue
            self._alive[row] = False
            self._postings.forget(self._terms(row))
            self._live -= 1
            self._order = None

    def _append(self, id: int, position: int, role: str, text: str, created: Any, vector: Any,
                importance: Any, emotion: Any, name: str | None = None) -> None:
        if self._n == len(self._ids):
            self._grow(2 * self._n)
        row, self._n = self._n, self._n + 1
        self._row[id] = row
        self._roles.append(role)
        self._texts.append(text)
        self._names.append(name)
        self._ids[row], self._positions[row], self._alive[row] = id, position, True
        self._speaker[row] = self._speaker_number(name)
        terms = self._terms(row)
        self._lengths[row] = len(terms)
        self._postings.add(row, terms)
        self._names_seen.update(entities(text), tokenize(name) if name else ())
        self._live += 1
        self._monotonic = self._monotonic and (row == 0 or position >= self._positions[row - 1])
        self._order = None
        self._update(row, created, vector, importance, emotion)

    def _speaker_number(self, name: str | None) -> int:
        terms = tokenize(name) if name else []
        if not terms:
            return -1
        number = self._speakers.setdefault(" ".join(terms), len(self._speakers))
        for term in terms:
            self._speakers.setdefault(term, number)
        return number

    def _update(self, row: int, created: Any, vector: Any, importance: Any, emotion: Any) -> None:
        if created is not None:
            self._created[row] = float(created)
        if vector is not None:
            self._vectors.put(row, vector)
        if importance is not None:
            self._importance[row] = float(importance)
        if emotion is not None:
            self._set_emotion(row, emotion)

    def _set_emotion(self, row: int, emotion: Any) -> None:
        probs = np.asarray(getattr(emotion, "probs", emotion), dtype=np.float32).reshape(-1)
        if self._emotions is None:
            self._emotions = np.zeros((len(self._ids), probs.size), dtype=np.float32)
        if probs.size == self._emotions.shape[1]:
            self._emotions[row] = probs

    def _grow(self, capacity: int) -> None:
        for name in ("_ids", "_positions", "_created", "_importance", "_lengths", "_alive", "_emotions", "_speaker"):
            old = getattr(self, name)
            if old is not None:
                fill = np.nan if name in ("_created", "_importance") else -1 if name == "_speaker" else 0
                setattr(self, name, grown(old, fill, capacity))
        self._vectors.grow_rows(capacity)

    # ------------------------------------------------------------------ reading

    def message(self, id: int) -> IndexedMessage:
        row = self._row[id]
        created = float(self._created[row])
        return IndexedMessage(id=id, position=int(self._positions[row]), role=self._roles[row],
                              text=self._texts[row], created=None if math.isnan(created) else created,
                              name=self._names[row])

    def _terms(self, row: int) -> list[str]:
        """A row's index terms: its words, and its speaker's name."""
        name = self._names[row]
        return tokenize(self._texts[row]) + (tokenize(name) if name else [])

    def role_of(self, id: int) -> str:
        return self._roles[self._row[id]]

    def text_of(self, id: int) -> str:
        return self._texts[self._row[id]]

    def vectors_of(self, id: int) -> np.ndarray | None:
        """The message's vectors (k, dim), or None before it has any."""
        return self._vectors.of(self._row[id])

    def neighbours(self, id: int, radius: int) -> list[int]:
        """Live messages within `radius` places of `id` in conversation order (not itself), oldest first."""
        row = self._row[id]
        if self._monotonic:  # rows are in conversation order: walk outwards, skipping removed ones
            before, after = self._walk(row, -1, radius), self._walk(row, 1, radius)
            return [int(self._ids[r]) for r in (*before[::-1], *after)]
        order = self._sorted()
        where = int(np.flatnonzero(order == row)[0])
        rows = order[max(0, where - radius): where + radius + 1]
        return [int(self._ids[r]) for r in rows if r != row]

    def _walk(self, row: int, step: int, radius: int) -> list[int]:
        found, row = [], row + step
        while 0 <= row < self._n and len(found) < radius:
            if self._alive[row]:
                found.append(row)
            row += step
        return found

    def _sorted(self) -> np.ndarray:
        if self._order is None:
            live = np.flatnonzero(self._alive[: self._n])
            self._order = live[np.argsort(self._positions[live], kind="stable")]
        return self._order

    def vector_count(self) -> int:
        """Vectors held (replaced ones not counted)."""
        return int(self._vectors.live_count())

    def nbytes(self) -> int:
        """An estimate of the RAM this index holds, in bytes."""
        arrays = sum(a.nbytes for a in (self._ids, self._positions, self._created, self._importance,
                                        self._lengths, self._alive)) + self._vectors.nbytes()
        arrays += self._emotions.nbytes if self._emotions is not None else 0
        texts = sum(sys.getsizeof(t) for t in self._texts) + 8 * (len(self._texts) + len(self._roles))
        names = sys.getsizeof(self._names_seen) + sum(sys.getsizeof(t) for t in self._names_seen)
        return arrays + texts + names + self._postings.nbytes() + 120 * len(self._row)

    # ------------------------------------------------------------------ search

    def search(self, query: str | Sequence[tuple[str, float]], query_vec: Any, *,
               exclude_from_position: int | None = None, k: int = 12,
               weights: RetrievalWeights = RetrievalWeights(), emotion: Any = None,
               only: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Hit]:
        """The `k` best messages before `exclude_from_position` (None: all), best first.

        `only`, given the ids of the index's rows, says which of them may be found (a person's
        index searches some of its conversations: app.memory.people).

        `query` is a text (`retrieval.build_query`) or weighted texts; `query_vec` its unit vector
        (None: words only). Candidates are the top `weights.candidates` (at least
        `weights.candidates_per_hit` * k) by cosine and by BM25, plus those sharing a name with
        the best first-pass hits (`weights.bridge`); they are
        fused, re-scored by importance, recency and closeness to `emotion` (a probability
        vector or anything with `.probs`), and near-duplicates of better hits are dropped.
        """
        eligible = self._alive[: self._n].copy()
        if exclude_from_position is not None:
            eligible &= self._positions[: self._n] < exclude_from_position
        if only is not None:
            eligible &= only(self._ids[: self._n])
        if not eligible.any() or k <= 0:
            return []
        if weights.candidates_per_hit * k > weights.candidates:
            weights = dataclasses.replace(weights, candidates=weights.candidates_per_hit * k)
        terms = query_terms(query)
        named = frozenset(self._speakers[t] for t in terms if t in self._speakers)
        dated = self._dated(query) if weights.dated else None
        cosine, dense, per_vector = self._dense(query_vec, eligible, weights.candidates)
        rankings = [(cosine, dense, weights.dense), self._lexical(terms, eligible, weights, weights.lexical)]
        rows, final = self._fused(rankings, weights, emotion, named, dated)
        if weights.bridge > 0 and weights.bridge_from > 0:
            rankings.append(self._bridge(rows, final, terms, eligible, weights))
            rows, final = self._fused(rankings, weights, emotion, named, dated)
        lexical = sum((r[0] for r in rankings[1:]), np.zeros(self._n, dtype=np.float32))
        return self._hits(rows, final, cosine, lexical, terms, k, weights, per_vector)

    def _lexical(self, terms: dict[str, float], eligible: np.ndarray, weights: RetrievalWeights,
                 weight: float) -> tuple[np.ndarray, np.ndarray, float]:
        """(BM25 per message, the top rows by it, the ranking's weight in the fusion)."""
        n = self._n
        if not terms or weight <= 0:
            return np.zeros(n, dtype=np.float32), np.zeros(0, dtype=np.int64), weight
        bm25 = self._postings.scores(terms, self._lengths[:n], weights.bm25_k1, weights.bm25_b)
        order = _top(np.where(eligible & (bm25 > 0), bm25, -np.inf), weights.candidates)
        if weights.lexical_confidence > 0 and len(order):
            coverage = float(bm25[order[0]]) / max(self._postings.ideal(terms), 1e-9)
            weight *= min(1.0, coverage) ** weights.lexical_confidence
        return bm25, order, weight

    def _bridge(self, rows: np.ndarray, final: np.ndarray, asked: dict[str, float], eligible: np.ndarray,
                weights: RetrievalWeights) -> tuple[np.ndarray, np.ndarray, float]:
        """A lexical ranking by the names in the best first-pass hits that the query did not use.

        Speakers' names and names said in more than `weights.bridge_max_df` turns are left out:
        a name that runs through the whole conversation leads nowhere in particular.
        """
        best = rows[np.argsort(-final, kind="stable")][: weights.bridge_from]
        df = self._postings.df
        names = {t: 1.0 for r in best for t in entities(self._texts[r], self._names_seen)
                 if t not in asked and t not in self._speakers and df.get(t, 0) <= weights.bridge_max_df}
        return self._lexical(names, eligible, weights, weights.bridge)

    def _fused(self, rankings: list[tuple[np.ndarray, np.ndarray, float]], weights: RetrievalWeights,
               emotion: Any, named: frozenset[int] = frozenset(),
               dated: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The candidates (every row some ranking found) and their final scores."""
        rows = np.unique(np.concatenate([order for _, order, _ in rankings]))
        place = np.full(self._n, -1, dtype=np.int64)
        place[rows] = np.arange(len(rows))
        relevance = fuse([scores[rows] for scores, _, _ in rankings], [place[order] for _, order, _ in rankings],
                         [w for _, _, w in rankings], mode=weights.fusion, rrf_k=weights.rrf_k,
                         full=[weights.dense_full])  # the first ranking is by meaning (`search`)
        if weights.assistant != 1.0:
            relevance = relevance * np.where(self._is_assistant(rows), weights.assistant, 1.0)
        ages = self._positions[: self._n][self._alive[: self._n]].max() - self._positions[rows]
        prior = np.zeros(len(rows))
        if weights.specificity:
            prior = minmax(self._postings.specificity(rows))
        final = rescore(relevance, self._importance[rows].astype(np.float64),
                        recency(ages, weights.recency_half_life), self._closeness(rows, emotion), weights, prior)
        if weights.speaker and named:
            final = final + weights.speaker * np.isin(self._speaker[rows], list(named))
        keep = _relevant(rows, rankings, weights.min_cosine)  # priors rank what is relevant, never make it so
        if dated is not None:
            final = final + weights.dated * dated[rows]
            keep |= dated[rows]  # a question that names a day asks for what was said then
        return rows[keep], final[keep]

    def _dated(self, query: Any) -> np.ndarray | None:
        """Per row, whether it was said within a date the query names (`when.asked_spans`)."""
        created = self._created[: self._n]
        known = created[np.isfinite(created)]
        if not isinstance(query, str) or not known.size:
            return None
        years = range(datetime.fromtimestamp(known.min()).year, datetime.fromtimestamp(known.max()).year + 1)
        spans = asked_spans(query, years)
        if not spans:
            return None
        inside = np.zeros(self._n, dtype=bool)
        for start, end in spans:
            inside |= (created >= start) & (created < end)
        return inside

    def _is_assistant(self, rows: np.ndarray) -> np.ndarray:
        return np.array([self._roles[r] == "assistant" for r in rows], dtype=bool)

    def _dense(self, query_vec: Any, eligible: np.ndarray,
               depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Each message's cosine (the best of its vectors; 0 without one), the top rows by it, and
        every vector's cosine (None without a query vector)."""
        n = self._n
        if query_vec is None or self._vectors.count == 0:
            return np.zeros(n, dtype=np.float32), np.zeros(0, dtype=np.int64), None
        cosine, per_vector = self._vectors.cosines(query_vec, n)
        return cosine, _top(np.where(eligible & self._vectors.has[:n], cosine, -np.inf), depth), per_vector

    def _closeness(self, rows: np.ndarray, emotion: Any) -> np.ndarray:
        if emotion is None or self._emotions is None:
            return np.zeros(len(rows))
        current = np.asarray(getattr(emotion, "probs", emotion), dtype=np.float32).reshape(-1)
        if current.size != self._emotions.shape[1]:
            return np.zeros(len(rows))
        return emotion_closeness(self._emotions[rows], current)

    def _hits(self, rows: np.ndarray, final: np.ndarray, cosine: np.ndarray, bm25: np.ndarray,
              terms: dict[str, float], k: int, weights: RetrievalWeights, per_vector: np.ndarray | None) -> list[Hit]:
        order = np.argsort(-final, kind="stable")[: 2 * k + 4]
        ranked = rows[order]
        keep = distinct(self._vectors.means(ranked), [self._texts[r] for r in ranked], weights.duplicate_cosine, k)
        asked = {self._postings.term_ids[t] for t in terms if t in self._postings.term_ids}
        return [Hit(id=int(self._ids[r]), position=int(self._positions[r]), score=float(final[i]),
                    cosine=float(cosine[r]), bm25=float(bm25[r]), reasons=self._reasons(r, cosine, bm25, asked),
                    piece=self._vectors.best_piece(r, per_vector))
                for i, r in zip(order[keep], ranked[keep])]

    def _reasons(self, row: int, cosine: np.ndarray, bm25: np.ndarray, asked: set[int]) -> tuple[str, ...]:
        reasons = []
        if self._vectors.has[row]:
            reasons.append(f"meaning {float(cosine[row]):.2f}")
        shared = sorted(self._postings.names[t] for t in asked.intersection(self._postings.terms_of(row)))
        if shared:
            reasons.append("words: " + ", ".join(shared[:5]))
        elif bm25[row] > 0:
            reasons.append("names from a related memory")
        if not math.isnan(self._importance[row]) and self._importance[row] >= 0.7:
            reasons.append("important")
        return tuple(reasons)


def _relevant(rows: np.ndarray, rankings: list[tuple[np.ndarray, np.ndarray, float]], min_cosine: float) -> np.ndarray:
    """Candidates that share a word with the query (or a bridged name), or whose meaning is at least
    `min_cosine` from it; the first ranking is by meaning (`SessionIndex.search`)."""
    keep = rankings[0][0][rows] >= min_cosine
    for scores, _, _ in rankings[1:]:
        keep |= scores[rows] > 0
    return keep


def _column(values: Any, n: int) -> list[Any]:
    """A per-message column: None for all, or a sequence of n values (each may be None)."""
    if values is None:
        return [None] * n
    if isinstance(values, np.ndarray) and values.ndim == 2 and values.shape[0] == n:
        return list(values)
    values = list(values)
    if len(values) != n:
        raise ValueError(f"expected {n} values per column, got {len(values)}")
    return values


def _top(scores: np.ndarray, depth: int) -> np.ndarray:
    """Rows of the `depth` highest finite scores, best first."""
    finite = np.flatnonzero(np.isfinite(scores))
    if finite.size > depth:
        finite = finite[np.argpartition(-scores[finite], depth - 1)[:depth]]
    return finite[np.argsort(-scores[finite], kind="stable")]
