"""Chunks follow headings, keep their page, and keep tables whole (or cut between rows, header repeated)."""

from __future__ import annotations

import pytest

from app.documents.chunk import Chunk, Page, chunk_pages, citation, split_table, split_text
from app.tokens import count_tokens

TABLE = "| a | b |\n| --- | --- |\n" + "\n".join(f"| row {i} | value {i} |" for i in range(40))


@pytest.mark.parametrize("pages, expected", [
    ([Page(None, "just text")], [((), None, "just text")]),
    ([Page(None, "# A\n\none\n\n## B\n\ntwo\n\n# C\n\nthree")],
     [(("A",), None, "one"), (("A", "B"), None, "two"), (("C",), None, "three")]),
    ([Page(None, "### Deep\n\nx")], [(("Deep",), None, "x")]),
    ([Page(1, "# Intro\n\nfirst page"), Page(2, "still the intro\n\n## Part\n\nmore")],
     [(("Intro",), 1, "first page"), (("Intro",), 2, "still the intro"), (("Intro", "Part"), 2, "more")]),
    ([Page(3, "line one\nline two\n\nnext paragraph")], [((), 3, "line one line two\n\nnext paragraph")]),
    ([Page(None, "# Empty heading\n\n# Full\n\nbody")], [(("Full",), None, "body")]),
])
def test_chunks_follow_headings_and_pages(pages, expected):
    assert [(c.heading, c.page, c.text) for c in chunk_pages(pages, 200)] == expected


def test_a_table_that_fits_stays_whole_with_its_paragraph():
    chunks = chunk_pages([Page(None, "# Parts\n\nThe parts:\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\nafter")], 200)
    assert [c.text for c in chunks] == ["The parts:\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n\nafter"]
    assert chunks[0].table


def test_a_table_too_large_is_cut_between_rows_with_its_header_on_every_piece():
    chunks = chunk_pages([Page(None, TABLE)], 60)
    assert len(chunks) > 2 and all(c.table for c in chunks)
    for chunk in chunks:
        lines = chunk.text.split("\n")
        assert lines[:2] == ["| a | b |", "| --- | --- |"] and all(line.startswith("| row") for line in lines[2:])
        assert count_tokens(chunk.text) <= 60
    rows = [line for c in chunks for line in c.text.split("\n")[2:]]
    assert rows == TABLE.split("\n")[2:]


@pytest.mark.parametrize("cap", [8, 20, 64])
def test_long_text_is_cut_at_sentences_within_the_cap_and_nothing_is_lost(cap):
    text = " ".join(f"Sentence number {i} says something about the sea." for i in range(30))
    pieces = split_text(text, cap)
    assert " ".join(pieces).split() == text.split()
    assert all(count_tokens(p) <= cap for p in pieces)
    if cap >= 20:
        assert all(p.endswith(".") for p in pieces)


def test_split_table_of_one_row_is_itself():
    assert split_table("| a |\n| - |\n| 1 |", 200) == ["| a |\n| - |\n| 1 |"]


def test_chunks_respect_the_token_cap():
    text = "\n\n".join(f"Paragraph {i}. " + "word " * 30 for i in range(20))
    chunks = chunk_pages([Page(None, text)], 100)
    assert len(chunks) > 5 and all(c.tokens <= 100 for c in chunks)


@pytest.mark.parametrize("chunk, cite", [
    (Chunk("x", ("Intro",), 12, 1), "[manual.pdf, p. 12]"),
    (Chunk("x", ("Safety", "Valves"), None, 1), "[manual.pdf, Safety > Valves]"),
    (Chunk("x", (), None, 1), "[manual.pdf]"),
])
def test_citation(chunk, cite):
    assert citation("manual.pdf", chunk) == cite
