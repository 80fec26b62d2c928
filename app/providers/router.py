"""Which provider serves a model, with retries and failover before the first token.

Each model resolves to an ordered chain of `Route`s (provider + the upstream's own model name).
`Router.open()` walks the chain: for each provider it retries connection errors, timeouts,
429 and 5xx with exponential backoff and jitter (honouring `Retry-After`), and moves to the
next provider when one is exhausted (at once when the upstream asks for a pause longer than
`max_wait`). Retryable failures count towards the provider's circuit breaker; an error the upstream
answered on purpose (a 400, a rejected key) does not, and is relayed without failover. All of that
happens before the first event reaches the client; once `open()` has returned, errors are final.

    router = Router(providers={"local": provider}, routes={"llama": [Route("local", "llama")]})
    opened = await router.open("llama", UpstreamRequest(model="", messages=[...]))
    async for event in opened.events: ...
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from app.errors import InvalidRequest, NotConfigured, NotFound, UpstreamError, UpstreamStreamError, UpstreamTimeout
from app.providers.base import Event, Provider, UpstreamRequest
from app.providers.circuit import CircuitBreaker


@dataclass(frozen=True, slots=True)
class Route:
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    max_wait: float = 8.0
    initial_wait: float = 0.25
    first_byte_timeout: float = 60.0


@dataclass(slots=True)
class OpenedStream:
    """An upstream stream that has produced its first event: from here on, no retries."""

    provider: str
    model: str
    events: AsyncIterator[Event]
    attempts: int = 1
    failed_over: list[str] = field(default_factory=list)


class Router:
    """Model names to provider chains; the listing behind `/v1/models`."""

    def __init__(self, providers: dict[str, Provider], routes: dict[str, list[Route]], *,
                 aliases: dict[str, str] | None = None, default_model: str = "",
                 passthrough: str | list[str] | None = None, claims: dict[str, tuple[str, ...]] | None = None,
                 retry: RetryPolicy = RetryPolicy(),
                 concurrency: int = 64, breakers: dict[str, CircuitBreaker] | None = None,
                 on_retry: Callable[[str, BaseException], None] | None = None) -> None:
        self.providers = providers
        self.routes = routes
        self.aliases = aliases or {}
        self.default_model = default_model
        self.passthrough = [passthrough] if isinstance(passthrough, str) else list(passthrough or ())
        self.claims = claims or {}
        self.retry = retry
        self._limits = {name: asyncio.Semaphore(concurrency) for name in providers}
        self.breakers = breakers or {name: CircuitBreaker() for name in providers}
        self.on_retry = on_retry
        self._listed: dict[str, tuple[float, set[str] | None]] = {}

    # -------------------------------------------------------------- resolution

    async def resolve(self, model: str) -> tuple[str, list[Route]]:
        """The public model name and its chain; raises NotFound/NotConfigured/InvalidRequest."""
        if not self.providers:
            raise NotConfigured("no upstream model server is configured: set UPSTREAM_BASE_URL "
                                "(an OpenAI-compatible server such as vLLM, Ollama or llama.cpp) "
                                "or GEMINI_API_KEY in the environment or .env, then restart")
        name = model or self.default_model
        if not name:
            raise InvalidRequest("you must provide a model parameter (or set DEFAULT_MODEL)", param="model")
        name = self.aliases.get(name, name)
        if name in self.routes:
            return name, self.routes[name]
        provider = await self._unrouted(name)
        if provider is not None:
            return name, [Route(provider, name)]
        raise NotFound(f"The model `{model or name}` does not exist or you do not have access to it.",
                       code="model_not_found", param="model")

    async def _unrouted(self, name: str) -> str | None:
        """Who serves a name no route names: a provider that claims it by prefix (Gemini claims
        `gemini-…`), else the first pass-through provider whose model list has it; the first one
        also takes names when its list cannot be read."""
        for provider, prefixes in self.claims.items():
            if name.startswith(prefixes):
                return provider
        for k, provider in enumerate(self.passthrough):
            listed = await self._listing(provider)
            if (listed is None and k == 0) or (listed is not None and name in listed):
                return provider
        return None

    async def _listing(self, provider: str, ttl: float = 60.0) -> set[str] | None:
        cached = self._listed.get(provider)
        if cached and time.monotonic() - cached[0] < ttl:
            return cached[1]
        try:
            names: set[str] | None = set(await self.providers[provider].list_models())
        except Exception:
            names = None  # remembered too, so a dead upstream's list is not asked for on every request
        self._listed[provider] = (time.monotonic(), names)
        return names

    async def list_models(self) -> list[tuple[str, str]]:
        """(id, owned_by) for every model a client may ask for, configured ones first."""
        seen: dict[str, str] = {}
        for name, chain in self.routes.items():
            seen.setdefault(name, chain[0].provider if chain else "proxy")
        for alias, target in self.aliases.items():
            seen.setdefault(alias, "alias:" + target)
        for provider in self.passthrough:
            for name in sorted(await self._listing(provider) or ()):
                seen.setdefault(name, provider)
        return list(seen.items())

    # -------------------------------------------------------------- opening a stream

    async def open(self, model: str, request: UpstreamRequest) -> OpenedStream:
        """Open the first healthy route of `model`'s chain; errors here are safe to report as HTTP."""
        _, chain = await self.resolve(model)
        failed: list[str] = []
        last: UpstreamError | None = None
        for route in chain:
            breaker = self.breakers[route.provider]
            if not breaker.allow():
                failed.append(route.provider)
                last = last or UpstreamError(f"upstream {route.provider} is failing; circuit open",
                                             code="circuit_open", status=503)
                continue
            try:
                opened = await self._open_route(route, request)
            except UpstreamError as exc:
                exc.provider = route.provider
                if not exc.retryable:  # the upstream answered (a 400, a bad key): alive, and no use failing over
                    breaker.record_success()
                    raise
                breaker.record_failure()
                failed.append(route.provider)
                last = exc
                continue
            except BaseException:  # cancelled (the client left) or a bug: no verdict on the upstream
                breaker.release()
                raise
            breaker.record_success()
            opened.failed_over = failed
            return opened
        assert last is not None
        raise last

    async def _open_route(self, route: Route, request: UpstreamRequest) -> OpenedStream:
        provider = self.providers[route.provider]
        upstream = UpstreamRequest(model=route.model, messages=request.messages, params=request.params)
        attempts = 0
        retrying = AsyncRetrying(stop=stop_after_attempt(self.retry.attempts), wait=self._wait,
                                 retry=retry_if_exception(self._worth_waiting_for), reraise=True,
                                 before_sleep=self._before_sleep(route.provider))
        async for attempt in retrying:
            with attempt:
                attempts += 1
                events = await self._first_event(route.provider, provider, upstream)
        return OpenedStream(provider=route.provider, model=route.model, events=events, attempts=attempts)

    async def _first_event(self, name: str, provider: Provider, request: UpstreamRequest) -> AsyncIterator[Event]:
        limit = self._limits[name]
        await limit.acquire()
        stream = provider.stream(request)
        try:
            async with asyncio.timeout(self.retry.first_byte_timeout):
                first = await anext(stream)
        except StopAsyncIteration:
            limit.release()
            raise UpstreamStreamError(f"upstream {name} sent an empty stream") from None
        except TimeoutError:
            limit.release()
            await stream.aclose()
            raise UpstreamTimeout(f"upstream {name} sent nothing within "
                                  f"{self.retry.first_byte_timeout:g}s") from None
        except BaseException:
            limit.release()
            await stream.aclose()
            raise
        return _rest(first, stream, limit.release)

    def _worth_waiting_for(self, exc: BaseException) -> bool:
        """Retryable, unless the upstream asks for a longer pause than we wait (Gemini quotas ask for
        20-60 s): then the next route is tried at once, or the client gets the 429 and its Retry-After."""
        hinted = getattr(exc, "retry_after", None)
        return _retryable(exc) and (hinted is None or hinted <= self.retry.max_wait)

    def _wait(self, state) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = getattr(exc, "retry_after", None)
        if hinted is not None:
            return min(float(hinted), self.retry.max_wait)
        return wait_exponential_jitter(initial=self.retry.initial_wait, max=self.retry.max_wait)(state)

    def _before_sleep(self, provider: str):
        def hook(state) -> None:
            if self.on_retry and state.outcome:
                self.on_retry(provider, state.outcome.exception())
        return hook

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, UpstreamError) and exc.retryable


async def _rest(first: Event, stream: AsyncIterator[Event], release: Callable[[], None]) -> AsyncIterator[Event]:
    """The opened stream: the first event again, then the rest; the concurrency slot freed at the end."""
    try:
        yield first
        async for event in stream:
            yield event
    finally:
        release()
        await stream.aclose()
