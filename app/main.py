"""The app factory: `create_app(settings)` builds the service; its lifespan owns every resource.

    uvicorn --factory app.main:app_from_env

Nothing happens at import. Start-up order: logs, the data directory's lock (on SQLite one process
serves it: `app.workers`), metrics and request log, providers, memory
(store, embedder, background writer); shutdown runs it backwards, draining background work so
nothing is left half-written. Tests build the app with their own `Settings` and serve it on
127.0.0.1 with uvicorn. Every request first passes the guard (app.routes.guard: Host, Origin,
body type, API key).
"""

from __future__ import annotations

import logging
import math
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.auth import KeyRing, is_loopback
from app.blas import limit_blas_threads
from app.browser import BrowserPolicy
from app.config import Settings
from app.errors import InvalidRequest, ProxyError, StoreUnavailable, error_body, from_exception
from app.memory.store.postgres.pool import is_postgres_url
from app.memory.store.outages import is_outage
from app.observability import logs
from app.observability.metrics import Metrics
from app.observability.observer import Observer
from app.observability.requestlog import BufferedLog, RequestLog
from app.pipeline import Pipeline
from app.providers.factory import build_router
from app.ratelimit import Limits, MemoryRateLimiter, RateLimiter
from app.routes import chat, documents, health, models, observability, sessions, ui, users
from app.routes.body import component_schemas
from app.routes.guard import Guard
from app.workers import DataDirLock, WorkersRefused

if TYPE_CHECKING:
    from app.memory.store.postgres.shared import Pools

VERSION = "0.1.0"
log = logging.getLogger("app")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with AsyncExitStack() as stack:
            await _start(app, settings, stack)
            yield

    app = FastAPI(title="Memory proxy", version=VERSION, lifespan=lifespan)
    app.add_middleware(Guard, keys=KeyRing(settings.api_keys, settings.admin_api_keys),
                       policy=BrowserPolicy.build(origins=settings.cors_origins, hosts=settings.allowed_hosts,
                                                  bind_host=settings.host))
    _install_error_handlers(app)
    for module in (chat, models, health, sessions, users, observability, documents, ui):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)
    return app


def _openapi(app: FastAPI) -> dict:
    """FastAPI's document, with the schemas of the bodies our routes read themselves."""
    if app.openapi_schema is None:
        spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
        spec.setdefault("components", {}).setdefault("schemas", {}).update(component_schemas())
        app.openapi_schema = spec
    return app.openapi_schema


async def _start(app: FastAPI, settings: Settings, stack: AsyncExitStack) -> None:
    logs.configure(settings.log_level, settings.log_dir, settings.log_json)
    _hold_data_dir(settings, stack)
    stack.callback(limit_blas_threads(settings.numpy_threads))
    _warn_if_open(settings)
    state = app.state
    state.settings, state.version = settings, VERSION
    state.metrics = Metrics() if settings.metrics_enabled else None
    await _start_metrics_port(state.metrics, settings, stack)
    state.pools = await _start_pools(settings, stack)
    limits = Limits(settings.rate_limit_rpm, settings.rate_limit_tpm)
    state.limiter = await _start_limiter(limits, settings, state.pools, stack) if limits.active else None
    state.request_log = await _start_request_log(settings, state.pools, stack) \
        if settings.request_log_enabled else None
    observer = Observer(state.metrics, state.request_log,
                        spend_tokens=state.limiter.spend if limits.tpm else None)
    router = build_router(settings)
    router.on_retry = observer.retried
    stack.push_async_callback(router.aclose)
    state.health_checks = _upstream_checks(router)
    state.memory_api = state.documents = None
    memory = await _start_memory(state, settings, stack, router) if settings.memory_enabled else None
    state.pipeline = Pipeline(router, memory=memory, observer=observer, memory_enabled=settings.memory_enabled)


async def _start_pools(settings: Settings, stack: AsyncExitStack) -> Pools | None:
    """The process's pools (app.memory.store.postgres.shared) when DATABASE_URL names PostgreSQL, else None."""
    if not settings.database_url:
        return None
    from app.memory.store.postgres.pool import is_postgres_url
    from app.memory.store.postgres.shared import Pools

    if not is_postgres_url(settings.database_url):
        return None
    pools = Pools(settings.database_pool_size)
    stack.push_async_callback(pools.aclose)
    return pools


