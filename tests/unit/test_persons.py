"""Who the person is, which character, how far recall reaches, and how a recollection from elsewhere reads."""

from __future__ import annotations

import pytest

from app.persons import ago, character_key, effective_scope, elsewhere_label, parse_scope, person_id, shown_name
from app.pipeline import memory_controls
from app.errors import InvalidRequest


@pytest.mark.parametrize("header, metadata, user, expected", [
    ("ann", {"user_id": "bob"}, "cara", "ann"),
    (None, {"user_id": "bob"}, "cara", "bob"),
    ("  ", {"user_id": 42}, "cara", "42"),
    (None, {"user_id": True}, "cara", "cara"),
    (None, None, "cara", "cara"),
    (None, {"session_id": "s"}, None, None),
    ("", {}, "  ", None),
])
def test_person_id_order(header, metadata, user, expected):
    assert person_id(header, metadata, user) == expected


SERAPHINA = "Write Seraphina's next reply in a fictional chat between Seraphina and Alex."


@pytest.mark.parametrize("a, b, same", [
    ([{"role": "system", "content": SERAPHINA}], [{"role": "system", "content": SERAPHINA + "\n[lore]"}], True),
    ([{"role": "system", "content": SERAPHINA}], [{"role": "system", "content": "  " + SERAPHINA.replace(" ", "  ")}],
     True),
    ([{"role": "system", "content": SERAPHINA}], [{"role": "system", "content": SERAPHINA.replace("Seraphina", "Aria")}],
     False),
    ([{"role": "user", "content": "hi"}], [{"role": "user", "content": "hello"}], True),  # no system prompt: ''
    ([{"role": "developer", "content": "You are Juniper."}, {"role": "system", "content": "x"}],
     [{"role": "system", "content": "You are Juniper."}], True),
])
def test_character_is_the_first_system_line(a, b, same):
    assert (character_key(a) == character_key(b)) is same


@pytest.mark.parametrize("requested, conversation, default, expected", [
    (None, None, "character", "character"),
    (None, None, "person", "person"),
    ("person", None, "character", "person"),
    (None, "person", "character", "person"),
    ("character", "person", "person", "character"),
    ("session", "person", "person", "session"),
    ("person", "session", "person", "session"),
])
def test_effective_scope(requested, conversation, default, expected):
    assert effective_scope(requested, conversation, default) == expected


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), ("SESSION", "session"), ("off", "session"),
                                             ("user", "person"), ("character", "character")])
def test_parse_scope(value, expected):
    assert parse_scope(value) == expected


def test_a_bad_scope_is_a_400_on_its_header():
    assert memory_controls({"x-memory-scope": "person"}, None).scope == "person"
    assert memory_controls({}, {"memory_scope": "session"}).scope == "session"
    with pytest.raises(InvalidRequest) as caught:
        memory_controls({"x-memory-scope": "everyone"}, None)
    assert caught.value.param == "X-Memory-Scope"


@pytest.mark.parametrize("seconds, said", [(0, "just now"), (59, "just now"), (60, "1 minute ago"),
                                           (3 * 3600 + 5, "3 hours ago"), (86400, "1 day ago"),
                                           (13 * 86400, "1 week ago"), (400 * 86400, "1 year ago")])
def test_ago(seconds, said):
    assert ago(seconds) == said


def test_labels_say_where_and_when():
    noon = 1_699_963_200.0  # Tue 2023-11-14 12:00 UTC
    assert elsewhere_label(noon, noon + 3 * 86400, "room-a") == \
        "in an earlier conversation (room-a), 3 days ago, Tue 2023-11-14"
    assert elsewhere_label(noon, noon - 60, None) == "in an earlier conversation, just now, Tue 2023-11-14"
    assert shown_name("auto-0123") is None and shown_name("x" * 100) == "x" * 64
