"""What in a chat request is new, given what the conversation already holds.

Clients resend the visible history on every request, and that history changes under us: the user
edits an old message, swipes a reply, regenerates, continues a cut-off reply, or the client trims
the front to fit its context. `plan_sync` lines the incoming window up with the stored tail and
says what to record, without touching storage:

    plan = plan_sync(stored_tail, incoming)
    store.apply(append=plan.append, supersede=plan.supersede + deletes(plan.delete))   # now
    ... stream the reply ...
    text = join_continuation(plan.continue_prefix, reply) if plan.kind == "continue" else reply
    store.record_reply(text, replaces=plan.replaced_reply_ids + (plan.continue_of,) if set)

How the window is lined up. Both sides are reduced to their message hashes and matched like a
diff: the longest common run first, then the same on either side of it (difflib's matcher, which
indexes the stored side in a dict from hash to positions, so a resend costs about the window's
length). Only the stored tail that a window can reach is looked at (`len(window) + SLACK`).
Then, between and around the matched runs:

- the window's messages in a gap edit the stored ones there, one to one, when their roles agree
  (a difference in speaker name alone is no edit);
- stored messages the window no longer has after its first match were deleted in the client:
  they are deleted here too (superseded, never erased). Stored messages before the window's
  first match are a trimmed front, never a delete. A one-message window deletes nothing, nor
  does a window without a role (a client that sends only user turns has deleted no reply);
- in the middle, a gap whose roles disagree is left alone (messages the proxy never saw are not
  inserted); after the last match, the window's remaining messages are new and appended;
- a window that ends on a stored user message is a regenerate or swipe: the replies right after
  it are replaced by the coming one (later turns were deleted);
- a one-message window that repeats an old user message with more turns after it is a new turn
  that repeats old words (a client sending only its newest message): it is appended.

A continue ends with the partial reply (a prefill) or with a nudge after it. The nudge is never
recorded; the partial is the prefix of the reply to record, which replaces the stored reply it
lines up with (`continue_of`), whether the partial equals it, extends it or was edited.

Everything here compares `hash` fields, so stored and incoming hashes must come from the same
function; `app.sessions.message_hash` is made for it (it ignores whitespace differences). If nothing
lines up by hash, the texts are compared directly (normalised, without names) before everything is
taken as new. A 200-message window over a long conversation plans in about 0.15 ms.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from difflib import Match, SequenceMatcher
from itertools import pairwise

from app.auxiliary import is_continue_nudge
from app.sessions import normalise_text

SLACK = 64  # stored messages a window may have dropped (deleted in the client) and still line up
PERSONA_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    role: str
    name: str | None
    content: str
    hash: str


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    role: str
    name: str | None
    content: str
    hash: str


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What to record for one request; `kind` summarises, the other fields are what to do.

    kind: "new" (nothing stored yet), "append" (new turns at the end), "edit" (stored messages
    superseded or deleted; may also append), "regenerate" (the coming reply replaces stored replies; may
    also edit), "continue" (the coming reply extends a partial one), "noop" (nothing new).
    offset: the index in `stored` that the window's first message lines up with (negative when
    the window starts with messages never stored; None when nothing lined up).
    """

    kind: str = "noop"
    append: tuple[IncomingMessage, ...] = ()
    supersede: tuple[tuple[int, IncomingMessage], ...] = ()
    replaced_reply_ids: tuple[int, ...] = ()
    continue_of: int | None = None
    continue_prefix: str = ""
    offset: int | None = None
    delete: tuple[int, ...] = ()


