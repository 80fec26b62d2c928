"""`POST /v1/chat/completions`: the OpenAI endpoint every client talks to.

The caller's tenant (app.auth) owns the conversation; every answer carries its x-ratelimit-*
headers when limits are set (RATE_LIMIT_RPM, RATE_LIMIT_TPM).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from app import sse
from app.observability.logs import request_id, session_id
from app.routes.body import read_model, request_body_schema
from app.routes.deps import PipelineDep, PrincipalDep, RateLimitDep, SettingsDep
from app.schemas import ChatCompletionRequest

router = APIRouter()


class ReleasingStream(StreamingResponse):
    """A streamed reply that frees its conversation when the response ends, however it ends
    (finished, failed, the client gone, or never started at all)."""

    def __init__(self, content, release: Callable[[], None], **kwargs) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


@router.post("/v1/chat/completions", openapi_extra=request_body_schema(ChatCompletionRequest))
async def chat_completions(request: Request, pipeline: PipelineDep, settings: SettingsDep, principal: PrincipalDep,
                           limits: RateLimitDep):
    body = await read_model(request, ChatCompletionRequest, settings.max_request_bytes,
                            messages=settings.message_limits)
    exchange = await pipeline.prepare(body, request.headers, owner=principal.tenant)
    async with pipeline.held(exchange, handed_on=body.stream):
        request_id.set(exchange.cid)
        if exchange.memory is not None:
            session_id.set(exchange.memory.session_id)
        opened = await pipeline.open(exchange)
        headers = {"X-Provider": opened.provider, **limits}
        if exchange.memory is not None and getattr(exchange.memory, "session_id", None):
            headers["X-Session-Id"] = exchange.memory.session_id
        if body.stream:
            return ReleasingStream(pipeline.stream(exchange, opened), lambda: pipeline.release(exchange),
                                   media_type=sse.MEDIA_TYPE, headers={**sse.HEADERS, **headers})
        return JSONResponse(await pipeline.complete(exchange, opened), headers=headers)


@router.post("/v1/chat/completions/preview", openapi_extra=request_body_schema(ChatCompletionRequest))
async def chat_preview(request: Request, pipeline: PipelineDep, settings: SettingsDep, principal: PrincipalDep):
    """The same body and headers as a chat completion: what would be sent upstream, and why."""
    body = await read_model(request, ChatCompletionRequest, settings.max_request_bytes,
                            messages=settings.message_limits)
    return await pipeline.preview(body, request.headers, owner=principal.tenant)
