"""What the background writer embeds for a message: itself, its statements, and a short reply in context."""

from __future__ import annotations

import numpy as np
import pytest

from app.memory.recall import index_vectors
from app.memory.writer import CONTEXT_WEIGHT, CONTEXT_WORDS, embedding_texts, in_context, weighed

LONG = " ".join(["word"] * (CONTEXT_WORDS + 1)) + "."


@pytest.mark.parametrize("content, before, expected", [
    ("Fine.", None, ["Fine."]),
    ("Fine.", "   ", ["Fine."]),
    ("They're a real support.", "How is your family?",
     ["They're a real support.", "They're a real support.", "How is your family?\nThey're a real support."]),
    ("I grew up in Porto. My sister Mara lives in Lisbon now.", None,
     ["I grew up in Porto. My sister Mara lives in Lisbon now.", "I grew up in Porto.",
      "My sister Mara lives in Lisbon now."]),
    ("I grew up in Porto. My sister Mara lives in Lisbon now.", "Where are you from?",
     ["I grew up in Porto. My sister Mara lives in Lisbon now.", "I grew up in Porto.",
      "My sister Mara lives in Lisbon now.",
      "Where are you from?\nI grew up in Porto. My sister Mara lives in Lisbon now."]),
    (LONG, "Tell me everything?", [LONG]),
])
def test_embedding_texts(content, before, expected):
    assert embedding_texts(content, before) == expected


def test_the_turn_before_is_cut_to_its_end():
    before = "A long story about many things. " * 20 + "So, any fun plans for the summer?"
    text = in_context("Researching adoption agencies.", before)
    head, reply = text.split("\n")
    assert reply == "Researching adoption agencies."
    assert head.startswith("…") and head.endswith("any fun plans for the summer?") and len(head) <= 241


def test_the_vector_in_context_is_shortened_and_the_index_keeps_every_vector_but_the_whole():
    vectors = np.eye(3, 4, dtype=np.float32)
    stored = weighed(vectors, contextual=True)
    assert np.allclose(np.linalg.norm(stored, axis=1), [1.0, 1.0, CONTEXT_WEIGHT])
    assert weighed(vectors, contextual=False) is vectors
    assert index_vectors(stored.reshape(-1), 4).shape == (2, 4)  # row 0, the whole, is what scorers read