def plan_sync(stored: Sequence[StoredMessage], incoming: Sequence[IncomingMessage], *,
              continues: bool | None = None, nudge_patterns: Sequence[str] = ()) -> SyncPlan:
    """Line `incoming` (the request's messages) up with `stored` (the active tail, oldest first).

    `continues`: whether the reply extends the last assistant message (see
    `app.auxiliary.ends_with_continue`, which also sees system-role nudges); None infers it from
    `incoming`: a trailing continue nudge after an assistant message, or a trailing assistant
    message. Pass False to treat a trailing assistant message as finished.
    """
    turns = [m for m in incoming if m.role not in PERSONA_ROLES]
    turns, continuing = _strip_nudge(turns, continues, nudge_patterns)
    where = _tail_positions(stored, len(turns))
    past = [stored[k] for k in where]
    blocks = _align(turns, past)
    links, deleted = _link(turns, past, blocks)
    offset = where[blocks[0].b] - blocks[0].a if blocks else None
    return _decide(turns, past, links, deleted, continuing, offset)


def _strip_nudge(turns: list[IncomingMessage], continues: bool | None,
                 patterns: Sequence[str]) -> tuple[list[IncomingMessage], bool]:
    """The turns without a trailing continue nudge, and whether the reply continues the last one."""
    if continues is False:
        return turns, False
    if (len(turns) > 1 and turns[-1].role == "user" and turns[-2].role == "assistant"
            and is_continue_nudge(turns[-1].content, patterns)):
        return turns[:-1], True
    return turns, bool(turns) and turns[-1].role == "assistant"


def _tail_positions(stored: Sequence[StoredMessage], window: int) -> list[int]:
    """Indices of the non-system stored messages a window of this length can reach."""
    start = max(0, len(stored) - window - SLACK)
    return [k for k in range(start, len(stored)) if stored[k].role not in PERSONA_ROLES]


def _align(turns: Sequence[IncomingMessage], past: Sequence[StoredMessage]) -> list[Match]:
    """Matched runs (incoming a, stored b, size), by hash, else by normalised text."""
    blocks = _matching([m.hash for m in turns], [m.hash for m in past])
    if blocks or not turns or not past:
        return blocks
    return _matching(_text_keys(turns), _text_keys(past))


def _matching(a: list[Hashable], b: list[Hashable]) -> list[Match]:
    return SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()[:-1]


def _text_keys(messages: Sequence[StoredMessage | IncomingMessage]) -> list[tuple[str, str]]:
    return [(m.role, normalise_text(m.content)) for m in messages]


def _link(turns: Sequence[IncomingMessage], past: Sequence[StoredMessage],
          blocks: list[Match]) -> tuple[dict[int, int], list[int]]:
    """Incoming index -> stored index (matches, and edits that line up), and the stored indices the
    client deleted: those missing from its window after the window's first match."""
    links: dict[int, int] = {}
    deleted: list[int] = []
    if not blocks:
        return links, deleted
    first = blocks[0]
    if first.b >= first.a:  # what the window holds before its first match: edits of the stored front
        _pair(turns, past, 0, first.b - first.a, first.a, links)
    for block, after in pairwise(blocks):
        links.update((block.a + k, block.b + k) for k in range(block.size))
        _gap(turns, past, block.a + block.size, block.b + block.size, after.a, after.b, links, deleted)
    last = blocks[-1]
    links.update((last.a + k, last.b + k) for k in range(last.size))
    _gap(turns, past, last.a + last.size, last.b + last.size, len(turns), len(past), links, deleted, end=True)
    return links, deleted


def _gap(turns: Sequence[IncomingMessage], past: Sequence[StoredMessage], i: int, j: int, end_i: int, end_j: int,
         links: dict[int, int], deleted: list[int], *, end: bool = False) -> None:
    """Between two matched runs (or after the last): the window's messages edit the stored ones one
    to one when the roles agree, and stored messages beyond them were deleted in the client. When
    the roles disagree, a gap in the middle is left alone unless the window has nothing there (a
    plain delete); at the end, the stored messages go and the window's are new."""
    count = min(end_i - i, end_j - j)
    if all(turns[i + k].role == past[j + k].role for k in range(count)):
        links.update((i + k, j + k) for k in range(count))
        deleted.extend(range(j + count, end_j))
    elif end:
        deleted.extend(range(j, end_j))


