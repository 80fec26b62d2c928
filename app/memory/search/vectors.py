"""Each message's embedding vectors, stored for one matrix-vector product per search.

A message has one vector (the whole text) or one per statement (`retrieval.pieces`), and it
scores as its best piece. All vectors sit in one float32 matrix, each message's as one
contiguous block, so a search is a single product followed by one `maximum.reduceat` over the
blocks:

    vectors = PieceVectors(dim=384)
    vectors.put(0, np.stack([v1, v2]))              # row 0 has two pieces
    cosine, per_vector = vectors.cosines(query_vec, rows=1)
    vectors.best_piece(0, per_vector)               # 0 or 1: which piece matched

A message whose vectors are replaced (re-embedded) gets a new block at the end; its old block
is masked, not compacted. The matrix and the per-row columns grow by doubling.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np


class PieceVectors:
    """Vectors of rows 0..n-1 (the `SessionIndex`'s rows), any number per row."""

    def __init__(self, dim: int, capacity: int) -> None:
        self.dim = dim
        self.matrix = np.zeros((capacity, dim), dtype=np.float32)  # one or more per row
        self._owner = np.full(capacity, -1, dtype=np.int64)  # the row each vector belongs to (-1: replaced)
        self.count = 0  # vectors stored, replaced ones included
        self.has = np.zeros(capacity, dtype=bool)  # per row: whether it has vectors yet
        self._first = np.full(capacity, -1, dtype=np.int64)  # per row: its first vector and how many
        self._pieces = np.zeros(capacity, dtype=np.int64)
        self._blocks = array("q")  # rows with vectors, in the order of their vector blocks
        self._blocks_stale = False  # a row's vectors were replaced: rebuild that order

    def grow_rows(self, capacity: int) -> None:
        self.has = grown(self.has, False, capacity)
        self._first = grown(self._first, -1, capacity)
        self._pieces = grown(self._pieces, 0, capacity)

    def put(self, row: int, vector: Any) -> None:
        """A row's vectors: one (dim,), or several (k, dim) for its pieces; replaces earlier ones."""
        vecs = np.asarray(vector, dtype=np.float32)
        vecs = vecs.reshape(1, -1) if vecs.ndim == 1 else vecs
        if vecs.ndim != 2 or vecs.shape[1] != self.dim or len(vecs) == 0:
            raise ValueError(f"embedding of shape {vecs.shape}, the index holds vectors of {self.dim}")
        if self.has[row]:
            self._owner[self._first[row]: self._first[row] + self._pieces[row]] = -1
            self._blocks_stale = True
        else:
            self._blocks.append(row)  # a new block starts after every other: the order holds
        while self.count + len(vecs) > len(self.matrix):
            self.matrix, self._owner = grown(self.matrix, 0.0), grown(self._owner, -1)
        self.matrix[self.count: self.count + len(vecs)] = vecs
        self._owner[self.count: self.count + len(vecs)] = row
        self._first[row], self._pieces[row] = self.count, len(vecs)
        self.count += len(vecs)
        self.has[row] = True

    def of(self, row: int) -> np.ndarray | None:
        """A copy of the row's vectors (k, dim), or None before it has any."""
        first = self._first[row]
        return self.matrix[first: first + self._pieces[row]].copy() if self.has[row] else None

    def cosines(self, query_vec: Any, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Each of the first `rows` rows' best cosine (0 without vectors), and every vector's
        cosine (replaced vectors -inf). Several query vectors: each vector's best over them."""
        nv = self.count
        queries = np.asarray(query_vec, dtype=np.float32).reshape(-1, self.dim)
        per_vector = self.matrix[:nv] @ queries[0] if len(queries) == 1 else (self.matrix[:nv] @ queries.T).max(1)
        per_vector = np.where(self._owner[:nv] >= 0, per_vector, -np.inf)  # replaced vectors never count
        blocks = self._block_rows()
        cosine = np.zeros(rows, dtype=np.float32)
        if len(blocks):
            cosine[blocks] = np.maximum.reduceat(per_vector, self._first[blocks])  # each block runs to the next
        return cosine, per_vector

    def best_piece(self, row: int, per_vector: np.ndarray | None) -> int:
        """Which of the row's vectors matched best; -1 without a query vector or with one vector
        (the whole message, or a single statement: nothing to point at)."""
        if per_vector is None or not self.has[row] or self._pieces[row] < 2:
            return -1
        first = self._first[row]
        return int(np.argmax(per_vector[first: first + self._pieces[row]]))

    def means(self, rows: np.ndarray) -> np.ndarray | None:
        """The unit mean of each row's vectors, zeros without any (what near-duplicate checks compare)."""
        if len(rows) == 0:
            return None
        counts = np.where(self.has[rows], self._pieces[rows], 0)
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        has = counts > 0
        if has.any():
            starts, lengths = self._first[rows][has], counts[has]
            offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            sums = np.add.reduceat(self.matrix[np.repeat(starts, lengths) + offsets], np.cumsum(lengths) - lengths)
            out[has] = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
        return out

    def live_count(self) -> int:
        """Vectors not replaced."""
        return int((self._owner[: self.count] >= 0).sum())

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.matrix, self._owner, self.has, self._first, self._pieces))

    def _block_rows(self) -> np.ndarray:
        """Rows with vectors, ordered by where their vectors start (kept as vectors arrive)."""
        if self._blocks_stale:
            rows = np.flatnonzero(self.has)
            self._blocks = array("q", rows[np.argsort(self._first[rows], kind="stable")].tolist())
            self._blocks_stale = False
        return np.frombuffer(self._blocks, dtype=np.int64)


def grown(old: np.ndarray, fill: float, capacity: int | None = None) -> np.ndarray:
    """A copy of `old` with room for `capacity` rows (default: twice as many), the rest `fill`."""
    new = np.full((capacity or 2 * len(old), *old.shape[1:]), fill, dtype=old.dtype)
    new[: len(old)] = old
    return new
