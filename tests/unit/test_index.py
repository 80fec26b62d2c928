"""The per-session search index: adding, updating, removing, searching, neighbours, growth."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import numpy as np
import pytest

from app.memory.search.index import Hit, SessionIndex
from app.memory.search.scoring import RetrievalWeights

DIM = 8
PLAIN = RetrievalWeights(importance=0.0, recency=0.0, emotion=0.0, bridge=0.0, specificity=0.0)


def unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


def axis(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


def index_of(*texts: str, vectors: list | None = None, roles: list[str] | None = None) -> SessionIndex:
    index = SessionIndex(dim=DIM, capacity=2)
    n = len(texts)
    index.add(ids=[100 + i for i in range(n)], positions=list(range(n)),
              roles=roles or ["user" if i % 2 == 0 else "assistant" for i in range(n)], texts=list(texts),
              created=[1.7e9 + 60 * i for i in range(n)], embeddings=vectors)
    return index


def ids(hits: list[Hit]) -> list[int]:
    return [h.id for h in hits]


# ---------------------------------------------------------------------- writing


def test_add_one_or_many_and_count_them():
    index = index_of("a cat", "a dog")
    index.add(7, 2, "user", "a bird", created=1.7e9, embeddings=axis(0), importance=0.9)
    assert len(index) == 3 and 7 in index and 8 not in index
    assert index.message(7).text == "a bird" and index.message(7).position == 2
    assert index.role_of(100) == "user" and index.text_of(101) == "a dog"


def test_adding_a_known_id_updates_it_instead_of_duplicating():
    index = index_of("my sister Mara")
    index.add(100, 0, "user", "my sister Mara", embeddings=axis(1), importance=0.8)
    assert len(index) == 1
    assert index.vectors_of(100).tolist() == [axis(1).tolist()]


def test_many_appends_grow_the_arrays_and_keep_everything():
    index = SessionIndex(dim=DIM, capacity=1)
    for i in range(1000):
        index.add(i, i, "user", f"message number {i} about topic{i % 7}", embeddings=axis(i % DIM))
    assert len(index) == 1000
    assert index.message(999).text.startswith("message number 999")
    assert ids(index.search("topic3", None, k=200, weights=PLAIN))[0] % 7 == 3
    assert index.nbytes() > SessionIndex(dim=DIM).nbytes()


def test_a_vector_of_the_wrong_size_is_refused():
    index = index_of("hello")
    with pytest.raises(ValueError):
        index.set_embedding(100, np.ones(DIM + 1))


def test_a_message_is_found_by_words_before_its_vector_arrives_and_by_meaning_after():
    index = index_of("the harmonica lesson", "nothing relevant here", vectors=[None, axis(1)])
    assert ids(index.search("harmonica", axis(5), k=1, weights=PLAIN)) == [100]
    assert index.search("instrument", axis(0), k=2, weights=PLAIN) == []  # nothing shares a word or a meaning yet
    index.set_embedding(100, axis(0))
    assert index.search("instrument", axis(0), k=2, weights=PLAIN)[0].id == 100


def test_a_rare_important_message_that_has_nothing_to_do_with_the_question_is_not_a_hit():
    index = index_of("We practised the harmonica lesson again", "My ring hides in the Zanzibarine teapot",
                     vectors=[unit(1, 1), unit(0.05, 0, 1)])
    index.set_scores(101, importance=1.0)
    assert ids(index.search("music practice", axis(0), k=5)) == [100]  # specificity and importance alone: no
    assert ids(index.search("where is the teapot?", axis(3), k=5)) == [101]  # a shared word is enough


def test_replacing_a_vector_forgets_the_old_one():
    index = index_of("alpha", "beta", vectors=[axis(0), axis(1)])
    index.set_embedding(100, axis(2))
    hit = index.search("", axis(0), k=2, weights=PLAIN)
    assert all(h.cosine < 0.5 for h in hit)


def test_removed_messages_are_never_found_and_leave_the_statistics():
    index = index_of("Lisbon trip", "Lisbon again", "Porto", vectors=[axis(0), axis(0), axis(1)])
    index.remove([100, 999])
    assert 100 not in index and len(index) == 2
    assert 100 not in ids(index.search("Lisbon", axis(0), k=5, weights=PLAIN))
    assert index._postings.df["lisbon"] == 1


def test_set_scores_changes_importance():
    index = index_of("walked the dog", "walked the dog today", vectors=[axis(0), axis(0)])
    weights = RetrievalWeights(importance=1.0, recency=0.0, emotion=0.0, bridge=0.0, duplicate_cosine=1.1)
    index.set_scores(101, importance=1.0)
    index.set_scores(100, importance=0.0)
    assert ids(index.search("walked dog", axis(0), k=2, weights=weights))[0] == 101


# ---------------------------------------------------------------------- searching


def test_search_fuses_meaning_and_words_and_says_why():
    index = index_of("My sister Mara moved to Lisbon.", "Lovely!", "I like cats.",
                     vectors=[unit(1, 0.2), unit(0, 1), unit(0.2, 1)])
    (best, *_) = index.search("where does my sister live", unit(1, 0.1), k=3, weights=PLAIN)
    assert best.id == 100
    assert best.cosine > 0.9 and best.bm25 > 0
    assert best.reasons[0].startswith("meaning ") and "words: sister" in best.reasons


def test_nothing_at_or_after_the_boundary_is_returned():
    index = index_of(*[f"coffee talk {i}" for i in range(10)], vectors=[axis(0)] * 10)
    hits = index.search("coffee", axis(0), exclude_from_position=4, k=10, weights=PLAIN)
    assert hits and max(h.position for h in hits) < 4
    assert index.search("coffee", axis(0), exclude_from_position=0, k=10) == []


def test_empty_index_and_empty_query():
    assert SessionIndex(dim=DIM).search("anything", axis(0), k=5) == []
    index = index_of("hello there")
    assert index.search("", None, k=5) == []
    assert index.search("hello", axis(0), k=0) == []


def test_weighted_query_parts_count_their_words_by_weight():
    index = index_of("my sister Mara", "the football match", vectors=[axis(0), axis(1)])
    parts = [("football", 0.1), ("sister", 1.0)]
    assert ids(index.search(parts, None, k=2, weights=PLAIN))[0] == 100


def test_a_message_is_scored_by_its_best_piece():
    index = SessionIndex(dim=DIM)
    index.add(1, 0, "user", "Rain again. My sister Mara moved to Lisbon.", embeddings=np.stack([axis(3), axis(0)]))
    index.add(2, 1, "user", "Something vaguely similar.", embeddings=unit(1, 1))
    hits = index.search("", axis(0), k=2, weights=PLAIN)
    assert hits[0].id == 1 and hits[0].cosine == pytest.approx(1.0)


def test_identical_texts_come_back_once():
    index = index_of("Good night!", "Good night!", "good  night", vectors=[axis(0), axis(1), axis(2)])
    assert len(index.search("good night", None, k=5, weights=PLAIN)) == 1


def test_near_duplicate_vectors_come_back_once():
    index = index_of("first wording", "second wording", vectors=[axis(0), unit(1, 0.01)])
    assert len(index.search("", axis(0), k=5, weights=PLAIN)) == 1


def test_the_bridge_finds_the_second_step_by_name():
    index = index_of("My best friend Ibrahim is great.", "filler words", "Ibrahim is getting married in Lyon.",
                     "more filler", "unrelated wedding chatter", vectors=[axis(0), axis(5), axis(6), axis(5), axis(1)])
    plain = ids(index.search("best friend wedding", axis(0), k=2, weights=PLAIN))
    bridged = ids(index.search("best friend wedding", axis(0), k=3,
                               weights=RetrievalWeights(importance=0, recency=0, emotion=0, bridge=1.0)))
    assert 102 not in plain
    assert 102 in bridged
    hit = next(h for h in index.search("best friend", axis(0), k=5, weights=RetrievalWeights(bridge=1.0))
               if h.id == 102)
    assert "names from a related memory" in hit.reasons


def test_the_bridge_follows_a_name_that_opens_a_sentence_once_the_conversation_knows_it():
    index = index_of("Ibrahim? My best friend since school.", "filler words", "We met Ibrahim at the station.",
                     "The wedding of Ibrahim is in Lyon.", "more filler",
                     vectors=[axis(0), axis(5), axis(6), axis(7), axis(5)])
    follow = RetrievalWeights(importance=0, recency=0, emotion=0, bridge=1.0, bridge_from=1)
    bridged = index.search("best friend", axis(0), k=2, weights=follow)
    assert ids(bridged)[0] == 100 and ids(bridged)[1] in (102, 103)
    assert "names from a related memory" in bridged[1].reasons
    unknown = index_of("Ibrahim? My best friend since school.", "filler words", "Ibrahim is getting married soon.",
                       vectors=[axis(0), axis(5), axis(6)])  # never capitalised inside a sentence: no name known
    assert all("names from a related memory" not in h.reasons for h in unknown.search("best friend", axis(0), k=3,
                                                                                      weights=follow))


def test_recency_prefers_the_newer_of_equals():
    index = index_of("same words here", "same words there", vectors=[axis(0), axis(0)])
    weights = RetrievalWeights(importance=0.0, recency=1.0, recency_half_life=1.0, emotion=0.0, bridge=0.0,
                               duplicate_cosine=1.1)
    assert ids(index.search("same words", axis(0), k=2, weights=weights))[0] == 101


def test_emotional_closeness_breaks_ties():
    index = SessionIndex(dim=DIM)
    for i, probs in enumerate([[1, 0, 0], [0, 0, 1]]):
        index.add(i, i, "user", f"the exam result {i}", embeddings=axis(0), emotions=np.array(probs, dtype=float))
    weights = RetrievalWeights(importance=0.0, recency=0.0, emotion=1.0, bridge=0.0, duplicate_cosine=1.1)

    class Sad:
        probs = (0.0, 0.0, 1.0)

    assert ids(index.search("exam result", axis(0), k=2, weights=weights, emotion=Sad()))[0] == 1
    assert ids(index.search("exam result", axis(0), k=2, weights=weights, emotion=[1.0, 0.0, 0.0]))[0] == 0


def test_assistant_turns_can_be_weighed_down():
    index = index_of("cats are great", "cats are great indeed", vectors=[axis(0), axis(0)], roles=["assistant", "user"])
    weights = RetrievalWeights(importance=0, recency=0, emotion=0, bridge=0, assistant=0.5, duplicate_cosine=1.1)
    assert ids(index.search("cats", axis(0), k=2, weights=weights))[0] == 101


# ---------------------------------------------------------------------- neighbours


def test_neighbours_in_conversation_order_skip_removed_messages():
    index = index_of(*"abcdef")
    assert index.neighbours(102, 1) == [101, 103]
    assert index.neighbours(100, 2) == [101, 102]
    index.remove([103])
    assert index.neighbours(102, 1) == [101, 104]


def test_neighbours_follow_positions_when_messages_arrive_out_of_order():
    index = SessionIndex(dim=DIM)
    for id, position in [(1, 10), (2, 30), (3, 20), (4, 40)]:
        index.add(id, position, "user", f"m{id}")
    assert index.neighbours(3, 1) == [1, 2]
    assert index.neighbours(4, 2) == [3, 2]


def test_a_word_match_covering_little_of_the_query_counts_for_less_with_confidence():
    index = index_of("the day was long", "quiet evening at home", "lemon tart", vectors=[axis(0), axis(1), axis(2)])
    plain = RetrievalWeights(importance=0, recency=0, emotion=0, bridge=0, lexical=1.0,
                             lexical_confidence=0.0)
    sure = RetrievalWeights(importance=0, recency=0, emotion=0, bridge=0, lexical=1.0, lexical_confidence=4.0)
    # only "day" matches among the eligible messages: half the query's word weight ("lemon" is elsewhere)
    assert ids(index.search("day lemon", axis(1), exclude_from_position=2, k=2, weights=plain))[0] == 100
    assert ids(index.search("day lemon", axis(1), exclude_from_position=2, k=2, weights=sure))[0] == 101


def test_specificity_is_the_rarity_of_a_messages_two_rarest_words():
    index = index_of("work was long", "work was long again", "work with Fenna at Harbour Row", "work")
    spec = index._postings.specificity(np.arange(4))
    assert spec[2] > spec[0] and spec[2] > spec[1]  # names said once are rarer than everyday words
    assert spec[3] < spec[0]  # one common word: half its rarity
    index.remove([101])  # the other "long" goes: the word is rarer now
    assert index._postings.specificity(np.array([0]))[0] > spec[0]


def test_kept_specificity_follows_a_rare_word_said_again_and_a_growing_conversation():
    index = index_of(*[f"plain day number {i % 3}" for i in range(200)], "dinner with Fenna")
    postings = index._postings
    before = postings.specificity(np.arange(201)).copy()
    index.add(301, 201, "user", "Fenna called")  # "fenna" said again, well within the drift: row 200 is redone
    assert postings.specificity(np.array([200]))[0] < before[200]
    assert postings.specificity(np.array([200]))[0] == postings._computed_specificity(np.array([200]))[0]
    for i in range(202, 220):  # the conversation grows past the drift: everything is fresh again
        index.add(100 + i, i, "user", f"plain day number {i % 3}")
    fresh = postings._computed_specificity(np.arange(220))
    assert np.allclose(postings.specificity(np.arange(220)), fresh)


def test_specificity_lifts_the_message_that_names_things_among_equal_matches():
    vectors = [axis(0), axis(0), axis(1)]
    index = index_of("my boss was in a meeting", "my boss Fenna from Lyon", "unrelated chatter", vectors=vectors)
    plain = index.search("boss", axis(0), k=2, weights=PLAIN)
    lifted = index.search("boss", axis(0), k=2, weights=dataclasses.replace(PLAIN, specificity=1.0))
    assert ids(plain)[0] == 100  # a tie goes to the shorter, earlier text
    assert ids(lifted)[0] == 101


def test_several_query_vectors_score_a_message_by_the_closest():
    index = index_of("alpha", "beta", "gamma", vectors=[axis(0), axis(1), axis(2)])
    hits = index.search("", np.stack([axis(1), axis(2)]), k=3, weights=PLAIN)
    assert set(ids(hits)[:2]) == {101, 102}
    assert {h.id: round(h.cosine, 3) for h in hits}[101] == 1.0


def test_a_hit_names_the_piece_that_matched_best():
    index = index_of("first. second. third.", "words only", vectors=[np.stack([axis(0), axis(1), axis(2)]), None])
    (hit,) = index.search("", axis(1), k=1, weights=PLAIN)
    assert hit.id == 100 and hit.piece == 1
    (worded,) = index.search("words", None, k=1, weights=PLAIN)
    assert worded.id == 101 and worded.piece == -1  # no query vector, no piece
    whole = index_of("one vector for all of it", vectors=[axis(0)])
    assert whole.search("", axis(0), k=1, weights=PLAIN)[0].piece == -1  # one vector: nothing to point at


def test_a_speakers_name_is_searchable_and_forgotten_with_its_message():
    index = SessionIndex(dim=DIM, capacity=2)
    index.add([100, 101], [0, 1], ["assistant", "assistant"], ["The key is behind the tapestry.", "Lovely day."],
              names=["Bram", None])
    hits = index.search("Bram", None, k=2, weights=PLAIN)
    assert ids(hits) == [100] and "words: bram" in hits[0].reasons
    assert index.message(100).name == "Bram" and index.message(101).name is None
    assert index.text_of(100) == "The key is behind the tapestry."  # the name is not part of the text
    index.remove([100])
    assert index._postings.df.get("bram") == 0 and index.search("Bram", None, k=2, weights=PLAIN) == []


def test_a_question_that_is_a_name_finds_the_speaker_over_a_weak_meaning_match():
    texts = ["My neighbour keeps playing the violin.", "The key is behind the tapestry.",
             *[f"Quiet day number {i}." for i in range(5)]]
    vectors = [unit(0.2, 0.98), unit(0.0, 0.0, 1.0), *[unit(0.03 * i, *[0.0] * (1 + i), 1.0) for i in range(5)]]
    index = SessionIndex(dim=DIM, capacity=2)
    index.add(list(range(100, 107)), list(range(7)), ["user", "assistant", *["user"] * 5], texts,
              embeddings=vectors, names=[None, "Bram", *[None] * 5])
    assert ids(index.search("Bram", axis(0), k=1, weights=PLAIN)) == [101]
    # without the floor, the violin's cosine of 0.2 would count as a perfect meaning match
    stretched = dataclasses.replace(PLAIN, dense_full=0.0, speaker=0.0)
    assert ids(index.search("Bram", axis(0), k=1, weights=stretched)) == [100]


def test_turns_by_the_speaker_a_question_names_rank_first():
    texts = ["I ran a charity race last Saturday, Mel!", "Nice, Caroline. I ran a race too."]
    index = SessionIndex(dim=DIM, capacity=2)
    index.add([100, 101], [0, 1], ["user", "assistant"], texts, embeddings=[axis(0), unit(0.9, 0.43)],
              names=["Caroline", "Melanie"])
    asked = "When did Melanie run a charity race?"
    assert ids(index.search(asked, axis(0), k=2, weights=dataclasses.replace(PLAIN, speaker=0.0)))[0] == 100
    assert ids(index.search(asked, axis(0), k=2, weights=dataclasses.replace(PLAIN, speaker=2.0)))[0] == 101
    plain = {h.id: h.score for h in index.search(asked, axis(0), k=2, weights=dataclasses.replace(PLAIN, speaker=0.0))}
    named = {h.id: h.score for h in index.search(asked, axis(0), k=2, weights=dataclasses.replace(PLAIN, speaker=0.4))}
    assert named[101] - plain[101] == pytest.approx(0.4) and named[100] == pytest.approx(plain[100])


def test_candidates_per_hit_reads_deeper_for_more_hits():
    vectors = [unit(1.0, 0.1 * i) for i in range(6)]  # cosine to axis 0 falls with i
    index = index_of(*[f"message {i}" for i in range(6)], vectors=vectors)
    index.set_scores(105, importance=1.0)
    shallow = dataclasses.replace(PLAIN, importance=1.0, candidates=2, candidates_per_hit=0, lexical=0.0, fusion="rrf")
    assert ids(index.search("", axis(0), k=1, weights=shallow)) == [100]
    deep = dataclasses.replace(shallow, candidates_per_hit=6)
    assert ids(index.search("", axis(0), k=1, weights=deep)) == [105]


def test_the_bridge_does_not_follow_a_speakers_name():
    """In a chat of two, a speaker's name leads to half the conversation; a question that names a
    speaker is served by the speaker prior instead."""
    index = SessionIndex(dim=DIM, capacity=2)
    index.add(ids=[100, 101, 102, 103], positions=[0, 1, 2, 3], roles=["assistant", "user", "user", "user"],
              texts=["Bram? The one who found the cellar key with Ines.", "filler words", "Ask him tomorrow.",
                     "Ines lives by the sea."],
              embeddings=[axis(0), axis(5), axis(6), axis(7)], names=["Bram", None, "Bram", None])
    follow = RetrievalWeights(importance=0, recency=0, emotion=0, bridge=1.0, bridge_from=1)
    hits = {h.id: h for h in index.search("cellar key", axis(0), k=4, weights=follow)}
    assert "names from a related memory" in hits[103].reasons
    assert 102 not in hits or "names from a related memory" not in hits[102].reasons


def test_turns_said_within_a_date_the_question_names_rank_higher():
    may, june = datetime(2023, 5, 4, 12).timestamp(), datetime(2023, 6, 20, 12).timestamp()
    index = SessionIndex(dim=DIM, capacity=2)
    index.add([100, 101], [0, 1], ["user", "user"], ["We had dinner with my mother.", "Dinner with my mother tonight!"],
              created=[june, may], embeddings=[axis(0), unit(1.0, 0.3)])
    asked = "Who did Maria have dinner with on May 3, 2023?"
    assert ids(index.search(asked, axis(0), k=2, weights=dataclasses.replace(PLAIN, dated=2.0))) == [101, 100]
    assert ids(index.search(asked, axis(0), k=2, weights=dataclasses.replace(PLAIN, dated=0.0))) == [100, 101]
    plain = {h.id: h.score for h in index.search(asked, axis(0), k=2, weights=dataclasses.replace(PLAIN, dated=0.0))}
    dated = {h.id: h.score for h in index.search(asked, axis(0), k=2, weights=dataclasses.replace(PLAIN, dated=0.3))}
    assert dated[101] - plain[101] == pytest.approx(0.3) and dated[100] == pytest.approx(plain[100])


def test_the_bridge_does_not_follow_a_name_said_everywhere():
    texts = ["Mel found the cellar key with Ines.", "Ines lives by the sea.",
             *[f"Thanks, Mel! Day {i} was fine." for i in range(5)]]
    index = SessionIndex(dim=DIM, capacity=2)
    index.add(list(range(100, 107)), list(range(7)), ["user"] * 7, texts,
              embeddings=[axis(0), axis(1), *[unit(*[0.0] * (2 + i % 5), 1.0) for i in range(5)]])
    follow = RetrievalWeights(importance=0, recency=0, emotion=0, specificity=0, bridge=1.0, bridge_from=1,
                              bridge_max_df=4)
    hits = {h.id: h for h in index.search("cellar key", axis(0), k=7, weights=follow)}
    assert "names from a related memory" in hits[101].reasons  # Ines: said twice
    assert all("names from a related memory" not in hits[i].reasons for i in range(102, 107) if i in hits)
    everywhere = {h.id: h for h in index.search("cellar key", axis(0), k=7,
                                                 weights=dataclasses.replace(follow, bridge_max_df=100))}
    assert any("names from a related memory" in everywhere[i].reasons for i in range(102, 107) if i in everywhere)
