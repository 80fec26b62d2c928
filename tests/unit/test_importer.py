import json
from datetime import datetime

import pytest

from app.memory.importer import ChatFileError, parse_sillytavern, parse_time


def chat_file(*records) -> str:
    meta = {"user_name": "Ann", "character_name": "Seraphina", "create_date": "2024-5-1 @10h 00m",
            "chat_metadata": {}}
    return "\n".join(json.dumps(r) for r in (meta, *records)) + "\n"


def test_parses_metadata_turns_and_chosen_swipes():
    text = chat_file(
        {"name": "Seraphina", "is_user": False, "mes": "Welcome, traveller.", "send_date": "May 1, 2024 10:00am"},
        {"name": "Ann", "is_user": True, "mes": "Where am I?", "send_date": "May 1, 2024 10:01am"},
        {"name": "Seraphina", "is_user": False, "mes": "In the glade.", "swipe_id": 1,
         "swipes": ["In the forest.", "In the glade.", "Safe."]},
        {"name": "System", "is_system": True, "mes": "[hidden note]"})
    chat = parse_sillytavern(text)
    assert (chat.user_name, chat.character_name, chat.skipped) == ("Ann", "Seraphina", 1)
    assert [(m["role"], m["content"]) for m in chat.messages] == [
        ("assistant", "Welcome, traveller."), ("user", "Where am I?"), ("assistant", "In the glade.")]
    assert chat.messages[1]["name"] == "Ann"
    assert chat.messages[0]["created_at"] == datetime(2024, 5, 1, 10, 0).timestamp()  # send_date kept as the time
    assert "created_at" not in chat.messages[2]


@pytest.mark.parametrize("value, expected", [
    (1717599720, datetime.fromtimestamp(1717599720)), ("1717599720000", datetime.fromtimestamp(1717599720)),
    ("June 5, 2024 3:02pm", datetime(2024, 6, 5, 15, 2)), ("June 5, 2024 3:02 PM", datetime(2024, 6, 5, 15, 2)),
    ("2024-6-5@15h02m11s", datetime(2024, 6, 5, 15, 2, 11)), ("2024-06-05T15:02:00", datetime(2024, 6, 5, 15, 2)),
    ("2024-06-05 15:02:00", datetime(2024, 6, 5, 15, 2)),
])
def test_parse_time_reads_numbers_iso_and_sillytavern_dates(value, expected):
    assert parse_time(value) == expected.timestamp()


@pytest.mark.parametrize("value", [True, float("nan"), -5, "", "yesterday", None, [2024]])
def test_parse_time_rejects_what_is_not_a_time(value):
    with pytest.raises(ValueError):
        parse_time(value)


def test_an_unreadable_send_date_leaves_the_message_undated():
    chat = parse_sillytavern(chat_file({"name": "Ann", "is_user": True, "mes": "Hi.", "send_date": "someday"}))
    assert chat.messages == [{"role": "user", "content": "Hi.", "name": "Ann"}]


@pytest.mark.parametrize("text, message", [
    ("", "no messages"), ('{"user_name": "a"}\n', "no messages"), ('{"user_name": "a"}\n{oops\n', "line 2"),
    ('{"user_name": "a"}\n[1, 2]\n', "line 2 is not a JSON object")])
def test_bad_files_are_named_errors(text, message):
    with pytest.raises(ChatFileError, match=message):
        parse_sillytavern(text)
