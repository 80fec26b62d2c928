"""PieceVectors: blocks of vectors per row, best-piece cosines, replacement and growth."""

from __future__ import annotations

import numpy as np
import pytest

from app.memory.search.vectors import PieceVectors


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_a_row_scores_as_its_best_piece_and_names_it():
    vectors = PieceVectors(dim=3, capacity=2)
    vectors.put(0, np.stack([unit(1, 0, 0), unit(0, 1, 0)]))
    vectors.put(1, unit(0, 0, 1))
    cosine, per_vector = vectors.cosines(unit(0, 1, 0), rows=2)
    assert cosine.tolist() == pytest.approx([1.0, 0.0])
    assert vectors.best_piece(0, per_vector) == 1
    assert vectors.best_piece(1, per_vector) == -1  # one vector: nothing to point at


def test_rows_without_vectors_score_zero():
    vectors = PieceVectors(dim=3, capacity=4)
    vectors.put(2, unit(1, 0, 0))
    cosine, _ = vectors.cosines(unit(1, 0, 0), rows=3)
    assert cosine.tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert vectors.has[:3].tolist() == [False, False, True]
    assert vectors.of(0) is None


def test_replaced_vectors_never_count_and_the_block_order_is_rebuilt():
    vectors = PieceVectors(dim=3, capacity=2)
    vectors.put(0, unit(1, 0, 0))
    vectors.put(1, unit(0, 1, 0))
    vectors.put(0, unit(0, 0, 1))  # re-embedded: a new block after row 1's
    cosine, per_vector = vectors.cosines(unit(1, 0, 0), rows=2)
    assert cosine.tolist() == pytest.approx([0.0, 0.0])
    assert per_vector[0] == -np.inf
    cosine, _ = vectors.cosines(unit(0, 0, 1), rows=2)
    assert cosine.tolist() == pytest.approx([1.0, 0.0])
    assert vectors.of(0).tolist() == [pytest.approx(unit(0, 0, 1).tolist())]


def test_the_matrix_and_the_rows_grow_by_doubling_and_keep_what_they_hold():
    rng = np.random.default_rng(0)
    vectors = PieceVectors(dim=8, capacity=2)
    stored = {}
    for row in range(40):
        if row >= len(vectors.has):
            vectors.grow_rows(2 * len(vectors.has))
        block = rng.standard_normal((1 + row % 3, 8)).astype(np.float32)
        vectors.put(row, block)
        stored[row] = block
    for row, block in stored.items():
        np.testing.assert_array_equal(vectors.of(row), block)
    query = rng.standard_normal(8).astype(np.float32)
    cosine, _ = vectors.cosines(query, rows=40)
    np.testing.assert_allclose(cosine, [float((b @ query).max()) for b in stored.values()], rtol=1e-5)


def test_means_are_unit_means_of_each_rows_pieces_and_zero_without_any():
    vectors = PieceVectors(dim=2, capacity=3)
    vectors.put(0, np.stack([unit(1, 0), unit(0, 1)]))
    vectors.put(2, unit(0, 1))
    means = vectors.means(np.array([0, 1, 2]))
    np.testing.assert_allclose(means, [unit(1, 1), [0, 0], unit(0, 1)], atol=1e-6)
    assert vectors.means(np.array([], dtype=np.int64)) is None


def test_a_vector_of_the_wrong_size_is_refused():
    vectors = PieceVectors(dim=3, capacity=1)
    with pytest.raises(ValueError, match="vectors of 3"):
        vectors.put(0, np.ones(4))
    assert not vectors.has[0] and vectors.count == 0
