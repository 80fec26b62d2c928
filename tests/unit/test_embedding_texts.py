"""What the background writer embeds for a message: itself, its statements, and a short reply in context."""

from __future__ import annotations

import numpy as np
import pytest

from app.memory.search.recall import index_vectors
from app.memory.background.writer import CONTEXT_MIX, CONTEXT_WORDS, embedding_texts, in_context, moved_in_context

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


def test_statements_move_towards_the_message_in_context_and_the_index_gets_no_more_vectors():
    whole, statement, context = np.eye(3, 4, dtype=np.float32)
    stored = moved_in_context(np.stack([whole, statement, context]), contextual=True)  # a one-statement message
    assert stored.shape == (2, 4) and np.array_equal(stored[0], whole)  # row 0, the whole, is what scorers read
    mixed = (statement + CONTEXT_MIX * context) / np.linalg.norm(statement + CONTEXT_MIX * context)
    assert np.allclose(stored[1], mixed) and np.isclose(np.linalg.norm(stored[1]), 1.0)
    assert index_vectors(stored.reshape(-1), 4).shape == (1, 4)  # one vector, as without the context
    plain = np.stack([whole, statement])
    assert moved_in_context(plain, contextual=False) is plain
