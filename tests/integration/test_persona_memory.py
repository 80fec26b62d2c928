"""Persona memory through the real proxy: a world-info line dropped from the system prompt comes
back when the chat asks about it, never duplicates the current prompt, and previews store nothing."""

from __future__ import annotations

import time

import httpx
import openai

from app.fakes.openai_server import Behaviour
from app.memory.persona_text import prompt_chunks
from app.memory.search.retrieval import sentences
from tests.unit.test_persona import CARD, GATE, LORE

FIRST = f"{CARD}\n\n{LORE}"
HEADER = "Earlier character/world information:"


def send(base: str, fake, session: str, system: str, history: list[dict], text: str, **headers) -> list[dict]:
    """One chat turn with this system prompt; returns what the upstream received."""
    history.append({"role": "user", "content": text})
    fake.script.append(Behaviour(text=f"Mira answers: {len(history)}."))
    client = openai.OpenAI(base_url=base, api_key="k", max_retries=0, timeout=30)
    reply = client.chat.completions.create(model="fake-model", messages=[{"role": "system", "content": system},
                                                                         *history],
                                           extra_headers={"X-Session-Id": session, **headers})
    history.append({"role": "assistant", "content": reply.choices[0].message.content})
    return fake.requests[-1]["messages"]


def preview(base: str, session: str, system: str, text: str) -> dict:
    body = {"model": "fake-model",
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}]}
    response = httpx.post(f"{base}/chat/completions/preview", json=body, headers={"X-Session-Id": session}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_chunks(base: str, session: str, expected: int) -> int:
    """Poll the stored chunk count (the background writer chunks and embeds) until it is `expected`."""
    deadline = time.monotonic() + 60
    while (count := persona_info(base, session)["chunks"]) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def persona_info(base: str, session: str) -> dict:
    response = httpx.get(f"{base}/sessions/{session}/persona")
    assert response.status_code == 200, response.text
    return response.json()


def expected_chunks(*prompts: str) -> int:
    return len(prompt_chunks(prompts, 128, 32))


def memory_block(sent: list[dict]) -> str:
    blocks = [m["content"] for m in sent[1:] if m["role"] == "system" and m["content"].startswith("<memory>")]
    return blocks[0] if blocks else ""


def assert_prompt_not_repeated(sent: list[dict]) -> None:
    """No sentence of the system prompt sent first appears again anywhere after it."""
    later = " ".join(" ".join(m["content"].split()) for m in sent[1:])
    repeated = [s for s in sentences(sent[0]["content"]) if " ".join(s.split()) in later]
    assert repeated == [], repeated


def test_a_dropped_world_info_line_comes_back_when_asked_about(memory_proxy, fake):
    history: list[dict] = []
    send(memory_proxy, fake, "mira", FIRST, history, "Good morning, Mira. Where are we heading today?")
    assert wait_chunks(memory_proxy, "mira", expected_chunks(FIRST)) == expected_chunks(FIRST)
    for text in ("Let's walk along the coast for a while.", "Can you sketch the cliffs for me?"):
        sent = send(memory_proxy, fake, "mira", CARD, history, text)
        assert GATE not in str(sent) and HEADER not in str(sent)
    assert wait_chunks(memory_proxy, "mira", expected_chunks(FIRST, CARD)) == expected_chunks(FIRST, CARD)

    sent = send(memory_proxy, fake, "mira", CARD, history, "When does the Silver Gate of Varnholm open?")
    assert sent[0] == {"role": "system", "content": CARD}
    block = memory_block(sent)
    assert HEADER in block and GATE in block
    assert_prompt_not_repeated(sent)

    shown = preview(memory_proxy, "mira", CARD, "When does the Silver Gate of Varnholm open?")
    persona = [m for m in shown["memories"] if m["kind"] == "persona"]
    assert len(persona) == 1 and GATE in persona[0]["text"]
    assert persona[0]["reasons"][0] == "earlier persona text" and persona[0]["reasons"][1].startswith("meaning ")
    assert persona[0]["message_ids"] == []

    sent = send(memory_proxy, fake, "mira", CARD, history, "What should we cook for dinner tonight?")
    assert GATE not in str(sent) and HEADER not in str(sent)
    assert not [m for m in preview(memory_proxy, "mira", CARD, "Any good songs for the road?")["memories"]
                if m["kind"] == "persona"]


def test_the_current_prompt_is_never_offered_back(memory_proxy, fake):
    history: list[dict] = []
    send(memory_proxy, fake, "again", FIRST, history, "Good morning, Mira. Where are we heading today?")
    send(memory_proxy, fake, "again", CARD, history, "Let's walk along the coast.")
    wait_chunks(memory_proxy, "again", expected_chunks(FIRST, CARD))
    for system in (FIRST, CARD + "\n\n" + GATE):  # the line is back in the prompt: shown once, there
        sent = send(memory_proxy, fake, "again", system, history, "When does the Silver Gate of Varnholm open?")
        assert str(sent).count(GATE) == 1 and sent[0]["content"] == system
        assert_prompt_not_repeated(sent)
    shown = preview(memory_proxy, "again", CARD, "Tell me about your brass compass and your mother.")
    assert not [m for m in shown["memories"] if m["kind"] == "persona"]


def test_search_returns_messages_and_persona_chunks(memory_proxy, fake):
    history: list[dict] = []
    send(memory_proxy, fake, "search", FIRST, history, "I left my lantern near the Silver Gate yesterday.")
    send(memory_proxy, fake, "search", CARD, history, "Let's walk along the coast.")
    wait_chunks(memory_proxy, "search", expected_chunks(FIRST, CARD))
    found = httpx.get(f"{memory_proxy}/sessions/search/search", params={"q": "Silver Gate of Varnholm"}).json()["data"]
    kinds = [hit["kind"] for hit in found]
    assert "message" in kinds and "persona" in kinds
    message = next(hit for hit in found if hit["kind"] == "message")
    assert {"id", "position", "role", "content", "score", "cosine", "bm25", "reasons"} <= set(message)
    gate = next(hit for hit in found if hit["kind"] == "persona" and GATE in hit["content"])
    assert gate["in_current_persona"] is False and gate["role"] == "system"
    info = persona_info(memory_proxy, "search")
    assert info["persona"] == CARD and info["chunks"] == expected_chunks(FIRST, CARD)


def test_previews_and_read_only_requests_never_store_chunks(memory_proxy, fake):
    history: list[dict] = []
    send(memory_proxy, fake, "quiet", CARD, history, "Good morning, Mira.")
    assert wait_chunks(memory_proxy, "quiet", expected_chunks(CARD)) == expected_chunks(CARD)

    secret = "The Obsidian Well of Korrin is guarded by three blind herons."
    preview(memory_proxy, "quiet", f"{CARD}\n{secret}", "Tell me about the Obsidian Well.")
    send(memory_proxy, fake, "quiet", f"{CARD}\n{secret}", history, "Tell me about the Obsidian Well.",
         **{"X-Memory": "read-only"})
    assert httpx.post(f"{memory_proxy}/chat/completions/preview", headers={"X-Session-Id": "never-sent"},
                      json={"model": "fake-model", "messages": [{"role": "system", "content": secret},
                                                                {"role": "user", "content": "Hi"}]}).status_code == 200

    later = f"{CARD}\nThe river Tessel floods every spring."  # a real turn, queued behind anything above
    send(memory_proxy, fake, "quiet", later, history, "Shall we cross the river?")
    assert wait_chunks(memory_proxy, "quiet", expected_chunks(CARD, later)) == expected_chunks(CARD, later)
    found = httpx.get(f"{memory_proxy}/sessions/quiet/search", params={"q": "Obsidian Well of Korrin herons"}).json()
    assert not any("Obsidian" in hit["content"] for hit in found["data"] if hit["kind"] == "persona")
    assert persona_info(memory_proxy, "quiet")["persona"] == later
    assert httpx.get(f"{memory_proxy}/sessions/never-sent/persona").status_code == 404
