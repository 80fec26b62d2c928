"""Providers and routes built from settings: one place that knows every provider kind.

Providers: "upstream" (UPSTREAM_BASE_URL), each of UPSTREAMS by its name, and "gemini" (GEMINI_API_KEY).
Routes: MODELS and each upstream's models go to their provider, GEMINI_MODELS to "gemini", and ROUTES
chains override them, e.g. {"my-model": ["upstream:llama", "gemini:gemini-2.5-flash"]}. Other names:
`gemini-…` to Gemini when a key is set; the rest to the default upstream, then to Gemini when its
model list (fetched and cached) has the name and GEMINI_MODELS is empty.
"""

from __future__ import annotations

from app.config import Settings
from app.providers.base import Provider
from app.providers.circuit import CircuitBreaker
from app.providers.openai_compat import OpenAICompatProvider
from app.providers.router import RetryPolicy, Route, Router

DEFAULT_UPSTREAM = "upstream"
GEMINI = "gemini"
GEMINI_PREFIXES = ("gemini-", "models/gemini-")


def build_router(settings: Settings) -> Router:
    """The router for these settings; with nothing configured it answers every chat with a 503."""
    providers = build_providers(settings)
    routes = {name: [Route(DEFAULT_UPSTREAM, name)] for name in settings.models if DEFAULT_UPSTREAM in providers}
    for upstream in settings.upstreams:
        for model in upstream.get("models", ()):
            routes.setdefault(model, [Route(upstream["name"], model)])
    if GEMINI in providers:
        for model in settings.gemini_models:
            routes.setdefault(model, [Route(GEMINI, model)])
    for model, chain in settings.routes.items():
        routes[model] = [_route(link, model) for link in chain]
    retry = RetryPolicy(attempts=settings.upstream_max_retries + 1, max_wait=settings.upstream_retry_max_wait,
                        first_byte_timeout=settings.upstream_first_byte_timeout)
    breakers = {name: CircuitBreaker(settings.circuit_failures, settings.circuit_reset_seconds)
                for name in providers}
    claims = {GEMINI: GEMINI_PREFIXES} if GEMINI in providers else {}
    return Router(providers, routes, aliases=dict(settings.model_aliases), default_model=settings.default_model,
                  passthrough=_passthrough(settings, providers), claims=claims, retry=retry,
                  concurrency=settings.upstream_max_concurrency, breakers=breakers)


def _passthrough(settings: Settings, providers: dict[str, Provider]) -> list[str]:
    """Who serves (and lists) model names no route names, in order: the default upstream, then
    Gemini when GEMINI_MODELS is left empty, so every Gemini model of the account is there with
    only a key set (and `gemini-…` names go to Gemini whatever the lists say)."""
    order = [DEFAULT_UPSTREAM] if DEFAULT_UPSTREAM in providers else []
    if GEMINI in providers and not settings.gemini_models:
        order.append(GEMINI)
    return order


def build_providers(settings: Settings) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    if settings.upstream_base_url:
        providers[DEFAULT_UPSTREAM] = _openai(settings, DEFAULT_UPSTREAM, settings.upstream_base_url,
                                              settings.upstream_api_key)
    for upstream in settings.upstreams:
        providers[upstream["name"]] = _openai(settings, upstream["name"], upstream["base_url"],
                                              upstream.get("api_key", ""))
    if settings.gemini_api_key:
        providers[GEMINI] = _gemini(settings)
    return providers


def _gemini(settings: Settings) -> Provider:
    from app.providers.gemini import GeminiProvider  # the SDK takes ~0.5 s to import: only when used

    return GeminiProvider(settings.gemini_api_key, models=settings.gemini_models, base_url=settings.gemini_base_url,
                          safety=settings.gemini_safety_settings, connect_timeout=settings.upstream_connect_timeout,
                          read_timeout=settings.upstream_read_timeout,
                          max_connections=settings.upstream_max_concurrency)


def _openai(settings: Settings, name: str, base_url: str, api_key: str) -> OpenAICompatProvider:
    return OpenAICompatProvider(base_url, api_key, name=name, connect_timeout=settings.upstream_connect_timeout,
                                read_timeout=settings.upstream_read_timeout,
                                max_connections=settings.upstream_max_concurrency)


def _route(link: str | dict, model: str) -> Route:
    """A chain link: "provider" (same model name) or {"provider": ..., "model": ...}."""
    if isinstance(link, str):
        provider, _, upstream_model = link.partition(":")
        return Route(provider, upstream_model or model)
    return Route(link["provider"], link.get("model", model))
