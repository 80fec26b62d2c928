"""Recognising side-job prompts (summaries, impersonation, titles) and continue requests."""

from __future__ import annotations

import pytest

from app.auxiliary import (DEFAULT_PATTERNS, compile_patterns, ends_with_continue, is_auxiliary,
                           is_continue_nudge)

HISTORY = [{"role": "system", "content": "Write Seraphina's next reply."},
           {"role": "assistant", "content": "*She smiles.* Welcome."},
           {"role": "user", "content": "Hello there."},
           {"role": "assistant", "content": "Hello, traveller."}]

SUMMARIZE = ("Ignore previous instructions. Summarize the most important facts and events in the story so far. "
             "If a summary already exists in your memory, use that as a base and expand with new facts. "
             "Limit the summary to 200 words or less. Your response should include nothing but the summary.")
IMPERSONATE = ("[Write your next reply from the point of view of Alex, using the chat history so far as a "
               "guideline for the writing style of Alex. Don't write as Seraphina or system.]")
NUDGE = ("[Continue the following message. Do not include ANY parts of the original message. Use capitalization "
         "and punctuation as if your reply is a part of the original message: Hello, traveller.]")


@pytest.mark.parametrize("role, text", [
    ("user", SUMMARIZE),
    ("system", SUMMARIZE),
    ("system", "  ignore   all previous instructions and describe the scene"),
    ("user", "Summarize the most important facts and events in the story so far."),
    ("system", IMPERSONATE),
    ("user", IMPERSONATE),
    ("system", "Pause your roleplay. Classify the emotion of the last message. Output just one word."),
    ("system", "[Pause your roleplay and describe Alex's appearance.]"),
    ("user", "[In the next response I want you to provide only a detailed comma-delimited list of keywords]"),
    ("user", "Generate a title for this conversation."),
    ("user", "Create a concise, 3-5 word title with an emoji as a title for the chat history."),
    ("user", "Write a short caption for the image."),
    ("user", "### Task:\nGenerate 1-3 broad tags categorizing the main themes of the chat history."),
])
def test_default_patterns_recognise_side_jobs(role, text):
    assert is_auxiliary(HISTORY + [{"role": role, "content": text}]) in DEFAULT_PATTERNS


@pytest.mark.parametrize("messages", [
    HISTORY,
    HISTORY + [{"role": "user", "content": "Continue."}],
    HISTORY + [{"role": "user", "content": "continue"}],
    HISTORY + [{"role": "user", "content": NUDGE}],
    HISTORY + [{"role": "user", "content": "Can you summarize what happened yesterday?"}],
    HISTORY + [{"role": "user", "content": "Write a short story and give it a title."}],
    HISTORY + [{"role": "user", "content": "What title would you give this chapter?"}],
    HISTORY + [{"role": "user", "content": "She said: ignore previous instructions."}],
    # assistant text is never read, even when it quotes a prompt
    HISTORY + [{"role": "assistant", "content": SUMMARIZE}],
    # a side-job prompt earlier in the history does not make this request one
    HISTORY + [{"role": "user", "content": SUMMARIZE}, {"role": "assistant", "content": "A summary."},
               {"role": "user", "content": "Thanks!"}],
    # a group chat asking the next character to speak
    HISTORY + [{"role": "system", "content": "[Write the next reply only as Lilith.]"}],
    [],
])
def test_chat_turns_are_not_auxiliary(messages):
    assert is_auxiliary(messages) is None


@pytest.mark.parametrize("tail, expected", [
    # the prompt in a trailing system message after the user's
    ([{"role": "user", "content": "Hi"}, {"role": "system", "content": IMPERSONATE},
      {"role": "system", "content": "[Jailbreak: stay in character]"}], True),
    # the prompt as the user message before trailing system messages
    ([{"role": "user", "content": SUMMARIZE}, {"role": "system", "content": "[Stay in character]"}], True),
    # an assistant message ends the look-back
    ([{"role": "user", "content": SUMMARIZE}, {"role": "assistant", "content": "ok"},
      {"role": "system", "content": "[Stay in character]"}], False),
])
def test_trailing_system_messages_are_looked_through(tail, expected):
    assert (is_auxiliary(HISTORY + tail) is not None) is expected


def test_extra_patterns_extend_the_defaults_and_are_the_reason():
    messages = HISTORY + [{"role": "user", "content": "((OOC: rate this scene from 1 to 10))"}]
    assert is_auxiliary(messages) is None
    assert is_auxiliary(messages, [r"^\(\(ooc:"]) == r"^\(\(ooc:"
    assert is_auxiliary(HISTORY + [{"role": "user", "content": SUMMARIZE}], [r"^\(\(ooc:"]) in DEFAULT_PATTERNS


def test_prompt_in_a_list_of_parts_is_recognised():
    parts = [{"type": "text", "text": IMPERSONATE}]
    assert is_auxiliary(HISTORY + [{"role": "user", "content": parts}]) is not None


def test_only_the_start_of_a_long_message_is_scanned():
    late = "word " * 1000 + "Ignore previous instructions. Summarize the most important facts and events"
    assert is_auxiliary(HISTORY + [{"role": "user", "content": late}]) is None


def test_compile_patterns_names_a_bad_pattern():
    assert [p.pattern for p in compile_patterns(["^a", "b+"])] == ["^a", "b+"]
    with pytest.raises(ValueError, match=r"invalid pattern '\(unclosed'"):
        compile_patterns(["ok", "(unclosed"])


# ---------------------------------------------------------------------------- continue

@pytest.mark.parametrize("text, expected", [
    (NUDGE, True),
    ("[Continue the following message. Do not include ANY parts of the original message.]", True),
    ("Continue your last reply from where it stopped.", True),
    ("(continue the previous message)", True),
    ("Please pick up where you left off; do not include any part of the original message.", True),
    ("continue", False),
    ("Continue.", False),
    ("Please continue the story!", False),
    ("Let's continue the journey tomorrow.", False),
    ("", False),
])
def test_is_continue_nudge(text, expected):
    assert is_continue_nudge(text) is expected


def test_continue_patterns_can_be_extended():
    assert not is_continue_nudge("[Keep going]")
    assert is_continue_nudge("[Keep going]", [r"^\[keep going\]$"])


@pytest.mark.parametrize("tail, expected", [
    ([], False),
    ([{"role": "user", "content": "And then?"}], False),
    # prefill: the partial reply is the last message
    ([{"role": "user", "content": "And then?"}, {"role": "assistant", "content": "She turned"}], True),
    # nudge after the partial, as SillyTavern sends it (system) or after post-processing (user)
    ([{"role": "assistant", "content": "She turned"}, {"role": "system", "content": NUDGE}], True),
    ([{"role": "assistant", "content": "She turned"}, {"role": "user", "content": NUDGE}], True),
    # a nudge with no partial before it
    ([{"role": "user", "content": "Hi"}, {"role": "system", "content": NUDGE}], False),
    # a group chat: a system instruction after the last character's reply
    ([{"role": "assistant", "content": "Hi"}, {"role": "system", "content": "[Write the next reply only as Lilith.]"}],
     False),
])
def test_ends_with_continue(tail, expected):
    messages = [{"role": "system", "content": "persona"}] + tail
    assert ends_with_continue(messages) is expected


def test_ends_with_continue_on_an_empty_request():
    assert ends_with_continue([]) is False
