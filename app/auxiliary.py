"""Prompts that clients send through the chat endpoint but that are not chat turns.

SillyTavern's extensions reuse the chat connection for side jobs: Summarize ("Ignore previous
instructions. Summarize the most important facts and events in the story so far..."), impersonation
("[Write your next reply from the point of view of {{user}}..."), quiet prompts for expressions and
image prompts ("Pause your roleplay..."), and other frontends ask for a title or tags the same way.
Such a request must be answered with memory but must not be recorded as part of the story.

    >>> is_auxiliary([{"role": "user", "content": "Hi"},
    ...               {"role": "system", "content": "Ignore previous instructions. Summarize the story."}]) is not None
    True
    >>> is_auxiliary([{"role": "user", "content": "Hi"}]) is None
    True

A "continue" is different: it is a chat turn whose reply extends the last one. SillyTavern asks for
it with a nudge after the partial reply ("[Continue the following message. Do not include ANY parts
of the original message...]", editable by the user, so matched loosely) or, with "continue prefill",
by ending the request with the partial reply itself; `ends_with_continue` recognises both.

Patterns are case-insensitive regular expressions searched in the first `SCAN_CHARS` characters of
a message; a setting adds to the defaults (it cannot remove one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from app.tokens import message_text

SCAN_CHARS = 2000  # side-job prompts announce themselves at the start

DEFAULT_PATTERNS: tuple[str, ...] = (
    # SillyTavern Summarize and most quiet prompts (image prompts, classification)
    r"^\W*ignore\s+(?:all\s+)?(?:the\s+)?previous\s+instructions",
    r"summari[sz]e\s+the\s+most\s+important\s+facts\s+and\s+events",
    # SillyTavern impersonation
    r"^\W*write\s+your\s+next\s+reply\s+from\s+the\s+point\s+of\s+view\s+of",
    # SillyTavern quiet prompts: expressions, objectives, image generation
    r"^\W*pause\s+your\s+roleplay",
    r"classify\s+the\s+emotion\s+of\s+the\s+last\s+message",
    r"^\W*in\s+the\s+next\s+response\s+i\s+want\s+you\s+to\s+provide\s+only\s+a\s+detailed\s+comma-delimited",
    # "Generate a title", "Create a concise, 3-5 word title", "Write a short caption"
    r"^\W*(?:generate|create|write|suggest)\s+(?:an?\s+|the\s+)?"
    r"(?:(?:short|concise|brief|catchy|one-line|\d+(?:\s*-\s*\d+)?[- ]word),?\s+)*(?:title|caption)\b",
    # chat frontends' background prompts: "### Task: Generate a concise title / tags / follow-ups"
    r"^\W*###\s*task\s*:",
)

DEFAULT_CONTINUE_PATTERNS: tuple[str, ...] = (
    r"^\W*continue\s+(?:the|your|this)\s+(?:(?:following|last|previous|above|unfinished)\s+)?"
    r"(?:message|reply|response)",
    r"do\s+not\s+include\s+any\s+parts?\s+of\s+the\s+original\s+message",
)

PERSONA_ROLES = frozenset({"system", "developer"})


def compile_patterns(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    """Compile case-insensitive patterns; ValueError naming the first bad one (for settings)."""
    return _compiled(tuple(patterns))


@lru_cache(maxsize=32)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise ValueError(f"invalid pattern {pattern!r}: {exc}") from None
    return tuple(compiled)


def first_match(text: str, patterns: Sequence[str]) -> str | None:
    """The first pattern found in the start of `text`, or None."""
    head = text[:SCAN_CHARS]
    for regex in _compiled(tuple(patterns)):
        if regex.search(head):
            return regex.pattern
    return None


def is_auxiliary(messages: Sequence[Mapping[str, Any]], patterns: Sequence[str] = ()) -> str | None:
    """The pattern that marks this request as a side job (not a chat turn), or None.

    Looked at: the trailing system messages and the user message just before them (or the final
    user message). Assistant text is never looked at, so a story that quotes a prompt is safe.
    `patterns` extend `DEFAULT_PATTERNS`.
    """
    every = DEFAULT_PATTERNS + tuple(patterns)
    for message in _final_prompts(messages):
        reason = first_match(message_text(message), every)
        if reason is not None:
            return reason
    return None


def _final_prompts(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The trailing run of system messages plus the user message before it, last first."""
    found = []
    for message in reversed(messages):
        role = message.get("role")
        if role in PERSONA_ROLES:
            found.append(message)
            continue
        if role == "user":
            found.append(message)
        break
    return found


def is_continue_nudge(text: str, patterns: Sequence[str] = ()) -> bool:
    """Whether `text` asks the model to continue the previous reply rather than answer anew.

        >>> is_continue_nudge("[Continue the following message. Do not include ANY parts of the "
        ...                   "original message. Use capitalization and punctuation as if your reply "
        ...                   "is a part of the original message: She turned]")
        True
        >>> is_continue_nudge("continue")
        False

    A bare "continue" typed by the user is a turn of its own and stays one. `patterns` extend
    `DEFAULT_CONTINUE_PATTERNS`.
    """
    return first_match(text, DEFAULT_CONTINUE_PATTERNS + tuple(patterns)) is not None


def ends_with_continue(messages: Sequence[Mapping[str, Any]], patterns: Sequence[str] = ()) -> bool:
    """Whether the reply to this request continues the last assistant message.

    True when the request ends with an assistant message (a prefill) or with a continue nudge,
    of any role, right after an assistant message. A request ending in a system instruction
    after an assistant message (a group chat asking the next character to speak) is not one.
    """
    if not messages:
        return False
    last = messages[-1]
    if last.get("role") == "assistant":
        return True
    before = messages[-2] if len(messages) > 1 else {}
    return before.get("role") == "assistant" and is_continue_nudge(message_text(last), patterns)
