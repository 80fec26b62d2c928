"""Ranking for recall: pure functions from scores to the memories a request is shown.

The index (`app.memory.index`) produces two rankings of past messages for one query, by meaning
(cosine of embeddings) and by words (BM25). Here they are fused, re-scored by importance, recency
and emotional closeness, and turned into passages that read as exchanges:

    weights = RetrievalWeights()
    query = build_query(turns)                         # the newest user turn, with context if short
    hits = index.search(query, embed(query), exclude_from_position=boundary, k=12, weights=weights)
    for p in passages(index, hits):                    # each hit with its partner turn, merged
        print(p.when, p.lines)

Why fusion: embeddings find paraphrases ("my sibling" for "my sister") but blur names, numbers
and rare words, which is where BM25 is sharp; each rescues the other's misses. Reciprocal rank
fusion needs no score calibration, which matters because cosine and BM25 live on different
scales that drift with the conversation. Every function here is pure and table-tested.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np

_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+")
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being below
between both but by can could did do does doing don't down during each few for from further had has have having
he her here hers herself him himself his how i if in into is isn't it its itself just me more most my myself no
nor not now of off on once only or other our ours ourselves out over own same she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves yeah yes oh ok okay
im ive id ill youre youve dont didnt doesnt isnt wasnt cant wont thats s t d ll m re ve
really just like well got get gets getting go going went one thing things lol haha
""".split())
# Words that ask or remind rather than say what about: dropped from queries (not from messages).
QUERY_FILLER = frozenset("""
remember remind reminded recall recalled tell told telling say said saying mention mentioned know knew forget forgot
forgotten again ago once back then thing things stuff question questions answer quick random sorry hey hi hello hmm
um uh please thanks thank wait actually anyway memory mind think thought wonder wondering ask asked talk talked
""".split())


# ---------------------------------------------------------------------- words


