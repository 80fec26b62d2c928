"""Ranking for recall: pure functions from words and scores to the hits a request is shown.

The index (`app.memory.search.index`) produces two rankings of past messages for one query, by meaning
(cosine of embeddings) and by words (BM25). Here are the words (`tokenize`, `pieces`), the
query (`build_query`) and near-duplicate checks; `app.memory.search.scoring` holds the fusion and
re-scoring, and `app.memory.search.passages` grows the hits into what the model reads:

    query = build_query(turns)                 # the newest user turn, and earlier turns if it is vague
    hits = index.search(query, embed(query), exclude_from_position=boundary, k=12, weights=RetrievalWeights())

Messages are embedded per statement (`pieces`), so a fact in one sentence of a long message is
not averaged away. Why fusion: embeddings find paraphrases ("my sibling" for "my sister") but
blur names, numbers and rare words, which is where BM25 is sharp; each rescues the other's
misses. Measured on the recall benchmark (bench/recall): fusion beats either alone, a weighted
sum of min-max scaled scores beats reciprocal rank fusion (the scales drift with the
conversation, but scaling among each query's own candidates absorbs that), statement pieces
beat one vector per message, and a vague question ("what was her name again?") needs the turns
before it, joined into one text. Every function here is pure and table-tested.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from app.tokens import count_tokens, message_text

_WORD = re.compile(r"\w+")
# A sentence ends at . ! ? or … and any closing marks after them: quotes, brackets and the
# asterisks or underscores that close a role-play action (*She smiles.* "Hello.").
SENTENCE = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][*_\"'”’)\]])|(?<=[.!?…][*_\"'”’)\]]{2}))\s+|\n+")


def sentences(text: str) -> list[str]:
    """The text's sentences (`SENTENCE`), stripped, empty ones left out."""
    return [s.strip() for s in SENTENCE.split(text) if s.strip()]

STOP_WORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being below
between both but by can could did do does doing don't down during each few for from further had has have having
he her here hers herself him himself his how i if in into is isn't it its itself just me more most my myself no
nor not now of off on once only or other our ours ourselves out over own same she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves yeah yes oh ok okay
im ive id ill youre youve dont didnt doesnt isnt wasnt cant wont thats s t d ll m re ve
really just like well got get gets getting go going went one thing things lol haha
""".split())
# Words that ask or remind rather than say what about: dropped from queries (not from messages).
QUERY_FILLER = frozenset("""
remember remind reminded recall recalled tell told telling say said saying mention mentioned know knew forget forgot
forgotten again ago ages once back then thing things stuff question questions answer quick random sorry hey hi hello hmm
um uh please thanks thank wait actually anyway memory mind think thought wonder wondering ask asked talk talked
""".split())


# ---------------------------------------------------------------------- words


def stem(word: str) -> str:
    """A light English stemmer: plural and common verb endings, nothing clever.

        >>> [stem(w) for w in ["sisters", "cities", "named", "hiking", "boss", "glass"]]
        ['sister', 'city', 'nam', 'hik', 'boss', 'glass']

    Aggressive stemmers merge words that should stay apart ("news"/"new"); this one only folds
    the endings that separate a question from the statement it asks about.
    """
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4:
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased unicode words and numbers, stop words dropped, lightly stemmed.

        >>> tokenize("What's my sister's name? She turned 31 in Lisbon!")
        ['sister', 'name', 'turn', '31', 'lisbon']
    """
    words = (w.replace("_", "") for w in _WORD.findall(text.lower()))
    return [stem(w) for w in words if w and w not in STOP_WORDS]


