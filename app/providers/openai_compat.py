"""Any OpenAI-compatible server (vLLM, Ollama, llama.cpp, OpenRouter, OpenAI) as a Provider.

One pooled `httpx.AsyncClient` per upstream; the request always streams upstream (with
`stream_options.include_usage`) so streamed and non-streamed client requests share one path.
The response is closed in `finally`, so a client that goes away cancels the upstream request.
After `[DONE]` the rest of the body (the chunked encoding's end) is read, briefly, so the
connection goes back to the pool: left unread, httpx closes it, and every request would pay a
new TCP (and TLS) handshake to the upstream before its first token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from app.errors import (UpstreamError, UpstreamHTTPError, UpstreamStreamError, UpstreamTimeout,
                        UpstreamUnavailable)
from app.providers.base import Delta, Event, ToolCallDelta, UpstreamRequest, Usage
from app.redaction import redact, secrets_of
from app.sse import data_lines


class OpenAICompatProvider:
    """Streams chat completions from `base_url` (e.g. `http://127.0.0.1:8001/v1`)."""

    def __init__(self, base_url: str, api_key: str = "", *, name: str = "openai",
                 connect_timeout: float = 5.0, read_timeout: float = 120.0,
                 max_connections: int = 100, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._secrets = secrets_of(api_key, base_url)  # never in a message: see app.redaction
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout,
                                         limits=limits, transport=transport)

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[Event]:
        body = {**request.params, "model": request.model, "messages": request.messages,
                "stream": True, "stream_options": {"include_usage": True}}
        try:
            async with self._client.stream("POST", "/chat/completions", content=orjson.dumps(body),
                                           headers={"Content-Type": "application/json"}) as response:
                if response.status_code >= 400:
                    raise await _http_error(response, self.name, self._secrets)
                lines = response.aiter_lines()
                async for event in _events(data_lines(lines)):
                    yield event
                await _drain(lines)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"upstream {self.name} timed out: {type(exc).__name__}") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise UpstreamUnavailable(f"upstream {self.name} unreachable: {redact(str(exc), self._secrets)}") from exc

    async def list_models(self) -> list[str]:
        response = await self._client.get("/models", timeout=5.0)
        response.raise_for_status()
        return [m["id"] for m in response.json().get("data", []) if "id" in m]

    async def health(self) -> str:
        try:
            response = await self._client.get("/models", timeout=2.0)
        except httpx.HTTPError as exc:
            return f"unreachable: {type(exc).__name__}"
        return "ok" if response.status_code < 500 else f"error: HTTP {response.status_code}"

    async def aclose(self) -> None:
        await self._client.aclose()


DRAIN_SECONDS = 1.0  # how long to wait for a body to end after [DONE] before giving the connection up


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read what follows `[DONE]` (normally nothing but the body's end) so the connection is reused."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for _ in lines:
                pass


async def _events(payloads: AsyncIterator[str]) -> AsyncIterator[Event]:
    """Upstream SSE payloads as domain events; an upstream `error` frame becomes an exception.

    A stream that stops without `[DONE]` is accepted only once a finish_reason was seen
    (some servers omit `[DONE]`); otherwise it was cut and that is an error.
    """
    finished = False
    async for payload in payloads:
        if payload.strip() == "[DONE]":
            return
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise UpstreamStreamError(f"upstream sent invalid JSON: {payload[:200]!r}") from exc
        if isinstance(chunk, dict) and "error" in chunk and not chunk.get("choices"):
            raise UpstreamStreamError(_message_of(chunk))
        for event in chunk_events(chunk):
            finished = finished or bool(getattr(event, "finish_reason", None))
            yield event
    if not finished:
        raise UpstreamStreamError("upstream stream ended before the reply was complete")


def chunk_events(chunk: Any) -> list[Event]:
    """One upstream `chat.completion.chunk` as events (pure); a frame of the wrong shape is an error.

        >>> chunk_events({"choices": [{"index": 0, "delta": "oops"}]})
        Traceback (most recent call last):
        ...
        app.errors.UpstreamStreamError: upstream sent a malformed chunk: choices[0].delta is a string, not an object
    """
    _expect(chunk, dict, "the frame")
    choices = chunk.get("choices") or []
    _expect(choices, list, "choices")
    events: list[Event] = [_delta(choice, i) for i, choice in enumerate(choices)]
    usage = chunk.get("usage")
    if usage:
        events.append(_usage(usage))
    return events


_KNOWN = frozenset({"role", "content", "tool_calls"})
_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
_TYPE_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def _expect(value: Any, kind: type, where: str) -> None:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        got = _TYPE_NAMES.get(type(value), type(value).__name__)
        raise UpstreamStreamError(f"upstream sent a malformed chunk: {where} is {got}, not {_TYPE_NAMES[kind]}")


def _delta(choice: Any, i: int) -> Delta:
    _expect(choice, dict, f"choices[{i}]")
    delta = choice.get("delta") or {}
    _expect(delta, dict, f"choices[{i}].delta")
    content = delta.get("content")
    if content is not None:
        _expect(content, str, f"choices[{i}].delta.content")
    calls = [_tool_call(c, k, f"choices[{i}].delta.tool_calls[{k}]") for k, c in enumerate(_calls(delta, i))]
    extra = {k: v for k, v in delta.items() if k not in _KNOWN and v is not None}
    if choice.get("logprobs"):
        extra["logprobs"] = choice["logprobs"]
    return Delta(choice=_index(choice.get("index", i), f"choices[{i}].index"), role=delta.get("role"),
                 content=content, tool_calls=calls or None, finish_reason=choice.get("finish_reason"),
                 extra=extra or None)


def _calls(delta: dict[str, Any], i: int) -> list[Any]:
    calls = delta.get("tool_calls") or []
    _expect(calls, list, f"choices[{i}].delta.tool_calls")
    return calls


def _tool_call(call: Any, k: int, where: str) -> ToolCallDelta:
    _expect(call, dict, where)
    function = call.get("function") or {}
    _expect(function, dict, where + ".function")
    return ToolCallDelta(index=_index(call.get("index", k), where + ".index"), id=call.get("id"),
                         type=call.get("type"), name=function.get("name"), arguments=function.get("arguments"))


def _index(value: Any, where: str) -> int:
    _expect(value, int, where)
    return value


def _usage(usage: Any) -> Usage:
    _expect(usage, dict, "usage")
    for name in _COUNTS:
        if usage.get(name) is not None:
            _expect(usage[name], int, f"usage.{name}")
    details = {k: v for k, v in usage.items() if k not in _COUNTS}
    return Usage(usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0, details or None)


async def _http_error(response: httpx.Response, name: str, secrets: tuple[str, ...]) -> UpstreamError:
    """The upstream's error answer as ours, its message cleared of our key (an upstream that rejects a
    key may quote it); a rejected key says which upstream, since the client's own key was fine."""
    raw = await response.aread()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = {"error": {"message": raw.decode("utf-8", "replace")[:500] or response.reason_phrase}}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {"message": str(error or body)}
    message = redact(str(error.get("message") or response.reason_phrase), secrets)
    if response.status_code == 401:
        message = f"upstream {name} rejected the proxy's API key: {message}"
    return UpstreamHTTPError(response.status_code, message,
                             type=error.get("type"), code=_str_or_none(error.get("code")),
                             retry_after=retry_after_seconds(response.headers.get("retry-after")))


def _message_of(chunk: dict[str, Any]) -> str:
    error = chunk.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds (only the delta-seconds form; HTTP dates are rare from model servers)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
