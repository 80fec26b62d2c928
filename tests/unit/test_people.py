"""The person's index: which conversations a query may reach, and passages that stay in one conversation."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
import pytest

from app.context import MemoryItem
from app.memory.people import SHIFT, People, PersonIndex, PersonQuery
from app.memory.search.scoring import RetrievalWeights
from app.memory_block import candidates, render_block

NOON = 1_699_963_200.0  # Tue 2023-11-14 12:00 UTC: the same date in every time zone's label


@dataclass
class Row:
    id: int
    position: int
    role: str
    content: str
    created_at: float = NOON
    embedding: object = None
    importance: float | None = None
    emotion_probs: object = None
    superseded_by: int | None = None
    name: str | None = None


@dataclass
class Info:
    key: str
    session_id: str
    character: str | None = "juniper"
    scope: str | None = None
    owner: str | None = None
    person: str = "ann"
    created_at: float = 0.0
    message_count: int = 0


def turns(*texts: str) -> list[Row]:
    return [Row(i + 1, i, "user" if i % 2 == 0 else "assistant", t) for i, t in enumerate(texts)]


def person_with(*infos: Info) -> PersonIndex:
    built = PersonIndex()
    for info in infos:
        built.join(info)
        built.add(info.key, turns(f"{info.session_id}: my sister Mara lives in Lisbon.", "Lovely.",
                                  f"{info.session_id}: I keep bees.", "Sweet."))
    return built


def query(key: str, scope: str | None = None, character: str = "juniper") -> PersonQuery:
    return PersonQuery(None, "ann", key, character, scope, "character")


@pytest.mark.parametrize("asking, scope, reached", [
    ("a", None, ["b"]),                       # same character, not itself, not the one set apart
    ("a", "person", ["b", "o"]),               # every conversation of the person
    ("a", "session", []),                      # nothing
    ("s", None, []),                           # a conversation set apart reaches nothing
    ("new", None, ["a", "b"]),                 # a conversation not stored yet (a preview)
    ("o", None, []),                           # the other character has no other conversation
])
def test_which_conversations_a_query_reaches(asking, scope, reached):
    built = person_with(Info("a", "a"), Info("b", "b"), Info("o", "o", character="orion"),
                        Info("s", "s", scope="session"))
    character = "orion" if asking == "o" else "juniper"
    allowed = built.allowed(query(asking, scope, character))
    numbers = {c.number: c.key for c in built.conversations.values()}
    assert sorted(numbers[n] for n in (allowed if allowed is not None else [])) == reached


def test_ids_name_their_conversation_and_neighbours_never_cross_into_another():
    built = person_with(Info("a", "a"), Info("b", "b"))
    first_of_b = 2 << SHIFT | 1
    assert built.conversation_of(first_of_b).key == "b"
    assert built.neighbours(first_of_b, 1) == [2 << SHIFT | 2]  # not the last turn of "a"
    assert built.neighbours(1 << SHIFT | 4, 2) == [1 << SHIFT | 2, 1 << SHIFT | 3]


def test_removed_messages_and_a_conversation_that_leaves_are_not_found():
    built = person_with(Info("a", "a"), Info("b", "b"))
    built.remove("a", [1])
    built.leave("b")
    hits = built.index.search("sister Mara Lisbon", None, k=5)
    assert all(h.id >> SHIFT == 1 and h.id != 1 << SHIFT | 1 for h in hits)
    assert len(built.index) == 3


def test_scored_messages_join_a_loaded_person_and_a_search_is_masked():
    class Store:
        async def sessions_of_person(self, owner, person):
            return [Info("a", "a"), Info("b", "b")]

        async def active_for_index(self, key):
            return turns(f"{key}: my sister Mara lives in Lisbon.", "Lovely.")

    async def scenario():
        people = People(Store())
        found = await people.recall(query("a"), "Where does Mara live?", None, k=4, turn_tokens=None,
                                    weights=RetrievalWeights(), now=NOON + 3 * 86400)
        await people.joined(Info("c", "c"))
        await people.scored("c", [Row(1, 0, "user", "c: I moved to Oslo.")])
        await people.joined(Info("old", "old", message_count=2))  # claimed after its messages were stored
        oslo = await people.search(None, "ann", "Oslo", None, 1, RetrievalWeights())
        return found, oslo + await people.search(None, "ann", "old", None, 1, RetrievalWeights())

    found, hits = asyncio.run(scenario())
    assert [f.kind for f in found] == ["elsewhere"] and found[0].text.startswith("User: b: my sister")
    assert found[0].when == "in an earlier conversation (b), 3 days ago, Tue 2023-11-14"
    assert [(h["session_id"], h["id"]) for h in hits] == [("c", 1), ("old", 1)]


def test_a_deleted_conversation_leaves_and_a_new_scope_applies_at_once():
    people = People(store=None)
    people._people[(None, "ann")] = built = person_with(Info("a", "a"), Info("b", "b"), Info("c", "c"))
    people._member.update({"a": (None, "ann"), "b": (None, "ann"), "c": (None, "ann")})
    people.forget_session("b")
    people.rescope("c", "session")
    assert built.allowed(query("a")) is None and set(built.conversations) == {"a", "c"}
    people.rescope("c", None)
    assert list(built.allowed(query("a"))) == [built.conversations["c"].number]


def test_idle_and_over_budget_person_indexes_leave_ram():
    people = People(store=None)
    people._people[(None, "ann")] = person_with(Info("a", "a"))
    people._people[("t1", "bob")] = person_with(Info("b", "b"))
    sizes = people.ram_sizes()
    assert set(sizes) == {"person::ann", "person:t1:bob"} and all(v > 0 for v in sizes.values())
    assert people.drop_named("person:t1:bob") and not people.drop_named("some-session-key")
    assert people.evict_idle(60, now=people._people[(None, "ann")].used + 61) == 1 and people.ram_sizes() == {}


def test_recollections_from_elsewhere_have_their_own_section_under_their_labels():
    here = MemoryItem(text="User: I keep bees.", score=1.0, position=3, when="Tue 2023-11-14")
    there = [MemoryItem(text=f"User: fact {n}", score=0.9, kind="elsewhere", position=float(n),
                        when=f"in an earlier conversation (room-{n}), 3 days ago, Tue 2023-11-14") for n in (2, 1)]
    block = render_block(candidates([here, *there], [], None, None))
    assert block.index("From the user's earlier conversations") < block.index("Earlier moments")
    assert block.index("(room-1)") < block.index("(room-2)")  # oldest first
    assert block.count("[in an earlier conversation (room-1), 3 days ago, Tue 2023-11-14]\n- User: fact 1") == 1


def test_a_persons_index_keeps_one_vector_a_message_the_whole_ones():
    built = PersonIndex()
    built.join(Info("a", "a"))
    stored = np.eye(3, 384, dtype=np.float32)  # the whole message, then two pieces
    built.add("a", [Row(1, 0, "user", "One. Two.", embedding=stored)])
    assert np.array_equal(built.index.vectors_of(1 << SHIFT | 1).reshape(-1, 384), stored[:1])
