"""The memory block's lines: a recollection whole or in its short form, chosen to the token."""

from __future__ import annotations

import pytest

from app.memory_block import MemoryItem, candidates, extra, render_block, select, sent


def moment(i: int, words: int = 30, brief: bool = True) -> MemoryItem:
    return MemoryItem(f"Ana: fact {i}" + " detail" * words, (i,), score=1.0 - i / 10, position=i, when="Mon 2024-05-06",
                      brief=f"Ana: fact {i} detail" if brief else None)


def costs(item: MemoryItem) -> tuple[int, int, int]:
    """A line's cost whole and in brief, and what the block's framing and headings add to the first."""
    (line,) = candidates([item], [], None, None)
    return line.cost, line.brief.cost, extra(line, set()) - line.cost


WHOLE, SHORT, HEAD = costs(moment(0))


@pytest.mark.parametrize("cap, expected", [
    (HEAD + 2 * WHOLE, ["whole", "whole"]),
    (HEAD + WHOLE + SHORT, ["whole", "brief"]),  # the second no longer fits whole
    (HEAD + 2 * SHORT, ["brief", "brief"]),
    (HEAD + SHORT, ["brief"]),  # the second fits in no form
])
def test_a_line_that_does_not_fit_whole_is_sent_in_brief(cap, expected):
    lines = candidates([moment(0), moment(1)], [], None, None)
    assert ["brief" if ln.short else "whole" for ln in select(lines, cap)] == expected


def test_a_line_without_a_short_form_is_skipped_when_it_does_not_fit():
    lines = candidates([moment(0, brief=False), moment(1)], [], None, None)
    assert [(ln.item.message_ids, ln.short) for ln in select(lines, HEAD + SHORT)] == [((1,), True)]


def test_the_short_form_sits_under_the_same_date_and_reads_as_sent():
    (line,) = candidates([moment(3)], [], None, None)
    assert line.brief.headings == line.headings and line.brief.item is line.item
    assert "[Mon 2024-05-06]\n- Ana: fact 3 detail\n" in render_block([line.brief])
    item = sent(line.brief)
    assert item.text == "Ana: fact 3 detail" and item.reasons[-1] == "in brief" and item.brief is None
    assert sent(line) is line.item
