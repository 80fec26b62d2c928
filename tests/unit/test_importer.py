import json

import pytest

from app.memory.importer import ChatFileError, parse_sillytavern


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
    assert chat.messages[1]["name"] == "Ann" and chat.messages[0]["send_date"].startswith("May 1")


@pytest.mark.parametrize("text, message", [
    ("", "no messages"), ('{"user_name": "a"}\n', "no messages"), ('{"user_name": "a"}\n{oops\n', "line 2"),
    ('{"user_name": "a"}\n[1, 2]\n', "line 2 is not a JSON object")])
def test_bad_files_are_named_errors(text, message):
    with pytest.raises(ChatFileError, match=message):
        parse_sillytavern(text)