def pieces(text: str, *, max_pieces: int = 12, min_words: int = 4, clauses: bool = True) -> list[str]:
    """The texts to embed for one message: its statements, one piece per sentence, then clauses.

        >>> pieces("Rainy again. I grew up in Porto, so I like it. How are you?")
        ['Rainy again. I grew up in Porto, so I like it.', 'Rainy again. I grew up in Porto', 'so I like it.']
        >>> pieces("I grew up in Porto. My sister Mara lives in Lisbon now.")
        ['I grew up in Porto.', 'My sister Mara lives in Lisbon now.']

    One vector for a long message is an average of everything in it, and a fact in one of its
    sentences drowns; the index scores a message by its best piece. The same holds inside a
    sentence: "I grew up in Tucson, so this kind of rain doesn't bother me" is far from "where
    did I grow up?" until its first clause stands alone, so a sentence of several clauses also
    gives one piece per clause (`clauses`), after the sentences. Questions are left out when the
    message also states something ("How was your day?" matches every question asked later, and
    says nothing); a message of questions only is embedded whole. Sentences and clauses shorter
    than `min_words` words join the next; past `max_pieces` sentences are grouped evenly, and
    clauses stop at twice that many pieces in all.
    """
    said = sentences(text)
    statements = [s for s in said if not s.endswith("?")] or said
    merged = _joined_short(statements, min_words)
    if len(merged) > max_pieces:
        size = -(-len(merged) // max_pieces)
        merged = [" ".join(merged[i:i + size]) for i in range(0, len(merged), size)]
    out = merged or [text]
    if clauses:
        for sentence in list(out):
            parts = _joined_short([c.strip() for c in _CLAUSE.split(sentence) if c.strip()], min_words)
            parts = [c.strip(",;:—–- ") for c in parts]
            out += [c for c in parts if c not in out][: 2 * max_pieces - len(out)] if len(parts) > 1 else []
    return out


_CLAUSE = re.compile(r"(?<=\w[,;:])\s+|\s+(?=[—–]\s)|(?<=\w)\s+(?=-\s)")  # cut after , ; : and before a dash


def _joined_short(parts: list[str], min_words: int) -> list[str]:
    """Parts shorter than `min_words` words joined to the next one (the last to the one before)."""
    merged: list[str] = []
    for part in parts:
        if merged and len(merged[-1].split()) < min_words:
            merged[-1] = f"{merged[-1]} {part}"
        else:
            merged.append(part)
    if len(merged) > 1 and len(merged[-1].split()) < min_words:
        merged[-2:] = [f"{merged[-2]} {merged[-1]}"]
    return merged


def entities(text: str, known: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Index terms of the capitalised words inside sentences: the names and places a text mentions.

        >>> entities("Had brunch with Ibrahim. We met in Lyon, said Mara.")
        ['ibrahim', 'lyon', 'mara']
        >>> entities('*She smiles.* "Ask Ines," *Elias says, nodding at (Silver Gate).*')
        ['ine', 'elia', 'silver', 'gate']
        >>> entities("Mara called. Lunch with Mara.", known={"mara"}), entities("Mara called.")
        (['mara'], [])

    Used to follow a first hit to the next ("my best friend Ibrahim" -> "Ibrahim is getting
    married in Lyon"). Role-play marks around a word (`*actions*`, quotes, brackets) do not
    hide it. The first word of a sentence is capitalised anyway, so it counts only when its
    terms are `known` names (seen capitalised inside a sentence elsewhere in the conversation).
    """
    found: list[str] = []
    for sentence in sentences(text):
        for place, word in enumerate(sentence.split()):
            if not word[:1].isalnum():
                word = _LEADING_MARKS.sub("", word)
            if word[:1].isupper():
                terms = tokenize(word)
                if place or (terms and all(t in known for t in terms)):
                    found += terms
    return list(dict.fromkeys(found))


_LEADING_MARKS = re.compile(r"^[^\w]+")


# ---------------------------------------------------------------------- queries


def hits_for_budget(memory_tokens: int, floor: int = 12, per_hit: int = 32, ceiling: int = 56) -> int:
    """How many hits to ask the index for: enough to fill `memory_tokens`, at least `floor`.

        >>> hits_for_budget(300), hits_for_budget(1000), hits_for_budget(30_000)
        (12, 31, 56)

    A fixed k leaves a large budget half empty and spends search time a small one cannot use;
    `per_hit` is about what one recollection costs when the best are sent whole and the rest in
    brief (`context.WHOLE_SHARE`). The `ceiling` bounds the time hits cost before the upstream
    call (search, passages and context together, `bench.recall.speed`).
    """
    return max(floor, min(ceiling, memory_tokens // max(1, per_hit)))


def query_turns(turns: Sequence[Mapping[str, Any]], *, max_turns: int = 3, min_terms: int = 2) -> list[str]:
    """What to search with: the newest user turn, and the turns before it when it says too little.

        >>> query_turns([{"role": "user", "content": "My sister Mara moved to Lisbon."},
        ...              {"role": "assistant", "content": "Oh? And?"},
        ...              {"role": "user", "content": "What was her name again?"}])
        ['My sister Mara moved to Lisbon.', 'Oh? And?', 'What was her name again?']

    "What was her name again?" has one specific word (`query_terms` drops filler like "again",
    "remind", "told") and points back ("her"): the turns before it say whose name, and join the
    query. So do they for a turn with no specific word at all ("Can you remind me?"). "What's
    my address?" is short but complete, and stands alone: measured, the turns before a complete
    question are usually about something else and only add noise. System and tool messages
    never take part; no user turn, no query.
    """
    spoken = [(t.get("role"), _text(t)) for t in turns if t.get("role") in ("user", "assistant") and _text(t).strip()]
    last_user = max((i for i, (role, _) in enumerate(spoken) if role == "user"), default=None)
    if last_user is None:
        return []
    first = last_user - max_turns + 1 if _refers_back(spoken[last_user][1], min_terms) else last_user
    return [text for _, text in spoken[max(0, first): last_user + 1]]


def build_query(turns: Sequence[Mapping[str, Any]], *, max_turns: int = 3, min_terms: int = 2) -> str:
    """The query turns as one text: embed it once and search with it (`SessionIndex.search`).

    Measured against mixing the turns' vectors with decaying weights, one vector of the joined
    text finds more: the embedding reads the vague question in the light of its context.
    """
    return "\n".join(query_turns(turns, max_turns=max_turns, min_terms=min_terms))


def _refers_back(text: str, min_terms: int) -> bool:
    """Says too little alone: no specific word, or fewer than `min_terms` and a word pointing back."""
    count = len(query_terms(text))
    words = set(_WORD.findall(text.lower()))
    return count == 0 or (count < min_terms and bool(words & BACK_REFERENCES))


def query_terms(parts: str | Sequence[tuple[str, float]]) -> dict[str, float]:
    """Each specific query word with its weight: the heaviest part it occurs in.

        >>> query_terms([("my sister", 0.5), ("remind me, her name?", 1.0)])
        {'sister': 0.5, 'name': 1.0}
    """
    if isinstance(parts, str):
        parts = [(parts, 1.0)]
    terms: dict[str, float] = {}
    for text, weight in parts:
        for term in tokenize(text):
            if term not in _QUERY_FILLER_STEMS:
                terms[term] = max(weight, terms.get(term, 0.0))
    return terms


_QUERY_FILLER_STEMS = frozenset(stem(w) for w in QUERY_FILLER)
# Words that point back at something said just before ("what was *her* name?", "tell me about *that*").
BACK_REFERENCES = frozenset("it its that this these those they them their he him his she her hers there one".split())


def _text(turn: Mapping[str, Any]) -> str:
    return message_text(turn)


# ---------------------------------------------------------------------- near-duplicates


def distinct(vectors: np.ndarray | None, texts: Sequence[str], threshold: float, limit: int | None = None) -> list[int]:
    """Indices to keep, best first: a text equal to a kept one, or a vector closer than `threshold`, goes.

        >>> distinct(None, ["Hi there", "hi  there!", "bye"], 0.9)
        [0, 2]

    Stops once `limit` are kept.
    """
    kept: list[int] = []
    seen: set[str] = set()
    close = vectors @ vectors.T > threshold if vectors is not None and len(vectors) else None
    near = np.zeros(len(texts), dtype=bool)  # close to a kept one
    for i, text in enumerate(texts):
        if limit is not None and len(kept) >= limit:
            break
        key = " ".join(_WORD.findall(text.lower()))
        if key in seen or near[i]:
            continue
        seen.add(key)
        kept.append(i)
        if close is not None:
            near |= close[i]
    return kept


# ---------------------------------------------------------------------- persona chunks


def chunk_text(text: str, max_tokens: int, overlap: int = 0,
               count: Callable[[str], int] | None = None) -> list[str]:
    """Text cut into pieces of at most `max_tokens`, on sentence (else word) boundaries.

        >>> chunk_text("One. Two. Three.", max_tokens=2, overlap=1, count=lambda s: len(s.split()))
        ['One. Two.', 'Two. Three.']

    Each piece starts with the last sentences of the one before, up to `overlap` tokens, so a
    fact that straddles a cut is whole in at least one piece. A piece is never empty.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    count = count or count_tokens
    units = [u for s in sentences(text) for u in _fit_units(s, max_tokens, count)]
    chunks: list[list[str]] = []
    current: list[str] = []
    for unit in units:
        if current and count(" ".join([*current, unit])) > max_tokens:
            chunks.append(current)
            current = _tail(current, min(overlap, max_tokens - count(unit)), count)
        current.append(unit)
    if current and (not chunks or current != chunks[-1][-len(current):]):
        chunks.append(current)
    return [" ".join(c) for c in chunks]


def _fit_units(sentence: str, max_tokens: int, count: Callable[[str], int]) -> Iterable[str]:
    """A sentence, or word windows of it when it alone is over the limit."""
    if count(sentence) <= max_tokens:
        yield sentence
        return
    piece: list[str] = []
    for word in sentence.split():
        if piece and count(" ".join([*piece, word])) > max_tokens:
            yield " ".join(piece)
            piece = []
        piece.append(word)
    if piece:
        yield " ".join(piece)


def _tail(units: list[str], budget: int, count: Callable[[str], int]) -> list[str]:
    """The last units of a chunk that fit in `budget` tokens (the overlap)."""
    tail: list[str] = []
    for unit in reversed(units):
        if budget <= 0 or count(" ".join([unit, *tail])) > budget:
            break
        tail.insert(0, unit)
    return tail
