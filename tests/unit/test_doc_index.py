"""The in-RAM document search: best chunks first, only the ones a conversation may see."""

from __future__ import annotations

import numpy as np
import pytest

from app.documents.index import DocumentIndex
from app.documents.store import Document, StoredChunk

DIM = 4


def doc(doc_id: str, owner=None, session=None) -> Document:
    return Document(id=doc_id, name=f"{doc_id}.md", source="upload", owner=owner, session_id=session, bytes=1,
                    sha256="x", status="indexed")


def chunks(doc_id: str, *vectors) -> list[StoredChunk]:
    return [StoredChunk(i, doc_id, i, None, (), f"{doc_id}-{i}", 1, False,
                        np.asarray(v, dtype=np.float32) / np.linalg.norm(v)) for i, v in enumerate(vectors)]


@pytest.fixture
def index() -> DocumentIndex:
    index = DocumentIndex(DIM)
    index.put(doc("global"), chunks("global", [1, 0, 0, 0], [0, 1, 0, 0]))
    index.put(doc("alice", owner="t-a"), chunks("alice", [1, 0.1, 0, 0]))
    index.put(doc("bob", owner="t-b"), chunks("bob", [1, 0.05, 0, 0]))
    index.put(doc("story", owner="t-a", session="s1"), chunks("story", [1, 0.2, 0, 0]))
    return index


def texts(hits) -> list[str]:
    return [h.chunk.text for h in hits]


@pytest.mark.parametrize("owner, session, seen", [
    (None, None, ["global-0"]),
    ("t-a", "s2", ["alice-0", "global-0"]),
    ("t-a", "s1", ["story-0", "alice-0", "global-0"]),
    ("t-b", "s1", ["bob-0", "global-0"]),
    ("t-c", "s1", ["global-0"]),
])
def test_a_conversation_sees_only_its_owners_and_global_documents(index, owner, session, seen):
    hits = index.search(np.array([1, 0, 0, 0], dtype=np.float32), owner=owner, session_id=session, k=10,
                        min_score=0.5)
    assert sorted(texts(hits)) == sorted(seen)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_best_first_k_and_threshold(index):
    query = np.array([0, 1, 0, 0], dtype=np.float32)
    assert texts(index.search(query, owner=None, session_id=None, k=1)) == ["global-1"]
    assert texts(index.search(query, owner=None, session_id=None, k=5, min_score=0.99)) == ["global-1"]
    assert index.search(query, owner=None, session_id=None, k=0) == []


def test_any_session_lists_every_session_of_the_owner(index):
    hits = index.search(np.array([1, 0, 0, 0], dtype=np.float32), owner="t-a", session_id=None, k=10,
                        any_session=True)
    assert "story-0" in texts(hits) and "bob-0" not in texts(hits)


def test_replace_and_remove(index):
    index.put(doc("global"), chunks("global", [0, 0, 1, 0]))
    index.remove("alice")
    query = np.array([0, 0, 1, 0], dtype=np.float32)
    assert texts(index.search(query, owner="t-a", session_id="x", k=1)) == ["global-0"]
    assert len(index) == 3
