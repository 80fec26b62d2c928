"""Persona text as memory sees it: pure functions from system prompts to chunks and sentences.

Every distinct prompt is cut into overlapping chunks that keep its line breaks (`split_prompt`,
`prompt_chunks`), each named by the hash of its whitespace-collapsed text (`chunk_hash`, `flat`)
and embedded whole and per statement (`vector_texts`); `unseen` tells which sentences of a chunk
the current prompt no longer holds, and `coverage` how much of a query's word weight a chunk has.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from app.memory.search.retrieval import chunk_text, pieces, sentences
from app.tokens import encoding

_LINE = "\ue000"  # a private-use character: marks line breaks through `chunk_text` (see `split_prompt`)


def flat(text: str) -> str:
    """Whitespace collapsed, so containment does not depend on line breaks or indentation."""
    return " ".join(text.split())


def chunk_hash(text: str) -> str:
    return hashlib.sha256(flat(text).encode()).hexdigest()[:32]


def prompt_chunks(texts: Iterable[str], max_tokens: int, overlap: int) -> list[tuple[str, str, int]]:
    """(hash, text, tokens) of every distinct chunk of these prompts, in order of first appearance.

        >>> [t for _, t, _ in prompt_chunks(["Ada. Bob.", "Ada. Bob. Cy."], 4, 0)]
        ['Ada. Bob.', 'Cy.']
    """
    out: dict[str, tuple[str, str, int]] = {}
    for text in texts:
        for chunk in split_prompt(text or "", max_tokens, overlap):
            out.setdefault(chunk_hash(chunk), (chunk_hash(chunk), chunk, _count(chunk)))
    return list(out.values())


def split_prompt(text: str, max_tokens: int, overlap: int) -> list[str]:
    r"""`chunk_text` that keeps the prompt's line breaks.

        >>> split_prompt("Name: Mira\nAge: 20\nShe maps rivers. She hums.", 10, 0)
        ['Name: Mira\nAge: 20', 'She maps rivers. She hums.']

    `chunk_text` joins its sentences with spaces; prompts are often lines without a full stop
    (card fields, world-info entries), and a line must stay a unit for `unseen` to tell which
    lines the current prompt still has. Each line break is carried through as a marker.
    """
    marked = re.sub(r"\s*\n\s*", f" {_LINE}\n", text.strip())
    chunks = ("\n".join(p.strip() for p in c.split(_LINE) if p.strip())
              for c in chunk_text(marked, max_tokens, overlap, count=_count_marked))
    return [c for c in chunks if c]


def _count_marked(text: str) -> int:
    return _count(text.replace(f" {_LINE}", "\n").replace(_LINE, "\n"))


def _count(text: str) -> int:
    # Uncached: long prompts would flood the shared token cache the request path relies on.
    return len(encoding().encode_ordinary(text))


def vector_texts(chunk: str) -> list[str]:
    """What is embedded for a chunk: the whole, then its statements when it has several."""
    parts = pieces(chunk)
    return [chunk, *parts] if len(parts) > 1 else [chunk]


def unseen(text: str, seen: str) -> list[str]:
    """The sentences of `text` that `seen` (already `flat`) does not contain, in order.

        >>> unseen("You are Ada. The gate opens at moonrise.", "You are Ada. You like tea.")
        ['The gate opens at moonrise.']
    """
    return [s for s in sentences(text) if flat(s) not in seen]


def shared_words(terms: dict[str, float], words: frozenset[str]) -> tuple[str, ...]:
    return tuple(t for t in terms if t in words)


def coverage(terms: dict[str, float], words: frozenset[str]) -> float:
    """The share of the query's word weight that `words` hold, 0..1."""
    total = sum(terms.values())
    return sum(w for t, w in terms.items() if t in words) / total if total else 0.0
