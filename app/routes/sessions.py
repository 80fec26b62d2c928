"""The memory API beside the OpenAI one: inspect, search, load, export and delete conversations.

    GET    /v1/sessions                      paged list (?limit=&offset=; ?q= keeps the ids containing it)
    GET    /v1/sessions/{id}                 counts, activity, tokens, pending background work
    GET    /v1/sessions/{id}/messages        paged; superseded ones only with ?include_superseded=true;
                                             ?order=desc pages from the newest
    POST   /v1/sessions/{id}/messages        {"messages": [...]} appended without a completion (`created_at` dates one;
                                             `X-User-Id` makes the conversation that person's)
    GET    /v1/sessions/{id}/search?q=&k=    memory search with scores (messages, then system-prompt chunks;
                                             &documents=true: then the chunks of documents it may see)
    GET    /v1/sessions/{id}/emotions        emotional trajectory and shares
    GET    /v1/sessions/{id}/export          everything, as JSON
    GET    /v1/sessions/{id}/summaries       rolling and higher-level summaries with their message ranges
    POST   /v1/sessions/{id}/summarize       write the summaries that are due, now
    POST   /v1/sessions/{id}/consolidate     re-tier the session's messages, now
    GET    /v1/sessions/{id}/persona         the current system prompt and how many chunks of prompts are stored
    GET    /v1/sessions/{id}/persona/chunks  those chunks, oldest first
    PUT    /v1/sessions/{id}/persona         {"persona": "..."} used when a request has no system prompt
    PUT    /v1/sessions/{id}/scope           {"scope": "session" | "character" | "person" | null}: how far its recall reaches
    POST   /v1/sessions/{id}/import          a SillyTavern chat file (.jsonl) as the body (`X-User-Id` as above)
    DELETE /v1/sessions/{id}                 everything gone, its file included

Each API key sees only its own sessions: another key's are not there (404), and the same id
under two keys is two sessions. Admin keys list everyone's and reach any session by its id
(`?owner=<tenant>` when several tenants use the same id).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from app.errors import InvalidRequest
from app.routes.body import read_model, request_body_schema
from app.routes.documents import get_library
from app.routes.deps import MemoryDep, PrincipalDep, SessionMemoryDep, SettingsDep
from app.schemas import ChatMessage

router = APIRouter(prefix="/v1/sessions")
MAX_OFFSET = 2**53  # any larger offset is past every list; SQLite integers stop at 2**63
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


class AppendBody(BaseModel):
    messages: list[ChatMessage] = Field(min_length=1)


class PersonaBody(BaseModel):
    persona: str


class ScopeBody(BaseModel):
    scope: Literal["session", "character", "person"] | None = None


@router.get("")
async def list_sessions(memory: MemoryDep, principal: PrincipalDep, limit: int = Query(50, ge=1, le=1000),
                        offset: Offset = 0, q: str | None = Query(None, max_length=200)):
    sessions = await memory.list_sessions(limit, offset, every_owner=principal.admin, search=q)
    return {"object": "list", "data": sessions, "limit": limit, "offset": offset,
            "has_more": len(sessions) == limit}


@router.get("/{session_id}")
async def get_session(session_id: str, memory: SessionMemoryDep):
    return await memory.session(session_id)


@router.get("/{session_id}/messages")
async def list_messages(session_id: str, memory: SessionMemoryDep, limit: int = Query(100, ge=1, le=10_000),
                        offset: Offset = 0, include_superseded: bool = False,
                        order: Literal["asc", "desc"] = "asc"):
    rows = await memory.messages(session_id, limit, offset, include_superseded, newest_first=order == "desc")
    return {"object": "list", "data": rows, "limit": limit, "offset": offset, "has_more": len(rows) == limit}


@router.post("/{session_id}/messages", openapi_extra=request_body_schema(AppendBody))
async def append_messages(session_id: str, request: Request, memory: SessionMemoryDep, settings: SettingsDep):
    body = await read_model(request, AppendBody, settings.max_request_bytes,
                            messages=settings.message_limits)
    ids = await memory.append(session_id, [m.model_dump(exclude_none=True) for m in body.messages],
                              request.headers.get("x-user-id"))
    return {"object": "list", "data": [{"id": i} for i in ids]}


@router.get("/{session_id}/search")
async def search(session_id: str, request: Request, memory: SessionMemoryDep, q: str = Query(min_length=1),
                 k: int = Query(10, ge=1, le=200), documents: bool = False):
    found = await memory.search(session_id, q, k)
    if documents:
        found += await (await get_library(request)).search(q, k, owner=memory.owner, session_id=session_id)
    return {"object": "list", "data": found}


@router.get("/{session_id}/emotions")
async def emotions(session_id: str, memory: SessionMemoryDep):
    return await memory.emotions(session_id)


@router.get("/{session_id}/export")
async def export(session_id: str, memory: SessionMemoryDep):
    return await memory.export(session_id)


@router.get("/{session_id}/summaries")
async def summaries(session_id: str, memory: SessionMemoryDep):
    return {"object": "list", "data": await memory.summaries(session_id)}


@router.post("/{session_id}/summarize")
async def summarize(session_id: str, memory: SessionMemoryDep):
    return await memory.summarize(session_id)


@router.post("/{session_id}/consolidate")
async def consolidate(session_id: str, memory: SessionMemoryDep):
    return await memory.consolidate(session_id)


@router.get("/{session_id}/persona")
async def get_persona(session_id: str, memory: SessionMemoryDep):
    return await memory.persona_info(session_id)


@router.get("/{session_id}/persona/chunks")
async def persona_chunks(session_id: str, memory: SessionMemoryDep):
    return {"object": "list", "data": await memory.persona_chunks(session_id)}


@router.put("/{session_id}/persona", openapi_extra=request_body_schema(PersonaBody))
async def set_persona(session_id: str, request: Request, memory: SessionMemoryDep, settings: SettingsDep):
    body = await read_model(request, PersonaBody, settings.max_request_bytes)
    await memory.set_persona(session_id, body.persona)
    return {"id": session_id, "persona": body.persona}


@router.put("/{session_id}/scope", openapi_extra=request_body_schema(ScopeBody))
async def set_scope(session_id: str, request: Request, memory: SessionMemoryDep, settings: SettingsDep):
    body = await read_model(request, ScopeBody, settings.max_request_bytes)
    return await memory.set_scope(session_id, body.scope)


@router.post("/{session_id}/import")
async def import_chat(session_id: str, request: Request, memory: SessionMemoryDep, settings: SettingsDep):
    raw = await request.body()
    if len(raw) > settings.max_request_bytes * 8:
        raise InvalidRequest("the chat file is too large to import over HTTP; use `memory-proxy import`")
    return await memory.import_sillytavern(session_id, raw.decode("utf-8", "replace"), settings.message_limits,
                                           request.headers.get("x-user-id"))


@router.delete("/{session_id}")
async def delete(session_id: str, memory: SessionMemoryDep):
    await memory.delete(session_id)
    return {"id": session_id, "object": "session", "deleted": True}
