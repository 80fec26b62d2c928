"""Dates a question names, as spans of time in which its answer was said."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.memory.search.when import asked_spans


def days(text: str, years: range = range(2022, 2025)) -> list[tuple[str, str]]:
    return [(datetime.fromtimestamp(a).date().isoformat(), datetime.fromtimestamp(b).date().isoformat())
            for a, b in asked_spans(text, years)]


@pytest.mark.parametrize("question, spans", [
    ("Who did Maria have dinner with on May 3, 2023?", [("2023-05-03", "2023-05-11")]),
    ("What did Gina find on 1 February, 2023?", [("2023-02-01", "2023-02-09")]),
    ("What happened on the 3rd of May, 2023?", [("2023-05-03", "2023-05-11")]),
    ("What did Maria donate in December 2023?", [("2023-12-01", "2024-01-08")]),
    ("How many times did she go to the beach in 2023?", [("2023-01-01", "2024-01-08")]),
    ("When did Melanie go camping in June?", [("2022-06-01", "2022-07-08"), ("2023-06-01", "2023-07-08"),
                                              ("2024-06-01", "2024-07-08")]),
    ("What did we do on 31 June 2023?", []),  # no such day
    ("May I ask what you did?", []),
    ("When did she go camping?", []),
    ("What did she say last year?", []),  # relative: the asking time says nothing of when it was said
])
def test_asked_spans(question, spans):
    assert days(question) == spans
