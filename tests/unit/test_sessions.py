"""Session resolution: explicit ids, their limits, storage keys, opening fingerprints, message hashes."""

from __future__ import annotations

import re

import pytest

from app.sessions import (MAX_SESSION_ID_LENGTH, explicit_session_id, message_hash, message_hashes,
                          opening_fingerprint, session_key, validate_session_id)

SYSTEM = {"role": "system", "content": "Write Seraphina's next reply in a fictional chat between Seraphina and Alex."}
GREETING = {"role": "assistant", "content": "*Seraphina smiles as you wake.* You are safe here."}


def chat(*lines: str, system: dict | None = SYSTEM) -> list[dict]:
    """`chat("a:hello", "u:hi")`: messages from role-prefixed lines, after the system prompt."""
    roles = {"u": "user", "a": "assistant", "s": "system"}
    body = [{"role": roles[line[0]], "content": line[2:]} for line in lines]
    return ([system] if system else []) + body


@pytest.mark.parametrize("header, user, metadata, expected", [
    ("chat-1", "alice", {"session_id": "m-1"}, "chat-1"),
    (None, "alice", {"session_id": "m-1"}, "alice"),
    ("", "alice", None, "alice"),
    ("   ", None, {"session_id": "m-1"}, "m-1"),
    (None, None, {"session_id": "m-1"}, "m-1"),
    (None, None, {"session_id": 42}, "42"),
    (None, None, {"session_id": True}, None),
    (None, None, {"other": "x"}, None),
    (None, None, "not-a-dict", None),
    (None, None, None, None),
    ("  padded  ", None, None, "padded"),
])
def test_explicit_session_id_order(header, user, metadata, expected):
    assert explicit_session_id(header, user, metadata) == expected


@pytest.mark.parametrize("session_id", [
    "a",
    "chat-42",
    "user@example.com",
    "room:lobby-2024-05-01",
    "Алиса 1",
    "abc_DEF.ghi+jkl=mno#1~2",
    "x" * MAX_SESSION_ID_LENGTH,
])
def test_validate_session_id_accepts(session_id):
    assert validate_session_id(session_id) == session_id


@pytest.mark.parametrize("session_id, message", [
    ("", "1 to 128 characters"),
    ("x" * (MAX_SESSION_ID_LENGTH + 1), "got 129"),
    ("a\nb", r"found '\\n'"),
    ("a\x00b", r"found '\\x00'"),
    ('say "hi"', "found '\"'"),
    ("back\\slash", r"found '\\\\'"),
    ("semi;colon", "found ';'"),
    ("../../etc/passwd", "found '/'"),
    ("C:\\Windows", r"found '\\\\'"),
    (42, "must be a string, not int"),
    (None, "must be a string, not NoneType"),
])
def test_validate_session_id_rejects_with_a_clear_message(session_id, message):
    with pytest.raises(ValueError, match=message):
        validate_session_id(session_id)


@pytest.mark.parametrize("session_id", ["chat", "../../etc/passwd", "/abs/path", "a\\b", "..", "x" * 1000, ""])
def test_session_key_is_a_hex_file_name_whatever_the_id(session_id):
    key = session_key("owner", session_id)
    assert re.fullmatch(r"[0-9a-f]{64}", key)


@pytest.mark.parametrize("one, other", [
    ((None, "chat"), ("owner", "chat")),
    ((None, "chat"), ("", "chat")),
    (("a", "bc"), ("ab", "c")),
    (("owner", "chat"), ("owner", "chat2")),
])
def test_session_key_separates_owners_and_ids(one, other):
    assert session_key(*one) != session_key(*other)


def test_session_key_is_stable():
    assert session_key("owner", "chat") == session_key("owner", "chat")


# ---------------------------------------------------------------------------- opening fingerprint

OPENING = chat("a:" + GREETING["content"], "u:I sit up slowly. Where am I?")


