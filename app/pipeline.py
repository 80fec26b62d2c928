"""The steps of one chat completion, in order, readable in one screen.

    prepare:  controls -> model -> memory.prepare (session, sync, recall, context) -> UpstreamRequest
    open:     router.open (retries, failover; nothing sent to the client yet)
    stream:   events -> chunks -> SSE, then memory.record (before [DONE]) and the request log
    complete: events -> one chat.completion, then memory.record

Memory is optional: with `X-Memory: off`, MEMORY_ENABLED=false or no memory service, the
request passes through with its own messages untouched.

A writing request holds its conversation from `prepare` on. `held()` is the one place that lets
go of it: every way out of its block frees the conversation (an error of any kind, a
cancellation), except handing it to a streamed response, which frees it when it ends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from app import sse
from app.budget_parts import budget_parts
from app.completion import Assembler, chunk_for
from app.errors import InvalidRequest, ProxyError, UpstreamStreamError, from_exception
from app.persons import parse_scope
from app.providers.base import UpstreamRequest, Usage
from app.providers.router import OpenedStream, Router
from app.tokens import count_messages, count_tokens
from app.schemas import (ChatCompletionRequest, MemoryControls, chunk_dict, completion_id, forwardable_params,
                         message_dicts, now)

LEFT_OUT_SHOWN = 20  # recollections that found no room, listed in a preview (best first)


@dataclass(slots=True)
class Exchange:
    """One request's state as it moves through the steps."""

    request: ChatCompletionRequest
    controls: MemoryControls
    model: str
    upstream: UpstreamRequest
    headers: Mapping[str, str]
    cid: str = field(default_factory=completion_id)
    created: int = field(default_factory=now)
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    memory: Any = None
    provider: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    error: ProxyError | None = None
    owner: str | None = None  # the caller's tenant (app.auth): part of every storage key


