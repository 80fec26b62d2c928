"""Ranking functions for recall: words, queries, fusion, re-scoring, passages and persona chunks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pytest

from app.memory.retrieval import (
    Passage,
    RetrievalWeights,
    asks,
    build_query,
    chunk_text,
    clip,
    companions,
    distinct,
    emotion_closeness,
    entities,
    excerpt,
    fuse,
    partner,
    passages,
    pieces,
    query_turns,
    query_terms,
    recency,
    rescore,
    rrf,
    stem,
    tokenize,
    turn_budget,
    when_label,
)
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
])
def test_entities(text, expected):
    assert entities(text) == expected


@pytest.mark.parametrize("texts, vectors, expected", [
    (["Hi there", "hi  there!", "bye"], None, [0, 2]),
    (["a", "b", "c"], [[1.0, 0.0], [0.999, 0.045], [0.0, 1.0]], [0, 2]),
    (["a", "b"], [[1.0, 0.0], [0.0, 1.0]], [0, 1]),
    ([], None, []),
])
def test_distinct(texts, vectors, expected):
    assert distinct(None if vectors is None else np.array(vectors), texts, 0.97) == expected


@pytest.mark.parametrize("text, limit, expected", [
    ("one two three four", 10, "one two…"), ("short", 10, "short"), ("unbrokenlongword", 5, "unbr…"),
    ("anything", 0, "anything"),
])
def test_clip(text, limit, expected):
    assert clip(text, limit) == expected


def test_when_label_shows_weekday_date_and_time():
    ts = datetime(2024, 3, 14, 18, 20).timestamp()
    assert when_label(ts) == "Thu 2024-03-14 18:20"
    assert when_label(None) is None
    assert when_label(float("nan")) is None


# ---------------------------------------------------------------------- passages


@dataclass
class Msg:
    id: int
    position: int
    role: str
    text: str
    created: float | None = None


@dataclass
class FakeHit:
    id: int
    score: float
    reasons: tuple[str, ...] = ()
    piece: int = -1


class Source:
    """Messages in conversation order, as an index would hand them out."""

    def __init__(self, *roles_texts: tuple[str, str]) -> None:
        self.msgs = [Msg(id=10 + i, position=i, role=r, text=t, created=1.7e9 + i) for i, (r, t) in enumerate(roles_texts)]
        self.by_id = {m.id: m for m in self.msgs}

    def message(self, id: int) -> Msg:
        return self.by_id[id]

    def neighbours(self, id: int, radius: int) -> list[int]:
        i = self.by_id[id].position
        return [m.id for m in self.msgs[max(0, i - radius): i + radius + 1] if m.id != id]


CHAT = Source(("user", "I grew up in Porto."), ("assistant", "Porto! Lovely city."), ("user", "Work was long."),
              ("assistant", "What are you naming the puppy?"), ("user", "Biscuit!"), ("assistant", "Cute."))


@pytest.mark.parametrize("hit, expected", [(10, 11), (11, 10), (14, 15), (13, 12), (15, 14)])
def test_partner_is_the_other_half_of_the_exchange(hit, expected):
    assert partner(CHAT, hit) == expected


@pytest.mark.parametrize("text, expected", [
    ("Who's your best friend? You never said.", True),
    ("Ha. What's new?", True),
    ("Why? Anyway. Lovely. Bye.", False),
    ("No question here.", False),
])
def test_asks_looks_at_the_last_two_sentences(text, expected):
    assert asks(text) is expected


QA = Source(("user", "Rainy again."), ("assistant", "Ugh. Who's your best friend, by the way? You never said."),
            ("user", "Oh, that's Ibrahim."), ("assistant", "Lovely."),
            ("user", "The weather turned and I spent the whole day inside with tea and a very long book."))


def test_a_question_brings_its_answer_and_a_short_answer_its_question():
    assert companions(QA, 11) == [12]  # the answer after it
    assert companions(QA, 12) == [11]  # the question it answers
    assert [p.ids for p in passages(QA, [FakeHit(12, 1.0)])] == [(11, 12)]
    assert sorted(companions(QA, 11, replies=True)) == [10, 12]  # also the user turn it replies to
    assert sorted(companions(QA, 12, replies=True)) == [11, 13]  # also its reply
    assert companions(QA, 14) == []  # a statement stands alone


def test_a_long_statement_after_a_question_stands_alone():
    chat = Source(("assistant", "How was your day?"),
                  ("user", "The weather turned and I spent the whole day inside with tea and a very long book."))
    assert companions(chat, 11) == []


def test_partner_of_a_lone_turn_is_none():
    assert partner(Source(("user", "alone")), 10) is None


def test_with_replies_a_user_hit_brings_its_reply_and_passages_are_ordered_by_score():
    got = passages(CHAT, [FakeHit(15, 0.4), FakeHit(10, 0.9, ("meaning 0.6",))], replies=True)
    assert [p.ids for p in got] == [(10, 11), (14, 15)]
    assert got[0].lines == (("user", "I grew up in Porto."), ("assistant", "Porto! Lovely city."))
    assert got[0].reasons == ("meaning 0.6",)
    assert got[0].position == 0 and got[0].when is not None


def test_touching_hits_merge_into_one_passage_with_the_best_score():
    got = passages(CHAT, [FakeHit(14, 0.8, ("words: biscuit",)), FakeHit(13, 0.5, ("meaning 0.4",))], replies=True)
    assert len(got) == 1
    assert got[0].ids == (12, 13, 14, 15)
    assert got[0].score == 0.8
    assert set(got[0].reasons) == {"words: biscuit", "meaning 0.4"}


def test_by_default_a_statement_comes_without_its_reply():
    assert [p.ids for p in passages(CHAT, [FakeHit(10, 1.0), FakeHit(14, 0.5)])] == [(10,), (13, 14)]


def test_without_pairing_only_hits_are_shown():
    assert [p.ids for p in passages(CHAT, [FakeHit(10, 1.0)], pair=False)] == [(10,)]


def test_a_pulled_in_turn_is_clipped_and_a_hit_never_is():
    long = "word " * 200
    source = Source(("user", long.strip()), ("assistant", long.strip()))
    (passage,) = passages(source, [FakeHit(10, 1.0)], replies=True, neighbour_chars=50)
    assert passage.lines[0][1] == long.strip()
    assert len(passage.lines[1][1]) <= 50 and passage.lines[1][1].endswith("…")


LONG_REPLY = ("The rain kept on all afternoon and the gutters overflowed again. We played cards by the window "
              "and argued about the rules for an hour. I grew up in Porto, so weather like this feels like home. "
              "Dinner was soup, then more soup, because nobody wanted to go out. The cat slept through all of it, "
              "curled on the radiator like a loaf. Tomorrow I should really fix the gutter before it falls off.")


def test_a_long_hit_is_cut_to_the_sentences_around_its_matched_piece():
    source = Source(("user", LONG_REPLY))
    match = pieces(LONG_REPLY).index("I grew up in Porto, so weather like this feels like home.")
    (passage,) = passages(source, [FakeHit(10, 1.0, piece=match)], turn_tokens=40)
    shown = passage.lines[0][1]
    assert "I grew up in Porto" in shown
    assert shown.startswith("… ") and shown.endswith(" …")  # both cuts are marked
    assert count_tokens(shown) <= 40 + 4  # the marks cost a token each, a space or two more
    assert passages(source, [FakeHit(10, 1.0, piece=match)], turn_tokens=None)[0].lines[0][1] == LONG_REPLY
    assert passages(source, [FakeHit(10, 1.0)], turn_tokens=40)[0].lines[0][1] == LONG_REPLY  # no piece known


def test_a_matched_clause_keeps_its_whole_sentence_even_over_the_limit():
    text = "Short one. " + "I grew up in Porto, a city of bridges and tiled walls and steep streets down to the river."
    clause = next(p for p in pieces(text) if p.startswith("a city of bridges"))
    assert excerpt(text, clause, 5) == "… " + text.split(". ", 1)[1]
    assert excerpt(text, "not in it", 5) == text  # a piece the text does not hold: whole
    assert excerpt("Fits.", "Fits.", 5) == "Fits."


def test_turn_budget_scales_with_the_memory_share():
    assert turn_budget(683) == 34 and turn_budget(4000) == 200 and turn_budget(100) == 32
    assert turn_budget(4000, share=0.0) is None


def test_no_hits_no_passages():
    assert passages(CHAT, []) == []
    assert isinstance(passages(CHAT, [FakeHit(10, 1.0)])[0], Passage)


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
    from app.tokens import count_tokens

    assert all(count_tokens(c) <= 60 for c in chunks)
    assert all(f"town number {i} " in " ".join(chunks) for i in range(40))


def test_chunk_text_rejects_a_useless_limit():
    with pytest.raises(ValueError):
        chunk_text("text", 0)