def stem(word: str) -> str:
    """A light English stemmer: plural and common verb endings, nothing clever.

        >>> [stem(w) for w in ["sisters", "cities", "named", "hiking", "boss", "glass"]]
        ['sister', 'city', 'nam', 'hik', 'boss', 'glass']

    Aggressive stemmers merge words that should stay apart ("news"/"new"); this one only folds
    the endings that separate a question from the statement it asks about.
    """
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4:
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased unicode words and numbers, stop words dropped, lightly stemmed.

        >>> tokenize("What's my sister's name? She turned 31 in Lisbon!")
        ['sister', 'name', 'turn', '31', 'lisbon']
    """
    words = (w.replace("_", "") for w in _WORD.findall(text.lower()))
    return [stem(w) for w in words if w and w not in STOP_WORDS]


def pieces(text: str, *, max_pieces: int = 12, min_words: int = 4) -> list[str]:
    """The texts to embed for one message: the whole text, then its sentences when there are several.

        >>> pieces("Rainy again. I grew up in Porto, so I don't mind it. Ok!")
        ['Rainy again. I grew up in Porto, so I don't mind it. Ok!', 'Rainy again. I grew up in Porto, so I don't mind it.', 'Ok!']

    One vector for a long message is an average of everything in it, and a fact in one of its
    sentences drowns; the index scores a message by its best vector. Sentences shorter than
    `min_words` words join the next one; past `max_pieces` sentences are grouped evenly.
    """
    merged: list[str] = []
    for sentence in (s.strip() for s in _SENTENCE.split(text) if s.strip()):
        if merged and len(merged[-1].split()) < min_words:
            merged[-1] = f"{merged[-1]} {sentence}"
        else:
            merged.append(sentence)
    if len(merged) <= 1:
        return [text]
    if len(merged) > max_pieces:
        size = -(-len(merged) // max_pieces)
        merged = [" ".join(merged[i:i + size]) for i in range(0, len(merged), size)]
    return [text, *merged]


# ---------------------------------------------------------------------- weights and fusion


@dataclass(frozen=True)
class RetrievalWeights:
    """How relevance is computed and re-scored; every weight is a parameter, none hidden.

    `dense`/`lexical` weigh the two rankings in the fusion (`fusion`: "rrf" reciprocal rank
    fusion with constant `rrf_k`, or "sum" of min-max normalised scores). Relevance is then
    scaled to 0..1 and `importance`, `recency` (half-life `recency_half_life` messages) and
    `emotion` (closeness of the emotion distributions) are added with their weights.
    `candidates` is how deep each ranking is read before fusion.
    """

    dense: float = 1.0
    lexical: float = 1.0
    fusion: Literal["rrf", "sum"] = "rrf"
    rrf_k: float = 60.0
    candidates: int = 64
    importance: float = 0.15
    recency: float = 0.10
    recency_half_life: float = 500.0
    emotion: float = 0.05
    duplicate_cosine: float = 0.97


def rrf(ranked: Sequence[np.ndarray], weights: Sequence[float], n: int, k: float = 60.0) -> np.ndarray:
    """Reciprocal rank fusion over `n` candidates: sum of weight / (k + rank), rank from 1.

    Each array in `ranked` lists candidate indices best first; a candidate absent from a
    ranking gets nothing from it.

        >>> rrf([np.array([0, 1]), np.array([1])], [1.0, 1.0], n=3, k=1).round(3).tolist()
        [0.5, 0.833, 0.0]
    """
    out = np.zeros(n, dtype=np.float64)
    for order, weight in zip(ranked, weights):
        out[order] += weight / (k + np.arange(1, len(order) + 1))
    return out


def minmax(scores: np.ndarray) -> np.ndarray:
    """Scores scaled to 0..1 (all equal: all zero)."""
    if scores.size == 0:
        return scores.astype(np.float64)
    low, high = float(scores.min()), float(scores.max())
    if high - low < 1e-12:
        return np.zeros(scores.shape, dtype=np.float64)
    return (scores - low) / (high - low)


def fuse(cosine: np.ndarray, bm25: np.ndarray, dense_order: np.ndarray, lexical_order: np.ndarray,
         weights: RetrievalWeights) -> np.ndarray:
    """Relevance of each candidate in 0..1 (best = 1) from its cosine and BM25 scores.

    `dense_order`/`lexical_order` are candidate indices ranked by each score (only candidates
    the ranking actually found: no embedding, or no shared word, means absent).
    """
    if weights.fusion == "rrf":
        fused = rrf([dense_order, lexical_order], [weights.dense, weights.lexical], len(cosine), weights.rrf_k)
    else:
        fused = weights.dense * minmax(np.clip(cosine, 0.0, None)) + weights.lexical * minmax(bm25)
    top = float(fused.max()) if fused.size else 0.0
    return fused / top if top > 0 else fused


def recency(ages: np.ndarray, half_life: float) -> np.ndarray:
    """1 for the newest message, halving every `half_life` messages of age (0 disables: all 0).

        >>> recency(np.array([0, 10, 20]), 10).tolist()
        [1.0, 0.5, 0.25]
    """
    if half_life <= 0:
        return np.zeros(len(ages))
    return np.power(0.5, np.maximum(ages, 0) / half_life)


def emotion_closeness(probs: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficient of each row's emotion distribution with the current one, 0..1.

        >>> emotion_closeness(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 0.0])).tolist()
        [1.0, 0.0]
    """
    return np.sqrt(np.clip(probs, 0, None) * np.clip(current, 0, None)).sum(axis=1)


def rescore(relevance: np.ndarray, importance: np.ndarray, fresh: np.ndarray, closeness: np.ndarray,
            weights: RetrievalWeights) -> np.ndarray:
    """Final score: relevance plus weighted importance, recency and emotional closeness.

    Unknown importance (NaN) counts as neutral 0.5; closeness rows for messages without an
    emotion are expected as 0.
    """
    known = np.where(np.isnan(importance), 0.5, importance)
    return relevance + weights.importance * known + weights.recency * fresh + weights.emotion * closeness


# ---------------------------------------------------------------------- queries


