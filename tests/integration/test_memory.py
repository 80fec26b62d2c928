"""What the model sees: persona always, the right memories, inside the budget, previewable."""

from __future__ import annotations

import random

import httpx
import openai
import pytest

from app.fakes.openai_server import Behaviour
from app.tokens import count_messages

PERSONA = ("You are Captain Mirela Voss, a retired starship pilot who runs a tea shop on Europa. "
           "You speak warmly, with dry humour, and never reveal the coordinates of the hidden hangar. ") * 3
FILLER = ["The weather on the station was grey again today.", "I tried a new recipe for dumplings.",
          "The shuttle schedule changed for the third time this month.", "My neighbour keeps playing the violin.",
          "We watched an old movie about pirates last night.", "The market had fresh oranges for once.",
          "I fixed the squeaky door in the hallway.", "Traffic in the corridors was terrible this morning.",
          "I've been reading a novel about a lighthouse keeper.", "The kids built a fort out of boxes."]


def bulk_load(base: str, session: str, turns: list[tuple[str, str]]) -> None:
    messages = [{"role": r, "content": c} for r, c in turns]
    assert httpx.post(f"{base}/sessions/{session}/messages", json={"messages": messages}, timeout=60).status_code == 200
    wait_indexed(base, session)


def wait_indexed(base: str, session: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while httpx.get(f"{base}/sessions/{session}").json()["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert httpx.get(f"{base}/sessions/{session}").json()["pending"] == 0


def filler_turns(n: int, seed: int = 1) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(("user", f"{rng.choice(FILLER)} ({i})"))
        out.append(("assistant", f"That sounds {rng.choice(['nice', 'tiring', 'fun', 'odd'])}. Tell me more. ({i})"))
    return out


def preview(base: str, session: str, messages: list[dict], **headers) -> dict:
    body = {"model": "fake-model", "messages": messages}
    response = httpx.post(f"{base}/chat/completions/preview", json=body, timeout=30,
                          headers={"X-Session-Id": session, **headers})
    assert response.status_code == 200, response.text
    return response.json()


def test_persona_is_first_and_whole_in_every_request_even_when_the_window_drops_it(memory_proxy, fake):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    history = [{"role": "system", "content": PERSONA}]
    for i in range(500):
        history.append({"role": "user", "content": f"Turn {i}: {FILLER[i % len(FILLER)]}"})
        window = history if i < 5 else history[-6:]  # after a few turns the client drops the system prompt
        fake.script.append(Behaviour(text=f"Reply {i}."))
        reply = client.chat.completions.create(model="fake-model", messages=window,
                                               extra_headers={"X-Session-Id": "persona-500"})
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
        sent = fake.requests[-1]["messages"]
        assert sent[0] == {"role": "system", "content": PERSONA}, f"persona missing at turn {i}"
    assert len(fake.requests) == 500


def test_a_fact_from_turn_ten_comes_back_at_turn_three_hundred_only_when_relevant(memory_proxy):
    turns = filler_turns(150)
    turns[20] = ("user", "By the way, my grandmother's ring is hidden inside the blue teapot on the top shelf.")
    bulk_load(memory_proxy, "fact", turns)
    asked = preview(memory_proxy, "fact", [{"role": "user", "content": "Where did I hide my grandmother's ring?"}],
                    **{"X-Context-Budget": "2048"})
    assert any("blue teapot" in m["text"] for m in asked["memories"])
    assert "blue teapot" in str(asked["messages"])
    other = preview(memory_proxy, "fact", [{"role": "user", "content": "Any plans for the shuttle schedule?"}],
                    **{"X-Context-Budget": "2048"})
    assert "blue teapot" not in str(other["messages"])


def test_a_long_recalled_turn_shows_the_sentences_around_the_fact(memory_proxy):
    turns = filler_turns(60, seed=3)
    long_turn = " ".join(FILLER) + " My grandmother's ring is hidden inside the blue teapot on the top shelf. " + \
        " ".join(reversed(FILLER))
    turns[20] = ("user", long_turn)
    bulk_load(memory_proxy, "long-turn", turns)
    asked = preview(memory_proxy, "long-turn", [{"role": "user", "content": "Where did I hide my grandmother's ring?"}],
                    **{"X-Context-Budget": "2048"})
    (memory,) = [m for m in asked["memories"] if "blue teapot" in m["text"]]
    assert "…" in memory["text"] and len(memory["text"]) < len(long_turn) / 2
    assert "blue teapot" in str(asked["messages"])


def test_a_group_chat_speaker_is_found_by_name_and_named_in_the_memory(memory_proxy):
    turns = [{"role": r, "content": c} for r, c in filler_turns(60, seed=5)]
    turns[31] = {"role": "assistant", "name": "Bram", "content": "The north tower's key hangs behind the tapestry."}
    turns[41] = {"role": "assistant", "name": "Ilse", "content": "I keep my own key in a locket, always."}
    assert httpx.post(f"{memory_proxy}/sessions/group/messages", json={"messages": turns}, timeout=60).status_code == 200
    wait_indexed(memory_proxy, "group")
    asked = preview(memory_proxy, "group", [{"role": "user", "content": "What did Bram tell us about the key?"}],
                    **{"X-Context-Budget": "2048"})
    texts = [m["text"] for m in asked["memories"]]
    assert any("\nBram: The north tower's key" in "\n" + t for t in texts), texts
    found = httpx.get(f"{memory_proxy}/sessions/group/search", params={"q": "Bram", "k": 3}).json()["data"]
    assert found[0]["name"] == "Bram" and "words: bram" in found[0]["reasons"]


@pytest.mark.parametrize("budget", [512, 1024, 4096, 16384, 131072])
def test_budget_is_respected_to_the_token(memory_proxy, budget):
    bulk_load(memory_proxy, f"budget-{budget}", filler_turns(60, seed=budget))
    window = [{"role": "system", "content": "You are a helpful assistant."}]
    window += [{"role": r, "content": c} for r, c in filler_turns(40, seed=7)]
    window.append({"role": "user", "content": "What did I say about the dumplings?"})
    result = preview(memory_proxy, f"budget-{budget}", window, **{"X-Context-Budget": str(budget)})
    limit = result["budget"]["limit"]
    assert count_messages(result["messages"]) <= limit <= budget
    assert result["messages"][0] == window[0] and result["messages"][-1] == window[-1]


def test_superseded_replies_are_never_retrieved(memory_proxy, fake):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    history = [{"role": "user", "content": "Name a colour for the new boat."}]
    for text in ("Let's paint it zanzibarine purple.", "Let's paint it sea green."):
        fake.script.append(Behaviour(text=text))
        client.chat.completions.create(model="fake-model", messages=history,
                                       extra_headers={"X-Session-Id": "swiped"})
    wait_indexed(memory_proxy, "swiped")
    found = httpx.get(f"{memory_proxy}/sessions/swiped/search", params={"q": "zanzibarine purple boat"}).json()
    assert all("zanzibarine" not in hit["content"] for hit in found["data"])
    assert any("sea green" in hit["content"] for hit in found["data"])


def test_preview_equals_what_the_upstream_received(memory_proxy, fake):
    turns = filler_turns(100)
    turns[10] = ("user", "My sister Ilse lives in Tromsø and teaches the cello.")
    bulk_load(memory_proxy, "same", turns)
    messages = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "What does Ilse teach?"}]
    shown = preview(memory_proxy, "same", messages, **{"X-Context-Budget": "2048"})
    openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0).chat.completions.create(
        model="fake-model", messages=messages, extra_headers={"X-Session-Id": "same", "X-Context-Budget": "2048"})
    assert fake.requests[-1]["messages"] == shown["messages"]
    assert any("cello" in m["text"] and m["reasons"] for m in shown["memories"])


