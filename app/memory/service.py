"""Memory around one chat request: what to read before the upstream call, what to write after.

    turn = await memory.prepare(exchange)     # session, sync, recall, context -> upstream messages
    ... stream the reply ...
    await memory.record(exchange, assembler)  # the reply, in one transaction, before [DONE]

A writing request holds its session's lock from `prepare` to `record`/`release`, so concurrent
requests on one conversation are serialised whole (user turn, then its reply). Read-only
requests (`X-Memory: read-only`, auxiliary prompts, previews) never take it and never write.

Several replicas on one database (PostgreSQL): before using its caches of a conversation, a
request asks the store what other replicas wrote since (`store.changed`) and folds that into
working memory and the search index. The sync plan is committed only if the conversation is
still at the version it was planned on; when another replica got there first (two replicas
receiving the same resend), the caches are brought up to date and the plan made again, so the
resend is recorded once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from app.auxiliary import ends_with_continue, is_auxiliary
from app.budget import BudgetSplit, plan_budget
from app.config import Settings
from app.context import BuiltContext, build_context
from app.history import SLACK, IncomingMessage, StoredMessage, join_continuation, plan_sync
from app.errors import InvalidRequest
from app.memory.people import PersonQuery
from app.memory.records import NewMessage, StaleSession
from app.memory.roles import (BackgroundWriter, DocumentRecall, PeopleIndex, PersonaRecall, Recalling, Summarizing,
                              WorkingCache)
from app.memory.store.protocol import ConversationStore
from app.persons import character_key, person_id
from app.sessions import explicit_session_id, message_hash, opening_fingerprint, session_key, validate_session_id
from app.tokens import count_tokens, message_text


PERSONAS_HELD = 4096  # system prompts kept in RAM, one per recently active conversation
SYNC_ATTEMPTS = 4  # plans made again when other replicas keep writing the same conversation


@dataclass(slots=True)
class CacheStats:
    """How often this process found its caches behind the database (several replicas)."""

    refreshes: int = 0  # conversations brought up to date
    rows: int = 0  # message rows folded in
    replans: int = 0  # sync plans made again after another replica wrote first


@dataclass(slots=True)
class Turn:
    """What memory knows about one request while it is in flight."""

    key: str
    session_id: str
    read_only: bool
    persona: str | None = None
    plan: Any = None
    built: BuiltContext | None = None
    recalled: list[Any] = field(default_factory=list)
    lock: asyncio.Lock | None = None
    timings: dict[str, float] = field(default_factory=dict)
    auxiliary: str | None = None
    continue_separator: str = ""
    person: PersonQuery | None = None  # whose conversation it is, and how far recall may reach
    score: Callable[[], None] | None = None  # asks the writer to embed what this exchange recorded

    def release(self) -> None:
        """Idempotent: only the first call lets go of the conversation, and asks for its new
        messages to be scored (the user's turn and the reply in one job, after the reply)."""
        if self.lock is not None and self.lock.locked():
            self.lock.release()
        self.lock = None
        score, self.score = self.score, None
        if score is not None:
            score()

    def hand_over(self) -> Turn:
        """A copy that now holds the conversation; releasing this one does nothing any more."""
        other = replace(self)
        self.lock = None
        self.score = None
        return other


def split_persona(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """Leading system/developer messages are the persona; the rest are the client's turns."""
    i = 0
    while i < len(messages) and messages[i].get("role") in ("system", "developer"):
        i += 1
    persona = "\n\n".join(message_text(m) for m in messages[:i] if message_text(m).strip())
    return persona or None, messages[i:]


class MemoryService:
    """Reads and writes memory for chat requests; every collaborator is passed in."""

    def __init__(self, *, store: ConversationStore, working: WorkingCache, recall: Recalling,
                 writer: BackgroundWriter, settings: Settings, summarizer: Summarizing | None = None,
                 persona_memory: PersonaRecall | None = None, documents: DocumentRecall | None = None,
                 people: PeopleIndex | None = None) -> None:
        self.store = store
        self.people = people
        self.working = working
        self.recall = recall
        self.writer = writer
        self.summarizer = summarizer
        self.persona_memory = persona_memory
        self.documents = documents  # app.documents.library.Library: the user's files, cited
        self.settings = settings
        self.split = BudgetSplit(settings.budget_persona, settings.budget_memories,
                                 settings.budget_recent, settings.budget_response)
        self.aux_patterns = tuple(settings.auxiliary_patterns)
        self.nudge_patterns = tuple(settings.continue_nudge_patterns)
        self.continue_separator = settings.continue_separator
        self._personas: dict[str, str] = {}
        self._known: set[str] = set()
        self.cache = CacheStats()

    # ------------------------------------------------------------------ before the upstream call

    async def prepare(self, exchange: Any, *, preview: bool = False) -> Turn:
        messages = exchange.upstream.messages
        persona, turns = split_persona(messages)
        query = self.recall.embed_early(turns)  # the model works while the store is read
        auxiliary = is_auxiliary(messages, self.aux_patterns)
        read_only = preview or bool(auxiliary) or exchange.controls.mode == "read-only"
        turn = None
        try:
            key, session_id, fingerprint = await self._resolve(exchange, turns)
            read_only = read_only or fingerprint == ""  # nothing to tell this chat apart by yet
            turn = Turn(key=key, session_id=session_id, read_only=read_only, auxiliary=auxiliary,
                        person=self._person_query(exchange, key))
            if not read_only:
                turn.lock = self.store.lock_for(key)
                await turn.lock.acquire()
            stored = await self._sync(turn, exchange, turns, fingerprint)
            turn.persona = await self._persona(turn, persona)
            await self._build(turn, exchange, turns, stored, query)
        except BaseException:
            if turn is not None:
                turn.release()
            await query.discard()
            raise
        exchange.upstream.messages = turn.built.messages
        return turn

    async def _resolve(self, exchange: Any, turns: list[dict]) -> tuple[str, str, str | None]:
        request = exchange.request
        explicit = explicit_session_id(exchange.headers.get("x-session-id"), request.user, request.metadata)
        owner = getattr(exchange, "owner", None)
        if explicit:
            try:
                return session_key(owner, validate_session_id(explicit)), explicit, None
            except ValueError as exc:
                raise InvalidRequest(str(exc), param="X-Session-Id") from None
        fingerprint = opening_fingerprint(exchange.upstream.messages)
        if fingerprint is None:
            return session_key(owner, "auto-opening"), "auto-opening", ""
        key = await self.store.find_by_fingerprint(owner, fingerprint)
        if key is None and len(turns) > 2:
            key = await self.store.find_by_hashes(owner, [hash_of(m) for m in turns[:-1]][-16:])
        if key is not None:
            info = await self.store.get_session(key)
            if info is not None:
                return key, info.session_id, fingerprint
        session_id = "auto-" + fingerprint[:20]
        return session_key(owner, session_id), session_id, fingerprint

    def _person_query(self, exchange: Any, key: str) -> PersonQuery | None:
        """The person the request names (`X-User-Id`, `metadata.user_id`, `user`), if any."""
        request = exchange.request
        person = person_id(exchange.headers.get("x-user-id"), request.metadata, request.user)
        if person is None or self.people is None:
            return None
        try:
            validate_session_id(person)
        except ValueError as exc:
            raise InvalidRequest(f"user id: {exc}".replace("session id", "it"), param="X-User-Id") from None
        return PersonQuery(getattr(exchange, "owner", None), person, key, character_key(exchange.upstream.messages),
                           exchange.controls.scope, self.settings.memory_scope)

    async def _sync(self, turn: Turn, exchange: Any, turns: list[dict], fingerprint: str | None) -> list[Any]:
        t0 = time.perf_counter()
        incoming = [_incoming(m) for m in turns if m.get("role") not in ("system", "developer")]
        continues = ends_with_continue(exchange.upstream.messages, self.nudge_patterns)
        nudged = continues and exchange.upstream.messages[-1].get("role") != "assistant"
        turn.continue_separator = self.continue_separator if nudged else ""
        await self.catch_up(turn.key)
        for attempt in range(SYNC_ATTEMPTS):
            stored = await self._stored_tail(turn.key, len(incoming) + SLACK)
            turn.plan = plan_sync([_stored(r) for r in stored], incoming, continues=continues,
                                  nudge_patterns=self.nudge_patterns)
            if turn.read_only:
                break
            await self._ensure_session(turn, exchange, fingerprint)
            try:
                stored = await self._apply(turn, stored, last=attempt == SYNC_ATTEMPTS - 1)
                break
            except StaleSession:
                self.cache.replans += 1
                await self.catch_up(turn.key)
        turn.timings["sync"] = time.perf_counter() - t0
        return stored

    async def catch_up(self, key: str) -> None:
        """Fold what other replicas wrote to this conversation into this process's caches."""
        changes = await self.store.changed(key)
        if changes is None:
            return
        self.cache.refreshes += 1
        self.cache.rows += len(changes.rows)
        self.working.forget(key)
        self._personas.pop(key, None)
        await self.recall.apply_changes(key, changes.rows)

    async def _ensure_session(self, turn: Turn, exchange: Any, fingerprint: str | None) -> None:
        if turn.key in self._known:
            return
        if await self.store.get_session(turn.key) is None:
            await self.store.create_session(turn.key, turn.session_id, getattr(exchange, "owner", None),
                                            fingerprint)
        if turn.person is not None:
            await self.store.claim_session(turn.key, turn.person.person, turn.person.character)
            info = await self.store.get_session(turn.key)
            if info is not None and info.person is not None:
                await self.people.joined(info)
        self._known.add(turn.key)

    def forget_key(self, key: str) -> None:
        """A session was deleted or changed behind our back: drop what is cached about it."""
        self._personas.pop(key, None)
        self._known.discard(key)

    async def _stored_tail(self, key: str, n: int) -> list[Any]:
        """The last `n` stored turns: from working memory when it holds them, else from SQLite."""
        rows = self.working.get(key)
        if rows is not None and (len(rows) >= n or self.working.is_complete(key)):
            return list(rows)
        fresh = await self.store.active_tail(key, max(n, self.working.max_messages))
        self.working.load(key, fresh)
        return fresh

    async def _apply(self, turn: Turn, stored: list[Any], *, last: bool = False) -> list[Any]:
        """Commit the plan if the conversation is still as it was read (`StaleSession` if not; the
        last attempt commits unconditionally, as a single process would)."""
        plan = turn.plan
        append = [_new(m) for m in plan.append]
        supersede = [(old_id, _new(new)) for old_id, new in plan.supersede] + [(i, None) for i in plan.delete]
        if not append and not supersede:
            return stored
        based_on = None if last else self.store.version_seen(turn.key)
        applied = await self.store.apply(turn.key, append=append, supersede=supersede, based_on=based_on)
        if not self.working.apply(turn.key, added=applied.rows, removed=applied.superseded):
            self.working.forget(turn.key)
        self.recall.forget_ids(turn.key, applied.superseded)
        self._score_on_release(turn)
        gone = set(applied.superseded)
        return sorted([r for r in stored if r.id not in gone] + list(applied.rows), key=lambda r: r.position)

    async def _persona(self, turn: Turn, given: str | None) -> str | None:
        """The request's system prompt, remembered; else the one remembered (or set with PUT persona).

        A new prompt is also chunked into persona memory in the background, with the one it
        replaces (already there unless it predates persona memory: its chunks are then added).
        """
        known = self._personas.get(turn.key)
        if known is None:
            known = await self.store.get_persona(turn.key) or ""
        if given and given != known and not turn.read_only:
            await self.store.set_persona(turn.key, given)
            self._remember_prompts(turn.key, [known, given])
            known = given
        self._personas[turn.key] = known
        if len(self._personas) > PERSONAS_HELD:
            self._personas.pop(next(iter(self._personas)))  # the oldest entry: read again from the store
        return given or known or None

    def _remember_prompts(self, key: str, prompts: list[str]) -> None:
        if self.persona_memory is not None:
            self.writer.submit_call(lambda: self.persona_memory.remember(key, prompts))

    async def _build(self, turn: Turn, exchange: Any, turns: list[dict], stored: list[Any], query: Any) -> None:
        request = exchange.request
        total = exchange.controls.context_budget or self.settings.context_size(exchange.model)
        plan = plan_budget(total, request.response_limit, self.split)
        recalled = await self.recall.recall(turn.key, turns, stored, plan, turn.persona, query=query,
                                            person=turn.person)
        recalled.items += await self._documents(turn, exchange, query)
        t0 = time.perf_counter()
        turn.built = build_context(persona=turn.persona, client_messages=recalled.client_messages,
                                   memories=recalled.items, summaries=recalled.summaries,
                                   story_so_far=recalled.story, emotion_line=recalled.emotion_line, plan=plan,
                                   earlier=recalled.earlier)
        turn.recalled = list(turn.built.chosen)
        used = [i for item in turn.recalled for i in item.message_ids]
        if used and not turn.read_only:  # retrieval counts feed tier promotion; never on this path
            self.writer.submit_call(lambda: self.store.touch_accessed(turn.key, used))
        turn.timings.update(recalled.timings)
        turn.timings["build"] = time.perf_counter() - t0

    async def _documents(self, turn: Turn, exchange: Any, query: Any) -> list[Any]:
        """Passages of the user's documents this conversation may see, as candidates for the block."""
        if self.documents is None or not query.text:
            return []
        t0 = time.perf_counter()
        items = self.documents.recall(await query.vector(), owner=getattr(exchange, "owner", None),
                                      session_id=turn.session_id)
        turn.timings["documents"] = time.perf_counter() - t0
        return items

    # ------------------------------------------------------------------ after the reply

    async def record(self, exchange: Any, assembler: Any) -> None:
        """Store the reply (before [DONE], so a finished exchange survives a crash) and release."""
        turn: Turn = exchange.memory
        try:
            if not turn.read_only and (assembler.text or assembler.tool_calls()):
                await self._record_reply(turn, assembler, exchange.model)
        finally:
            turn.release()

    def record_later(self, exchange: Any, assembler: Any) -> None:
        """The client went away mid-stream: record what it saw on the writer's task, never here.

        The conversation stays held until that write is done (the hold moves from the request to
        the write), so a regenerate sent right after a Stop sees the stopped reply and replaces it.
        """
        turn: Turn = exchange.memory
        if turn.read_only or not assembler.text:
            turn.release()
            return
        later_turn = turn.hand_over()

        async def later() -> None:
            try:
                await self._record_reply(later_turn, assembler, exchange.model)
            finally:
                later_turn.release()

        self.writer.submit_call(later)

    def release(self, exchange: Any) -> None:
        if exchange.memory is not None:
            exchange.memory.release()

    async def _record_reply(self, turn: Turn, assembler: Any, model: str) -> None:
        plan = turn.plan
        content = message_text({"role": "assistant", "content": assembler.text,
                                "tool_calls": assembler.tool_calls() or None})
        replaces = list(plan.replaced_reply_ids)
        if plan.kind == "continue":
            content = join_continuation(plan.continue_prefix, content, turn.continue_separator)
            if plan.continue_of is not None:
                replaces.append(plan.continue_of)
        reply = NewMessage(role="assistant", content=content, token_count=count_tokens(content),
                           content_hash=message_hash("assistant", content))
        applied = await self.store.record(turn.key, reply, replaces)
        if not self.working.apply(turn.key, added=applied.rows, removed=applied.superseded):
            self.working.forget(turn.key)
        self.recall.forget_ids(turn.key, applied.superseded)
        self._score_on_release(turn)
        if self.summarizer is not None:
            self.summarizer.poke(turn.key, model)

    def _score_on_release(self, turn: Turn) -> None:
        """The writer embeds what the exchange recorded once it ends: the user's turn waits for
        the reply, so both are embedded in one model run and saved in one transaction, and the
        model's work on them stays off the request's way to its first token."""
        key = turn.key
        turn.score = lambda: self.writer.submit(key)


def hash_of(message: dict[str, Any]) -> str:
    return message_hash(message.get("role", "user"), message_text(message))


def _incoming(message: dict[str, Any]) -> IncomingMessage:
    text = message_text(message)
    role = message.get("role", "user")
    return IncomingMessage(role=role, name=message.get("name"), content=text, hash=message_hash(role, text))


def _stored(row: Any) -> StoredMessage:
    return StoredMessage(id=row.id, role=row.role, name=row.name, content=row.content, hash=row.content_hash)


def _new(message: Any) -> NewMessage:
    return NewMessage(role=message.role, name=message.name, content=message.content,
                      token_count=count_tokens(message.content), content_hash=message.hash)
