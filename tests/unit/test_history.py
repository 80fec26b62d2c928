"""History sync planning: what a resent, edited, regenerated, continued or trimmed window adds."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from app.history import IncomingMessage, StoredMessage, SyncPlan, join_continuation, plan_sync
from app.sessions import message_hash

ROLES = {"u": "user", "a": "assistant", "s": "system", "t": "tool"}
NUDGE = ("[Continue the following message. Do not include ANY parts of the original message. Use capitalization "
         "and punctuation as if your reply is a part of the original message: {}]")


def parse(line: str) -> tuple[str, str | None, str]:
    """"u:text" -> ("user", None, "text"); "a@Seraphina:text" names the speaker."""
    head, text = line.split(":", 1)
    role, _, name = head.partition("@")
    return ROLES[role], name or None, text


def stored(*lines: str) -> list[StoredMessage]:
    """Stored messages with ids 1, 2, 3... in order."""
    rows = []
    for k, line in enumerate(lines, start=1):
        role, name, text = parse(line)
        rows.append(StoredMessage(id=k, role=role, name=name, content=text, hash=message_hash(role, text)))
    return rows


def incoming(*lines: str) -> list[IncomingMessage]:
    rows = []
    for line in lines:
        role, name, text = parse(line)
        rows.append(IncomingMessage(role=role, name=name, content=text, hash=message_hash(role, text)))
    return rows


def turns(n: int, *, greeting: bool = False) -> list[str]:
    """`n` user/assistant exchanges, optionally after a greeting."""
    lines = ["a:*She smiles.* Welcome, traveller."] if greeting else []
    for k in range(n):
        lines += [f"u:question {k}", f"a:answer {k}"]
    return lines


def summary(plan: SyncPlan) -> dict:
    """The plan as plain text, for readable expectations."""
    return {
        "kind": plan.kind,
        "append": [f"{m.role[0]}:{m.content}" for m in plan.append],
        "supersede": [(old, f"{m.role[0]}:{m.content}") for old, m in plan.supersede],
        "replaced": list(plan.replaced_reply_ids),
        "continue_of": plan.continue_of,
        "prefix": plan.continue_prefix,
        "delete": list(plan.delete),
    }


def expect(kind: str, append=(), supersede=(), replaced=(), continue_of=None, prefix="", delete=()) -> dict:
    return {"kind": kind, "append": list(append), "supersede": list(supersede), "replaced": list(replaced),
            "continue_of": continue_of, "prefix": prefix, "delete": list(delete)}


FIFTY = turns(50)                     # ids 1..100: question k has id 2k+1, answer k has id 2k+2
GREETED = turns(3, greeting=True)     # ids 1..7: greeting 1, question k 2k+2, answer k 2k+3

CASES = [
    # name, stored, incoming, expected
    ("full resend over 50 turns", FIFTY, FIFTY + ["u:new question"],
     expect("append", ["u:new question"])),
    ("stored empty", [], GREETED + ["u:new question"],
     expect("new", GREETED + ["u:new question"])),
    ("first request of a chat", [], ["a:*She smiles.* Welcome, traveller.", "u:hello"],
     expect("new", ["a:*She smiles.* Welcome, traveller.", "u:hello"])),
    ("regenerate", FIFTY, FIFTY[:-1],
     expect("regenerate", replaced=[100])),
    ("retry after a failed reply", FIFTY + ["u:new question"], FIFTY + ["u:new question"],
     expect("noop")),
    ("edit of an early message", FIFTY, FIFTY[:6] + ["u:question 3, reworded"] + FIFTY[7:] + ["u:new question"],
     expect("edit", ["u:new question"], [(7, "u:question 3, reworded")])),
    ("edit of an early reply", FIFTY, FIFTY[:3] + ["a:answer 1, fixed"] + FIFTY[4:] + ["u:new question"],
     expect("edit", ["u:new question"], [(4, "a:answer 1, fixed")])),
    ("edit of an early reply, nothing new", FIFTY, FIFTY[:3] + ["a:answer 1, fixed"] + FIFTY[4:-1],
     expect("regenerate", supersede=[(4, "a:answer 1, fixed")], replaced=[100])),
    ("edit of the very first message", FIFTY, ["u:question 0, reworded"] + FIFTY[1:] + ["u:new question"],
     expect("edit", ["u:new question"], [(1, "u:question 0, reworded")])),
    ("edit of the greeting", GREETED, ["a:*She frowns.* Who goes there?"] + GREETED[1:] + ["u:new question"],
     expect("edit", ["u:new question"], [(1, "a:*She frowns.* Who goes there?")])),
    ("two edits far apart", FIFTY, FIFTY[:10] + ["u:q5b"] + FIFTY[11:89] + ["a:a44b"] + FIFTY[90:] + ["u:new"],
     expect("edit", ["u:new"], [(11, "u:q5b"), (90, "a:a44b")])),
    ("an edit that changes the role is left alone", FIFTY, FIFTY[:10] + ["a:now a reply"] + FIFTY[11:] + ["u:new"],
     expect("append", ["u:new"])),
    ("edit of the last user message, then regenerate", FIFTY, FIFTY[:-2] + ["u:question 49, reworded"],
     expect("regenerate", supersede=[(99, "u:question 49, reworded")], replaced=[100])),
    ("edit of the last reply, then a new message", FIFTY, FIFTY[:-1] + ["a:answer 49, fixed", "u:new question"],
     expect("edit", ["u:new question"], [(100, "a:answer 49, fixed")])),
    ("swiped back to another reply, then a new message", FIFTY, FIFTY[:-1] + ["a:another answer", "u:next"],
     expect("edit", ["u:next"], [(100, "a:another answer")])),
    ("last turn deleted in the client, then a new message", FIFTY, FIFTY[:-2] + ["u:a different question"],
     expect("regenerate", supersede=[(99, "u:a different question")], replaced=[100])),
    ("continue with the nudge", FIFTY[:-1] + ["a:She turned"],
     FIFTY[:-1] + ["a:She turned", "u:" + NUDGE.format("She turned")],
     expect("continue", continue_of=100, prefix="She turned")),
    ("continue with prefill, equal", FIFTY[:-1] + ["a:She turned"], FIFTY[:-1] + ["a:She turned"],
     expect("continue", continue_of=100, prefix="She turned")),
    ("continue with prefill, extended", FIFTY[:-1] + ["a:She turned"], FIFTY[:-1] + ["a:She turned and ran"],
     expect("continue", continue_of=100, prefix="She turned and ran")),
    ("continue with the nudge after editing the partial", FIFTY[:-1] + ["a:She turned"],
     FIFTY[:-1] + ["a:He turned", "u:" + NUDGE.format("He turned")],
     expect("continue", continue_of=100, prefix="He turned")),
    ("continue of a partial never stored", FIFTY[:-1], FIFTY[:-1] + ["a:She turned"],
     expect("continue", prefix="She turned")),
    ("continue on an empty conversation", [], ["a:*She smiles.*", "u:" + NUDGE.format("*She smiles.*")],
     expect("continue", prefix="*She smiles.*")),
    ("continue after an early edit", FIFTY[:-1] + ["a:She turned"],
     FIFTY[:3] + ["a:answer 1, fixed"] + FIFTY[4:-1] + ["a:She turned"],
     expect("continue", supersede=[(4, "a:answer 1, fixed")], continue_of=100, prefix="She turned")),
    ("front-trimmed window", FIFTY, FIFTY[-20:] + ["u:new question"],
     expect("append", ["u:new question"])),
    ("front-trimmed window, regenerate", FIFTY, FIFTY[-21:-1],
     expect("regenerate", replaced=[100])),
    ("front-trimmed window with an edit inside", FIFTY, FIFTY[-20:-10] + ["u:q45b"] + FIFTY[-9:] + ["u:new"],
     expect("edit", ["u:new"], [(91, "u:q45b")])),
    ("single-message client", FIFTY, ["u:something else entirely"],
     expect("append", ["u:something else entirely"])),
    ("single-message client repeating an old question", FIFTY, ["u:question 7"],
     expect("append", ["u:question 7"])),
    ("single-message client retrying its last question", FIFTY, ["u:question 49"],
     expect("regenerate", replaced=[100])),
    ("messages never seen in the middle", turns(3), turns(1) + ["u:unseen", "a:unseen reply", "u:another"]
     + turns(3)[2:] + ["u:new question"],
     expect("append", ["u:new question"])),
    ("messages never seen at the front", turns(3), ["u:older", "a:older reply", "u:oldest"] + turns(3) + ["u:new"],
     expect("append", ["u:new"])),
    ("messages deleted in the middle", FIFTY, FIFTY[:40] + FIFTY[46:] + ["u:new question"],
     expect("edit", ["u:new question"], delete=[41, 42, 43, 44, 45, 46])),
    ("messages deleted in the middle of a front-trimmed window", FIFTY, FIFTY[-20:-8] + FIFTY[-6:] + ["u:new"],
     expect("edit", ["u:new"], delete=[93, 94])),
    ("last pair deleted, then continue on the reply before it", FIFTY, FIFTY[:-2] + ["u:" + NUDGE.format("answer 48")],
     expect("continue", continue_of=98, prefix="answer 48", delete=[99, 100])),
    ("last pair deleted, then continue with a system nudge", FIFTY, FIFTY[:-2],
     expect("continue", continue_of=98, prefix="answer 48", delete=[99, 100])),
    ("last two turns deleted, then a new message", FIFTY, FIFTY[:-4] + ["u:a different question"],
     expect("regenerate", supersede=[(97, "u:a different question")], replaced=[98], delete=[99, 100])),
    ("last turns deleted, then regenerate the one before", FIFTY, FIFTY[:-3],
     expect("regenerate", replaced=[98], delete=[99, 100])),
    ("a pair deleted after an edit", FIFTY, FIFTY[:10] + ["u:q5b"] + FIFTY[13:] + ["u:new"],
     expect("edit", ["u:new"], [(11, "u:q5b")], delete=[12, 13])),
    ("a reply the client never saw, then a new message", FIFTY, FIFTY[:-1] + ["u:next question"],
     expect("edit", ["u:next question"], delete=[100])),
    ("a client that sends only its user turns deletes nothing", FIFTY, [m for m in FIFTY if m[0] == "u"] + ["u:new"],
     expect("append", ["u:new"])),
    ("single-message client continuing an old reply deletes nothing", turns(3), ["a:answer 0"],
     expect("continue", continue_of=2, prefix="answer 0")),
    ("unseen messages at the end", FIFTY, FIFTY + ["u:said elsewhere", "a:answered elsewhere", "u:new"],
     expect("append", ["u:said elsewhere", "a:answered elsewhere", "u:new"])),
    ("nothing in common", turns(3), ["u:x", "a:y", "u:z"],
     expect("append", ["u:x", "a:y", "u:z"])),
    ("system messages take no part", FIFTY, ["s:persona"] + FIFTY[:50] + ["s:[Author's note]"] + FIFTY[50:]
     + ["u:new question", "s:[Stay in character]"],
     expect("append", ["u:new question"])),
    ("tool call and result", turns(2) + ["u:weather?", "a:[call] weather({})"],
     turns(2) + ["u:weather?", "a:[call] weather({})", "t:sunny"],
     expect("append", ["t:sunny"])),
    ("a speaker name the stored reply lacks", turns(2), ["u:question 0", "a@Seraphina:answer 0", "u:question 1",
                                                         "a@Seraphina:answer 1", "u:new"],
     expect("append", ["u:new"])),
    ("whitespace differences", turns(2), ["u:question  0", "a:answer 0\n", "u:question 1", "a: answer 1", "u:new"],
     expect("append", ["u:new"])),
    ("empty request", FIFTY, [],
     expect("noop")),
    ("only system messages", FIFTY, ["s:persona"],
     expect("noop")),
]


@pytest.mark.parametrize("name, past, window, expected", CASES, ids=[c[0] for c in CASES])
def test_plan_sync(name, past, window, expected):
    assert summary(plan_sync(stored(*past), incoming(*window))) == expected


def test_identical_history_ending_in_a_reply_is_a_continue_unless_told_otherwise():
    past = stored(*FIFTY)
    assert plan_sync(past, incoming(*FIFTY)).kind == "continue"
    assert summary(plan_sync(past, incoming(*FIFTY), continues=False)) == expect("noop")


def test_explicit_continue_for_a_system_role_nudge():
    """The nudge was a system message, so `incoming` ends with the partial; the caller saw the nudge."""
    plan = plan_sync(stored(*FIFTY[:-1], "a:She turned"), incoming(*FIFTY[:-1], "a:She turned"), continues=True)
    assert (plan.kind, plan.continue_of, plan.continue_prefix) == ("continue", 100, "She turned")


def test_a_user_message_that_looks_like_a_nudge_is_kept_when_not_continuing():
    window = incoming(*FIFTY, "u:" + NUDGE.format("answer 49"))
    assert summary(plan_sync(stored(*FIFTY), window, continues=False))["append"] == ["u:" + NUDGE.format("answer 49")]


def test_group_chat_reply_after_another_character_is_not_a_continue():
    past = stored(*FIFTY, "a@Lilith:I agree.")
    plan = plan_sync(past, incoming(*FIFTY, "a@Lilith:I agree."), continues=False)
    assert plan.kind == "noop" and plan.continue_of is None


def test_custom_nudge_patterns():
    past = stored(*FIFTY[:-1], "a:She turned")
    window = incoming(*FIFTY[:-1], "a:She turned", "u:[Keep going]")
    assert plan_sync(past, window).kind == "append"
    assert plan_sync(past, window, nudge_patterns=[r"^\[keep going\]$"]).kind == "continue"


@pytest.mark.parametrize("past, window, offset", [
    (FIFTY, FIFTY + ["u:new"], 0),
    (FIFTY, FIFTY[-20:] + ["u:new"], 80),
    (FIFTY, ["u:older"] + FIFTY + ["u:new"], -1),
    (FIFTY, ["u:something else"], None),
    ([], ["u:hello"], None),
])
def test_offset_is_where_the_window_starts_in_stored(past, window, offset):
    assert plan_sync(stored(*past), incoming(*window)).offset == offset


def test_offset_counts_stored_system_messages():
    past = stored("s:persona", *turns(3))
    assert plan_sync(past, incoming(*turns(3)[2:], "u:new")).offset == 3


def test_stored_hashes_from_another_scheme_still_line_up_by_text():
    """Rows hashed some other way: compared by normalised text, so a resend still adds only its tail."""
    past = [StoredMessage(m.id, m.role, m.name, m.content, "other-" + m.hash) for m in stored(*FIFTY)]
    assert summary(plan_sync(past, incoming(*FIFTY, "u:new question"))) == expect("append", ["u:new question"])


def test_only_the_reachable_stored_tail_is_considered():
    """A 3-message window cannot line up with a message 10,000 turns back."""
    long = turns(5000)
    plan = plan_sync(stored(*long), incoming("u:question 0", "a:answer 0", "u:new"))
    assert summary(plan) == expect("append", ["u:question 0", "a:answer 0", "u:new"])


# ---------------------------------------------------------------------------- a conversation over time

@dataclass
class FakeStore:
    """Applies plans the way the conversation store does: in place, appended, replaced by the reply."""

    rows: list[StoredMessage] = field(default_factory=list)
    next_id: int = 1

    def message(self, role: str, name: str | None, text: str) -> StoredMessage:
        self.next_id += 1
        return StoredMessage(self.next_id - 1, role, name, text, message_hash(role, text))

    def apply(self, plan: SyncPlan) -> None:
        by_id = {m.id: k for k, m in enumerate(self.rows)}
        for old, new in plan.supersede:
            self.rows[by_id[old]] = self.message(new.role, new.name, new.content)
        self.rows = [m for m in self.rows if m.id not in plan.delete]
        self.rows += [self.message(m.role, m.name, m.content) for m in plan.append]

    def record_reply(self, plan: SyncPlan, text: str, separator: str = "") -> str:
        if plan.kind == "continue":
            text = join_continuation(plan.continue_prefix, text, separator)
        gone = set(plan.replaced_reply_ids) | ({plan.continue_of} - {None})
        place = min((k for k, m in enumerate(self.rows) if m.id in gone), default=len(self.rows))
        self.rows = [m for m in self.rows if m.id not in gone]
        self.rows.insert(place, self.message("assistant", None, text))
        return text

    def texts(self) -> list[str]:
        return [f"{m.role[0]}:{m.content}" for m in self.rows]


class Client:
    """A chat frontend: keeps the visible history, resends it, edits, swipes, continues, trims."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.visible: list[str] = []
        self.replies = 0

    def request(self, window: list[str], *, nudge: bool = False) -> str:
        lines = window + (["u:" + NUDGE.format(window[-1][2:])] if nudge else [])
        plan = plan_sync(self.store.rows, incoming(*lines))
        self.store.apply(plan)
        self.replies += 1
        return self.store.record_reply(plan, f"reply {self.replies}", " " if nudge else "")

    def send(self, text: str) -> None:
        self.visible.append("u:" + text)
        self.visible.append("a:" + self.request(self.visible))

    def regenerate(self) -> None:
        self.visible[-1] = "a:" + self.request(self.visible[:-1])

    def continue_reply(self, *, nudge: bool) -> None:
        self.visible[-1] = "a:" + self.request(self.visible, nudge=nudge)

    def edit(self, index: int, text: str) -> None:
        self.visible[index] = self.visible[index][:2] + text

    def delete(self, start: int, count: int) -> None:
        del self.visible[start:start + count]