class Pipeline:
    def __init__(self, router: Router, *, memory: Any = None, observer: Any = None,
                 memory_enabled: bool = True) -> None:
        self.router = router
        self.memory = memory
        self.observer = observer
        self.memory_enabled = memory_enabled

    async def prepare(self, request: ChatCompletionRequest, headers: Mapping[str, str], *,
                      preview: bool = False, owner: str | None = None) -> Exchange:
        controls = memory_controls(headers, request.metadata)
        model, _ = await self.router.resolve(request.model)
        upstream = UpstreamRequest(model=model, messages=message_dicts(request),
                                   params=forwardable_params(request))
        exchange = Exchange(request=request, controls=controls, model=model, upstream=upstream, headers=headers,
                            owner=owner)
        if self.memory is not None and self.memory_enabled and controls.mode != "off":
            t0 = time.perf_counter()
            exchange.memory = await self.memory.prepare(exchange, preview=preview)
            exchange.timings["memory"] = time.perf_counter() - t0
        return exchange

    async def preview(self, request: ChatCompletionRequest, headers: Mapping[str, str], *,
                      owner: str | None = None) -> dict[str, Any]:
        """What would be sent upstream, and why; nothing is stored and nothing is sent."""
        exchange = await self.prepare(request, headers, preview=True, owner=owner)
        turn = exchange.memory
        built = getattr(turn, "built", None)
        return {"object": "chat.completion.preview", "model": exchange.model,
                "session_id": getattr(turn, "session_id", None), "messages": exchange.upstream.messages,
                "budget": built.budget if built else None,
                "parts": budget_parts(built.budget, built.chosen) if built else None,
                "memories": [_memory_dict(m) for m in built.chosen] if built else [],
                "left_out": [_memory_dict(m) for m in built.left_out[:LEFT_OUT_SHOWN]] if built else [],
                "dropped": built.dropped if built else None,
                "auxiliary": getattr(turn, "auxiliary", None)}

    async def open(self, exchange: Exchange) -> OpenedStream:
        t0 = time.perf_counter()
        try:
            opened = await self.router.open(exchange.model, exchange.upstream)
        except ProxyError as exc:
            exchange.provider = getattr(exc, "provider", "")
            await self._finish(exchange, None, exc)
            raise
        exchange.provider = opened.provider
        exchange.timings["upstream_open"] = time.perf_counter() - t0
        return opened

    async def stream(self, exchange: Exchange, opened: OpenedStream) -> AsyncIterator[bytes]:
        """SSE bytes for the client; a failure mid-stream ends with one error frame and [DONE]."""
        assembler = Assembler()
        with_usage = exchange.request.include_usage
        error: ProxyError | None = None
        try:
            async for event in opened.events:
                assembler.add(event)
                if isinstance(event, Usage):
                    continue
                if exchange.first_token is None:
                    exchange.first_token = time.perf_counter()
                yield sse.encode(chunk_for(event, exchange.cid, exchange.created, exchange.model, with_usage))
        except ProxyError as exc:
            error = exc
        except Exception as exc:  # noqa: BLE001 - anything else still ends the stream cleanly
            error = UpstreamStreamError(f"stream failed: {from_exception(exc).message}")
        except BaseException:
            self._abandon(exchange, assembler)
            raise
        if error is None and with_usage:
            yield sse.encode(chunk_dict(exchange.cid, exchange.created, exchange.model, [],
                                        usage=self._usage(exchange, assembler)))
        await self._finish(exchange, assembler, error)
        if error is not None:
            yield sse.encode(error.body())
        yield sse.DONE

    async def complete(self, exchange: Exchange, opened: OpenedStream) -> dict[str, Any]:
        assembler = Assembler()
        try:
            async for event in opened.events:
                if exchange.first_token is None and not isinstance(event, Usage):
                    exchange.first_token = time.perf_counter()
                assembler.add(event)
        except ProxyError as exc:
            await self._finish(exchange, assembler, exc)
            raise
        except Exception as exc:  # noqa: BLE001 - reported as an upstream failure, like a stream's
            error = UpstreamStreamError(f"stream failed: {from_exception(exc).message}")
            await self._finish(exchange, assembler, error)
            raise error from exc
        if assembler.usage is None:
            self._usage(exchange, assembler)
        await self._finish(exchange, assembler, None)
        return assembler.completion(exchange.cid, exchange.created, exchange.model)

    def _usage(self, exchange: Exchange, assembler: Assembler) -> dict[str, Any]:
        """Upstream usage when it sent some, else our own count of the same."""
        if assembler.usage is None:
            assembler.usage = estimate_usage(exchange.upstream.messages, assembler.text)
        return assembler.usage_dict() or {}

    async def _finish(self, exchange: Exchange, assembler: Assembler | None, error: ProxyError | None) -> None:
        exchange.error = error
        if exchange.memory is not None:
            if assembler is not None and error is None:
                await self.memory.record(exchange, assembler)
            else:
                self.memory.release(exchange)
        if self.observer is not None:
            self.observer.finished(exchange, assembler)

    @asynccontextmanager
    async def held(self, exchange: Exchange, *, handed_on: bool = False) -> AsyncIterator[Exchange]:
        """The exchange's conversation is freed on every way out of the block.

        With `handed_on`, a normal exit leaves it held: a streamed response then owns it and
        calls `release` when it ends, however it ends.
        """
        try:
            yield exchange
        except BaseException:
            self.release(exchange)
            raise
        if not handed_on:
            self.release(exchange)

    def release(self, exchange: Exchange) -> None:
        """Idempotent: frees the conversation (a no-op once the reply was recorded or handed on)."""
        if exchange.memory is not None and self.memory is not None:
            self.memory.release(exchange)

    def _abandon(self, exchange: Exchange, assembler: Assembler) -> None:
        """The client went away: keep what it saw (a stopped reply stays in its chat), never block."""
        exchange.error = ProxyError("client disconnected", code="client_disconnected", status=499)
        if exchange.memory is not None and assembler.text:
            self.memory.record_later(exchange, assembler)
        if self.observer is not None:
            self.observer.finished(exchange, assembler)


def _memory_dict(item: Any) -> dict[str, Any]:
    return {"text": item.text, "kind": item.kind, "message_ids": list(item.message_ids),
            "score": round(item.score, 4), "reasons": list(item.reasons), "when": item.when,
            "tokens": count_tokens(item.text)}


def estimate_usage(messages: list[dict[str, Any]], reply: str) -> Usage:
    return Usage(count_messages(messages), count_tokens(reply))


def memory_controls(headers: Mapping[str, str], metadata: dict[str, Any] | None) -> MemoryControls:
    """`X-Memory` / `X-Context-Budget` / `X-Memory-Scope` headers, or the same keys in `metadata`
    (headers win)."""
    meta = metadata or {}
    try:
        scope = parse_scope(headers.get("x-memory-scope") or meta.get("x-memory-scope") or meta.get("memory_scope"))
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="X-Memory-Scope") from None
    mode = headers.get("x-memory") or meta.get("x-memory") or meta.get("memory") or "on"
    budget = headers.get("x-context-budget") or meta.get("x-context-budget") or meta.get("context_budget")
    mode = str(mode).strip().lower()
    mode = {"false": "off", "0": "off", "none": "off", "readonly": "read-only", "true": "on"}.get(mode, mode)
    try:
        return MemoryControls(mode=mode, context_budget=int(budget) if budget not in (None, "") else None,
                              scope=scope)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"invalid memory controls: X-Memory must be on, off or read-only and "
                             f"X-Context-Budget a whole number from 256: {exc}", param="X-Memory") from None
