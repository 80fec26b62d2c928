"""What the memory API routes do: inspect, search, load, export and delete conversations.

Session ids in URLs are the ids clients use (`X-Session-Id`, `user`, or the `auto-…` id the
proxy gave a fingerprinted chat, returned in every response's `X-Session-Id` header); they are
hashed into storage keys, never used as paths.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from app.errors import InvalidRequest, NotFound
from app.limits import MessageLimits, check_messages
from app.memory.importer import ChatFileError, parse_sillytavern, parse_time
from app.memory.background.tiers import TierPolicy
from app.memory.records import NewMessage
from app.memory.roles import BackgroundWriter, PeopleIndex, PersonaRecall, Recalling, Summarizing, WorkingCache
from app.memory.store.protocol import ConversationStore
from app.sessions import session_key, validate_session_id
from app.tokens import count_tokens, message_text

EMOTION_FIELDS = ("emotion", "emotion_confidence", "importance")


class MemoryAPI:
    def __init__(self, *, store: ConversationStore, working: WorkingCache, recall: Recalling,
                 writer: BackgroundWriter, summarizer: Summarizing | None = None, policy: TierPolicy | None = None,
                 owner: str | None = None, invalidate: Callable[[str], None] | None = None,
                 persona_memory: PersonaRecall | None = None, people: PeopleIndex | None = None,
                 catch_up: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.people = people
        self.persona_memory = persona_memory
        self.working = working
        self.recall = recall
        self.writer = writer
        self.summarizer = summarizer
        self.policy = policy
        self.owner = owner
        self.invalidate = invalidate or (lambda key: None)
        self.catch_up = catch_up  # MemoryService.catch_up: other replicas' writes into the caches

    def for_owner(self, owner: str | None) -> MemoryAPI:
        """This API acting for `owner` (a tenant, see app.auth): the ids it is given name that
        owner's sessions, so another owner's are simply not there (404)."""
        view = copy.copy(self)
        view.owner = owner
        return view

    async def owner_of(self, session_id: str, own: str | None) -> str | None:
        """For an admin, whose session `session_id` is: see `pick_owner`."""
        owners = await self.store.owners_of(validate_id(session_id))
        return pick_owner(session_id, own, owners)

    def key(self, session_id: str) -> str:
        return session_key(self.owner, validate_id(session_id))

    async def _existing(self, session_id: str) -> str:
        key = self.key(session_id)
        if await self.store.get_session(key) is None:
            raise NotFound(f"no session `{session_id}`", code="session_not_found")
        if self.catch_up is not None:
            await self.catch_up(key)
        return key

    async def list_sessions(self, limit: int, offset: int, every_owner: bool = False,
                            search: str | None = None) -> list[dict[str, Any]]:
        found = await self.store.list_sessions(self.owner, limit, offset, every_owner=every_owner, search=search)
        return [session_dict(s) for s in found]

    async def session(self, session_id: str) -> dict[str, Any]:
        key = await self._existing(session_id)
        info = await self.store.get_session(key)
        stats = await self.store.stats(key)
        return {**session_dict(info), **stats_dict(stats)}

    async def messages(self, session_id: str, limit: int, offset: int, include_superseded: bool,
                       newest_first: bool = False) -> list[dict]:
        key = await self._existing(session_id)
        rows = await self.store.messages(key, include_superseded=include_superseded, limit=limit, offset=offset,
                                         newest_first=newest_first)
        return [message_dict(r) for r in rows]

    async def append(self, session_id: str, messages: list[dict[str, Any]], person: str | None = None) -> list[int]:
        """Store messages without a completion; with `person` (X-User-Id) the conversation is theirs."""
        key = self.key(session_id)
        person = validate_person(person) if person is not None else None
        if await self.store.get_session(key) is None:
            await self.store.create_session(key, session_id, self.owner, None)
        if person is not None:
            await self._claim(key, person)
        new = [_new(m, i) for i, m in enumerate(messages) if m.get("role") in ("user", "assistant", "tool")]
        async with self.store.session_lock(key):
            ids = await self.store.append(key, new)
        self.working.forget(key)
        self.writer.submit(key)
        return ids

    async def _claim(self, key: str, person: str) -> None:
        await self.store.claim_session(key, person, None)
        info = await self.store.get_session(key)
        if self.people is not None and info is not None and info.person is not None:
            await self.people.joined(info)

    async def set_scope(self, session_id: str, scope: str | None) -> dict[str, Any]:
        """This conversation's own recall scope (app.persons); None: the default again."""
        key = await self._existing(session_id)
        await self.store.set_scope(key, scope)
        if self.people is not None:
            self.people.rescope(key, scope)
        return session_dict(await self.store.get_session(key))

    async def search(self, session_id: str, query: str, k: int) -> list[dict[str, Any]]:
        """Up to `k` past messages (kind "message"), then up to `k` chunks of system prompts the
        session sent (kind "persona", scored on their own scale; see app.memory.persona)."""
        key = await self._existing(session_id)
        found = [{"kind": "message", **hit} for hit in await self.recall.search(key, query, k)]
        if self.persona_memory is not None:
            vector = await self.recall.embedder.embed_one(query)  # cached: the search just embedded it
            found += await self.persona_memory.search(key, query, vector, k, await self.store.get_persona(key))
        return found

    async def emotions(self, session_id: str) -> dict[str, Any]:
        key = await self._existing(session_id)
        rows = [r for r in await self.store.messages(key) if r.role == "user" and r.emotion]
        shares = Counter(r.emotion for r in rows)
        return {"id": session_id, "object": "session.emotions",
                "trajectory": [{"message_id": r.id, "position": r.position, "created_at": r.created_at,
                                "emotion": r.emotion, "confidence": r.emotion_confidence,
                                "intensity": r.emotion_intensity} for r in rows],
                "shares": {e: n / len(rows) for e, n in shares.most_common()} if rows else {}}

    async def export(self, session_id: str) -> dict[str, Any]:
        key = await self._existing(session_id)
        info = await self.store.get_session(key)
        rows = await self.store.messages(key, include_superseded=True)
        summaries = await self.store.summaries(key)
        return {"object": "session.export", "exported_at": time.time(), "session": session_dict(info),
                "persona": await self.store.get_persona(key),
                "messages": [message_dict(r) for r in rows],
                "summaries": [summary_dict(s) for s in summaries]}

    async def persona_info(self, session_id: str) -> dict[str, Any]:
        key = await self._existing(session_id)
        chunks = await self.persona_memory.count(key) if self.persona_memory is not None else 0
        return {"id": session_id, "object": "session.persona", "persona": await self.store.get_persona(key),
                "chunks": chunks}

    async def persona_chunks(self, session_id: str) -> list[dict[str, Any]]:
        """The stored chunks of every system prompt the session sent, oldest first."""
        key = await self._existing(session_id)
        return [{"id": c.id, "object": "session.persona_chunk", "text": c.text, "tokens": c.token_count,
                 "created_at": c.created_at} for c in await self.store.persona_chunks(key)]

    async def set_persona(self, session_id: str, persona: str) -> None:
        key = self.key(session_id)
        if await self.store.get_session(key) is None:
            await self.store.create_session(key, session_id, self.owner, None)
        await self.store.set_persona(key, persona)
        self.invalidate(key)

    async def import_sillytavern(self, session_id: str, text: str, limits: MessageLimits,
                                 person: str | None = None) -> dict[str, Any]:
        """A chat file of any length, each message within the limits; all of it is stored, or nothing."""
        try:
            chat = parse_sillytavern(text)
        except ChatFileError as exc:
            raise InvalidRequest(f"not a SillyTavern chat file: {exc}") from None
        check_messages(chat.messages, replace(limits, messages=max(limits.messages, len(chat.messages))))
        ids = await self.append(session_id, chat.messages, person)
        return {"id": session_id, "object": "session.import", "imported": len(ids), "skipped": chat.skipped,
                "character_name": chat.character_name, "user_name": chat.user_name}

    async def delete(self, session_id: str) -> None:
        await self._delete_key(await self._existing(session_id))

    async def _delete_key(self, key: str) -> None:
        async with self.store.session_lock(key):
            await self.store.delete_session(key)
        self.working.forget(key)
        self.recall.forget_session(key)
        if self.people is not None:
            self.people.forget_session(key)
        self.invalidate(key)

    async def summaries(self, session_id: str) -> list[dict[str, Any]]:
        key = await self._existing(session_id)
        return [summary_dict(s) for s in await self.store.summaries(key)]

    async def summarize(self, session_id: str) -> dict[str, Any]:
        """Write every summary that is due now (waits for it; the chat path never does)."""
        key = await self._existing(session_id)
        if self.summarizer is None:
            raise NotFound("summaries are switched off (SUMMARY_ENABLED=false)", code="summaries_disabled")
        written = await self.summarizer.run_once(key)
        self.recall.summaries_changed(key)
        return {"id": session_id, "object": "session.summarize", "written": written,
                "summaries": await self.summaries(session_id)}

    async def consolidate(self, session_id: str) -> dict[str, Any]:
        from app.memory.background.consolidation import consolidate_session

        key = await self._existing(session_id)
        result = await consolidate_session(self.store, key, self.policy)
        return {"id": session_id, "object": "session.consolidate", **result}

    async def wait_indexed(self, session_id: str, timeout: float = 60.0) -> dict[str, Any]:
        key = await self._existing(session_id)
        await self.writer.idle(timeout)
        return stats_dict(await self.store.stats(key))


