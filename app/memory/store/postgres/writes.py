"""One write to a conversation on PostgreSQL: the rows it inserts and supersedes, planned in Python
and sent in a few statements (`flush`), inside the transaction `PgStore` opened under the
session's advisory lock. The answers (`Applied`) are the SQLite store's, id for id.
"""

from __future__ import annotations

import asyncpg

from app.memory.records import Applied, MessageRow, NewMessage
from app.memory.store.postgres import store_sql as sql
from app.sessions import message_hash

WINDOW = 64  # hashes kept per session for `find_by_hashes`: the last 64 turns written


class Write:
    """The session's counters as the write started (`before` is its sequence) and what it changed."""

    def __init__(self, conn: asyncpg.Connection, key: str, state: asyncpg.Record, now: float) -> None:
        self.conn, self.key, self.now = conn, key, now
        self.before = state["seq"]
        self.version = self.before + 1
        self.last_id = state["last_message"]
        self.state = state
        self.next_position = state["last_position"] + 1
        self.out = Applied()
        self.by: list[int] = []  # superseded_by of each id in out.superseded
        self.active: dict[int, tuple[int, int]] = {}  # id -> (position, token_count) of the ids asked about

    async def load_active(self, ids: list[int]) -> None:
        if ids:
            records = await self.conn.fetch(sql.ACTIVE, self.key, ids)
            self.active = {r["id"]: (r["position"], r["token_count"]) for r in records}

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
        return row.id

    def supersede(self, message_id: int, by: int) -> None:
        _, tokens = self.active.pop(message_id)
        self.out.superseded.append(message_id)
        self.by.append(by)
        self.out.count_delta -= 1
        self.out.token_delta -= tokens

    def replace(self, old_id: int, new: NewMessage | None) -> int:
        """`new` in `old_id`'s place (None: just remove it); appended when `old_id` is not active."""
        old = self.active.get(old_id)
        if old is None:
            return self.insert(new) if new is not None else -1
        new_id = self.insert(new, old[0]) if new is not None else -1
        self.supersede(old_id, new_id)
        return new_id

    async def reply_position(self, olds: dict[int, tuple[int, int]]) -> int | None:
        """The first replaced message's position if only replaced messages sit at or after it, else None."""
        if not olds:
            return None
        first = min(position for position, _ in olds.values())
        tail = await self.conn.fetch(sql.ACTIVE_FROM, self.key, first)
        return first if all(r["id"] in olds for r in tail) else None

    async def flush(self) -> None:
        """Send the planned rows, then the counters (`finish`)."""
        rows = self.out.rows
        if rows:
            await self.conn.execute(sql.INSERT_MESSAGES, self.key, self.version, *sql.columns(rows))
        if self.out.superseded:
            await self.conn.execute(sql.SUPERSEDE, self.key, self.version, self.out.superseded, self.by)
            await self.conn.execute(sql.DROP_VECTORS, self.key, self.out.superseded)
        self.out.pending = await self.finish(self.now)
        self.out.version = self.version
        await self.remember([r.content_hash for r in rows if r.kind == "turn"])

    async def finish(self, now: float | None) -> int:
        """Bump the sequence, add to the counters, recount pending; stamp `last_active` unless None."""
        return await self.conn.fetchval(sql.FINISH, self.key, self.version, self.last_id, self.out.count_delta,
                                        self.out.token_delta, now)

    async def remember(self, hashes: list[str]) -> None:
        """Keep `hashes` as the most recent of the window (a repeated one moves up), the oldest beyond it dropped."""
        if hashes:
            latest_last = list(dict.fromkeys(reversed(hashes)))[::-1]
            await self.conn.execute(sql.REMEMBER_HASHES, self.key, latest_last)
            await self.conn.execute(sql.TRIM_HASHES, self.key, WINDOW - 1)


async def apply(w: Write, append: list[NewMessage], supersede: list[tuple[int, NewMessage | None]]) -> None:
    await w.load_active([old_id for old_id, _ in supersede])
    w.out.replacements = [w.replace(old_id, new) for old_id, new in supersede]
    w.out.appended = [w.insert(message) for message in append]
    await w.flush()


async def reply(w: Write, reply: NewMessage, replaces: list[int]) -> None:
    await w.load_active(list(dict.fromkeys(replaces)))
    olds = {i: w.active[i] for i in dict.fromkeys(replaces) if i in w.active}
    reply_id = w.insert(reply, await w.reply_position(olds))
    for old_id in olds:
        w.supersede(old_id, reply_id)
    w.out.appended = [reply_id]
    await w.flush()
