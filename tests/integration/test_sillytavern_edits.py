"""SillyTavern's deletes, Continue and Stop, replayed with the request shapes it really sends.

The bodies are built from `../shared/data/sillytavern/requests.json` (captured on the wire): the
character's system blocks, the greeting, the turns, and for Continue a trailing system nudge that
repeats the reply being continued. After every step the proxy's live messages must equal the
chat the client shows, in order and text.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from app.fakes.openai_server import Behaviour

CAPTURED = Path(__file__).resolve().parents[3] / "shared" / "data" / "sillytavern" / "requests.json"


@pytest.fixture(scope="module")
def captured() -> dict:
    return json.loads(CAPTURED.read_text())


class Tavern:
    """A SillyTavern chat: the visible messages, sent whole with the captured body's fields."""

    def __init__(self, base: str, fake, captured: dict) -> None:
        body = captured["chat1_turn12"]["body"]
        self.base, self.fake = base, fake
        self.fields = {k: v for k, v in body.items() if k != "messages"}
        self.system = [m for m in body["messages"] if m["role"] == "system"]
        self.chat = [m for m in body["messages"] if m["role"] != "system"][:1]  # the greeting
        self.nudge = captured["continue"]["body"]["messages"][-1]["content"]
        self.nudged = captured["continue"]["body"]["messages"][-2]["content"]
        self.session = None

    def post(self, messages: list[dict], reply: str, *, stream: bool = True) -> str:
        self.fake.script.append(Behaviour(text=reply))
        response = httpx.post(f"{self.base}/chat/completions", timeout=30,
                              json={**self.fields, "stream": stream, "messages": self.system + messages})
        assert response.status_code == 200, response.text
        self.session = response.headers["x-session-id"]
        if not stream:
            return response.json()["choices"][0]["message"]["content"]
        frames = [json.loads(line[6:]) for line in response.text.splitlines()
                  if line.startswith("data: {")]
        return "".join((c.get("delta") or {}).get("content") or "" for f in frames for c in f["choices"])

    def say(self, text: str, reply: str) -> None:
        self.chat.append({"role": "user", "content": text})
        self.chat.append({"role": "assistant", "content": self.post(self.chat, reply)})

    def continue_last(self, more: str) -> None:
        last = self.chat[-1]["content"]
        nudge = {"role": "system", "content": self.nudge.replace(self.nudged, last)}
        added = self.post(self.chat + [nudge], more)
        self.chat[-1] = {"role": "assistant", "content": last + " " + added}  # the continue postfix

    def stored(self) -> list[tuple[str, str]]:
        rows = httpx.get(f"{self.base}/sessions/{self.session}/messages", params={"limit": 1000}).json()["data"]
        return [(r["role"], r["content"]) for r in rows]

    def shown(self) -> list[tuple[str, str]]:
        return [(m["role"], m["content"]) for m in self.chat]


def twelve_turns(tavern: Tavern) -> None:
    for k in range(1, 13):
        tavern.say(f"Turn {k}: my sister Mara lives in Lisbon, and today is day {k}.", f"Reply {k}, gently.")
    assert tavern.stored() == tavern.shown()


def test_delete_then_continue_then_a_new_turn_keeps_the_chat_in_step(memory_proxy, fake, captured):
    tavern = Tavern(memory_proxy, fake, captured)
    twelve_turns(tavern)
    del tavern.chat[-2:]                         # delete the last user/assistant pair
    tavern.continue_last("and she hums a song of the glade.")
    assert len(tavern.chat) == 23
    assert tavern.stored() == tavern.shown()
    assert tavern.chat[-1]["content"] == "Reply 11, gently. and she hums a song of the glade."
    tavern.say("What was I saying about my sister?", "You said Mara lives in Lisbon.")
    assert tavern.stored() == tavern.shown()


def test_delete_in_the_middle_and_at_the_end_keeps_the_chat_in_step(memory_proxy, fake, captured):
    tavern = Tavern(memory_proxy, fake, captured)
    twelve_turns(tavern)
    del tavern.chat[5:9]                         # two pairs from the middle
    tavern.say("Next turn after a delete in the middle.", "Noted.")
    assert tavern.stored() == tavern.shown()
    del tavern.chat[-4:]                         # the last two pairs, then a new message
    tavern.say("Starting over from here.", "Of course.")
    assert tavern.stored() == tavern.shown()


def test_a_resend_differing_only_in_whitespace_is_not_a_second_copy(memory_proxy, fake, captured):
    tavern = Tavern(memory_proxy, fake, captured)
    twelve_turns(tavern)
    spaced = [dict(m) for m in tavern.chat]
    spaced[3]["content"] = spaced[3]["content"].replace(" ", "  ", 1) + " "
    spaced.append({"role": "user", "content": "One more thing."})
    reply = tavern.post(spaced, "Yes?")
    stored = tavern.stored()
    assert len(stored) == len(tavern.chat) + 2 and stored[-1] == ("assistant", reply)
    assert [c for _, c in stored].count(tavern.chat[3]["content"]) == 1


def test_the_summarize_request_stores_nothing(memory_proxy, fake, captured):
    tavern = Tavern(memory_proxy, fake, captured)
    twelve_turns(tavern)
    summarize = captured["summarize"]["body"]["messages"][-1]
    tavern.post(tavern.chat + [summarize], "A summary.", stream=False)
    assert tavern.stored() == tavern.shown()


def test_stop_then_regenerate_leaves_one_live_reply(memory_proxy, fake):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0, timeout=20)
    sid = {"X-Session-Id": "stop-regenerate"}
    history: list[dict] = []
    for k in range(30):
        history.append({"role": "user", "content": f"Message {k} about the lighthouse."})
        fake.script.append(Behaviour(text=f"Answer {k}."))
        reply = client.chat.completions.create(model="fake-model", messages=history, extra_headers=sid)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    history.append({"role": "user", "content": "And the last question?"})
    fake.script.append(Behaviour(text="A long answer that the user stops right away " * 20, chunk_delay=0.05))
    fake.script.append(Behaviour(text="The regenerated answer."))
    stream = client.chat.completions.create(model="fake-model", messages=history, stream=True, extra_headers=sid)
    next(iter(stream))
    with ThreadPoolExecutor(1) as pool:           # the regenerate is already waiting when Stop is pressed
        again = pool.submit(client.chat.completions.create, model="fake-model", messages=history,
                            extra_headers=sid)
        time.sleep(0.3)
        stream.close()                            # SillyTavern's Stop
        assert again.result().choices[0].message.content == "The regenerated answer."
    rows = httpx.get(f"{memory_proxy}/sessions/stop-regenerate/messages", params={"limit": 1000}).json()["data"]
    assert [r["role"] for r in rows[-3:]] == ["assistant", "user", "assistant"]
    assert len(rows) == 62 and rows[-1]["content"] == "The regenerated answer."
    assert [r["content"] for r in rows] == [m["content"] for m in history] + ["The regenerated answer."]
