"""Passages: hits grown into exchanges, merged where they touch, long turns cut around the match."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from app.memory.search.passages import (
    Passage,
    asks,
    brief,
    clip,
    clip_end,
    companions,
    excerpt,
    partner,
    passages,
    turn_budget,
    when_label,
)
from app.memory.search.retrieval import pieces
from app.tokens import count_tokens


@pytest.mark.parametrize("text, limit, expected", [
    ("one two three four", 10, "one two…"), ("short", 10, "short"), ("unbrokenlongword", 5, "unbr…"),
    ("anything", 0, "anything"),
])
def test_clip(text, limit, expected):
    assert clip(text, limit) == expected


@pytest.mark.parametrize("text, limit, expected", [
    ("Lovely day. So what's your sister called?", 32, "…So what's your sister called?"),
    ("Lovely day. So what's your sister called?", 29, "…what's your sister called?"),
    ("short", 10, "short"), ("unbrokenlongword", 5, "…word"), ("anything", 0, "anything"),
])
def test_clip_end_keeps_the_end_without_half_words(text, limit, expected):
    assert clip_end(text, limit) == expected
    assert limit <= 0 or len(clip_end(text, limit)) <= limit


def test_when_label_shows_weekday_and_date():
    ts = datetime(2024, 3, 14, 18, 20).timestamp()
    assert when_label(ts) == "Thu 2024-03-14"
    assert when_label(None) is None
    assert when_label(float("nan")) is None




@dataclass
class Msg:
    id: int
    position: int
    role: str
    text: str
    created: float | None = None
    name: str | None = None


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


def test_a_long_question_before_a_hit_shows_its_end_and_a_reply_after_one_its_start():
    chatter = "The rain kept on all afternoon and the gutters overflowed again, then the lights went out. "
    source = Source(("assistant", chatter * 3 + "Anyway, what's your sister called?"), ("user", "Mara."),
                    ("assistant", "Mara! What a lovely name. " + chatter * 3))
    (passage,) = passages(source, [FakeHit(11, 1.0)], replies=True, neighbour_chars=60)
    before, hit, after = (text for _, text in passage.lines)
    assert before.startswith("…") and before.endswith("what's your sister called?") and len(before) <= 60
    assert hit == "Mara."
    assert after.startswith("Mara! What a lovely name.") and after.endswith("…") and len(after) <= 60


def test_a_small_memory_share_clips_pulled_in_turns_shorter():
    source = Source(("assistant", "Well. " * 60 + "What's your sister called?"), ("user", "Mara."))
    (wide,) = passages(source, [FakeHit(11, 1.0)], neighbour_chars=600)
    (narrow,) = passages(source, [FakeHit(11, 1.0)], neighbour_chars=600, turn_tokens=12)
    assert len(wide.lines[0][1]) > 300 and len(narrow.lines[0][1]) <= 48
    assert narrow.lines[0][1].endswith("What's your sister called?")


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


def test_a_clause_across_a_sentence_break_keeps_both_sentences():
    text = "Rainy again. I grew up in Porto, so I like it. The cat is asleep on the radiator all day long."
    clause = "Rainy again. I grew up in Porto"
    assert clause in pieces(text)
    assert excerpt(text, clause, 3, count=lambda s: len(s.split())) == "Rainy again. I grew up in Porto, so I like it. …"


def test_turn_budget_scales_with_the_memory_share():
    assert turn_budget(683) == 34 and turn_budget(4000) == 200 and turn_budget(100) == 32
    assert turn_budget(4000, share=0.0) is None


def test_a_passage_names_its_speakers():
    source = Source(("user", "Where is the key?"), ("assistant", "Behind the tapestry."))
    source.by_id[11].name = "Bram"
    (passage,) = passages(source, [FakeHit(11, 1.0)], replies=True)
    assert passage.speakers == (None, "Bram")


def test_no_hits_no_passages():
    assert passages(CHAT, []) == []
    assert isinstance(passages(CHAT, [FakeHit(10, 1.0)])[0], Passage)


def test_a_recollection_is_labelled_with_its_speaker_on_one_line():
    from app.memory.search.recall import passage_item

    source = Source(("user", "Where is the key?"), ("assistant", "Behind the tapestry."))
    source.by_id[11].name = "Bram\nthe " + "very " * 30 + "old"
    (passage,) = passages(source, [FakeHit(11, 1.0)], replies=True)
    first, second = passage_item(passage).text.split("\n")
    assert first == "User: Where is the key?"
    label, said = second.split(": ", 1)
    assert label.startswith("Bram the very") and len(label) == 64 and said == "Behind the tapestry."


def test_a_question_brings_its_answer_whichever_speaker_asks():
    chat = Source(("user", "Rainy again. How did the kids handle the accident?"),
                  ("assistant", "They were scared, but we told them their brother would be fine."))
    assert companions(chat, 10) == [11]


def days_apart(*roles_texts: tuple[str, str], day_of: tuple[int, ...]) -> Source:
    source = Source(*roles_texts)
    for msg, day in zip(source.msgs, day_of):
        msg.created = datetime(2023, 5, 1 + day, 12).timestamp() + msg.position
    return source


def test_touching_hits_of_two_days_are_two_passages_each_with_its_date():
    chat = days_apart(("user", "I ran a charity race."), ("assistant", "Hey! Since we last talked, I adopted a cat."),
                      day_of=(0, 1))
    got = passages(chat, [FakeHit(10, 0.9), FakeHit(11, 0.8)])
    assert [(p.ids, p.when) for p in got] == [((10,), "Mon 2023-05-01"), ((11,), "Tue 2023-05-02")]


def test_a_pulled_in_question_stays_with_its_answer_across_midnight():
    chat = days_apart(("assistant", "What are you naming the puppy?"), ("user", "Biscuit!"), day_of=(0, 1))
    assert [p.ids for p in passages(chat, [FakeHit(11, 0.9)])] == [(10, 11)]


# ---------------------------------------------------------------------- the short form


PORTO = pieces(LONG_REPLY).index("I grew up in Porto, so weather like this feels like home.")


@pytest.mark.parametrize("text, piece, tokens, expected", [
    (LONG_REPLY, PORTO, 16, "… I grew up in Porto, so weather like this feels like home. …"),
    ("Porto, born and raised.", 0, 16, "Porto, born and raised."),  # short already: whole
    ("One. Two.", 5, 5, "One. Two."),  # short by characters: never counted
    (LONG_REPLY, -1, 10, clip(LONG_REPLY, 40)),  # no piece matched: the opening
    (LONG_REPLY, 99, 10, clip(LONG_REPLY, 40)),  # a piece the turn does not have: the same
])
def test_brief_keeps_the_matched_sentences(text, piece, tokens, expected):
    assert brief(text, FakeHit(1, 1.0, piece=piece), tokens) == expected


ASKING = Source(("user", LONG_REPLY + " And where did you grow up?"), ("assistant", "Lisbon, mostly."))


def test_a_passage_in_brief_is_its_hits_alone_cut_short():
    (passage,) = passages(ASKING, [FakeHit(10, 1.0, piece=PORTO)], brief_tokens=16)
    assert len(passage.lines) == 2  # the question brings its answer
    assert passage.brief == ((0, "… I grew up in Porto, so weather like this feels like home. …"),)


@pytest.mark.parametrize("brief_tokens, expected", [(None, ()), (16, ())])
def test_no_short_form_when_it_would_be_the_same(brief_tokens, expected):
    (passage,) = passages(CHAT, [FakeHit(12, 1.0)], brief_tokens=brief_tokens)  # one short statement
    assert passage.brief == expected


def test_a_recollection_carries_its_short_form_labelled_like_the_whole():
    from app.memory.search.recall import passage_item

    source = Source(*((m.role, m.text) for m in ASKING.msgs))
    source.by_id[10].name = "Ana"
    (passage,) = passages(source, [FakeHit(10, 1.0, piece=PORTO)], brief_tokens=16)
    item = passage_item(passage)
    assert item.text.split("\n")[1] == "Assistant: Lisbon, mostly."
    assert item.brief == "Ana: … I grew up in Porto, so weather like this feels like home. …"
    assert passage_item(passages(source, [FakeHit(10, 1.0, piece=PORTO)])[0]).brief is None


@pytest.mark.parametrize("brief_from, with_brief", [
    (0, [True, True, True]),  # every passage may be needed in brief
    (60, [False, True, True]),  # the best fills that much whole: it never goes in brief
    (10_000, [False, False, False]),  # everything fits whole: nothing is cut
])
def test_only_passages_past_the_best_carry_a_short_form(brief_from, with_brief):
    source = Source(("user", LONG_REPLY), ("assistant", "Hm."), ("user", LONG_REPLY), ("assistant", "Ha."),
                    ("user", LONG_REPLY))
    hits = [FakeHit(10 + 2 * i, 1.0 - i / 10, piece=PORTO) for i in range(3)]
    found = passages(source, hits, brief_tokens=16, brief_from=brief_from)
    assert [bool(p.brief) for p in found] == with_brief
