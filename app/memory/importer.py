"""SillyTavern chat files (`.jsonl`) as OpenAI messages, so users bring their existing long chats.

A chat file is one JSON object per line: first a metadata line (`user_name`, `character_name`,
`create_date`, `chat_metadata`), then one line per message with `name`, `is_user`, `is_system`,
`mes` (the text shown, i.e. the chosen swipe), `send_date` and optionally `swipes` /
`swipe_id` (the alternatives of a reply). Only the chosen swipe is a turn; hidden system
notes (`is_system`) are skipped.

    chat = parse_sillytavern(text)
    chat.messages[0]  # {"role": "assistant", "name": "Seraphina", "content": "...", "created_at": 1717599720.0}

`send_date` becomes `created_at` (`parse_time`), so recollections of an imported chat carry the
dates they were said on; a date that cannot be read leaves the message undated (stored as now).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

# Dates as SillyTavern has written `send_date`: "June 5, 2024 3:02pm", "2024-6-5@15h02m11s".
_TIME_FORMATS = ("%B %d, %Y %I:%M%p", "%B %d, %Y %I:%M %p", "%Y-%m-%d@%Hh%Mm%Ss", "%Y-%m-%d %H:%M:%S")


@dataclass(slots=True)
class ImportedChat:
    user_name: str | None = None
    character_name: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0


class ChatFileError(ValueError):
    """The file is not a SillyTavern chat; the message says which line and why."""


def parse_sillytavern(text: str) -> ImportedChat:
    chat = ImportedChat()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record = _load(line, number)
        if number == 1 and "mes" not in record:
            chat.user_name = record.get("user_name")
            chat.character_name = record.get("character_name")
            continue
        message = to_message(record)
        if message is None:
            chat.skipped += 1
        else:
            chat.messages.append(message)
    if not chat.messages:
        raise ChatFileError("no messages found: expected a SillyTavern .jsonl chat (one JSON object per line)")
    return chat


def _load(line: str, number: int) -> dict[str, Any]:
    """One line as a JSON object; strict, like the chat endpoint (no lone surrogates, bounded depth)."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ChatFileError(f"line {number} is not valid JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ChatFileError(f"line {number} is not a JSON object")
    return record


def to_message(record: dict[str, Any]) -> dict[str, Any] | None:
    """One chat line as a message, or None for hidden system notes and empty lines."""
    if record.get("is_system") or "mes" not in record:
        return None
    text = _chosen_text(record)
    if not text.strip():
        return None
    message: dict[str, Any] = {"role": "user" if record.get("is_user") else "assistant", "content": text}
    if record.get("name"):
        message["name"] = str(record["name"])
    if record.get("send_date"):
        try:
            message["created_at"] = parse_time(record["send_date"])
        except ValueError:
            pass  # undated: stored as now
    return message


def parse_time(value: Any) -> float:
    """A message time as epoch seconds: a number (seconds, or milliseconds past 1e11), ISO 8601,
    or one of the forms SillyTavern writes. Times without a zone are local.

        >>> parse_time(1717599720), parse_time(1717599720000), parse_time("2024-06-05T15:02:00Z")
        (1717599720.0, 1717599720.0, 1717599720.0)

    Raises ValueError for anything else (booleans, NaN, text in no known form).
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)) or (isinstance(value, str) and _is_number(value)):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"not a time: {value!r}")
        return seconds / 1000 if seconds > 1e11 else seconds
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a time: {value!r}")
    text = value.strip()
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    for form in _TIME_FORMATS:
        try:
            return datetime.strptime(text, form).timestamp()
        except ValueError:
            continue
    raise ValueError(f"not a time in a known form: {value!r} (use epoch seconds or ISO 8601)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _chosen_text(record: dict[str, Any]) -> str:
    swipes, chosen = record.get("swipes"), record.get("swipe_id")
    if isinstance(swipes, list) and isinstance(chosen, int) and 0 <= chosen < len(swipes):
        return str(swipes[chosen])
    return str(record.get("mes") or "")