def _pair(turns: Sequence[IncomingMessage], past: Sequence[StoredMessage], i: int, j: int, count: int,
          links: dict[int, int]) -> None:
    """Link `count` messages from `i` and `j` one to one, if every pair has the same role."""
    if all(turns[i + k].role == past[j + k].role for k in range(count)):
        links.update((i + k, j + k) for k in range(count))


def _decide(turns: list[IncomingMessage], past: list[StoredMessage], links: dict[int, int], deleted: list[int],
            continuing: bool, offset: int | None) -> SyncPlan:
    last = len(turns) - 1
    new = list(range(max(links, default=-1) + 1, len(turns)))
    replaced: tuple[int, ...] = ()
    continue_of, prefix = None, ""
    if continuing:
        prefix, j = turns[last].content, links.pop(last, None)
        continue_of = past[j].id if j is not None else None
        new = [i for i in new if i != last]
    elif last in links and turns[last].role != "assistant":
        replaced, new, deleted = _reply_ending(turns, past, links, last, new, deleted)
    supersede = tuple((past[j].id, turns[i]) for i, j in sorted(links.items()) if _edited(turns[i], past[j]))
    append = tuple(turns[i] for i in new)
    deleted = _really_deleted(turns, past, deleted)
    gone = tuple(past[j].id for j in deleted if past[j].id not in replaced)
    kind = _kind(continuing, replaced, supersede + tuple((i, None) for i in gone), append, bool(past))
    return SyncPlan(kind, append, supersede, replaced, continue_of, prefix, offset, gone)


def _really_deleted(turns: Sequence[IncomingMessage], past: Sequence[StoredMessage], deleted: list[int]) -> list[int]:
    """Only what the client's chat could have shown: one message tells nothing of what the chat no
    longer holds, and a client that never sends a role (only its user turns, no tool results) has
    not deleted that role's messages."""
    if len(turns) < 2:
        return []
    roles = {m.role for m in turns}
    return [j for j in deleted if past[j].role in roles]


def _reply_ending(turns: Sequence[IncomingMessage], past: Sequence[StoredMessage], links: dict[int, int],
                  last: int, new: list[int], deleted: list[int]) -> tuple[tuple[int, ...], list[int], list[int]]:
    """A window ending on a stored message that asks for a reply: a regenerate, or a repeat.

    The replies right after it are replaced by the coming one (regenerate, swipe); anything
    later was deleted in the client. A window of that one message is a client saying old words
    again (it sends only its newest message): the message is new, and nothing is deleted.
    """
    after = range(links[last] + 1, len(past))
    if len(turns) == 1 and any(past[j].role != "assistant" for j in after):
        del links[last]
        return (), [last], []
    replies = []
    for j in after:
        if past[j].role != "assistant":
            break
        replies.append(past[j].id)
    return tuple(replies), new, deleted


def _edited(new: IncomingMessage, old: StoredMessage) -> bool:
    """A real change of text; a speaker name added or dropped by the client is not one."""
    if new.hash == old.hash:
        return False
    return new.role != old.role or normalise_text(new.content) != normalise_text(old.content)


def join_continuation(partial: str, continuation: str, separator: str = " ") -> str:
    """A continued reply as the client shows it: the partial, its continue separator, the rest.

        >>> join_continuation("She turned", "and ran.")
        'She turned and ran.'
        >>> join_continuation("She turned ", "and ran."), join_continuation("She turned", " and ran.", "")
        ('She turned and ran.', 'She turned and ran.')

    SillyTavern joins a Continue with its continue postfix (a space by default); a prefilled
    reply runs on with no separator. No separator is added where either side already has space.
    """
    if not separator or not partial or not continuation or partial[-1].isspace() or continuation[0].isspace():
        return partial + continuation
    return partial + separator + continuation


def _kind(continuing: bool, replaced: tuple, supersede: tuple, append: tuple, had_past: bool) -> str:
    if continuing:
        return "continue"
    if replaced:
        return "regenerate"
    if supersede:
        return "edit"
    if append:
        return "append" if had_past else "new"
    return "noop"