def test_a_conversation_with_every_kind_of_request_stays_in_step():
    store = FakeStore()
    client = Client(store)
    client.visible = ["a:*She smiles.* Welcome."]
    for k in range(30):
        client.send(f"message {k}")
    assert store.texts() == client.visible
    for _ in range(3):
        client.regenerate()
        assert store.texts() == client.visible
    client.edit(5, "message 2, reworded")
    client.send("after the edit")
    assert store.texts() == client.visible
    client.continue_reply(nudge=True)
    client.continue_reply(nudge=False)
    assert store.texts() == client.visible
    assert store.texts()[-1].endswith("reply 34 reply 35reply 36")
    client.edit(-2, "last question, reworded")
    client.regenerate()
    assert store.texts() == client.visible
    swiped_away = client.visible[-1]
    client.regenerate()                           # a swipe to a new reply...
    client.visible[-1] = swiped_away              # ...and back to the earlier one, which sends nothing
    ids_before = [m.id for m in store.rows]
    client.send("after swiping back")
    assert store.texts() == client.visible
    assert [m.id for m in store.rows][:-3] == ids_before[:-1]   # only the swiped reply was replaced
    client.delete(len(client.visible) - 2, 2)      # the last pair deleted, then Continue on the reply before
    client.continue_reply(nudge=True)
    assert store.texts() == client.visible
    client.send("after delete and continue")
    client.delete(9, 4)                           # two pairs deleted in the middle
    client.send("after a delete in the middle")
    assert store.texts() == client.visible
    client.delete(len(client.visible) - 4, 4)      # two turns deleted, then a new message
    client.send("after deleting the end")
    assert store.texts() == client.visible


def test_a_trimmed_window_keeps_everything_stored():
    store = FakeStore()
    client = Client(store)
    for k in range(40):
        client.send(f"message {k}")
        if len(client.visible) > 20:
            del client.visible[:2]      # the client trims its window at the front
    assert len(store.rows) == 80
    assert store.texts()[-20:] == client.visible
    assert store.texts()[:2] == ["u:message 0", "a:reply 1"]
