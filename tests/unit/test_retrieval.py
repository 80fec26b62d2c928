"""Ranking functions for recall: words, queries, fusion, re-scoring, near-duplicates and persona chunks."""

from __future__ import annotations

import numpy as np
import pytest

from app.memory.search.retrieval import SENTENCE, build_query, chunk_text, distinct, entities, pieces, query_terms, query_turns, stem, tokenize
from app.memory.search.scoring import RetrievalWeights, emotion_closeness, fuse, recency, rescore, rrf
from app.tokens import count_tokens


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


# ---------------------------------------------------------------------- words


@pytest.mark.parametrize("word, expected", [
    ("sisters", "sister"), ("cities", "city"), ("moved", "mov"), ("hiking", "hik"), ("boss", "boss"),
    ("glass", "glass"), ("bus", "bus"), ("is", "is"), ("2024", "2024"), ("ring", "ring"),
])
def test_stem_folds_only_common_endings(word, expected):
    assert stem(word) == expected


@pytest.mark.parametrize("text, expected", [
    ("What's my sister's name?", ["sister", "name"]),
    ("She turned 31 in Lisbon!", ["turn", "31", "lisbon"]),
    ("Ünïcode café TALKS", ["ünïcode", "café", "talk"]),
    ("the and of to", []),
    ("snake_case words", ["snakecase", "word"]),
    ("", []),
])
def test_tokenize(text, expected):
    assert tokenize(text) == expected


@pytest.mark.parametrize("parts, expected", [
    ("Can you remind me what I told you?", {}),
    ("What is my sister called?", {"sister": 1.0, "call": 1.0}),
    ([("my sister", 0.5), ("her sister's name", 1.0)], {"sister": 1.0, "name": 1.0}),
    ([("Lisbon", 0.3)], {"lisbon": 0.3}),
])
def test_query_terms_drop_filler_and_keep_the_heaviest_weight(parts, expected):
    assert query_terms(parts) == expected



# ---------------------------------------------------------------------- queries


def test_a_specific_question_stands_alone():
    turns = [user("I went hiking in the Alps."), assistant("Sounds lovely."), user("Where did I grow up?")]
    assert query_turns(turns) == ["Where did I grow up?"]


def test_a_short_complete_question_stands_alone():
    turns = [user("The weather is awful today."), assistant("Stay dry!"), user("What's my phobia?")]
    assert query_turns(turns) == ["What's my phobia?"]


def test_a_question_that_points_back_takes_the_turns_before_it():
    turns = [user("Hi"), user("I was thinking about my sister Mara today."), assistant("Oh? What about her?"),
             user("What was her name again?")]
    assert query_turns(turns) == [t["content"] for t in turns[1:]]
    assert query_turns(turns, max_turns=2) == [t["content"] for t in turns[2:]]


def test_a_question_with_no_specific_word_takes_context_even_without_a_pronoun():
    turns = [user("My manager Oskar was on about deadlines again."), assistant("Ugh."), user("Can you remind me?")]
    assert len(query_turns(turns)) == 3


@pytest.mark.parametrize("turns, expected", [
    ([], []),
    ([assistant("Hello! How can I help?")], []),
    ([{"role": "system", "content": "You are Ada."}, user("hi there Ada")], ["hi there Ada"]),
    ([user("first"), {"role": "tool", "content": "42"}, user("What is it?")], ["first", "What is it?"]),
    ([user([{"type": "text", "text": "Where is Lisbon?"}, {"type": "image_url", "image_url": {"url": "x"}}])],
     ["Where is Lisbon?"]),
    ([user("What is my dog called?"), assistant("Biscuit!")], ["What is my dog called?"]),
])
def test_query_turns_edge_cases(turns, expected):
    assert query_turns(turns) == expected


def test_build_query_joins_the_turns():
    turns = [user("My sister Mara."), assistant("Yes?"), user("What was her name?")]
    assert build_query(turns) == "My sister Mara.\nYes?\nWhat was her name?"
    assert build_query([]) == ""


# ---------------------------------------------------------------------- fusion and re-scoring