@pytest.mark.parametrize("name, messages", [
    ("grown by a reply", OPENING + chat("a:In my glade.", system=None)),
    ("grown by many turns", OPENING + chat(*[f"{'au'[k % 2]}:turn {k}" for k in range(40)], system=None)),
    ("whitespace re-wrapped", [SYSTEM, {"role": "assistant", "content": "  *Seraphina smiles as you wake.*\n\n"
                                                                         "You are   safe here. "},
                               {"role": "user", "content": "I sit up slowly.\nWhere am I?"}]),
    ("lore added on the next lines", [{"role": "system", "content": SYSTEM["content"] + "\n" + "lore " * 20}]
     + OPENING[1:]),
    ("further system messages", [SYSTEM, {"role": "system", "content": "[Start a new chat]"}] + OPENING[1:]),
    ("content as a list of parts", [SYSTEM, GREETING,
                                    {"role": "user", "content": [{"type": "text", "text": "I sit up slowly. "
                                                                                         "Where am I?"}]}]),
])
def test_fingerprint_is_stable(name, messages):
    assert opening_fingerprint(messages) == opening_fingerprint(OPENING)


def test_fingerprint_ignores_a_long_first_line_past_its_prefix():
    def opening(first_line: str) -> list[dict]:
        return [{"role": "system", "content": "Write Seraphina's reply. " + "x" * 200 + first_line}] + OPENING[1:]

    assert opening_fingerprint(opening("Today is Monday.")) == opening_fingerprint(opening("Today is Tuesday."))


@pytest.mark.parametrize("name, messages", [
    ("same character and greeting, another first message", chat("a:" + GREETING["content"], "u:Who are you?")),
    ("another greeting", chat("a:*The forest is quiet.*", "u:I sit up slowly. Where am I?")),
    ("another character", [{"role": "system", "content": "Write Lilith's next reply."}] + OPENING[1:]),
    ("no greeting", chat("u:I sit up slowly. Where am I?")),
    ("the user spoke first, then the greeting", chat("u:I sit up slowly. Where am I?",
                                                     "a:" + GREETING["content"])),
])
def test_fingerprint_tells_conversations_apart(name, messages):
    assert opening_fingerprint(messages) != opening_fingerprint(OPENING)


@pytest.mark.parametrize("messages", [
    [],
    [SYSTEM],
    [SYSTEM, GREETING],
    [GREETING],
])
def test_fingerprint_needs_a_user_message(messages):
    assert opening_fingerprint(messages) is None


def test_fingerprint_without_system_prompt():
    assert opening_fingerprint(chat("u:hi", system=None)) == opening_fingerprint(chat("u: hi ", system=None))
    assert opening_fingerprint(chat("u:hi", system=None)) != opening_fingerprint(chat("u:hi"))


# ---------------------------------------------------------------------------- message hashes

@pytest.mark.parametrize("one, other, same", [
    ({"role": "user", "content": "Hello  world"}, {"role": "user", "content": "\nHello world\t"}, True),
    ({"role": "user", "content": "Hello"}, {"role": "user", "content": [{"type": "text", "text": "Hello"}]}, True),
    ({"role": "user", "content": "Hello"},
     {"role": "user", "content": [{"type": "text", "text": "Hello"},
                                  {"type": "image_url", "image_url": {"url": "data:,"}}]}, True),
    ({"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hello"}, False),
    ({"role": "user", "content": "Hello"}, {"role": "user", "content": "hello"}, False),
    ({"role": "user", "content": "Hello"}, {"role": "user", "name": "Alex", "content": "Hello"}, True),
    ({"role": "user", "name": "Alex", "content": "Hello"}, {"role": "user", "name": "Sam", "content": "Hello"}, True),
    ({"role": "user", "content": "ab"}, {"role": "user", "content": "a b"}, False),
])
def test_message_hashes_compare_normalised_content(one, other, same):
    a, b = message_hashes([one, other])
    assert (a == b) is same


def test_message_hashes_match_message_hash_and_are_hex():
    messages = [{"role": "user", "name": "Alex", "content": "Hi"}, {"role": "assistant", "content": None,
                "tool_calls": [{"function": {"name": "weather", "arguments": "{}"}}]}]
    hashes = message_hashes(messages)
    assert hashes[0] == message_hash("user", "Hi")
    assert hashes[1] == message_hash("assistant", "[call] weather({})")
    assert all(re.fullmatch(r"[0-9a-f]{32}", h) for h in hashes)


def test_message_hashes_of_a_trimmed_window_are_a_suffix():
    full = chat(*[f"{'ua'[k % 2]}:turn {k}" for k in range(30)], system=None)
    assert message_hashes(full[-10:]) == message_hashes(full)[-10:]
