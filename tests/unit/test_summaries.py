from dataclasses import dataclass

import pytest

from app.memory.background.summaries import Span, extractive_summary, next_higher, next_span, summary_request, transcript


@dataclass
class Row:
    role: str
    content: str
    importance: float | None = None
    position: int = 0


@dataclass
class Summary:
    level: int
    start_position: int
    end_position: int
    text: str = ""


@pytest.mark.parametrize("until, positions, every, expected", [
    (-1, list(range(19)), 20, None),
    (-1, list(range(20)), 20, Span(0, 19)),
    (19, list(range(45)), 20, Span(20, 39)),
    (39, list(range(45)), 20, None),
    (-1, [0, 1, 5, 6, 7], 3, Span(0, 5)),  # gaps (superseded positions) are skipped
])
def test_next_span(until, positions, every, expected):
    assert next_span(until, positions, every) == expected


def test_next_higher_merges_the_oldest_unmerged_of_the_lowest_level():
    level0 = [Summary(0, i * 20, i * 20 + 19) for i in range(7)]
    level, parts = next_higher(level0, fanout=5)
    assert level == 1 and [p.start_position for p in parts] == [0, 20, 40, 60, 80]
    merged = level0 + [Summary(1, 0, 99)]
    assert next_higher(merged, fanout=5) is None  # only two left after the merged range
    assert next_higher(merged + [Summary(0, 140, 159)] * 3, fanout=5)[1][0].start_position == 100


def test_extractive_summary_keeps_important_sentences_in_order():
    rows = [Row("user", "ok lol", 0.05), Row("user", "My sister Maya moved to Lisbon in March. It rained.", 0.9),
            Row("assistant", "That sounds like a big change for your family.", 0.4),
            Row("user", "I never told anyone that I was scared of losing her.", 0.95)]
    text = extractive_summary(rows, max_sentences=2)
    assert text == ("User: My sister Maya moved to Lisbon in March. "
                    "User: I never told anyone that I was scared of losing her.")
    assert "ok lol" not in extractive_summary(rows, max_sentences=10)


def test_summary_request_carries_the_transcript_and_the_rules():
    rows = [Row("user", "I'm Ana."), Row("assistant", "Hi Ana!")]
    request = summary_request(rows, words=100)
    assert "every name" in request[0]["content"] and "100 words" in request[0]["content"]
    assert request[1]["content"] == transcript(rows) == "User: I'm Ana.\nAssistant: Hi Ana!"
