"""BM25 statistics of one session's messages, kept current on every add and remove.

`SessionIndex` owns one `Postings`: per word the rows that hold it and how often (`array`
columns grown in place, so an append copies nothing), document frequencies, and each row's
distinct term numbers, from which the query-independent specificity prior is computed and kept:

    postings.add(row, tokenize(text))        # rows arrive in order
    postings.scores({"sister": 1.0}, lengths)  # BM25 of every row
    postings.specificity(rows)               # mean IDF of each row's two rarest words
"""

from __future__ import annotations

import math
import sys
from array import array

import numpy as np

RARE_DF = 64  # a word said this often or less moves the specificity of the rows holding it
TERM_SLOTS = 4 * 50 + 8  # a term's entries in four term maps (key, value, hash, spare room) and in names
SPECIFICITY_DRIFT = 0.02  # kept specificity values are recomputed once the row count moves this much


class Postings:
    """BM25 statistics kept current on every add and remove."""

    def __init__(self) -> None:
        self.rows: dict[str, array] = {}
        self.tfs: dict[str, array] = {}
        self.df: dict[str, int] = {}
        self.total_len = 0
        self.docs = 0
        self.term_ids: dict[str, int] = {}  # each term's number, for the per-row lists below
        self.df_by_id = array("i")
        self.row_terms = array("i")  # the distinct term numbers of every row, row after row
        self.row_start = array("q")  # per row: where its terms start in row_terms
        self.names: list[str] = []  # term numbers back to terms
        self._specific = np.zeros(0)  # per row: its specificity, NaN until computed or once stale
        self._specific_docs = 0  # the document count those values were computed at

    def add(self, row: int, terms: list[str]) -> None:
        """Count a new document; rows arrive in order (row == the number of rows added so far)."""
        counts: dict[str, int] = {}
        for term in terms:
            counts[term] = counts.get(term, 0) + 1
        self.row_start.append(len(self.row_terms))
        for term, tf in counts.items():
            self.rows.setdefault(term, array("i")).append(row)
            self.tfs.setdefault(term, array("f")).append(tf)
            self.df[term] = self.df.get(term, 0) + 1
            number = self.term_ids.setdefault(term, len(self.term_ids))
            if number == len(self.df_by_id):
                self.df_by_id.append(0)
                self.names.append(term)
            self.df_by_id[number] += 1
            self.row_terms.append(number)
            if self.df[term] <= RARE_DF and len(self._specific):
                held = np.frombuffer(self.rows[term], dtype=np.int32)
                self._specific[held[held < len(self._specific)]] = np.nan  # its IDF moved
        self.total_len += len(terms)
        self.docs += 1

    def forget(self, terms: list[str]) -> None:
        """Statistics no longer count a removed document (its postings stay, masked by the index)."""
        for term in set(terms):
            self.df[term] -= 1
            self.df_by_id[self.term_ids[term]] -= 1
        self.total_len -= len(terms)
        self.docs -= 1
        self._specific[:] = np.nan  # removal is rare: recompute everything

    def terms_of(self, row: int) -> array:
        """The distinct term numbers of one row."""
        end = self.row_start[row + 1] if row + 1 < len(self.row_start) else len(self.row_terms)
        return self.row_terms[self.row_start[row]: end]

    def specificity(self, rows: np.ndarray) -> np.ndarray:
        """Per row: the mean IDF of its two rarest words (0 for a row without words).

        A query-independent prior: a turn that names things said rarely in this conversation
        ("Fenna", "Harbour Row", "okonomiyaki") is more likely a fact worth recalling than one
        built from words said every day ("work was a slog again").

        Values are kept between searches. A row's value is dropped when one of its words said at
        most `RARE_DF` times is said again (the only IDFs that move it noticeably), and all are
        dropped when the conversation has grown by `SPECIFICITY_DRIFT` since they were computed
        or a message is removed; within that drift a value is off by less than log(1.02).
        """
        if len(rows) == 0:
            return np.zeros(0)
        if abs(self.docs - self._specific_docs) > SPECIFICITY_DRIFT * self._specific_docs:
            self._specific[:] = np.nan
            self._specific_docs = self.docs
        if len(self._specific) < len(self.row_start):
            more = max(len(self._specific), len(self.row_start) - len(self._specific))
            self._specific = np.concatenate([self._specific, np.full(more, np.nan)])
        missing = rows[np.isnan(self._specific[rows])]
        if len(missing):
            self._specific[missing] = self._computed_specificity(missing)
        return self._specific[rows]

    def _computed_specificity(self, rows: np.ndarray) -> np.ndarray:
        flat = np.frombuffer(self.row_terms, dtype=np.int32)
        starts = np.frombuffer(self.row_start, dtype=np.int64)
        after = rows + 1
        lengths = np.where(after < len(starts), starts[np.minimum(after, len(starts) - 1)], len(flat)) - starts[rows]
        segment = np.repeat(np.arange(len(rows)), lengths)
        offsets = np.arange(len(segment)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        terms = flat[np.repeat(starts[rows], lengths) + offsets]
        df = np.frombuffer(self.df_by_id, dtype=np.int32)[terms].astype(np.float64)
        idf = np.log1p((self.docs - df + 0.5) / (df + 0.5))
        order = np.lexsort((idf, segment))  # by row, rarest word last
        ranked, ends = idf[order], np.cumsum(lengths) - 1
        out = np.zeros(len(rows))
        has = lengths > 0
        out[has] += ranked[ends[has]]
        two = lengths > 1
        out[two] += ranked[ends[two] - 1]
        return out / 2

    def scores(self, terms: dict[str, float], lengths: np.ndarray, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
        """BM25 of every row (length `len(lengths)`) for the weighted query terms."""
        out = np.zeros(len(lengths), dtype=np.float32)
        avg = self.total_len / self.docs if self.docs else 1.0
        for term, weight in terms.items():
            df = self.df.get(term, 0)
            if df <= 0:
                continue
            idf = math.log(1.0 + (self.docs - df + 0.5) / (df + 0.5))
            rows = np.frombuffer(self.rows[term], dtype=np.int32)
            tf = np.frombuffer(self.tfs[term], dtype=np.float32)
            norm = k1 * (1.0 - b + b * lengths[rows] / max(avg, 1e-9))
            out[rows] += weight * idf * tf * (k1 + 1.0) / (tf + norm)
        return out

    def ideal(self, terms: dict[str, float]) -> float:
        """The BM25 of a message of average length holding each query word once: a full match."""
        return sum(w * math.log(1.0 + (self.docs - df + 0.5) / (df + 0.5))
                   for t, w in terms.items() if (df := self.df.get(t, 0)) > 0)

    def nbytes(self) -> int:
        """Its arrays (objects and buffers), each term's text and its slots in the five term maps."""
        arrays = sum(sys.getsizeof(a) for a in (*self.rows.values(), *self.tfs.values()))
        per_row = sum(sys.getsizeof(a) for a in (self.df_by_id, self.row_terms, self.row_start))
        return arrays + per_row + sum(sys.getsizeof(t) + TERM_SLOTS for t in self.rows)

