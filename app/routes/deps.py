"""Typed dependencies, so route signatures read as prose: `async def chat(pipeline: PipelineDep)`.

They are `async def`: FastAPI runs a plain `def` dependency on a worker thread, a hop that costs
more than the dependency itself.

    PrincipalDep      the caller (app.auth), as the guard authenticated it
    RateLimitDep      the caller's request counted against its limits: the x-ratelimit-* headers, or 429
    SessionMemoryDep  the memory API acting for the owner of `{session_id}`: the caller's own, or
                      for an admin key whoever holds that id (`?owner=` picks one)
    MemoryDep         the memory API acting for the caller (listing)
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from app.auth import Principal
from app.config import Settings
from app.errors import Forbidden, NotFound, RateLimited, Unauthorized
from app.pipeline import Pipeline
from app.ratelimit import Decision, duration, rate_headers, retry_headers


async def _state(request: Request) -> Any:
    return request.app.state


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


async def get_principal(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:  # only /health goes unauthenticated, and it never asks
        raise Unauthorized("no API key was checked for this request")
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
StateDep = Annotated[Any, Depends(_state)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def rate_limit(request: Request, principal: PrincipalDep) -> dict[str, str]:
    """Count this request against the caller's limits; the headers every answer to it carries."""
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is None:
        return {}
    decision = await limiter.admit(principal.tenant)
    headers = rate_headers(decision)
    if not decision.allowed:
        _count_refusal(request, decision.exceeded or "requests")
        raise RateLimited(_limit_message(decision), type=decision.exceeded or "requests",
                          retry_after=decision.retry_after, headers={**headers, **retry_headers(decision.retry_after)})
    request.state.rate_limit_headers = headers  # errors raised later carry them too (app.main)
    return headers


def _count_refusal(request: Request, limit: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.rate_limited.labels(limit).inc()


def _limit_message(decision: Decision) -> str:
    name, quota = ("requests", decision.requests) if decision.exceeded == "requests" else ("tokens", decision.tokens)
    unit = "RPM" if name == "requests" else "TPM"
    used = quota.limit - quota.remaining if quota else 0
    return (f"Rate limit reached for {name} per minute ({unit}) on this API key: limit {quota.limit if quota else 0}, "
            f"used {used}. Please try again in {duration(decision.retry_after)}.")


RateLimitDep = Annotated[dict[str, str], Depends(rate_limit)]


async def require_admin(principal: PrincipalDep) -> Principal:
    """With keys in use, only ADMIN_API_KEYS may see what concerns every tenant (the report)."""
    if principal.keyed and not principal.admin:
        raise Forbidden("this route needs an admin key (ADMIN_API_KEYS)", code="admin_key_required")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


def memory_api(request: Request) -> Any:
    memory = getattr(request.app.state, "memory_api", None)
    if memory is None:
        raise NotFound("memory is switched off (MEMORY_ENABLED=false)", code="memory_disabled")
    return memory


async def caller_memory(request: Request, principal: PrincipalDep) -> Any:
    return memory_api(request).for_owner(principal.tenant)


async def session_memory(session_id: str, request: Request, principal: PrincipalDep) -> Any:
    memory = memory_api(request)
    if not principal.admin:
        return memory.for_owner(principal.tenant)
    chosen = request.query_params.get("owner")
    if chosen is not None:
        return memory.for_owner(None if chosen == "none" else chosen)
    return memory.for_owner(await memory.owner_of(session_id, principal.tenant))


MemoryDep = Annotated[Any, Depends(caller_memory)]
SessionMemoryDep = Annotated[Any, Depends(session_memory)]