async def _start_limiter(limits: Limits, settings: Settings, pools: Pools | None, stack: AsyncExitStack) -> RateLimiter:
    """Counters in RAM, or in PostgreSQL (shared by every replica) when DATABASE_URL names it."""
    if pools is None:
        return MemoryRateLimiter(limits)
    from app.ratelimit_postgres import PgRateLimiter

    limiter = PgRateLimiter(await pools.get(settings.database_url), limits)
    await limiter.start()
    stack.push_async_callback(limiter.stop)
    return limiter


async def _start_request_log(settings: Settings, pools: Pools | None, stack: AsyncExitStack) -> BufferedLog:
    """DATA_DIR/requests.sqlite, or the `request_log` table when DATABASE_URL names PostgreSQL."""
    kept = dict(days=settings.request_log_days, max_rows=settings.request_log_max_rows)
    if pools is not None:
        from app.observability.requestlog_postgres import PgRequestLog

        request_log: BufferedLog = PgRequestLog(await pools.get(settings.database_url), **kept)
    else:
        request_log = RequestLog(settings.data_dir / "requests.sqlite", **kept)
    await request_log.start()
    stack.push_async_callback(request_log.stop)
    return request_log


def _hold_data_dir(settings: Settings, stack: AsyncExitStack) -> None:
    """On SQLite, one process per DATA_DIR (`app.workers`): a second one fails its start-up."""
    if is_postgres_url(settings.database_url):
        return
    try:
        stack.enter_context(DataDirLock(settings.data_dir))
    except WorkersRefused as exc:
        log.error("%s", exc)
        raise


async def _start_metrics_port(metrics: Metrics | None, settings: Settings, stack: AsyncExitStack) -> None:
    if metrics is not None and settings.metrics_port:
        from app.routes.metrics_port import serve_metrics

        stack.push_async_callback(await serve_metrics(metrics, settings.metrics_port))


async def _start_memory(state, settings: Settings, stack: AsyncExitStack, router):
    from app.memory.wiring import start_memory

    return await start_memory(state, settings, stack, router)


def _warn_if_open(settings: Settings) -> None:
    """No keys on a reachable address: everyone who can reach the port owns every conversation."""
    if settings.api_keys or settings.admin_api_keys:
        log.info("API keys in use: %d, %d of them admin; limits per key: %d requests, %d tokens a minute "
                 "(0: none)", len(settings.api_keys) + len(settings.admin_api_keys), len(settings.admin_api_keys),
                 settings.rate_limit_rpm, settings.rate_limit_tpm)
        return
    if is_loopback(settings.host):
        return
    log.warning("NO API KEYS ARE SET and HOST=%s is not a loopback address: anyone who can reach port %d "
                "can read, change and delete every conversation and spend the upstream's credit. "
                "Set API_KEYS (see .env.example), or bind HOST=127.0.0.1.", settings.host, settings.port)


def _upstream_checks(router) -> dict:
    if not router.providers:
        async def missing() -> str:
            return "not configured: set UPSTREAM_BASE_URL or GEMINI_API_KEY"
        return {"upstream": missing}
    return {f"upstream:{name}": provider.health for name, provider in router.providers.items()}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProxyError)
    async def proxy_error(request: Request, exc: ProxyError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=_error_headers(request, exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"][1:])
        err = InvalidRequest(f"Invalid value for '{param}': {first['msg']}", param=param or None)
        return JSONResponse(err.body(), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(error_body(str(exc.detail), kind, code), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_outage(exc):
            log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
            return await proxy_error(request, StoreUnavailable(
                "The memory database is unavailable; nothing was stored. Retry shortly."))
        log.exception("unhandled error")
        return JSONResponse(from_exception(exc).body(), status_code=500)


def _error_headers(request: Request, exc: ProxyError) -> dict[str, str]:
    """Retry-After when there is a wait to tell, and the caller's x-ratelimit-* once it was counted."""
    headers = dict(getattr(request.state, "rate_limit_headers", None) or {})
    own = getattr(exc, "headers", None)
    if own:
        return {**headers, **own}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return headers


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory`: settings from the environment and `.env`."""
    return create_app(Settings())
