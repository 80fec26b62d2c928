"""How the context is planned by value: what a continuing chat keeps, and what a lone question gets."""

from __future__ import annotations

import random
import time

import httpx
import openai

from app.fakes.openai_server import Behaviour
from tests.integration.test_memory import FILLER, PERSONA, preview, wait_indexed

FACT = "By the way, my grandmother's ring is hidden inside the blue teapot on the top shelf."


def load(base: str, session: str, turns: list[dict]) -> None:
    response = httpx.post(f"{base}/sessions/{session}/messages", json={"messages": turns}, timeout=60)
    assert response.status_code == 200, response.text
    wait_indexed(base, session)


def dumpling_chat(n: int, created_at: float | None = None) -> list[dict]:
    """n exchanges about cooking, every one of them related to a question about dumplings."""
    rng = random.Random(n)
    turns = []
    for i in range(n):
        said = " ".join(rng.sample(FILLER, 3))
        turns.append({"role": "user", "content": f"I made {rng.choice(FILLINGS)} dumplings today. {said}"})
        turns.append({"role": "assistant", "content": f"Dumplings again! How did batch {i} turn out?"})
    if created_at is not None:
        turns = [{**t, "created_at": created_at + i} for i, t in enumerate(turns)]
    return turns


FILLINGS = ["pork", "cabbage", "mushroom", "shrimp", "chive", "pumpkin", "lamb", "tofu", "spinach", "cheese"]


def test_a_continuing_chat_keeps_its_recent_turns_and_its_persona_whole(memory_proxy, fake):
    """A client sending its newest 20 turns: many stored turns are related to the question and would
    fill any room given to them, yet the window and the persona reach the model whole and in order."""
    load(memory_proxy, "continuing", dumpling_chat(150))
    window = [{"role": "system", "content": PERSONA}]
    window += [{"role": "user" if i % 2 == 0 else "assistant",
                "content": f"Turn {i} of tonight: {FILLER[i % len(FILLER)]} Dumplings are on my mind."}
               for i in range(20)]
    window.append({"role": "user", "content": "What did I say about the dumpling recipes?"})
    fake.script.append(Behaviour(text="You tried many."))
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    client.chat.completions.create(model="fake-model", messages=window, extra_headers={
        "X-Session-Id": "continuing", "X-Context-Budget": "2048"})
    sent = fake.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": PERSONA}
    assert sent[-21:] == window[1:], "the client's own turns are kept whole and in order"
    assert "<memory>" in sent[1]["content"] and " dumplings today." in sent[1]["content"]


def test_a_lone_question_long_after_the_chat_gets_memories_not_the_old_tail(memory_proxy):
    turns = dumpling_chat(40, created_at=time.time() - 400 * 86400)  # a chat from last year
    turns[10] = {**turns[10], "content": FACT}
    load(memory_proxy, "old-chat", turns)
    asked = preview(memory_proxy, "old-chat", [{"role": "user", "content": "Where did I hide my grandmother's ring?"}],
                    **{"X-Context-Budget": "1024"})
    assert "blue teapot" in str(asked["messages"])
    decision = asked["budget"]["decision"]
    assert decision["earlier_turns"]["offered"] == 80 and decision["earlier_turns"]["newest_value"] < 0.01
    # the old turns only fill what the recollections leave: none while a recollection is left out
    assert decision["recollections"]["kept"] >= 1
    assert decision["recollections"]["best_left"] is None or decision["earlier_turns"]["kept"] == 0


def test_a_client_that_sends_only_its_newest_message_gets_the_turns_just_said(memory_proxy):
    turns = [{"role": "user", "content": "Shall we plan the trip to the coast this weekend?", "created_at": time.time()},
             {"role": "assistant", "content": "Yes! Train or car?", "created_at": time.time()}]
    load(memory_proxy, "live", [*dumpling_chat(40, created_at=time.time() - 3600), *turns])
    asked = preview(memory_proxy, "live", [{"role": "user", "content": "Train, definitely."}],
                    **{"X-Context-Budget": "1024"})
    assert asked["messages"][-3:-1] == [{"role": t["role"], "content": t["content"]} for t in turns]
    assert asked["budget"]["earlier"] > 0 and asked["budget"]["decision"]["earlier_turns"]["newest_value"] > 1.0


def test_a_small_budget_sends_the_best_recollections_whole_and_more_of_them_in_brief(memory_proxy):
    """Every stored exchange is about dumplings; at 1k the best go whole and the next ones in brief,
    each a cut of its stored turn, and the preview says which."""
    load(memory_proxy, "briefs", dumpling_chat(60, created_at=time.time() - 400 * 86400))
    asked = preview(memory_proxy, "briefs", [{"role": "user", "content": "Which dumplings did I make?"}],
                    **{"X-Context-Budget": "1024"})
    short = [m for m in asked["memories"] if "in brief" in m["reasons"]]
    whole = [m for m in asked["memories"] if "in brief" not in m["reasons"]]
    assert whole and short and asked["budget"]["decision"]["recollections"]["in_brief"] == len(short)
    assert max(asked["memories"], key=lambda m: m["score"]) in whole  # the best goes whole
    block = asked["messages"][0]["content"]
    for memory in short:
        said = memory["text"].split(": ", 1)[1]
        assert said.startswith("…") or said.endswith("…"), "a cut of the stored turn, marked"
        assert said.strip("… ") in block.replace("\n  ", " ")