def query_parts(turns: Sequence[Mapping[str, Any]], *, max_turns: int = 3, decay: float = 0.5,
                min_terms: int = 2) -> list[tuple[str, float]]:
    """What to search with: the newest user turn, and the turns before it when it says too little.

        >>> query_parts([{"role": "user", "content": "I was thinking about my sister."},
        ...              {"role": "assistant", "content": "Oh? What about her?"},
        ...              {"role": "user", "content": "What was her name again?"}], max_turns=2)
        [('Oh? What about her?', 0.5), ('What was her name again?', 1.0)]

    "What was her name again?" has one specific word (`query_terms` drops filler like "again",
    "remind", "told"); with fewer than `min_terms` the turns before it say whose name, and join
    with weights `decay`, `decay`², ... (oldest first). A specific question stands alone: the
    turns before it are usually about something else. System and tool messages never take part.
    """
    spoken = [(t.get("role"), _text(t)) for t in turns if t.get("role") in ("user", "assistant") and _text(t).strip()]
    last_user = max((i for i, (role, _) in enumerate(spoken) if role == "user"), default=None)
    if last_user is None:
        return []
    span = 1 if len(query_terms(spoken[last_user][1])) >= min_terms else max_turns
    chosen = spoken[max(0, last_user - span + 1): last_user + 1]
    return [(text, decay ** (len(chosen) - 1 - i)) for i, (_, text) in enumerate(chosen)]


def build_query(turns: Sequence[Mapping[str, Any]], *, max_turns: int = 3) -> str:
    """The query parts as one text, for callers that embed a single string."""
    return "\n".join(text for text, _ in query_parts(turns, max_turns=max_turns))


def query_terms(parts: str | Sequence[tuple[str, float]]) -> dict[str, float]:
    """Each specific query word with its weight: the heaviest part it occurs in.

        >>> query_terms([("my sister", 0.5), ("remind me, her name?", 1.0)])
        {'sister': 0.5, 'name': 1.0}
    """
    if isinstance(parts, str):
        parts = [(parts, 1.0)]
    terms: dict[str, float] = {}
    for text, weight in parts:
        for term in tokenize(text):
            if term not in _QUERY_FILLER_STEMS:
                terms[term] = max(weight, terms.get(term, 0.0))
    return terms


_QUERY_FILLER_STEMS = frozenset(stem(w) for w in QUERY_FILLER)


def mix(vectors: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """The weighted sum of unit vectors, as a unit vector (the query vector of several turns).

        >>> mix(np.array([[0.0, 1.0], [1.0, 0.0]]), [0.0, 1.0]).tolist()
        [1.0, 0.0]
    """
    mixed = (np.asarray(vectors, dtype=np.float64) * np.asarray(weights, dtype=np.float64)[:, None]).sum(axis=0)
    norm = float(np.linalg.norm(mixed))
    return (mixed / norm).astype(np.float32) if norm > 0 else mixed.astype(np.float32)


def _text(turn: Mapping[str, Any]) -> str:
    content = turn.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return content if isinstance(content, str) else ""


# ---------------------------------------------------------------------- passages


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


def distinct(vectors: np.ndarray | None, texts: Sequence[str], threshold: float) -> list[int]:
    """Indices to keep, best first: a text equal to a kept one, or a vector closer than `threshold`, goes.

        >>> distinct(None, ["Hi there", "hi  there!", "bye"], 0.9)
        [0, 2]
    """
    kept: list[int] = []
    seen: set[str] = set()
    for i, text in enumerate(texts):
        key = " ".join(_WORD.findall(text.lower()))
        if key in seen:
            continue
        if vectors is not None and kept and float(np.max(vectors[kept] @ vectors[i])) > threshold:
            continue
        seen.add(key)
        kept.append(i)
    return kept


def partner(source: MessageSource, id: int) -> int | None:
    """The other half of an exchange: a user turn's reply, or the user turn an assistant turn answers."""
    role = source.message(id).role
    after = role == "user"
    for other in source.neighbours(id, 1):
        msg = source.message(other)
        if (msg.position > source.message(id).position) == after and msg.role != role:
            return other
    return None


def passages(source: MessageSource, hits: Sequence[Any], *, pair: bool = True,
             neighbour_chars: int = 600) -> list[Passage]:
    """Hits grown into exchanges and merged where they touch, in the order of their best hit.

    A retrieved user turn brings its reply and a retrieved assistant turn the user turn it
    answers (`pair`), so a recollection reads as "User: ... / Assistant: ...". A pulled-in turn
    longer than `neighbour_chars` is clipped; retrieved turns are never cut.
    """
    groups = _runs(source, _members(source, hits, pair))
    best = {h.id: h for h in hits}
    out = [_passage(source, run, best, neighbour_chars) for run in groups]
    return sorted(out, key=lambda p: -p.score)


def _members(source: MessageSource, hits: Sequence[Any], pair: bool) -> dict[int, int]:
    """Every message to show, id -> position."""
    members: dict[int, int] = {}
    for hit in hits:
        members[hit.id] = source.message(hit.id).position
        other = partner(source, hit.id) if pair else None
        if other is not None:
            members.setdefault(other, source.message(other).position)
    return members


def _runs(source: MessageSource, members: dict[int, int]) -> list[list[int]]:
    """Members cut into runs of messages that follow each other in the conversation."""
    runs: list[list[int]] = []
    for id in sorted(members, key=lambda i: (members[i], i)):
        if runs and id in source.neighbours(runs[-1][-1], 1) and members[id] > members[runs[-1][-1]]:
            runs[-1].append(id)
        else:
            runs.append([id])
    return runs


def _passage(source: MessageSource, run: list[int], best: Mapping[int, Any], neighbour_chars: int) -> Passage:
    msgs = [source.message(i) for i in run]
    hits = [best[i] for i in run if i in best]
    lines = tuple((m.role, m.text if m.id in best else clip(m.text, neighbour_chars)) for m in msgs)
    reasons = tuple(dict.fromkeys(r for h in hits for r in h.reasons))
    return Passage(ids=tuple(run), lines=lines, score=max(h.score for h in hits), reasons=reasons,
                   position=msgs[0].position, when=when_label(msgs[0].created), hit_ids=tuple(h.id for h in hits))


def clip(text: str, max_chars: int) -> str:
    """`text` cut at a word boundary to at most `max_chars` characters, with an ellipsis.

        >>> clip("one two three four", 10)
        'one two…'
    """
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1].rsplit(" ", 1)[0] if " " in text[: max_chars - 1] else text[: max_chars - 1]
    return cut.rstrip() + "…"


