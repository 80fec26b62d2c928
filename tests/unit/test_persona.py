"""Persona memory: chunking prompts, what a chunk adds to the current prompt, ranking, storage."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import numpy as np
import pytest

from app.memory.embedding.embedder import Embedder, load_backend
from app.memory.persona import REASON, ChunkSet, PersonaHit, PersonaMemory, PersonaSettings, memory_item, rank
from app.memory.persona_text import chunk_hash, coverage, flat, prompt_chunks, split_prompt, unseen, vector_texts
from app.memory.search.retrieval import query_terms
from app.memory.records import PersonaChunk
from app.tokens import count_tokens

KEY = "0123456789abcdef"
CARD = ("You are Mira, a wandering cartographer in the kingdom of Eldra. Mira is curious, patient and a little "
        "stubborn. She carries a brass compass that belonged to her mother. She speaks in a gentle, thoughtful "
        "way and likes to sketch landscapes while she talks.\n"
        "Write Mira's next reply in a fictional chat between Mira and the user. Stay in character.")
GATE = "The Silver Gate of Varnholm opens only at moonrise."
LORE = f"[World info]\n{GATE}\nThe ferrymen of Brannock charge double during the spring floods."
SETTINGS = PersonaSettings(chunk_tokens=48, chunk_overlap=12)


@pytest.fixture(scope="module")
def backend():
    cache = Path(os.environ.get("EMBEDDING_CACHE_DIR") or Path(__file__).parents[2] / "data" / "models")
    return load_backend("all-MiniLM-L6-v2", "auto", cache, 1)


def chunk_set(backend, prompts: list[str], settings: PersonaSettings = SETTINGS) -> ChunkSet:
    """The ChunkSet the store would hold after these prompts were sent, with real vectors."""
    chunks = ChunkSet(backend.dim)
    for i, (h, text, tokens) in enumerate(prompt_chunks(prompts, settings.chunk_tokens, settings.chunk_overlap)):
        chunks.add([PersonaChunk(id=i + 1, hash=h, text=text, token_count=tokens,
                                 embedding=backend.encode(vector_texts(text)))])
    return chunks


def ask(backend, chunks: ChunkSet, question: str, current: str | None, settings=SETTINGS) -> list[PersonaHit]:
    return rank(chunks, backend.encode([question])[0], query_terms(question), current, settings)


# ---------------------------------------------------------------------- chunks


def test_split_prompt_keeps_lines_fits_the_limit_and_loses_nothing():
    prompt = "\n".join(f"Entry {i}: the tower of Kel number {i} guards the northern road" for i in range(30))
    chunks = split_prompt(prompt, 40, 20)
    assert all(count_tokens(c) <= 40 for c in chunks)
    lines = {line for c in chunks for line in c.split("\n")}
    assert lines == set(prompt.split("\n"))
    assert all(a.split("\n")[-1] == b.split("\n")[0] for a, b in zip(chunks, chunks[1:]))  # the overlap


@pytest.mark.parametrize("text, expected", [
    ("", []),
    ("  \n\n ", []),
    ("One line", ["One line"]),
    ("Name: Mira\n\n   Age: 20", ["Name: Mira\nAge: 20"]),
])
def test_split_prompt_small_cases(text, expected):
    assert split_prompt(text, 32, 8) == expected


def test_identical_chunks_are_one_whatever_their_whitespace():
    chunks = prompt_chunks([CARD, CARD.replace(". ", ".  "), CARD + "\n" + LORE], 48, 12)
    hashes = [h for h, _, _ in chunks]
    assert len(hashes) == len(set(hashes))
    assert chunk_hash("a  b\nc") == chunk_hash("a b c")
    assert [t for _, t, _ in chunks[:len(split_prompt(CARD, 48, 12))]] == split_prompt(CARD, 48, 12)
    assert any(GATE in t for _, t, _ in chunks)


@pytest.mark.parametrize("text, current, expected", [
    ("You are Ada. The gate opens at moonrise.", "You are Ada.\nYou like tea.", ["The gate opens at moonrise."]),
    ("You are Ada. You like tea.", "You  are Ada.\n\nYou like tea.", []),
    ("Name: Ada\nAge: 30", "Name: Ada\nAge: 31", ["Age: 30"]),
    ("Everything new.", "", ["Everything new."]),
])
def test_unseen_sentences(text, current, expected):
    assert unseen(text, flat(current)) == expected


def test_coverage_weighs_the_query_words():
    terms = query_terms("When does the silver gate open?")
    assert coverage(terms, frozenset({"silver", "gate", "open"})) == 1.0
    assert 0 < coverage(terms, frozenset({"gate"})) < 1
    assert coverage({}, frozenset({"gate"})) == 0.0


# ---------------------------------------------------------------------- the in-RAM set


def test_chunk_set_adds_each_chunk_once_and_skips_chunks_without_vectors():
    chunks = ChunkSet(4)
    one = PersonaChunk(id=1, hash="h1", text="A grey cat slept. A brown dog sat down.", embedding=np.eye(4)[:3])
    chunks.add([one, one, PersonaChunk(id=2, hash="h2", text="No vector yet.")])
    chunks.add([one])
    assert len(chunks) == 1 and chunks.vectors.shape == (3, 4) == (len(vector_texts(one.text)), 4)
    assert list(chunks.rows(0)) == [0, 1, 2]


def test_rows_stored_for_other_pieces_count_whole_but_not_for_a_part():
    chunks = ChunkSet(4)
    text = "The old mill burned down. The new mill stands by the river."
    chunks.add([PersonaChunk(id=1, hash="h", text=text, embedding=np.eye(4)[:2])])  # pieces would give 3 rows
    assert chunks.view(0, "").rows.tolist() == [0, 1]
    part = chunks.view(0, "The old mill burned down.")
    assert part.rows.tolist() == [0] and part.sentences == ("The new mill stands by the river.",)
    assert part.scale == pytest.approx(len(part.sentences[0]) / len(text))


def test_best_row_per_chunk():
    chunks = ChunkSet(2)
    chunks.add([PersonaChunk(id=1, hash="a", text="x", embedding=[[1, 0]]),
                PersonaChunk(id=2, hash="b", text="The first row is here. The second row is here.",
                                embedding=[[0, 1], [1, 0], [0.6, 0.8]])])
    _, best = chunks.cosines(np.array([0.6, 0.8], dtype=np.float32))
    assert best.round(2).tolist() == pytest.approx([0.6, 1.0])


def test_coverages_of_all_chunks_agree_with_coverage_of_each():
    texts = ["The silver gate opens at moonrise.", "Ferrymen charge double in spring.", "Nothing here at all."]
    chunks = ChunkSet(2)
    chunks.add([PersonaChunk(id=i + 1, hash=str(i), text=t, embedding=[1, 0]) for i, t in enumerate(texts)])
    for question in ["When does the silver gate open?", "ferrymen gate spring", "", "zebra"]:
        terms = query_terms(question)
        assert chunks.coverages(terms).tolist() == pytest.approx([coverage(terms, w) for w in chunks.words])


# ---------------------------------------------------------------------- ranking with real vectors


def test_a_dropped_lorebook_line_comes_back_for_a_question_about_it(backend):
    chunks = chunk_set(backend, [CARD + "\n" + LORE, CARD])
    hits = ask(backend, chunks, "When does the gate of Varnholm open?", current=CARD)
    assert hits and GATE in hits[0].text
    assert all(s not in hits[0].text for s in ("brass compass", "Stay in character"))  # the card is in context
    assert hits[0].cosine > 0.5 and "varnholm" in hits[0].words


@pytest.mark.parametrize("question", ["What should we cook for dinner tonight?", "Do you know any good songs?",
                                      "How was your day?", "I love the rain today."])
def test_unrelated_questions_get_nothing(backend, question):
    chunks = chunk_set(backend, [CARD + "\n" + LORE, CARD])
    assert ask(backend, chunks, question, current=CARD) == []


def test_nothing_the_current_prompt_holds_is_offered(backend):
    chunks = chunk_set(backend, [CARD + "\n" + LORE, CARD])
    assert ask(backend, chunks, "Tell me about your brass compass.", current=CARD) == []
    assert ask(backend, chunks, "When does the Silver Gate open?", current=CARD + "\n" + LORE) == []
    found = ask(backend, chunks, "Tell me about your brass compass.", current=LORE)  # the card was dropped
    assert found and "brass compass" in found[0].text


def test_a_chunk_half_in_the_prompt_is_scored_and_shown_by_its_new_half(backend):
    old = CARD + "\n" + LORE
    current = CARD + "\nThe ferrymen of Brannock charge double during the spring floods."
    chunks = chunk_set(backend, [old], PersonaSettings(chunk_tokens=400, chunk_overlap=0))  # one chunk of all
    assert len(chunks) == 1
    hits = ask(backend, chunks, "When does the Silver Gate open?", current)
    assert [h.text for h in hits] == [f"[World info] {GATE}"]
    assert ask(backend, chunks, "Tell me about your brass compass.", current) == []  # its old half is in context


def test_at_most_k_and_never_the_same_sentence_twice(backend):
    prompts = [CARD + "\n" + LORE + f"\nThe gate keeper number {i} is called Oskar the {i}th." for i in range(6)]
    chunks = chunk_set(backend, prompts)
    hits = ask(backend, chunks, "Who keeps the Silver Gate?", current=CARD, settings=PersonaSettings(k=2))
    assert 1 <= len(hits) <= 2
    texts = [s for h in hits for s in unseen(h.text, "")]
    assert len(texts) == len(set(texts))
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def greedy(chunks: ChunkSet, vector, terms, current: str, settings: PersonaSettings) -> list[PersonaHit]:
    """The definition `rank` must meet: score every chunk against what is in context, take the
    best, and again, k times."""
    from app.memory.persona import _exact

    cosine, _ = chunks.cosines(vector)
    chosen, shown = [], ""
    while len(chosen) < settings.k:
        hits = [_exact(chunks, i, cosine, terms, chunks.view(i, current, shown), settings) for i in range(len(chunks))]
        hits = [h for h in hits if h is not None and h.score >= settings.min_score]
        if not hits:
            return chosen
        chosen.append(max(hits, key=lambda h: h.score))
        shown += " " + flat(chosen[-1].text)
    return chosen


def test_rank_equals_scoring_every_chunk_again_after_each_choice():
    """Its shortcuts are safe: exact scores never exceed their whole-chunk bound, and shrink as
    better chunks are chosen."""

    rng = random.Random(5)
    words = "gate river tower moon road keeper silver north lamp ferry".split()
    for _ in range(40):
        sentences = [f"{rng.choice(words).title()} {rng.choice(words)} {rng.choice(words)} {i}." for i in range(30)]
        chunks = ChunkSet(6)
        for n in range(rng.randint(1, 25)):
            text = " ".join(rng.sample(sentences, rng.randint(1, 4)))
            vectors = np.asarray([unit(rng) for _ in vector_texts(text)], dtype=np.float32)
            chunks.add([PersonaChunk(id=n + 1, hash=str(n), text=text, embedding=vectors)])
        current = " ".join(rng.sample(sentences, 10))
        query = " ".join(rng.sample(words, 2))
        settings = PersonaSettings(k=rng.randint(1, 4), min_score=rng.uniform(-0.5, 0.8))
        vector = unit(rng)
        expected = greedy(chunks, vector, query_terms(query), current, settings)
        assert rank(chunks, vector, query_terms(query), current, settings) == expected


def test_what_is_left_of_an_overlapping_chunk_must_be_relevant_on_its_own(backend):
    gate = f"{GATE} Only a lantern of blue glass can light the path to it."
    chunks = ChunkSet(backend.dim)
    for i, text in enumerate([f"{gate} The ferrymen of Brannock charge double during the spring floods.",
                              f"{gate} Mira once sketched the whole coast of Eldra in a single night."]):
        chunks.add([PersonaChunk(id=i + 1, hash=str(i), text=text, embedding=backend.encode(vector_texts(text)))])
    hits = ask(backend, chunks, "When does the Silver Gate of Varnholm open?", current=CARD,
               settings=PersonaSettings(k=3))
    assert len(hits) == 1 and GATE in hits[0].text  # the other chunk's remainder is not about the gate
    both = ask(backend, chunks, "Does the Silver Gate open in spring floods, and did Mira sketch it?", current=CARD,
               settings=PersonaSettings(k=3, min_score=0.3))
    assert len(both) == 2 and " ".join(h.text for h in both).count(GATE) == 1


def unit(rng: random.Random) -> np.ndarray:
    v = np.array([rng.gauss(0, 1) for _ in range(6)], dtype=np.float32)
    return v / np.linalg.norm(v)


def test_memory_item_says_what_it_is():
    item = memory_item(PersonaHit(7, "The gate opens at moonrise.", 0.81, 0.63, ("gate", "open")))
    assert item.kind == "persona" and item.position == 7 and item.message_ids == ()
    assert item.reasons == (REASON, "meaning 0.63", "words: gate, open")


def test_persona_items_render_as_earlier_character_information_first_in_the_block():
    from app.budget import BudgetPlan
    from app.context import MemoryItem, build_context

    plan = BudgetPlan(total=4000, response_reserve=0, prompt_budget=4000, persona_limit=800,
                      memories_limit=1200, recent_limit=2000)
    items = [memory_item(PersonaHit(9, GATE, 0.9, 0.7)), MemoryItem("User: I lost my map.", (4,), 1.0)]
    built = build_context(persona=CARD, client_messages=[{"role": "user", "content": "Where now?"}],
                          memories=items, summaries=[], story_so_far=None, emotion_line=None, plan=plan)
    block = built.messages[1]["content"]
    assert built.messages[0]["content"] == CARD
    assert "Earlier character/world information:\n- " + GATE in block
    assert block.index(GATE) < block.index("Earlier moments") < block.index("I lost my map")
    assert {i.kind for i in built.chosen} == {"persona", "memory"}


# ---------------------------------------------------------------------- with a real store and embedder


@pytest.fixture
async def memory(make_store, backend):
    embedder = Embedder(backend)
    await embedder.start()
    async with make_store() as store:
        await store.create_session(KEY, "chat-1")
        yield PersonaMemory(store, embedder, SETTINGS)
    await embedder.aclose()


@pytest.mark.anyio
async def test_remember_stores_each_chunk_once_with_vectors(memory):
    first = await memory.remember(KEY, [CARD])
    assert first == len(split_prompt(CARD, 48, 12)) and await memory.count(KEY) == first
    assert await memory.remember(KEY, [CARD, CARD]) == 0
    added = await memory.remember(KEY, [CARD, CARD + "\n" + LORE])
    assert 0 < added < first + 3
    stored = await memory.store.persona_chunks(KEY)
    assert len(stored) == first + added
    assert all(np.asarray(c.embedding).size == memory.embedder.dim * len(vector_texts(c.text)) for c in stored)


@pytest.mark.anyio
async def test_recall_uses_the_loaded_set_and_sees_chunks_stored_later(memory, backend):
    question = "When does the Silver Gate of Varnholm open?"
    vector = backend.encode([question])[0]
    assert await memory.recall(KEY, question, vector, CARD) == []
    assert memory.held() == 0
    await memory.remember(KEY, [CARD + "\n" + LORE, CARD])
    items = await memory.recall(KEY, question, vector, CARD)
    assert items and GATE in items[0].text and items[0].kind == "persona" and items[0].reasons[0] == REASON
    assert memory.held() == await memory.count(KEY)
    memory.forget(KEY)
    assert memory.held() == 0
    assert [i.text for i in await memory.recall(KEY, question, vector, CARD)] == [i.text for i in items]


@pytest.mark.anyio
async def test_concurrent_first_uses_share_one_load(memory):
    await memory.remember(KEY, [CARD])
    sets = await asyncio.gather(*(memory.chunks(KEY) for _ in range(5)))
    assert all(s is sets[0] for s in sets) and len(sets[0]) == await memory.count(KEY)


@pytest.mark.anyio
async def test_a_session_not_created_stores_nothing(memory):
    other = "fedcba9876543210"
    assert await memory.remember(other, [CARD]) == 0
    assert await memory.store.get_session(other) is None and await memory.store.persona_chunks(other) == []
    assert memory.store.backend != "sqlite" or not memory.store.session_path(other).exists()
    assert len(await memory.chunks(other)) == 0


@pytest.mark.anyio
async def test_search_shows_whole_chunks_and_whether_the_prompt_still_has_them(memory, backend):
    await memory.remember(KEY, [CARD + "\n" + LORE, CARD])
    question = "Silver Gate of Varnholm"
    found = await memory.search(KEY, question, backend.encode([question])[0], 5, CARD)
    assert found and found[0]["kind"] == "persona" and GATE in found[0]["content"]
    assert found[0]["in_current_persona"] is False
    again = await memory.search(KEY, question, backend.encode([question])[0], 5, CARD + "\n" + LORE)
    assert again[0]["in_current_persona"] is True
