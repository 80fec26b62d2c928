"""The user's turn is embedded with its reply, once the exchange ends, on every way it ends
(real proxy, real model, real files; the fake upstream paces or refuses the reply)."""

from __future__ import annotations

import time

import httpx
import openai

from app.fakes.openai_server import Behaviour


def pending(base: str, session: str) -> int:
    return httpx.get(f"{base}/sessions/{session}").json()["pending"]


def settled(base: str, session: str, timeout: float = 8.0) -> int:
    """Pending messages once the writer caught up (well before its 15 s sweep would)."""
    deadline = time.monotonic() + timeout
    while pending(base, session) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pending(base, session)


def test_the_users_turn_waits_for_its_reply_and_both_are_scored_after(fake, memory_proxy):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0, timeout=20)
    fake.script.append(Behaviour(text="The lighthouse keeper's name was Ines, I remember.", chunk_delay=0.6))
    stream = client.chat.completions.create(
        model="fake-model", stream=True, extra_headers={"X-Session-Id": "paced"},
        messages=[{"role": "user", "content": "Who kept the lighthouse on the island?"}])
    chunks = iter(stream)
    next(c for c in chunks if c.choices and c.choices[0].delta.content)  # the reply is under way
    time.sleep(0.5)  # the writer, were it asked, would have embedded the turn by now
    assert pending(memory_proxy, "paced") == 1
    reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert reply
    assert settled(memory_proxy, "paced") == 0
    messages = httpx.get(f"{memory_proxy}/sessions/paced/messages").json()["data"]
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_a_turn_whose_reply_failed_is_still_scored(fake, memory_proxy):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0, timeout=20)
    fake.script.append(Behaviour(status=400))
    try:
        client.chat.completions.create(model="fake-model", extra_headers={"X-Session-Id": "refused"},
                                       messages=[{"role": "user", "content": "Tell me about the harbour."}])
    except openai.BadRequestError:
        pass
    assert httpx.get(f"{memory_proxy}/sessions/refused/messages").json()["data"][0]["role"] == "user"
    assert settled(memory_proxy, "refused") == 0
