"""OpenAI wire types for chat completions, in the order of the OpenAI API reference.

Requests are validated with pydantic, but unknown fields are accepted (and logged by the
route) so a newer client never breaks: `model_extra` keeps them for forwarding.
Responses are built as plain dicts by the `*_dict` helpers below, which fix their exact shape
(`chat.completion`, `chat.completion.chunk`) in one place; building dicts keeps the
streaming path cheap.

Our own extensions are fenced off in `MemoryControls` and never sent upstream.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class _Open(BaseModel):
    """Accept and keep fields this version does not know yet."""

    model_config = ConfigDict(extra="allow")


class FunctionCall(_Open):
    name: str | None = None
    arguments: str | None = None


class ToolCall(_Open):
    id: str | None = None
    type: str = "function"
    function: FunctionCall


class ChatMessage(_Open):
    """One message of `messages`: content is a string, a list of parts, or null."""

    role: Role
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None


class ChatCompletionRequest(_Open):
    """`POST /v1/chat/completions` body (https://platform.openai.com/docs/api-reference/chat/create)."""

    messages: list[ChatMessage] = Field(min_length=1)
    model: str = ""
    audio: dict[str, Any] | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    function_call: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    metadata: dict[str, Any] | None = None
    modalities: list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    parallel_tool_calls: bool | None = None
    prediction: dict[str, Any] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = None
    seed: int | None = None
    service_tier: str | None = None
    stop: str | list[str] | None = None
    store: bool | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    top_p: float | None = Field(default=None, ge=0, le=1)
    user: str | None = None
    web_search_options: dict[str, Any] | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)

    @property
    def response_limit(self) -> int | None:
        """The caller's cap on reply tokens (`max_completion_tokens` wins over `max_tokens`)."""
        return self.max_completion_tokens or self.max_tokens


# Fields that are ours or that the proxy itself handles; everything else is forwarded.
NOT_FORWARDED = frozenset({"messages", "model", "stream", "stream_options", "metadata", "store"})


def forwardable_params(request: ChatCompletionRequest) -> dict[str, Any]:
    """The request's sampling/tool fields exactly as the client set them, for the upstream."""
    data = request.model_dump(exclude_unset=True, exclude_none=True, exclude=set(NOT_FORWARDED))
    return data


def message_dicts(request: ChatCompletionRequest) -> list[dict[str, Any]]:
    """The request's messages as plain dicts, unset and null fields left out (content kept)."""
    out = []
    for message in request.messages:
        data = message.model_dump(exclude_none=True)
        data.setdefault("content", None)
        out.append(data)
    return out


# ---------------------------------------------------------------- responses


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def now() -> int:
    return int(time.time())


def usage_dict(prompt: int, completion: int, details: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if details:
        data.update(details)
    return data


def chunk_dict(
    cid: str, created: int, model: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A `chat.completion.chunk`; with include_usage, every chunk carries `usage: null` but the last."""
    data: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
    }
    if usage is not None:
        data["usage"] = usage
    return data


def chunk_choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def completion_dict(
    cid: str, created: int, model: str, choices: list[dict[str, Any]], usage: dict[str, Any] | None
) -> dict[str, Any]:
    """A non-streamed `chat.completion`."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": choices,
        "usage": usage,
    }


def model_dict(model_id: str, owned_by: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owned_by}


# ---------------------------------------------------------------- our extensions


class MemoryControls(BaseModel):
    """Per-request memory switches, from `X-*` headers or the same keys in `metadata`.

    Ours, not OpenAI's: `X-Memory: off` (plain pass-through), `X-Memory: read-only` (read memory,
    store nothing), `X-Context-Budget: 4096` (total context tokens for this request).
    """

    mode: Literal["on", "off", "read-only"] = "on"
    context_budget: int | None = Field(default=None, ge=256, le=2_000_000)
    scope: Literal["session", "character", "person"] | None = None  # `X-Memory-Scope` (app.persons)
