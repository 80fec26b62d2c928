"""A user's new SillyTavern chat with the same character remembers the last one; another character's does not.

The bodies are SillyTavern's own, captured on the wire (`../shared/data/sillytavern/requests.json`),
sent with the one thing a user adds for this in SillyTavern's connection settings: an `X-User-Id`
request header (Custom endpoint → Additional Parameters → Include Request Headers).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from app.fakes.openai_server import Behaviour

CAPTURED = Path(__file__).resolve().parents[3] / "shared" / "data" / "sillytavern" / "requests.json"
QUESTION = "Do you remember which city my sister Mara lives in?"


@pytest.fixture(scope="module")
def captured() -> dict:
    return json.loads(CAPTURED.read_text())


def post(base: str, fake, body: dict, messages: list[dict], **headers: str) -> tuple[str, str]:
    """A streamed SillyTavern request; returns (its session id, what the upstream was sent)."""
    fake.script.append(Behaviour(text="*Seraphina nods.*"))
    response = httpx.post(f"{base}/chat/completions", timeout=30, headers={"X-User-Id": "alex", **headers},
                          json={**{k: v for k, v in body.items() if k != "messages"}, "messages": messages})
    assert response.status_code == 200 and response.text.rstrip().endswith("data: [DONE]"), response.text
    return response.headers["x-session-id"], json.dumps(fake.requests[-1]["messages"])


def wait_indexed(base: str, session: str) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{base}/sessions/{session}").json()["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)


def new_chat(body: dict, first_line: str | None = None) -> list[dict]:
    """A new chat's first request: the card's system messages, the greeting, one user message."""
    system = [dict(m) for m in body["messages"] if m["role"] == "system"]
    if first_line is not None:
        system[0]["content"] = first_line
    greeting = next(m for m in body["messages"] if m["role"] == "assistant")
    return [*system, greeting, {"role": "user", "content": QUESTION}]


def test_a_new_chat_with_the_same_character_recalls_the_last_one_and_another_character_does_not(
        memory_proxy, fake, captured):
    body = captured["chat1_turn12"]["body"]
    first, _ = post(memory_proxy, fake, body, body["messages"])
    wait_indexed(memory_proxy, first)

    second, sent = post(memory_proxy, fake, body, new_chat(body))
    assert second != first  # a new chat is a new conversation, with its own history
    assert "Lisbon" in sent and "in an earlier conversation" in sent

    aria = "Write Aria's next reply in a fictional chat between Aria and Alex."
    third, sent = post(memory_proxy, fake, body, new_chat(body, aria))
    assert third not in (first, second) and "Lisbon" not in sent

    _, sent = post(memory_proxy, fake, body, new_chat(body) + [{"role": "assistant", "content": "Hm?"},
                                                              {"role": "user", "content": "Well?"}],
                   **{"X-Memory-Scope": "session"})
    assert "Lisbon" not in sent
    chats = httpx.get(f"{memory_proxy}/users/alex").json()["data"]
    assert {c["id"] for c in chats} >= {first, second, third}
