"""Hostile and malformed input through the real server: a clear OpenAI error, never a 500, never a stuck session.

Every case ends with an ordinary request on the same conversation, which must be answered at once:
a session whose lock leaked would make it hang.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from app.fakes.openai_server import Behaviour

SID = {"X-Session-Id": "hostile"}


def sdk(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key="k", max_retries=0, timeout=10)


def still_answers(base: str, fake, sid: str = "hostile") -> None:
    """An ordinary turn on the same conversation comes back within the client's timeout."""
    fake.script.append(Behaviour(text="still here"))
    reply = sdk(base).chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "ping"}],
                                              extra_headers={"X-Session-Id": sid})
    assert reply.choices[0].message.content == "still here"


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"x": value}
    return value


MALFORMED = {
    "not an object": (["[1, 2]"], "the frame is an array"),
    "delta a string": (['{"choices": [{"index": 0, "delta": "oops"}]}'], "delta"),
    "usage a number": (['{"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}',
                        '{"choices": [], "usage": 7}'], "usage"),
    "choices not a list": (['{"choices": {"a": 1}}'], "choices"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_upstream_frame_is_a_502_and_frees_the_session(memory_proxy, fake, case):
    frames, named = MALFORMED[case]
    fake.script.append(Behaviour(frames=frames + ["[DONE]"]))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(memory_proxy).chat.completions.create(model="fake-model", extra_headers=SID,
                                                  messages=[{"role": "user", "content": "hello"}])
    assert caught.value.status_code == 502
    assert named in caught.value.message
    still_answers(memory_proxy, fake)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_upstream_frame_streamed_ends_with_an_error_frame_then_done(memory_proxy, fake, case):
    frames, named = MALFORMED[case]
    fake.script.append(Behaviour(frames=frames + ["[DONE]"]))
    body = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    response = httpx.post(f"{memory_proxy}/chat/completions", json=body, headers=SID, timeout=10)
    if response.status_code == 200:  # the frame came after the first event: an SSE error frame, then [DONE]
        payloads = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert payloads[-1] == "[DONE]"
        error = json.loads(payloads[-2])["error"]
        assert error["type"] == "upstream_error" and named in error["message"]
    else:
        assert response.status_code == 502 and named in response.json()["error"]["message"]
    still_answers(memory_proxy, fake)


@pytest.mark.parametrize("where", ["unknown field", "tool parameters"])
def test_nesting_past_the_limit_is_a_400_naming_the_field(memory_proxy, fake, where):
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]}
    if where == "unknown field":
        body["whatever"] = nested(300)
        field = "whatever"
    else:
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": nested(300)}}]
        field = "tools.0.function.parameters"
    response = httpx.post(f"{memory_proxy}/chat/completions", json=body, headers=SID, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"].startswith(field) and "nest" in error["message"]
    still_answers(memory_proxy, fake)


def test_moderately_nested_tool_schema_still_passes(memory_proxy, fake):
    fake.script.append(Behaviour(text="ok"))
    tools = [{"type": "function", "function": {"name": "f", "parameters": nested(20)}}]
    reply = sdk(memory_proxy).chat.completions.create(model="fake-model", tools=tools, extra_headers=SID,
                                                      messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "ok"
    assert fake.requests[-1]["tools"] == tools


@pytest.mark.parametrize("route", ["sessions", "sessions/hostile/messages"])
@pytest.mark.parametrize("param", ["offset", "limit"])
def test_huge_integer_query_parameters_are_a_400(memory_proxy, fake, route, param):
    still_answers(memory_proxy, fake)
    response = httpx.get(f"{memory_proxy}/{route}", params={param: "9" * 25})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_search_k_too_large_is_a_400(memory_proxy, fake):
    still_answers(memory_proxy, fake)
    response = httpx.get(f"{memory_proxy}/sessions/hostile/search", params={"q": "x", "k": "9" * 25})
    assert response.status_code == 400


def test_import_of_deeply_nested_json_is_a_400(memory_proxy, fake):
    line = "[" * 5000 + "]" * 5000
    response = httpx.post(f"{memory_proxy}/sessions/imported/import", content=line.encode())
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_import_with_a_lone_surrogate_is_a_400_and_stores_nothing(memory_proxy, fake):
    lines = [json.dumps({"user_name": "Alex", "character_name": "Seraphina"}),
             json.dumps({"name": "Alex", "is_user": True, "mes": "hello"}),
             '{"name": "Alex", "is_user": true, "mes": "a\\ud800b"}']
    response = httpx.post(f"{memory_proxy}/sessions/imported/import", content="\n".join(lines).encode())
    assert response.status_code == 400, response.text
    assert "surrogate" in response.json()["error"]["message"]
    assert httpx.get(f"{memory_proxy}/sessions/imported").status_code == 404


def test_chat_with_a_lone_surrogate_is_a_400(memory_proxy, fake):
    raw = b'{"model": "fake-model", "messages": [{"role": "user", "content": "a\\ud800b"}]}'
    response = httpx.post(f"{memory_proxy}/chat/completions", content=raw, headers=SID)
    assert response.status_code == 400
    still_answers(memory_proxy, fake)


def test_openapi_publishes_the_chat_request_body(memory_proxy):
    spec = httpx.get(memory_proxy.removesuffix("/v1") + "/openapi.json").json()
    body = spec["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    ref = schema["$ref"].rsplit("/", 1)[-1]
    properties = spec["components"]["schemas"][ref]["properties"]
    assert {"model", "messages", "stream", "tools"} <= set(properties)
    for name in spec["components"]["schemas"]:  # every reference resolves inside the document
        assert name
    text = json.dumps(spec)
    assert "#/$defs/" not in text


def test_too_many_messages_is_a_400_and_stores_nothing(start_proxy, fake):
    base = start_proxy(upstream_base_url=fake.url, memory_enabled=True, max_messages=50)
    messages = [{"role": "user" if k % 2 == 0 else "assistant", "content": f"m{k}"} for k in range(51)]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(base).chat.completions.create(model="fake-model", messages=messages, extra_headers=SID)
    assert caught.value.code == "array_above_max_length" and "MAX_MESSAGES" in caught.value.message
    assert httpx.get(f"{base}/sessions/hostile").status_code == 404
    assert fake.requests == []


def test_a_message_too_long_is_a_400_naming_it(start_proxy, fake):
    base = start_proxy(upstream_base_url=fake.url, memory_enabled=True, max_message_chars=1000)
    messages = [{"role": "user", "content": "short"}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "x" * 1001}]}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(base).chat.completions.create(model="fake-model", messages=messages, extra_headers=SID)
    assert caught.value.code == "string_above_max_length" and caught.value.param == "messages.2.content"
    response = httpx.post(f"{base}/sessions/hostile/messages", json={"messages": messages})
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages.2.content"
    line = json.dumps({"name": "Alex", "is_user": True, "mes": "y" * 1001})
    assert httpx.post(f"{base}/sessions/hostile/import", content=line.encode()).status_code == 400
    assert httpx.get(f"{base}/sessions/hostile").status_code == 404


def test_too_many_content_parts_is_a_400(start_proxy, fake):
    base = start_proxy(upstream_base_url=fake.url, max_content_parts=3)
    parts = [{"type": "text", "text": "a"}] * 4
    response = httpx.post(f"{base}/chat/completions", json={"model": "fake-model",
                                                             "messages": [{"role": "user", "content": parts}]})
    assert response.status_code == 400 and response.json()["error"]["code"] == "array_above_max_length"
