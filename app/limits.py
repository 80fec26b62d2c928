"""Documented limits on one request's messages, checked before anything is stored or sent (pure).

    MAX_MESSAGES       messages in one request           400 array_above_max_length
    MAX_MESSAGE_CHARS  characters of text in one message  400 string_above_max_length
    MAX_CONTENT_PARTS  parts of one message's content     400 array_above_max_length

The codes are OpenAI's own for the same faults. A request past a limit is refused whole, so
nothing of it is recorded; the body's byte size is limited before this (MAX_REQUEST_BYTES, 413).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class MessageLimits:
    messages: int = 4096
    chars: int = 262_144
    parts: int = 256


def check_messages(messages: Sequence[Any], limits: MessageLimits, field: str = "messages") -> None:
    """Raise the first limit `messages` (pydantic messages or dicts) goes past.

        >>> check_messages([{"role": "user", "content": "x" * 5}], MessageLimits(chars=4))
        Traceback (most recent call last):
        ...
        app.errors.InvalidRequest: messages.0.content has 5 characters; at most 4 are accepted (MAX_MESSAGE_CHARS)
    """
    if len(messages) > limits.messages:
        raise InvalidRequest(f"{field} has {len(messages)} messages; at most {limits.messages} are accepted "
                             "(MAX_MESSAGES)", param=field, code="array_above_max_length")
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
        _check_content(content, limits, f"{field}.{i}.content")


def _check_content(content: Any, limits: MessageLimits, where: str) -> None:
    if isinstance(content, list) and len(content) > limits.parts:
        raise InvalidRequest(f"{where} has {len(content)} parts; at most {limits.parts} are accepted "
                             "(MAX_CONTENT_PARTS)", param=where, code="array_above_max_length")
    chars = text_chars(content)
    if chars > limits.chars:
        raise InvalidRequest(f"{where} has {chars} characters; at most {limits.chars} are accepted "
                             "(MAX_MESSAGE_CHARS)", param=where, code="string_above_max_length")


def text_chars(content: Any) -> int:
    """Characters of text in a message's content: a string, or the text of its parts."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p.get("text") or "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return 0