@pytest.mark.parametrize("orders, weights, k, expected", [
    ([[0, 1, 2]], [1.0], 1.0, [1 / 2, 1 / 3, 1 / 4]),
    ([[0], [0]], [1.0, 2.0], 1.0, [3 / 2, 0.0, 0.0]),
    ([[2, 0], []], [1.0, 1.0], 10.0, [1 / 12, 0.0, 1 / 11]),
])
def test_rrf(orders, weights, k, expected):
    got = rrf([np.array(o, dtype=np.int64) for o in orders], weights, 3, k)
    assert got.tolist() == pytest.approx(expected)


def test_fuse_rrf_rewards_agreement_and_scales_to_one():
    cosine, bm25 = np.array([0.9, 0.5, 0.1]), np.array([0.0, 2.0, 1.0])
    got = fuse([cosine, bm25], [np.array([0, 1, 2]), np.array([1, 2])], [1.0, 1.0], rrf_k=10)
    assert got.max() == 1.0
    assert np.argmax(got) == 1  # second by meaning, first by words


def test_fuse_sum_uses_normalised_scores():
    got = fuse([np.array([0.2, 0.4]), np.array([0.0, 0.0])], [np.array([1, 0]), np.array([], dtype=np.int64)],
               [1.0, 1.0], mode="sum")
    assert got.tolist() == [0.0, 1.0]


def test_fuse_of_nothing_is_nothing():
    assert fuse([np.zeros(0)], [np.zeros(0, dtype=np.int64)], [1.0]).size == 0


@pytest.mark.parametrize("ages, half_life, expected", [
    ([0, 10, 20], 10, [1.0, 0.5, 0.25]), ([5], 0, [0.0]), ([-3], 10, [1.0]),
])
def test_recency(ages, half_life, expected):
    assert recency(np.array(ages), half_life).tolist() == pytest.approx(expected)


def test_emotion_closeness_is_one_for_the_same_distribution_and_zero_for_disjoint():
    rows = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [0.25, 0.25, 0.5]])
    got = emotion_closeness(rows, np.array([0.5, 0.5, 0.0]))
    assert got[0] == pytest.approx(1.0)
    assert got[1] == 0.0
    assert 0.0 < got[2] < 1.0


def test_rescore_adds_weighted_importance_recency_and_emotion():
    weights = RetrievalWeights(importance=0.2, recency=0.1, emotion=0.05)
    got = rescore(np.array([1.0, 1.0]), np.array([1.0, np.nan]), np.array([0.0, 1.0]), np.array([1.0, 0.0]), weights)
    assert got.tolist() == pytest.approx([1.0 + 0.2 + 0.05, 1.0 + 0.2 * 0.5 + 0.1])


# ---------------------------------------------------------------------- texts


@pytest.mark.parametrize("text, expected", [
    ("Just one sentence here", ["Just one sentence here"]),
    ("I grew up in Porto. My sister Mara lives in Lisbon.", ["I grew up in Porto.", "My sister Mara lives in Lisbon."]),
    ("Ok. I grew up in Porto. How are you?", ["Ok. I grew up in Porto."]),
    ("How are you? What's new?", ["How are you? What's new?"]),
    ("", [""]),
])
def test_pieces_are_the_statements(text, expected):
    assert pieces(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("I grew up in Tucson, so this kind of rain doesn't bother me at all.",
     ["I grew up in Tucson, so this kind of rain doesn't bother me at all.", "I grew up in Tucson",
      "so this kind of rain doesn't bother me at all."]),
    ("Our new place is number 154 Harbour Row, come visit.", ["Our new place is number 154 Harbour Row, come visit."]),
    ("New boss started today, Oskar, seems nice but talks fast.",
     ["New boss started today, Oskar, seems nice but talks fast.", "New boss started today",
      "Oskar, seems nice but talks fast."]),
    ("Ok, fine. I moved to Lyon; it rains a lot there.", ["Ok, fine. I moved to Lyon; it rains a lot there.",
                                                          "Ok, fine. I moved to Lyon", "it rains a lot there."]),
    ("Well — I moved to Lyon last spring — it rains all the time.",
     ["Well — I moved to Lyon last spring — it rains all the time.", "Well — I moved to Lyon last spring",
      "it rains all the time."]),
])
def test_sentences_of_several_clauses_also_give_their_clauses(text, expected):
    assert pieces(text) == expected
    assert pieces(text, clauses=False) == expected[:1]