def when_label(created: float | None) -> str | None:
    """A timestamp as the model should read it: weekday, date and time (local time).

    The date matters: "when did I tell you about the move?" can only be answered from it.
    """
    if created is None or not math.isfinite(created) or created <= 0:
        return None
    return datetime.fromtimestamp(created).strftime("%a %Y-%m-%d %H:%M")


# ---------------------------------------------------------------------- persona chunks


def chunk_text(text: str, max_tokens: int, overlap: int = 0,
               count: Callable[[str], int] | None = None) -> list[str]:
    """Text cut into pieces of at most `max_tokens`, on sentence (else word) boundaries.

        >>> chunk_text("One. Two. Three.", max_tokens=2, overlap=1, count=lambda s: len(s.split()))
        ['One. Two.', 'Two. Three.']

    Each piece starts with the last sentences of the one before, up to `overlap` tokens, so a
    fact that straddles a cut is whole in at least one piece. A piece is never empty.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    count = count or _count_tokens
    units = [u for s in _SENTENCE.split(text) if s.strip() for u in _fit_units(s.strip(), max_tokens, count)]
    chunks: list[list[str]] = []
    current: list[str] = []
    for unit in units:
        if current and count(" ".join([*current, unit])) > max_tokens:
            chunks.append(current)
            current = _tail(current, min(overlap, max_tokens - count(unit)), count)
        current.append(unit)
    if current and (not chunks or current != chunks[-1][-len(current):]):
        chunks.append(current)
    return [" ".join(c) for c in chunks]


def _fit_units(sentence: str, max_tokens: int, count: Callable[[str], int]) -> Iterable[str]:
    """A sentence, or word windows of it when it alone is over the limit."""
    if count(sentence) <= max_tokens:
        yield sentence
        return
    piece: list[str] = []
    for word in sentence.split():
        if piece and count(" ".join([*piece, word])) > max_tokens:
            yield " ".join(piece)
            piece = []
        piece.append(word)
    if piece:
        yield " ".join(piece)


def _tail(units: list[str], budget: int, count: Callable[[str], int]) -> list[str]:
    """The last units of a chunk that fit in `budget` tokens (the overlap)."""
    tail: list[str] = []
    for unit in reversed(units):
        if budget <= 0 or count(" ".join([unit, *tail])) > budget:
            break
        tail.insert(0, unit)
    return tail


def _count_tokens(text: str) -> int:
    from app.tokens import count_tokens  # the shared offline encoding, loaded on first use

    return count_tokens(text)
