"""Google Gemini as a Provider, on the `google-genai` SDK, streaming end to end.

Why `google-genai` and not `google-generativeai`: the older package is deprecated by Google and no
longer developed, so what current models need (thought signatures on function calls, thinking
settings, JSON Schema for tools and replies) arrives only in `google-genai`, Google's current SDK.
It also fits how providers are built here: native asyncio streaming
(`client.aio.models.generate_content_stream`), an injectable endpoint (`HttpOptions(base_url=...)`,
so tests and gateways can point it anywhere), a caller-owned pooled `httpx.AsyncClient`, and
`HttpRetryOptions` to switch off its own retries.

The SDK's retries are off (`attempts=1`): `app.providers.router` owns retries, backoff, failover and
the circuit breaker, and must see every error as it happens. The HTTP client is ours (httpx, pooled,
closed in `aclose`): it also keeps the SDK off aiohttp, whose connection-error path would sleep and
retry on its own. A request hook gives it our connect and read time-outs, since the SDK passes its
own with every request (none at all unless `HttpOptions.timeout` is set).

    provider = GeminiProvider(api_key, models=["gemini-2.5-flash"], base_url="http://127.0.0.1:8002")
    async for event in provider.stream(UpstreamRequest("gemini-2.5-flash", messages)): ...
    await provider.aclose()

Mapping to and from the OpenAI shapes lives in `app.providers.gemini_mapping` (pure, unit tested).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence

import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from app.errors import UpstreamError, UpstreamStreamError, UpstreamTimeout, UpstreamUnavailable
from app.providers.base import Event, UpstreamRequest
from app.providers.gemini_errors import upstream_error
from app.providers.gemini_mapping import StreamMapper, request_payload, safety_settings
from app.providers.openai_compat import retry_after_seconds
from app.redaction import redact, secrets_of

SIGNATURES_KEPT = 4096


class GeminiProvider:
    """Streams Gemini `streamGenerateContent` as OpenAI-shaped events; `models` are the ones it serves."""

    def __init__(self, api_key: str, *, models: Sequence[str] = (), base_url: str = "",
                 safety: Mapping[str, str] | None = None, name: str = "gemini",
                 connect_timeout: float = 5.0, read_timeout: float = 120.0, max_connections: int = 100,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = name
        self.models = list(models)
        self.base_url = base_url
        self._secrets = secrets_of(api_key, base_url)  # never in a message: see app.redaction
        self._safety = safety_settings(safety or {}, _values(types.HarmCategory), _values(types.HarmBlockThreshold))
        self._signatures: OrderedDict[str, bytes] = OrderedDict()
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport,
                                       event_hooks={"request": [_with_timeout(timeout)]})
        options = types.HttpOptions(base_url=base_url or None, httpx_async_client=self._http,
                                    retry_options=types.HttpRetryOptions(attempts=1))
        self._client = genai.Client(api_key=api_key, vertexai=False, http_options=options)

    async def stream(self, request: UpstreamRequest) -> AsyncIterator[Event]:
        contents, config = request_payload(request, safety=self._safety, signatures=self._signatures)
        mapper = StreamMapper()
        chunks = None
        try:
            chunks = await self._client.aio.models.generate_content_stream(
                model=request.model, contents=contents, config=config)
            async for chunk in chunks:
                for event in mapper.events(chunk):
                    yield event
            for event in mapper.finish():
                yield event
        except genai_errors.APIError as exc:
            raise self._scrubbed(_api_error(exc)) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"Gemini ({self.name}) timed out: {type(exc).__name__}") from exc
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            raise UpstreamUnavailable(f"Gemini ({self.name}) unreachable: "
                                      f"{redact(str(exc), self._secrets)}") from exc
        except genai_errors.UnknownApiResponseError as exc:
            raise UpstreamStreamError(f"Gemini sent an answer that could not be read: {exc}") from exc
        finally:
            if chunks is not None:
                await chunks.aclose()
            self._remember(mapper.signatures)

    async def list_models(self) -> list[str]:
        """Models of the account that can generate content (without the `models/` prefix)."""
        names = []
        async for model in await self._client.aio.models.list(config={"page_size": 200}):
            if not model.supported_actions or "generateContent" in model.supported_actions:
                names.append((model.name or "").removeprefix("models/"))
        return names

    async def health(self) -> str:
        try:
            async with asyncio.timeout(2.0):
                await self._client.aio.models.list(config={"page_size": 1})
        except genai_errors.APIError as exc:
            return f"error: {self._scrubbed(_api_error(exc)).message}"
        except (httpx.HTTPError, TimeoutError) as exc:
            return f"unreachable: {type(exc).__name__}"
        return "ok"

    async def aclose(self) -> None:
        self._client.close()
        await self._http.aclose()

    def _remember(self, signatures: dict[str, bytes]) -> None:
        """Keep the thought signature of recent tool calls, to send back with their results."""
        for call_id, signature in signatures.items():
            self._signatures[call_id] = signature
            self._signatures.move_to_end(call_id)
        while len(self._signatures) > SIGNATURES_KEPT:
            self._signatures.popitem(last=False)

    def _scrubbed(self, error: UpstreamError) -> UpstreamError:
        error.message = redact(error.message, self._secrets)
        error.args = (error.message,)
        return error


def _api_error(exc: genai_errors.APIError) -> UpstreamError:
    headers = getattr(getattr(exc, "response", None), "headers", None) or {}
    return upstream_error(exc.code, exc.details, retry_after_seconds(headers.get("retry-after")))


def _with_timeout(timeout: httpx.Timeout):
    """A request hook putting our time-outs back: the SDK sends `timeout=None` (none at all) per request."""
    async def hook(request: httpx.Request) -> None:
        request.extensions["timeout"] = timeout.as_dict()
    return hook


def _values(enum) -> list[str]:
    return [member.value for member in enum]
