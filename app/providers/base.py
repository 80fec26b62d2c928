"""The one small interface every model provider implements, and the domain events it yields.

A provider turns an `UpstreamRequest` into a stream of `Delta` and `Usage` events. It knows
nothing of SSE, sessions or memory; non-streamed responses are assembled from the same events
(`app.completion.Assembler`), so each provider has one code path.

    class Echo:
        name = "echo"
        async def stream(self, request):
            yield Delta(role="assistant", content=request.messages[-1]["content"])
            yield Delta(finish_reason="stop")
        async def list_models(self): return ["echo"]
        async def health(self): return "ok"
        async def aclose(self): pass

Errors are raised as `app.errors.UpstreamError` subclasses; an error raised before the first
event may be retried or failed over by the caller, never one raised after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(slots=True)
class UpstreamRequest:
    """What the provider sends: the upstream's model name, final messages, forwarded params."""

    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None
    type: str | None = "function"


@dataclass(slots=True)
class Delta:
    """A piece of one choice's reply. `extra` carries fields we pass through unchanged."""

    choice: int = 0
    role: str | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    finish_reason: str | None = None
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    details: dict[str, Any] | None = None


Event = Delta | Usage


@runtime_checkable
class Provider(Protocol):
    name: str

    def stream(self, request: UpstreamRequest) -> AsyncIterator[Event]: ...

    async def list_models(self) -> list[str]: ...

    async def health(self) -> str: ...

    async def aclose(self) -> None: ...
