"""Requests shaped exactly as SillyTavern's Custom (OpenAI-compatible) source sends them.

SillyTavern posts to `{base}/chat/completions` with no `user` field and no chat id, its sampler
fields (some not OpenAI's: top_k, min_p, repetition_penalty…), stop strings, and parses the
response itself: `choices[0].message.content` when not streaming; `choices[0].delta.content`
(and `delta.reasoning_content`) per SSE frame when streaming, until `data: [DONE]`. Every test runs
without keys and with one (SillyTavern's "Custom API Key" is sent as `Authorization: Bearer <key>`).
"""

from __future__ import annotations

import json

import httpx
import pytest

from app.fakes.openai_server import Behaviour

SYSTEM = ("Write Seraphina's next reply in a fictional chat between Seraphina and Ann. "
          "Seraphina is a gentle guardian of the Eldoria forest.")
GREETING = "*Seraphina smiles softly.* You're awake. You were hurt in the forest, but you are safe now."


ST_KEY = "sk-sillytavern-0123456789"


@pytest.fixture(params=["no key", "custom API key"])
def st(request, fake, start_proxy):
    """The proxy with memory on, and an HTTP client sending what SillyTavern sends (its key, if set)."""
    keyed = request.param == "custom API key"
    url = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                      consolidate_interval_seconds=0, api_keys=[ST_KEY] if keyed else [])
    with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {ST_KEY}"} if keyed else {}) as c:
        yield c


def st_body(messages: list[dict], stream: bool) -> dict:
    """The body SillyTavern builds for a custom OpenAI-compatible endpoint."""
    return {"messages": messages, "model": "fake-model", "temperature": 1, "max_tokens": 300, "stream": stream,
            "presence_penalty": 0, "frequency_penalty": 0, "top_p": 1, "top_k": 0, "min_p": 0,
            "repetition_penalty": 1, "stop": ["\nAnn:", "<|im_end|>"], "logit_bias": {}, "n": 1,
            "seed": 12345, "include_reasoning": False, "custom_stop": "", "user_name": "Ann",
            "char_name": "Seraphina"}


def parse_like_sillytavern(response: httpx.Response, stream: bool) -> str:
    if not stream:
        return response.json()["choices"][0]["message"]["content"]
    text = ""
    for line in response.text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        frame = json.loads(line[6:])
        assert "error" not in frame, frame
        for choice in frame.get("choices") or []:
            text += (choice.get("delta") or {}).get("content") or ""
    assert response.text.rstrip().endswith("data: [DONE]")
    return text


def chat(st: httpx.Client, fake, messages: list[dict], reply: str, stream: bool) -> httpx.Response:
    fake.script.append(Behaviour(text=reply))
    response = st.post("/chat/completions", json=st_body(messages, stream))
    assert response.status_code == 200, response.text
    return response


def test_model_list_as_sillytavern_reads_it(st):
    models = st.get("/models").json()
    assert [m["id"] for m in models["data"]] == ["fake-model", "fake-model-large"]


def test_streamed_and_plain_replies_parse_and_samplers_reach_the_upstream(st, fake):
    history = [{"role": "system", "content": SYSTEM}, {"role": "assistant", "content": GREETING},
               {"role": "user", "content": "*I sit up slowly.* Where am I?"}]
    streamed = chat(st, fake, history, "In my glade, traveller.", stream=True)
    assert parse_like_sillytavern(streamed, True) == "In my glade, traveller."
    sent = fake.requests[-1]
    assert sent["stop"] == ["\nAnn:", "<|im_end|>"] and sent["top_k"] == 0 and sent["min_p"] == 0
    assert sent["repetition_penalty"] == 1 and sent["max_tokens"] == 300 and sent["seed"] == 12345
    history += [{"role": "assistant", "content": "In my glade, traveller."},
                {"role": "user", "content": "Thank you for saving me."}]
    plain = chat(st, fake, history, "You are welcome, Ann.", stream=False)
    assert parse_like_sillytavern(plain, False) == "You are welcome, Ann."
    session = plain.headers["x-session-id"]
    assert session == streamed.headers["x-session-id"] and session.startswith("auto-")
    rows = st.get(f"/sessions/{session}/messages").json()["data"]
    assert [r["content"] for r in rows] == [m["content"] for m in history[1:]] + ["You are welcome, Ann."]


def test_continue_with_prefill_extends_the_stored_reply(st, fake):
    history = [{"role": "system", "content": SYSTEM}, {"role": "assistant", "content": GREETING},
               {"role": "user", "content": "Tell me about the forest."}]
    first = chat(st, fake, history, "The forest of Eldoria is old", stream=True)
    partial = parse_like_sillytavern(first, True)
    prefill = history + [{"role": "assistant", "content": partial}]
    rest = parse_like_sillytavern(chat(st, fake, prefill, " and full of light.", stream=True), True)
    assert fake.requests[-1]["messages"][-1] == {"role": "assistant", "content": partial}
    rows = st.get(f"/sessions/{first.headers['x-session-id']}/messages").json()["data"]
    assert rows[-1]["content"] == partial + rest == "The forest of Eldoria is old and full of light."
    assert sum(r["role"] == "assistant" for r in rows) == 2  # the greeting and the one continued reply


def test_extension_requests_read_memory_but_are_not_stored(st, fake):
    history = [{"role": "system", "content": SYSTEM}, {"role": "assistant", "content": GREETING},
               {"role": "user", "content": "My name is Ann and I am a cartographer."}]
    first = chat(st, fake, history, "A fine craft, Ann.", stream=False)
    session = first.headers["x-session-id"]
    history.append({"role": "assistant", "content": "A fine craft, Ann."})
    quiet = history + [{"role": "system", "content": "[Write your next reply from the point of view of Ann, "
                                                     "using the chat history so far as a guideline for the "
                                                     "writing style of Ann. Don't write as or describe actions "
                                                     "of other characters.]"}]
    impersonated = chat(st, fake, quiet, "*Ann unrolls a map.*", stream=True)
    assert parse_like_sillytavern(impersonated, True) == "*Ann unrolls a map.*"
    rows = st.get(f"/sessions/{session}/messages").json()["data"]
    assert [r["content"] for r in rows] == [m["content"] for m in history[1:]]
