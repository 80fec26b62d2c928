"""One write to a conversation on PostgreSQL, planned in Python and sent as one statement.

`PgStore` opens the transaction, takes the session's advisory lock and reads the session's state
(`store_sql.STATE`: counters, last position, which of the ids the write names are still active);
`apply` and `reply` decide ids, positions and supersessions exactly as the SQLite store does, and
`flush` sends everything with `store_sql.WRITE`. The answers (`Applied`) are the SQLite store's,
id for id.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from app.memory.records import Applied, MessageRow, NewMessage, PersonaChunk
from app.memory.store.postgres import store_sql as sql
from app.sessions import message_hash

WINDOW = 64  # hashes kept per session for `find_by_hashes`: the last 64 turns written


def recent(held: Sequence[str], written: Sequence[str], window: int = WINDOW) -> list[str]:
    """The window after `written` (oldest first): a hash written again counts as recent again,
    the oldest beyond `window` drop out."""
    latest_last = dict.fromkeys(reversed([*held, *written]))
    return list(latest_last)[:window][::-1]


class Write:
    """The session's state as the write started (`before` is its sequence) and what it changes."""

    def __init__(self, conn: asyncpg.Connection, key: str, state: asyncpg.Record, now: float) -> None:
        self.conn, self.key, self.now, self.state = conn, key, now, state
        self.before = state["seq"]
        self.version = self.before + 1
        self.last_id = state["last_message"]
        self.next_position = state["last_position"] + 1
        self.active = {i: (p, t, w) for i, p, t, w in zip(state["ids"] or (), state["positions"] or (),
                                                          state["tokens"] or (), state["pending"] or ())}
        self.out = Applied()
        self.by: list[int] = []  # superseded_by of each id in out.superseded
        self.pending_delta = 0

    def insert(self, m: NewMessage, position: int | None = None) -> int:
        if position is None:
            position, self.next_position = self.next_position, self.next_position + 1
        self.last_id += 1
        row = MessageRow(self.last_id, position, m.role, m.name, m.content,
                         m.content_hash or message_hash(m.role, m.content),
                         self.now if m.created_at is None else m.created_at, m.token_count, kind=m.kind)
        self.out.rows.append(row)
        self.out.count_delta += 1
        self.out.token_delta += m.token_count
        self.pending_delta += 1
        return row.id

    def supersede(self, message_id: int, by: int) -> None:
        _, tokens, pending = self.active.pop(message_id)
        self.out.superseded.append(message_id)
        self.by.append(by)
        self.out.count_delta -= 1
        self.out.token_delta -= tokens
        self.pending_delta -= pending

    def replace(self, old_id: int, new: NewMessage | None) -> int:
        """`new` in `old_id`'s place (None: just remove it); appended when `old_id` is not active."""
        old = self.active.get(old_id)
        if old is None:
            return self.insert(new) if new is not None else -1
        new_id = self.insert(new, old[0]) if new is not None else -1
        self.supersede(old_id, new_id)
        return new_id

    async def flush(self) -> None:
        """Rows, supersessions and counters in one statement."""
        rows = self.out.rows
        hashes = recent(self.state["recent_hashes"], [r.content_hash for r in rows if r.kind == "turn"])
        self.out.pending = await self.conn.fetchval(
            sql.WRITE, self.key, self.version, *sql.columns(rows), self.out.superseded, self.by, self.last_id,
            self.out.count_delta, self.out.token_delta, self.now, hashes, self.pending_delta)
        self.out.version = self.version


async def apply(w: Write, append: list[NewMessage], supersede: list[tuple[int, NewMessage | None]]) -> None:
    w.out.replacements = [w.replace(old_id, new) for old_id, new in supersede]
    w.out.appended = [w.insert(message) for message in append]
    await w.flush()


async def reply(w: Write, reply: NewMessage, replaces: list[int]) -> None:
    """The reply takes the place of the first replaced message when only replaced ones follow it."""
    olds = [i for i in dict.fromkeys(replaces) if i in w.active]
    position = min(w.active[i][0] for i in olds) if olds and w.state["tail_clear"] else None
    reply_id = w.insert(reply, position)
    for old_id in olds:
        w.supersede(old_id, reply_id)
    w.out.appended = [reply_id]
    await w.flush()


def new_chunks(chunks: Sequence[PersonaChunk], known: set[str]) -> list[PersonaChunk]:
    """The chunks to store: the first of each hash not `known` yet, in order."""
    fresh: dict[str, PersonaChunk] = {}
    for c in chunks:
        if c.hash not in known:
            fresh.setdefault(c.hash, c)
    return list(fresh.values())


def state_ids(supersede: Sequence[tuple[int, object]] = (), replaces: Sequence[int] = ()) -> list[int]:
    """The ids a write asks the state about."""
    return [old_id for old_id, _ in supersede] + list(replaces)