def test_clauses_stop_at_twice_the_piece_limit():
    text = " ".join(f"Sentence {i} is here, and clause {i} follows it." for i in range(30))
    assert len(pieces(text, max_pieces=6)) == 12


def test_pieces_are_grouped_past_the_limit():
    text = " ".join(f"Sentence number {i} is here." for i in range(30))
    got = pieces(text, max_pieces=12, clauses=False)
    assert len(got) <= 12
    assert " ".join(got) == text


@pytest.mark.parametrize("text, expected", [
    ("Had brunch with Ibrahim. We met in Lyon, said Mara.", ["ibrahim", "lyon", "mara"]),
    ("Nothing capitalised here except the start.", []),
    ("Sablewood Studios is moving to Boise", ["studio", "boise"]),
    ('*She waves.* "Ask Mara," *Elias says, pointing at (Silver Gate).*', ["mara", "elia", "silver", "gate"]),
    ("Tell \"Bram\" and 'Ines' hi.", ["bram", "ine"]),
])
def test_entities(text, expected):
    assert entities(text) == expected


def test_a_sentence_opening_name_counts_once_the_conversation_knows_it():
    text = "Ibrahim is getting married. The wedding is in Lyon."
    assert entities(text) == ["lyon"]
    assert entities(text, known={"ibrahim"}) == ["ibrahim", "lyon"]
    assert entities("The wedding.", known={"wed"}) == []  # only capitalised words are names


@pytest.mark.parametrize("text, expected", [
    ('*She smiles.* "Welcome back." Mara waves.', ['*She smiles.*', '"Welcome back."', "Mara waves."]),
    ("I said (quietly.) Then left!' Fine.", ["I said (quietly.)", "Then left!'", "Fine."]),
    ('He yelled "Stop!") and ran.', ['He yelled "Stop!")', "and ran."]),
    ("Version 2.5 is out. Ok", ["Version 2.5 is out.", "Ok"]),
])
def test_sentences_end_after_closing_quotes_brackets_and_action_marks(text, expected):
    assert [s for s in SENTENCE.split(text) if s] == expected


@pytest.mark.parametrize("texts, vectors, expected", [
    (["Hi there", "hi  there!", "bye"], None, [0, 2]),
    (["a", "b", "c"], [[1.0, 0.0], [0.999, 0.045], [0.0, 1.0]], [0, 2]),
    (["a", "b"], [[1.0, 0.0], [0.0, 1.0]], [0, 1]),
    ([], None, []),
])
def test_distinct(texts, vectors, expected):
    assert distinct(None if vectors is None else np.array(vectors), texts, 0.97) == expected


# ---------------------------------------------------------------------- persona chunks


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize("text, max_tokens, overlap, expected", [
    ("One. Two. Three.", 2, 1, ["One. Two.", "Two. Three."]),
    ("One. Two. Three.", 2, 0, ["One. Two.", "Three."]),
    ("One. Two. Three.", 10, 3, ["One. Two. Three."]),
    ("a b c d e f g", 3, 0, ["a b c", "d e f", "g"]),
    ("Para one.\n\nPara two.", 2, 0, ["Para one.", "Para two."]),
    ("", 5, 0, []),
])
def test_chunk_text(text, max_tokens, overlap, expected):
    assert chunk_text(text, max_tokens, overlap, count=words) == expected


def test_chunks_fit_the_limit_with_real_tokens_and_lose_nothing():
    text = " ".join(f"Ada was born in town number {i} and loves tea." for i in range(40))
    chunks = chunk_text(text, 60, 15)
    assert all(count_tokens(c) <= 60 for c in chunks)
    assert all(f"town number {i} " in " ".join(chunks) for i in range(40))


def test_chunk_text_rejects_a_useless_limit():
    with pytest.raises(ValueError):
        chunk_text("text", 0)