def test_a_single_message_client_gets_the_recent_turns_it_did_not_send(memory_proxy, fake):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    for text in ("I just adopted a parrot named Kiwi.", "What should I call my parrot's cage?"):
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": text}],
                                       extra_headers={"X-Session-Id": "single"})
    sent = fake.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "I just adopted a parrot named Kiwi." and "_id" not in sent[0]


def test_memory_off_is_a_plain_pass_through(memory_proxy, fake):
    bulk_load(memory_proxy, "plain", filler_turns(10))
    messages = [{"role": "user", "content": "What about the dumplings?"}]
    openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0).chat.completions.create(
        model="fake-model", messages=messages, extra_headers={"X-Session-Id": "plain", "X-Memory": "off"})
    assert fake.requests[-1]["messages"] == messages


def test_the_users_mood_reaches_the_model_with_its_trajectory_and_a_neutral_turn_adds_none(memory_proxy, fake):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    # the second turn says too little alone, so its query joins the first; its mood must not
    said = ["My dog died this morning and I can't stop crying.", "I'm so mad about it!"]
    history: list[dict] = []
    for text in said:
        history.append({"role": "user", "content": text})
        reply = client.chat.completions.create(model="fake-model", messages=history,
                                               extra_headers={"X-Session-Id": "mood"})
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
        wait_indexed(memory_proxy, "mood")
    block = "\n".join(m["content"] for m in fake.requests[-1]["messages"] if m["role"] == "system")
    assert "The user's mood right now: The user's latest message reads as anger" in block
    assert "recent emotional trajectory: sadness → anger" in block
    calm = preview(memory_proxy, "mood", history + [{"role": "user", "content": "Any plans for the weekend?"}])
    assert "mood right now" not in "\n".join(m["content"] for m in calm["messages"] if m["role"] == "system")
