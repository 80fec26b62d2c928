"""A short reply is found by what it answers: the writer embeds it after the turn before it."""

from __future__ import annotations

import httpx

from tests.integration.test_memory_api import wait_indexed

FILLER = ["The weather turned grey again today.", "I tried a new coffee place near work.",
          "My train was late, as always.", "We watched an old film last night.", "The cat knocked a plant over."]


def test_a_short_reply_is_recalled_by_the_question_it_answered(memory_proxy):
    turns = []
    for i, line in enumerate(FILLER * 4):
        turns += [{"role": "user", "content": line}, {"role": "assistant", "content": f"Oh no, tell me more ({i})."}]
    turns += [{"role": "assistant", "content": "My kids can't wait for the holidays. Any fun plans for the summer?"},
              {"role": "user", "content": "Researching adoption agencies, it's been a dream of mine."}]
    turns += [{"role": "user", "content": line} for line in FILLER]
    assert httpx.post(f"{memory_proxy}/sessions/ctx/messages", json={"messages": turns}).status_code == 200
    assert wait_indexed(memory_proxy, "ctx")["pending"] == 0
    hits = httpx.get(f"{memory_proxy}/sessions/ctx/search",
                     params={"q": "What are my plans for the summer?", "k": 5}).json()["data"]
    (reply,) = [h for h in hits if h.get("content", "").startswith("Researching adoption")]
    assert reply["cosine"] > 0.22  # alone, the reply is 0.16 from the question; read in context, 0.27
