"""The people routes: a person's conversations, a search across them, and the right to be forgotten.

    GET    /v1/users/{id}                 the person's conversations (newest first) and their counts
    GET    /v1/users/{id}/search?q=&k=    messages of all their conversations, with scores and session ids
    DELETE /v1/users/{id}                 every conversation, vector, summary and request-log row of theirs

`{id}` is what clients send as `X-User-Id` (or `metadata.user_id`, or `user`); it names a person
within the caller's tenant (an admin names another tenant with `?owner=`, `none` for no key).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from app.memory.users import PersonAPI
from app.routes.deps import PrincipalDep, StateDep, memory_api

router = APIRouter(prefix="/v1/users")


async def person_api(request: Request, principal: PrincipalDep) -> PersonAPI:
    owner = principal.tenant
    chosen = request.query_params.get("owner")
    if principal.admin and chosen is not None:
        owner = None if chosen == "none" else chosen
    return PersonAPI(memory_api(request).for_owner(owner))


PersonDep = Annotated[PersonAPI, Depends(person_api)]


@router.get("/{user_id}")
async def get_user(user_id: str, people: PersonDep) -> dict[str, Any]:
    return await people.conversations(user_id)


@router.get("/{user_id}/search")
async def search(user_id: str, people: PersonDep, q: str = Query(min_length=1), k: int = Query(10, ge=1, le=200)):
    return {"object": "list", "data": await people.search(user_id, q, k)}


@router.delete("/{user_id}")
async def delete(user_id: str, people: PersonDep, state: StateDep) -> dict[str, Any]:
    sessions = await people.forget(user_id)
    log = getattr(state, "request_log", None)
    rows = await log.forget(sessions, people.memory.owner) if log is not None else 0
    return {"id": user_id, "object": "user", "deleted": True, "sessions": sessions, "request_log_rows": rows}
