"""The in-RAM search over every indexed chunk: one matrix, one product per query, scope applied.

    index = DocumentIndex(dim=384)
    index.put(doc, chunks)                       # a document's chunks (replacing any it had)
    hits = index.search(vector, owner="t-1", session_id="story", k=4, min_score=0.35)
    index.remove(doc.id)

Visibility (`visible`) is the one rule for what a conversation may see: a document of its owner
or of everyone, for every conversation or for this one. A tenant's documents never reach
another tenant. The matrix of all chunk vectors is rebuilt after a change, on the next search;
a search is then a matrix-vector product and a partial sort (10,000 chunks: well under a
millisecond, measured in bench/docs_bench.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.documents.store import Document, StoredChunk


def visible(doc_owner: str | None, doc_session: str | None, owner: str | None, session_id: str | None) -> bool:
    """Whether a conversation (owner, session id) may read a document (its owner, its session).

        >>> visible(None, None, "t-1", "a"), visible("t-1", None, "t-1", "a"), visible("t-2", None, "t-1", "a")
        (True, True, False)
        >>> visible("t-1", "a", "t-1", "a"), visible("t-1", "a", "t-1", "b")
        (True, False)
    """
    return (doc_owner is None or doc_owner == owner) and (doc_session is None or doc_session == session_id)


@dataclass(frozen=True, slots=True)
class Hit:
    score: float
    document: Document
    chunk: StoredChunk


@dataclass(slots=True)
class _Entry:
    document: Document
    chunks: list[StoredChunk]
    vectors: np.ndarray


class DocumentIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._entries: dict[str, _Entry] = {}
        self._matrix: np.ndarray | None = None
        self._row_entry = np.zeros(0, dtype=np.int32)
        self._order: list[_Entry] = []

    def __len__(self) -> int:
        return sum(len(e.chunks) for e in self._entries.values())

    def put(self, document: Document, chunks: list[StoredChunk]) -> None:
        vectors = np.stack([c.embedding for c in chunks]).astype(np.float32) if chunks else \
            np.zeros((0, self.dim), dtype=np.float32)
        self._entries[document.id] = _Entry(document, list(chunks), vectors)
        self._matrix = None

    def ids(self) -> list[str]:
        return list(self._entries)

    def remove(self, doc_id: str) -> None:
        if self._entries.pop(doc_id, None) is not None:
            self._matrix = None

    def search(self, vector: np.ndarray, *, owner: str | None, session_id: str | None, k: int,
               min_score: float = -1.0, any_session: bool = False) -> list[Hit]:
        """The `k` best chunks the conversation may see, best first, scoring at least `min_score`
        (cosine: vectors are unit length). `any_session`: documents of all the owner's sessions."""
        if k <= 0 or not self._entries:
            return []
        matrix = self._rebuild() if self._matrix is None else self._matrix
        allowed = np.array([visible(e.document.owner, None if any_session else e.document.session_id, owner,
                                    session_id) for e in self._order], dtype=bool)
        if not allowed.any():
            return []
        # einsum, not `@`: OpenBLAS spreads a product this size over every core, which on a busy
        # machine costs 5x more than one core's SIMD loop (bench/README.md, documents)
        scores = np.einsum("ij,j->i", matrix, np.asarray(vector, dtype=np.float32))
        scores[~allowed[self._row_entry]] = -np.inf
        top = _top(scores, k)
        return [self._hit(int(row), float(scores[row])) for row in top if scores[row] >= min_score]

    def _rebuild(self) -> np.ndarray:
        self._order = [e for e in self._entries.values() if len(e.chunks)]
        blocks = [e.vectors for e in self._order] or [np.zeros((0, self.dim), dtype=np.float32)]
        self._matrix = np.ascontiguousarray(np.concatenate(blocks))
        self._row_entry = np.repeat(np.arange(len(self._order), dtype=np.int32), [len(e.chunks) for e in self._order])
        self._starts = np.cumsum([0] + [len(e.chunks) for e in self._order])
        return self._matrix

    def _hit(self, row: int, score: float) -> Hit:
        entry = self._order[self._row_entry[row]]
        return Hit(score, entry.document, entry.chunks[row - self._starts[self._row_entry[row]]])


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the `k` highest scores, highest first."""
    if len(scores) <= k:
        return np.argsort(-scores)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]
