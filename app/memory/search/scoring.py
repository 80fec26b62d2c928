"""Scoring for recall: pure functions from a query's rankings to each candidate's final score.

`SessionIndex.search` ranks past messages by meaning and by words; `fuse` turns those rankings
into one relevance in 0..1 (a weighted sum of min-max scaled scores, or reciprocal rank fusion),
and `rescore` adds importance, `recency` and `emotion_closeness` with the weights of
`RetrievalWeights`. Every function here is pure and table-tested.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

@dataclass(frozen=True)
class RetrievalWeights:
    """How relevance is computed and re-scored; every weight is a parameter, none hidden.

    `dense`/`lexical` weigh the two rankings in the fusion (`fusion`: "sum" of min-max
    normalised scores, a convex combination, or "rrf" reciprocal rank fusion with constant
    `rrf_k`). Sum keeps how far apart scores are, which rank fusion throws away: on five
    tuning conversations of 1,000 turns it found 0.785 / 0.891 at 1k / 2k tokens against
    0.743 / 0.880 for RRF, and never less at 200 or 5,000 turns. Words weigh 0.6 of meaning: in
    long turns an everyday word the question shares ("play" in "what instrument do I play?",
    "played board games") turns up in many that mean nothing to it; against an even 1.0, on
    role-play-long turns 0.697 / 0.792 / 0.838 -> 0.711 / 0.817 / 0.852 at 1k / 2k /
    4k, short turns 0.803 -> 0.810 at 1k and the same at 2k and 4k. The meaning ranking's best
    counts in full only from a cosine of `dense_full` on: to MiniLM a best match under 0.4 is
    weak evidence, and a question that is mostly a name ("Bram?") would otherwise go to whichever
    turn the name's vector happens to be nearest (recall the same within one question on short,
    long, 200- and 5,000-turn tuning conversations). The lexical weight
    shrinks with `lexical_confidence` when its best match covers little of the query's word
    weight (coverage ** lexical_confidence; 0 turns this off). `bridge` weighs one
    more lexical ranking, by the names in the `bridge_from` best first-pass hits (`entities`),
    which finds the second fact of a two-step question; a name said in more than
    `bridge_max_df` turns, or a speaker's name, is not followed (in a long chat between two
    people it leads to half the conversation). `assistant` scales the relevance of
    assistant turns. Relevance is then scaled to 0..1 and `importance`, `recency` (half-life
    `recency_half_life` messages), `emotion` (closeness of the emotion distributions) and
    `specificity` (how rare the candidate's rarest words are in the conversation, scaled 0..1
    among the candidates) are added with their weights. `candidates` is how deep each ranking
    is read before fusion, at least `candidates_per_hit` per hit asked for (0: off), so a
    large budget reads deeper: with 8, 4k-token recall on 5,000-turn tuning conversations
    went from 0.80 to 0.89, for about 0.3 ms more at 10k messages; `bm25_k1`/`bm25_b` are BM25's usual constants; hits
    closer than `duplicate_cosine` to a better one are dropped. Two priors hold on real chat
    (LoCoMo, bench/README.md): `speaker` is added to the turns of a speaker the question names
    ("When did Melanie run a charity race?"), `dated` to the turns said within a date it names
    ("on May 3, 2023", `app.memory.search.when`). A candidate that shares no word with the query
    and whose meaning is under `min_cosine` from it is not a hit whatever its priors: a rare,
    important sentence that has nothing to do with the question must not fill a large budget's
    room (to MiniLM, unrelated sentences sit at about 0 to 0.1).
    """

    dense: float = 1.0
    dense_full: float = 0.4
    lexical: float = 0.6
    lexical_confidence: float = 0.5
    bridge: float = 1.0
    bridge_from: int = 3
    bridge_max_df: int = 32
    assistant: float = 1.0
    fusion: Literal["rrf", "sum"] = "sum"
    rrf_k: float = 10.0
    candidates: int = 64
    candidates_per_hit: int = 8
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    importance: float = 0.15
    recency: float = 0.10
    recency_half_life: float = 500.0
    emotion: float = 0.05
    specificity: float = 0.8
    speaker: float = 0.4
    dated: float = 0.3
    duplicate_cosine: float = 0.97
    min_cosine: float = 0.1


def rrf(ranked: Sequence[np.ndarray], weights: Sequence[float], n: int, k: float = 10.0) -> np.ndarray:
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


def minmax(scores: np.ndarray, full: float = 0.0) -> np.ndarray:
    """Scores scaled to 0..1 (all equal: all zero); the best reaches 1 only if it is at least `full`.

        >>> minmax(np.array([0.1, 0.2, 0.3])).round(2).tolist(), minmax(np.array([0.1, 0.2, 0.3]), 0.5).round(2).tolist()
        ([0.0, 0.5, 1.0], [0.0, 0.25, 0.5])
    """
    if scores.size == 0:
        return scores.astype(np.float64)
    low, high = float(scores.min()), max(float(scores.max()), full)
    if high - low < 1e-12:
        return np.zeros(scores.shape, dtype=np.float64)
    return (scores - low) / (high - low)


def fuse(scores: Sequence[np.ndarray], orders: Sequence[np.ndarray], weights: Sequence[float], *,
         mode: str = "rrf", rrf_k: float = 10.0, full: Sequence[float] = ()) -> np.ndarray:
    """Relevance of each candidate in 0..1 (best = 1) from several rankings of the same candidates.

    `scores[i]` is ranking i's raw score per candidate and `orders[i]` the candidates it found,
    best first (no embedding or no shared word means absent). "rrf" fuses the orders; "sum"
    adds the min-max normalised scores, ranking i's best counting in full only from `full[i]` on
    (`minmax`; missing: always).

        >>> fuse([np.array([0.9, 0.1]), np.array([0.0, 3.0])], [np.array([0, 1]), np.array([1])],
        ...      [1.0, 1.0], rrf_k=1).round(3).tolist()
        [0.6, 1.0]
    """
    n = len(scores[0]) if len(scores) else 0
    if mode == "rrf":
        fused = rrf(orders, weights, n, rrf_k)
    else:
        fused = sum((w * minmax(np.clip(s, 0.0, None), full[i] if i < len(full) else 0.0)
                     for i, (s, w) in enumerate(zip(scores, weights))), np.zeros(n))
    top = float(fused.max()) if n else 0.0
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
            weights: RetrievalWeights, specificity: np.ndarray | None = None) -> np.ndarray:
    """Final score: relevance plus weighted importance, recency, emotional closeness and specificity.

    Unknown importance (NaN) counts as neutral 0.5; closeness rows for messages without an
    emotion are expected as 0; `specificity` (0..1 among the candidates, see
    `SessionIndex`) is left out when None.
    """
    known = np.where(np.isnan(importance), 0.5, importance)
    score = relevance + weights.importance * known + weights.recency * fresh + weights.emotion * closeness
    return score if specificity is None else score + weights.specificity * specificity