def validate_person(person: str) -> str:
    try:
        return validate_session_id(person)
    except ValueError as exc:
        raise InvalidRequest(f"user id: {exc}".replace("session id", "it"), param="X-User-Id") from None


def validate_id(session_id: str) -> str:
    try:
        return validate_session_id(session_id)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="session_id") from None


def pick_owner(session_id: str, own: str | None, owners: list[str | None]) -> str | None:
    """The owner an admin's request on `session_id` acts for: the admin's own session of that id
    if there is one (or none at all: then a write creates it), else the one owner holding that id;
    several others hold it -> 400, name one with `?owner=`.

        >>> pick_owner("s", "t-admin", []), pick_owner("s", "t-admin", ["t-a"]), pick_owner("s", "t-admin", ["t-a", "t-admin"])
        ('t-admin', 't-a', 't-admin')
    """
    if own in owners or not owners:
        return own
    if len(owners) == 1:
        return owners[0]
    raise InvalidRequest(f"several tenants have a session `{session_id}`: name one with ?owner= "
                         "(the `owner` of each session in GET /v1/sessions; `none` for sessions from before keys)",
                         param="owner", code="ambiguous_session")


def _new(message: dict[str, Any], index: int) -> NewMessage:
    """A message to store; `created_at` (epoch seconds or ISO 8601, `parse_time`) dates it."""
    text = message_text(message)
    created = None
    if message.get("created_at") is not None:
        try:
            created = parse_time(message["created_at"])
        except ValueError as exc:
            raise InvalidRequest(f"messages[{index}].created_at: {exc}", param=f"messages[{index}].created_at") from None
    return NewMessage(role=message["role"], name=message.get("name"), content=text, token_count=count_tokens(text),
                      created_at=created)


def session_dict(info: Any) -> dict[str, Any]:
    return {"id": info.session_id, "object": "session", "owner": info.owner, "created_at": info.created_at,
            "last_active": info.last_active, "message_count": info.message_count, "token_total": info.token_total,
            "pending": info.pending, "user": info.person, "scope": info.scope}


def stats_dict(stats: Any) -> dict[str, Any]:
    return {"messages": stats.messages, "superseded": stats.superseded, "first_activity": stats.first_activity,
            "last_activity": stats.last_activity, "token_total": stats.token_total, "pending": stats.pending}


def message_dict(row: Any) -> dict[str, Any]:
    data = {"id": row.id, "object": "session.message", "position": row.position, "role": row.role,
            "name": row.name, "content": row.content, "created_at": row.created_at, "tokens": row.token_count,
            "superseded": row.superseded_by is not None, "tier": row.tier}
    data.update({f: getattr(row, f) for f in EMOTION_FIELDS})
    return data


def summary_dict(summary: Any) -> dict[str, Any]:
    return {"id": summary.id, "object": "session.summary", "kind": summary.kind, "level": summary.level,
            "start_position": summary.start_position, "end_position": summary.end_position,
            "text": summary.text, "created_at": summary.created_at}
