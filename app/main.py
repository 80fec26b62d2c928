"""The app factory: `create_app(settings)` builds the service; its lifespan owns every resource.

    uvicorn --factory app.main:app_from_env

Nothing happens at import. Start-up order: logs, metrics and request log, providers, memory
(store, embedder, background writer); shutdown runs it backwards, draining background work so
nothing is left half-written. Tests build the app with their own `Settings` and serve it on
127.0.0.1 with uvicorn.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.config import Settings
from app.errors import InvalidRequest, ProxyError, error_body, from_exception
from app.observability import logs
from app.observability.metrics import Metrics
from app.observability.observer import Observer
from app.observability.requestlog import RequestLog
from app.pipeline import Pipeline
from app.providers.factory import build_router
from app.routes import chat, health, models, observability, sessions
from app.routes.body import component_schemas

VERSION = "0.1.0"
log = logging.getLogger("app")


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with AsyncExitStack() as stack:
            await _start(app, settings, stack)
            yield

    app = FastAPI(title="Memory proxy", version=VERSION, lifespan=lifespan)
    _install_error_handlers(app)
    for module in (chat, models, health, sessions, observability):
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
    state = app.state
    state.settings, state.version = settings, VERSION
    state.metrics = Metrics() if settings.metrics_enabled else None
    state.request_log = None
    if settings.request_log_enabled:
        state.request_log = RequestLog(settings.data_dir / "requests.sqlite", days=settings.request_log_days,
                                       max_rows=settings.request_log_max_rows)
        await state.request_log.start()
        stack.push_async_callback(state.request_log.stop)
    observer = Observer(state.metrics, state.request_log)
    router = build_router(settings)
    router.on_retry = observer.retried
    stack.push_async_callback(router.aclose)
    state.health_checks = _upstream_checks(router)
    state.memory_api = None
    memory = await _start_memory(state, settings, stack, router) if settings.memory_enabled else None
    state.pipeline = Pipeline(router, memory=memory, observer=observer, memory_enabled=settings.memory_enabled)


async def _start_memory(state, settings: Settings, stack: AsyncExitStack, router):
    from app.memory.wiring import start_memory

    return await start_memory(state, settings, stack, router)


def _upstream_checks(router) -> dict:
    if not router.providers:
        async def missing() -> str:
            return "not configured: set UPSTREAM_BASE_URL or GEMINI_API_KEY"
        return {"upstream": missing}
    return {f"upstream:{name}": provider.health for name, provider in router.providers.items()}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProxyError)
    async def proxy_error(_: Request, exc: ProxyError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=_retry_headers(exc))

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
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(from_exception(exc).body(), status_code=500)


def _retry_headers(exc: ProxyError) -> dict[str, str]:
    retry_after = getattr(exc, "retry_after", None)
    return {"Retry-After": str(int(retry_after))} if retry_after else {}


def app_from_env() -> FastAPI:
    """Entry point for `uvicorn --factory`: settings from the environment and `.env`."""
    return create_app(Settings())
