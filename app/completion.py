"""Provider events rendered as the OpenAI response: chunks for streams, one object otherwise.

`Assembler` folds events into the final reply (the non-streamed `chat.completion`, and the
text the memory stores); `chunks()` turns events into `chat.completion.chunk` dicts as they
arrive. Both are plain, synchronous and pure, so the stream path stays cheap and testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.providers.base import Delta, Event, Usage
from app.schemas import chunk_choice, chunk_dict, completion_dict, usage_dict


@dataclass(slots=True)
class _Choice:
    content: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, delta: Delta) -> None:
        if delta.content:
            self.content.append(delta.content)
        for call in delta.tool_calls or ():
            slot = self.tool_calls.setdefault(call.index, {"id": None, "type": "function",
                                                           "function": {"name": "", "arguments": ""}})
            slot["id"] = call.id or slot["id"]
            slot["function"]["name"] += call.name or ""
            slot["function"]["arguments"] += call.arguments or ""
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason
        for key, value in (delta.extra or {}).items():
            if isinstance(value, str) and isinstance(self.extra.get(key), str):
                self.extra[key] += value
            elif key != "logprobs":
                self.extra[key] = value

    @property
    def text(self) -> str:
        return "".join(self.content)

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None, "refusal": None}
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        message.update({k: v for k, v in self.extra.items() if k not in message})
        return message


class Assembler:
    """Accumulates a reply from events. `text` is choice 0's content, what memory records."""

    def __init__(self) -> None:
        self.choices: dict[int, _Choice] = {}
        self.usage: Usage | None = None

    def add(self, event: Event) -> None:
        if isinstance(event, Usage):
            self.usage = event
        else:
            self.choices.setdefault(event.choice, _Choice()).add(event)

    @property
    def text(self) -> str:
        first = self.choices.get(0)
        return first.text if first else ""

    @property
    def finish_reason(self) -> str | None:
        first = self.choices.get(0)
        return first.finish_reason if first else None

    def tool_calls(self) -> list[dict[str, Any]]:
        first = self.choices.get(0)
        return [first.tool_calls[i] for i in sorted(first.tool_calls)] if first else []

    def completion(self, cid: str, created: int, model: str) -> dict[str, Any]:
        choices = [{"index": i, "message": c.message(), "logprobs": None,
                    "finish_reason": c.finish_reason or "stop"} for i, c in sorted(self.choices.items())]
        return completion_dict(cid, created, model, choices, self.usage_dict())

    def usage_dict(self) -> dict[str, Any] | None:
        if self.usage is None:
            return None
        return usage_dict(self.usage.prompt_tokens, self.usage.completion_tokens, self.usage.details)


def delta_dict(delta: Delta) -> dict[str, Any]:
    """The `delta` object of a chunk choice, with only the fields that are present."""
    out: dict[str, Any] = {}
    if delta.role:
        out["role"] = delta.role
    if delta.content is not None:
        out["content"] = delta.content
    if delta.tool_calls:
        out["tool_calls"] = [_call_dict(c) for c in delta.tool_calls]
    for key, value in (delta.extra or {}).items():
        if key != "logprobs":
            out[key] = value
    return out


def _call_dict(call) -> dict[str, Any]:
    out: dict[str, Any] = {"index": call.index}
    if call.id:
        out["id"] = call.id
        out["type"] = call.type or "function"
    function: dict[str, Any] = {}
    if call.name is not None:
        function["name"] = call.name
    if call.arguments is not None:
        function["arguments"] = call.arguments
    out["function"] = function
    return out


def chunk_for(delta: Delta, cid: str, created: int, model: str, with_usage: bool) -> dict[str, Any]:
    choice = chunk_choice(delta.choice, delta_dict(delta), delta.finish_reason)
    if delta.extra and "logprobs" in delta.extra:
        choice["logprobs"] = delta.extra["logprobs"]
    chunk = chunk_dict(cid, created, model, [choice])
    if with_usage:
        chunk["usage"] = None
    return chunk
