"""`POST /v1/chat/completions`: the OpenAI endpoint every client talks to.

The caller's tenant (app.auth) owns the conversation; every answer carries its x-ratelimit-*
headers when limits are set (RATE_LIMIT_RPM, RATE_LIMIT_TPM).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from app import sse
from app.observability.logs import request_id, session_id
from app.routes.body import read_model
from app.routes.deps import PipelineDep, PrincipalDep, RateLimitDep, SettingsDep
from app.schemas import ChatCompletionRequest

router = APIRouter()


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, pipeline: PipelineDep, settings: SettingsDep, principal: PrincipalDep,
                           limits: RateLimitDep):
    body = await read_model(request, ChatCompletionRequest, settings.max_request_bytes)
    exchange = await pipeline.prepare(body, request.headers, owner=principal.tenant)
    request_id.set(exchange.cid)
    if exchange.memory is not None:
        session_id.set(exchange.memory.session_id)
    opened = await pipeline.open(exchange)
    headers = {"X-Provider": opened.provider, **limits}
    if exchange.memory is not None and getattr(exchange.memory, "session_id", None):
        headers["X-Session-Id"] = exchange.memory.session_id
    if body.stream:
        return StreamingResponse(pipeline.stream(exchange, opened), media_type=sse.MEDIA_TYPE,
                                 headers={**sse.HEADERS, **headers},
                                 background=BackgroundTask(pipeline.release, exchange))
    return JSONResponse(await pipeline.complete(exchange, opened), headers=headers)


@router.post("/v1/chat/completions/preview")
async def chat_preview(request: Request, pipeline: PipelineDep, settings: SettingsDep, principal: PrincipalDep):
    """The same body and headers as a chat completion: what would be sent upstream, and why."""
    body = await read_model(request, ChatCompletionRequest, settings.max_request_bytes)
    return await pipeline.preview(body, request.headers, owner=principal.tenant)
