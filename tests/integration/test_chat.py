"""The OpenAI surface through the official SDK, against a fake upstream on a real port."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from app.fakes.openai_server import Behaviour

MSG = [{"role": "user", "content": "Hello there"}]


def test_non_streaming_completion(client, fake):
    fake.script.append(Behaviour(text="Hi! How can I help?"))
    reply = client.chat.completions.create(model="fake-model", messages=MSG, temperature=0.3, seed=7)
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == "fake-model"
    assert reply.choices[0].message.content == "Hi! How can I help?"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens > 0
    sent = fake.requests[-1]
    assert sent["temperature"] == 0.3 and sent["seed"] == 7
    assert sent["messages"] == MSG


def test_streaming_completion(client, fake):
    fake.script.append(Behaviour(text="one two three four five six seven"))
    chunks = list(client.chat.completions.create(model="fake-model", messages=MSG, stream=True))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four five six seven"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_streaming_with_include_usage(client, fake):
    stream = client.chat.completions.create(model="fake-model", messages=MSG, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


def test_raw_stream_ends_with_done(proxy, fake):
    with httpx.stream("POST", proxy + "/chat/completions",
                      json={"model": "fake-model", "messages": MSG, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
CALL = {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}


def test_tool_call_non_streaming(client, fake):
    fake.script.append(Behaviour(tool_call=CALL))
    reply = client.chat.completions.create(model="fake-model", messages=MSG, tools=TOOLS, tool_choice="auto",
                                           parallel_tool_calls=False)
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert call.id == "call_fake1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert fake.requests[-1]["tools"] == TOOLS and fake.requests[-1]["tool_choice"] == "auto"


def test_tool_call_streaming_and_tool_result_round_trip(client, fake):
    fake.script.append(Behaviour(tool_call=CALL))
    chunks = list(client.chat.completions.create(model="fake-model", messages=MSG, tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id == "call_fake1" and deltas[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    history = MSG + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_fake1", "type": "function", "function": CALL}]},
        {"role": "tool", "tool_call_id": "call_fake1", "content": "18C and sunny"}]
    fake.script.append(Behaviour(text="It is 18C and sunny in Paris."))
    reply = client.chat.completions.create(model="fake-model", messages=history, tools=TOOLS)
    assert reply.choices[0].message.content == "It is 18C and sunny in Paris."
    assert fake.requests[-1]["messages"][1]["tool_calls"][0]["id"] == "call_fake1"
    assert fake.requests[-1]["messages"][2] == history[2]


def test_accepts_every_current_field(client, fake):
    messages = [{"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}], "name": "ann"}]
    reply = client.chat.completions.create(
        model="fake-model", messages=messages, top_p=0.9, stop=["\nUser:"], max_completion_tokens=50,
        presence_penalty=0.1, frequency_penalty=0.2, logit_bias={"50256": -100}, user="u1",
        metadata={"k": "v"}, response_format={"type": "json_object"}, n=1, store=False,
        extra_body={"top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1})
    assert reply.choices[0].message.content
    sent = fake.requests[-1]
    assert sent["stop"] == ["\nUser:"] and sent["top_k"] == 40 and sent["min_p"] == 0.05
    assert sent["response_format"] == {"type": "json_object"} and sent["user"] == "u1"
    assert "metadata" not in sent and "store" not in sent
    assert sent["messages"] == messages


def test_upstream_429_then_success(client, fake):
    fake.script.extend([Behaviour(status=429, retry_after=0.05), Behaviour(text="after retry")])
    reply = client.chat.completions.create(model="fake-model", messages=MSG)
    assert reply.choices[0].message.content == "after retry"
    assert len(fake.requests) == 2


def test_upstream_500_retried_then_relayed(client, fake):
    fake.script.extend([Behaviour(status=500, text="boom")] * 3)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="fake-model", messages=MSG)
    assert "boom" in info.value.body["message"]
    assert len(fake.requests) == 3


def test_upstream_4xx_relayed_without_retry(client, fake):
    fake.script.append(Behaviour(status=400, text="context too long"))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="fake-model", messages=MSG)
    assert info.value.body["message"] == "context too long"
    assert len(fake.requests) == 1


def test_upstream_down(start_proxy):
    from app.fakes.serve import free_port

    url = start_proxy(upstream_base_url=f"http://127.0.0.1:{free_port()}/v1")
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="any-model", messages=MSG)
    assert info.value.status_code in (502, 503)
    assert "unreachable" in info.value.body["message"]


def test_stream_cut_in_the_middle_sends_error_frame_then_done(proxy, fake):
    fake.script.append(Behaviour(text="a b c d e f g h i j k l", cut_after=2))
    with httpx.stream("POST", proxy + "/chat/completions",
                      json={"model": "fake-model", "messages": MSG, "stream": True}) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][6:])
    assert error["error"]["code"] and "error" in error and "message" in error["error"]
    assert any('"content"' in line for line in lines[:-2])


def test_client_disconnect_cancels_upstream(proxy, fake):
    fake.script.append(Behaviour(text=" ".join(["word"] * 200), chunk_delay=0.05))
    with httpx.stream("POST", proxy + "/chat/completions",
                      json={"model": "fake-model", "messages": MSG, "stream": True}) as response:
        for _ in zip(range(3), response.iter_lines()):
            pass
    deadline = time.monotonic() + 5
    while fake.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.cancelled == 1


@pytest.mark.parametrize("body, field", [
    ({"model": "fake-model"}, "messages"),
    ({"model": "fake-model", "messages": []}, "messages"),
    ({"model": "fake-model", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"model": "fake-model", "messages": MSG, "temperature": 7}, "temperature"),
    ({"model": "fake-model", "messages": MSG, "n": "two"}, "n"),
])
def test_schema_violations_are_400_naming_the_field(proxy, body, field):
    response = httpx.post(proxy + "/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == field and field in error["message"]


def test_malformed_json_is_400(proxy):
    response = httpx.post(proxy + "/chat/completions", content=b'{"model": "x", "messages": [',
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=MSG)
    assert info.value.body["code"] == "model_not_found"


def test_body_over_limit_is_413(start_proxy, fake):
    url = start_proxy(upstream_base_url=fake.url, max_request_bytes=2000)
    big = [{"role": "user", "content": "x" * 5000}]
    response = httpx.post(url + "/chat/completions", json={"model": "fake-model", "messages": big})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert fake.requests == []


def test_no_upstream_configured_is_503_naming_the_setting(start_proxy):
    url = start_proxy()
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="m", messages=MSG)
    assert info.value.status_code == 503
    assert "UPSTREAM_BASE_URL" in info.value.body["message"]
    assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200


def test_models_list_and_get(client, start_proxy, fake):
    ids = [m.id for m in client.models.list()]
    assert ids == ["fake-model", "fake-model-large"]
    assert client.models.retrieve("fake-model").id == "fake-model"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    url = start_proxy(upstream_base_url=fake.url, models=["extra"], model_aliases={"smart": "fake-model-large"})
    listed = [m.id for m in openai.OpenAI(base_url=url, api_key="k").models.list()]
    assert listed[:2] == ["extra", "smart"] and "fake-model" in listed


def test_alias_routes_to_target(start_proxy, fake):
    url = start_proxy(upstream_base_url=fake.url, model_aliases={"smart": "fake-model-large"})
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    client.chat.completions.create(model="smart", messages=MSG)
    assert fake.requests[-1]["model"] == "fake-model-large"


def test_health_reports_components(proxy):
    body = httpx.get(proxy.removesuffix("/v1") + "/health").json()
    assert body["status"] == "ok"
    assert body["components"]["upstream:upstream"] == "ok"


def test_unknown_route_is_openai_error(proxy):
    response = httpx.get(proxy + "/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
