"""What the people routes do: a person's conversations, a search across them, and forgetting them.

A person (app.persons) is named by the client and lives inside the caller's tenant, so the same
user id under two API keys is two people. Forgetting a person deletes every conversation of
theirs the way `DELETE /v1/sessions/{id}` does (the file with its messages, vectors, summaries
and system-prompt chunks, the registry rows), drops their search index from RAM, and returns the
session ids so the request log's rows can go too.

    users = PersonAPI(memory_api.for_owner(tenant))
    await users.conversations("caller-7")     # {"id": "caller-7", "object": "user", "data": [...]}
    await users.forget("caller-7")            # ["livekit-room-a", "livekit-room-b"]
"""

from __future__ import annotations

from typing import Any

from app.errors import NotFound
from app.memory.api import session_dict, validate_person


class PersonAPI:
    def __init__(self, memory: Any) -> None:
        self.memory = memory  # app.memory.api.MemoryAPI, acting for one owner

    async def _sessions(self, person: str) -> list[Any]:
        found = await self.memory.store.sessions_of_person(self.memory.owner, validate_person(person))
        if not found:
            raise NotFound(f"no conversations of user `{person}`", code="user_not_found")
        return found

    async def conversations(self, person: str) -> dict[str, Any]:
        found = await self._sessions(person)
        return {"id": person, "object": "user", "owner": self.memory.owner,
                "message_count": sum(s.message_count for s in found), "data": [session_dict(s) for s in found]}

    async def search(self, person: str, query: str, k: int) -> list[dict[str, Any]]:
        """The best `k` messages of all the person's conversations, each with its session id."""
        await self._sessions(person)
        if self.memory.people is None:
            return []
        vector = await self.memory.recall.embedder.embed_one(query)
        return await self.memory.people.search(self.memory.owner, person, query, vector, k,
                                               self.memory.recall.settings.weights)

    async def forget(self, person: str) -> list[str]:
        """Delete every conversation of the person; returns their session ids."""
        found = await self._sessions(person)
        for info in found:
            await self.memory._delete_key(info.key)
        if self.memory.people is not None:
            self.memory.people.drop(self.memory.owner, person)
        return [info.session_id for info in found]
