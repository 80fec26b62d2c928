"""Pure: a document's Markdown pages cut into chunks that follow its headings.

    pages = [Page(1, "# Safety\\n\\nNever open the hatch.\\n\\n| a | b |\\n| --- | --- |\\n| 1 | 2 |")]
    chunks = chunk_pages(pages, max_tokens=200)
    chunks[0].heading, chunks[0].page        # ("Safety",), 1
    citation("manual.pdf", chunks[0])        # "[manual.pdf, p. 1]"

A chunk never spans two sections or two pages: a heading or a new page starts a new one, so
each keeps its heading path and its page for the citation. Inside a section, paragraphs are
packed while they fit `max_tokens`; a longer paragraph is cut at sentences (then words). A
Markdown table is one block: whole in a chunk when it fits one, else cut between rows with its
header row and separator repeated on every piece, so every piece still reads as a table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from app.tokens import count_tokens

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a document as Markdown; `number` is None for formats without pages."""

    number: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    heading: tuple[str, ...]
    page: int | None
    tokens: int
    table: bool = False


@dataclass(frozen=True, slots=True)
class _Block:
    text: str
    table: bool


def chunk_pages(pages: Sequence[Page], max_tokens: int) -> list[Chunk]:
    """Every page's text as chunks of at most `max_tokens` (a single word may exceed it)."""
    chunks: list[Chunk] = []
    heading: tuple[str, ...] = ()
    for page in pages:
        for section, blocks in _sections(page.text, heading):
            heading = section
            chunks += _pack(blocks, section, page.number, max_tokens)
    return chunks


def citation(name: str, chunk: Chunk) -> str:
    """`[manual.pdf, p. 12]`; without a page, the section: `[guide.docx, Safety > Valves]`.

        >>> citation("a.pdf", Chunk("x", ("Intro",), 3, 1)), citation("b.md", Chunk("x", ("A", "B"), None, 1))
        ('[a.pdf, p. 3]', '[b.md, A > B]')
    """
    where = f"p. {chunk.page}" if chunk.page is not None else " > ".join(chunk.heading)
    return f"[{name}, {where}]" if where else f"[{name}]"


def _sections(text: str, heading: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], list[_Block]]]:
    """(heading path, blocks) for each run of text under one heading; the path carries over pages."""
    blocks: list[_Block] = []
    for kind, body in _blocks(text):
        if kind == "heading":
            if blocks:
                yield heading, blocks
            level, title = body
            heading, blocks = heading[:level - 1] + ("",) * max(0, level - 1 - len(heading)) + (title,), []
            heading = tuple(h for h in heading if h)
        else:
            blocks.append(_Block(body, kind == "table"))
    if blocks:
        yield heading, blocks


def _blocks(text: str) -> Iterator[tuple[str, object]]:
    """("heading", (level, title)), ("table", text) and ("para", text), in order."""
    para: list[str] = []
    table: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        is_row = stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1
        if table and not is_row:
            yield "table", "\n".join(table)
            table = []
        if is_row or (match := HEADING.match(stripped)) or not stripped:
            if para:
                yield "para", " ".join(para)
                para = []
            if is_row:
                table.append(stripped)
            elif stripped:
                yield "heading", (len(match.group(1)), match.group(2))
            continue
        para.append(stripped)
    if table:
        yield "table", "\n".join(table)
    if para:
        yield "para", " ".join(para)


def _pack(blocks: list[_Block], heading: tuple[str, ...], page: int | None, cap: int) -> list[Chunk]:
    """Blocks packed into chunks of at most `cap` tokens, in order."""
    out: list[Chunk] = []
    parts: list[str] = []
    used, has_table = 0, False
    for piece, table in _pieces(blocks, cap):
        cost = count_tokens(piece + "\n\n")
        if parts and used + cost > cap:
            out.append(Chunk("\n\n".join(parts), heading, page, used, has_table))
            parts, used, has_table = [], 0, False
        parts.append(piece)
        used += cost
        has_table = has_table or table
    if parts:
        out.append(Chunk("\n\n".join(parts), heading, page, used, has_table))
    return out


def _pieces(blocks: list[_Block], cap: int) -> Iterator[tuple[str, bool]]:
    """Each block whole when it fits `cap`, else cut: tables between rows, text at sentences."""
    for block in blocks:
        if count_tokens(block.text + "\n\n") <= cap:
            yield block.text, block.table
        elif block.table:
            yield from ((rows, True) for rows in split_table(block.text, cap))
        else:
            yield from ((text, False) for text in split_text(block.text, cap))


def split_table(table: str, cap: int) -> list[str]:
    """A Markdown table cut between rows, the header and its separator on every piece."""
    lines = table.split("\n")
    head = lines[:2] if len(lines) > 1 and set(lines[1]) <= set("|-: ") else lines[:1]
    pieces, rows = [], []
    base = count_tokens("\n".join(head) + "\n\n")
    used = base
    for row in lines[len(head):]:
        cost = count_tokens(row + "\n")
        if rows and used + cost > cap:
            pieces.append("\n".join(head + rows))
            rows, used = [], base
        rows.append(row)
        used += cost
    return pieces + ["\n".join(head + rows)] if rows or not pieces else pieces


def split_text(text: str, cap: int) -> list[str]:
    """A paragraph cut at sentence ends (a sentence too long alone is cut between words)."""
    units = [u for s in SENTENCE_END.split(text) for u in (_words(s, cap) if count_tokens(s) > cap else [s])]
    pieces, current = [], ""
    for unit in units:
        joined = f"{current} {unit}" if current else unit
        if current and count_tokens(joined + "\n\n") > cap:
            pieces.append(current)
            joined = unit
        current = joined
    return pieces + [current] if current else pieces


def _words(sentence: str, cap: int) -> list[str]:
    words, pieces, current = sentence.split(), [], []
    for word in words:
        if current and count_tokens(" ".join(current + [word])) > cap:
            pieces.append(" ".join(current))
            current = []
        current.append(word)
    return pieces + [" ".join(current)] if current else pieces
