"""Gemini through the real google-genai SDK over HTTP to the local fake: at the provider, and through
the proxy with the openai SDK as the client, where it must look like any OpenAI-compatible upstream."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from app.errors import UpstreamHTTPError, UpstreamTimeout
from app.fakes.gemini_server import Behaviour, FakeGemini
from app.fakes.openai_server import Behaviour as UpstreamBehaviour
from app.fakes.serve import serving
from app.providers.base import Delta, UpstreamRequest, Usage
from app.providers.gemini import GeminiProvider

MODEL = "gemini-2.5-flash"
MSG = [{"role": "user", "content": "Hello there"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
CALL = {"name": "get_weather", "args": {"city": "Paris"}}


@pytest.fixture
def gemini():
    fake = FakeGemini(api_key="k")
    with serving(fake.app()) as url:
        fake.url = url
        yield fake


@pytest.fixture
def client(gemini, start_proxy):
    url = start_proxy(gemini_api_key="k", gemini_base_url=gemini.url, gemini_models=[MODEL])
    return openai.OpenAI(base_url=url, api_key="test-key", max_retries=0, timeout=20)


def collect(fake, request: UpstreamRequest, api_key: str = "k") -> list:
    async def run():
        provider = GeminiProvider(api_key, base_url=fake.url, models=[MODEL])
        try:
            return [event async for event in provider.stream(request)]
        finally:
            await provider.aclose()
    return asyncio.run(run())


# ---------------------------------------------------------------- the provider

def test_provider_streams_text_then_finish_then_usage(gemini):
    gemini.script.append(Behaviour(text="one two three four five"))
    events = collect(gemini, UpstreamRequest(MODEL, MSG, {"temperature": 0.2}))
    assert "".join(e.content or "" for e in events if isinstance(e, Delta)) == "one two three four five"
    assert events[0].role == "assistant"
    assert events[-2].finish_reason == "stop" and isinstance(events[-1], Usage)
    assert gemini.paths == [f"{MODEL}:streamGenerateContent"]
    assert gemini.requests[0]["generationConfig"]["temperature"] == 0.2


def test_provider_maps_function_calls_and_sends_back_their_signature(gemini):
    gemini.script.append(Behaviour(function_calls=[CALL], signature="c2lnbmVk"))

    async def round_trip():
        provider = GeminiProvider("k", base_url=gemini.url, models=[MODEL])
        try:
            first = [e async for e in provider.stream(UpstreamRequest(MODEL, MSG, {"tools": TOOLS}))]
            call = first[0].tool_calls[0]
            history = MSG + [{"role": "assistant", "tool_calls": [{"id": call.id, "type": "function", "function": {
                "name": call.name, "arguments": call.arguments}}]},
                {"role": "tool", "tool_call_id": call.id, "content": "18C"}]
            second = [e async for e in provider.stream(UpstreamRequest(MODEL, history, {"tools": TOOLS}))]
            return first, second
        finally:
            await provider.aclose()

    first, second = asyncio.run(round_trip())
    assert first[0].tool_calls[0].id.startswith("call_") and first[1].finish_reason == "tool_calls"
    assert json.loads(first[0].tool_calls[0].arguments) == {"city": "Paris"}
    sent = gemini.requests[1]["contents"]
    assert sent[1]["parts"][0] == {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                   "thoughtSignature": "c2lnbmVk"}
    assert sent[2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": {"output": "18C"}}
    assert "".join(e.content or "" for e in second if isinstance(e, Delta))


@pytest.mark.parametrize("behaviour, status, code, retryable", [
    (Behaviour(status=429, retry_delay=1.5), 429, "rate_limit_exceeded", True),
    (Behaviour(status=503), 503, "unavailable", True),
    (Behaviour(block_reason="SAFETY"), 400, "content_filter", False),
], ids=["quota", "overloaded", "blocked-prompt"])
def test_provider_errors_before_the_first_event(gemini, behaviour, status, code, retryable):
    gemini.script.append(behaviour)
    with pytest.raises(UpstreamHTTPError) as info:
        collect(gemini, UpstreamRequest(MODEL, MSG))
    assert (info.value.status, info.value.code, info.value.retryable) == (status, code, retryable)
    if status == 429:
        assert info.value.retry_after == 1.5


def test_provider_read_timeout_applies_between_chunks(gemini):
    gemini.script.append(Behaviour(text="a b c d e f", chunk_delay=1.0))

    async def run():
        provider = GeminiProvider("k", base_url=gemini.url, read_timeout=0.2)
        seen = []
        try:
            async for event in provider.stream(UpstreamRequest(MODEL, MSG)):
                seen.append(event)
        finally:
            await provider.aclose()
        return seen

    with pytest.raises(UpstreamTimeout):
        asyncio.run(run())


def test_provider_invalid_key_is_401(gemini):
    with pytest.raises(UpstreamHTTPError) as info:
        collect(gemini, UpstreamRequest(MODEL, MSG), api_key="wrong")
    assert info.value.status == 401 and info.value.type == "authentication_error"
    assert "API key not valid" in info.value.message and gemini.requests == []


def test_provider_lists_models_and_reports_health(gemini):
    async def run():
        provider = GeminiProvider("k", base_url=gemini.url)
        try:
            return await provider.list_models(), await provider.health()
        finally:
            await provider.aclose()
    assert asyncio.run(run()) == (["gemini-2.5-flash", "gemini-2.5-pro"], "ok")


def test_fake_answers_generate_content_whole_and_refuses_a_missing_key(gemini):
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=gemini.url, retry_options=types.HttpRetryOptions(attempts=1)))
    gemini.script.append(Behaviour(text="all at once"))
    reply = client.models.generate_content(model=MODEL, contents="Hi")
    assert reply.text == "all at once" and reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.usage_metadata.candidates_token_count == 3
    client.close()
    response = httpx.post(f"{gemini.url}/v1beta/models/{MODEL}:generateContent", json={"contents": []})
    assert response.status_code == 403 and response.json()["error"]["status"] == "PERMISSION_DENIED"


# ---------------------------------------------------------------- through the proxy

def test_non_streaming_completion(client, gemini):
    gemini.script.append(Behaviour(text="Hi! How can I help?"))
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MSG, max_tokens=50)
    reply = raw.parse()
    assert raw.headers["x-provider"] == "gemini"
    assert reply.object == "chat.completion" and reply.model == MODEL
    assert reply.choices[0].message.content == "Hi! How can I help?"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens == 5 and reply.usage.total_tokens > 5
    assert gemini.requests[-1]["generationConfig"]["maxOutputTokens"] == 50


def test_streaming_completion_with_usage(client, gemini):
    gemini.script.append(Behaviour(text="one two three four five six seven"))
    chunks = list(client.chat.completions.create(model=MODEL, messages=MSG, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks) and len({c.id for c in chunks}) == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "one two three four five six seven"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 7


def test_system_prompt_and_length_limit(client, gemini):
    gemini.script.append(Behaviour(text="a b c d e f"))
    reply = client.chat.completions.create(model=MODEL, max_completion_tokens=3, stop=["\nUser:"],
                                           messages=[{"role": "system", "content": "Be brief."}] + MSG)
    assert reply.choices[0].message.content == "a b c" and reply.choices[0].finish_reason == "length"
    sent = gemini.requests[-1]
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent["generationConfig"]["stopSequences"] == ["\nUser:"]


def test_tool_call_round_trip(client, gemini):
    gemini.script.append(Behaviour(function_calls=[CALL]))
    chunks = list(client.chat.completions.create(model=MODEL, messages=MSG, tools=TOOLS, stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id.startswith("call_") and deltas[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    call = {"id": deltas[0].id, "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    history = MSG + [{"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": deltas[0].id, "content": '{"temperature": 18}'}]
    gemini.script.append(Behaviour(text="It is 18C in Paris."))
    reply = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, tool_choice="auto")
    assert reply.choices[0].message.content == "It is 18C in Paris."
    assert gemini.requests[-1]["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "get_weather", "response": {"temperature": 18}}
    assert gemini.requests[-1]["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


def test_tool_call_non_streaming(client, gemini):
    gemini.script.append(Behaviour(function_calls=[CALL, {"name": "get_weather", "args": {"city": "Rome"}}]))
    reply = client.chat.completions.create(model=MODEL, messages=MSG, tools=TOOLS, tool_choice="required")
    calls = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls" and reply.choices[0].message.content is None
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    assert len({c.id for c in calls}) == 2


def test_reply_blocked_by_safety_ends_with_content_filter(client, gemini):
    gemini.script.append(Behaviour(text="Here is how you would do that", finish_reason="SAFETY"))
    reply = client.chat.completions.create(model=MODEL, messages=MSG)
    assert reply.choices[0].finish_reason == "content_filter"
    assert reply.choices[0].message.content == "Here is how "


def test_blocked_prompt_is_a_400_content_filter(client, gemini):
    gemini.script.append(Behaviour(block_reason="SAFETY"))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=MSG, stream=True)
    assert info.value.body["code"] == "content_filter" and "SAFETY" in info.value.body["message"]
    assert len(gemini.requests) == 1


def test_quota_429_then_success(client, gemini):
    gemini.script.extend([Behaviour(status=429, retry_delay=0.05), Behaviour(text="after retry")])
    reply = client.chat.completions.create(model=MODEL, messages=MSG)
    assert reply.choices[0].message.content == "after retry"
    assert len(gemini.requests) == 2


def test_invalid_key_is_401_naming_the_setting(gemini, start_proxy):
    url = start_proxy(gemini_api_key="wrong", gemini_base_url=gemini.url, gemini_models=[MODEL])
    client = openai.OpenAI(base_url=url, api_key="test-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model=MODEL, messages=MSG)
    assert "GEMINI_API_KEY" in info.value.body["message"]


def test_models_are_listed_as_gemini(client):
    assert [(m.id, m.owned_by) for m in client.models.list()] == [(MODEL, "gemini")]
    assert client.models.retrieve(MODEL).id == MODEL


def test_with_only_a_key_every_gemini_model_of_the_account_is_served(gemini, start_proxy):
    url = start_proxy(gemini_api_key="k", gemini_base_url=gemini.url)
    client = openai.OpenAI(base_url=url, api_key="test-key", max_retries=0)
    assert [(m.id, m.owned_by) for m in client.models.list()] == [(MODEL, "gemini"), ("gemini-2.5-pro", "gemini")]
    gemini.script.append(Behaviour(text="pro answer"))
    assert client.chat.completions.create(model="gemini-2.5-pro", messages=MSG).choices[0].message.content == \
        "pro answer"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=MSG)


def test_gemini_beside_an_openai_upstream_serves_its_own_models(gemini, fake, start_proxy):
    gemini.models.append("learnlm-2.0-flash")  # no gemini- prefix: found by Gemini's own model list
    url = start_proxy(gemini_api_key="k", gemini_base_url=gemini.url, upstream_base_url=fake.url)
    client = openai.OpenAI(base_url=url, api_key="test-key", max_retries=0)
    for model, expected in ((MODEL, "gemini"), ("learnlm-2.0-flash", "gemini"), ("fake-model", "upstream")):
        gemini.script.append(Behaviour(text="from gemini"))
        fake.script.append(UpstreamBehaviour(text="from upstream"))
        raw = client.chat.completions.with_raw_response.create(model=model, messages=MSG)
        assert raw.headers["x-provider"] == expected
        assert raw.parse().choices[0].message.content == f"from {expected}"
    listed = {m.id: m.owned_by for m in client.models.list()}
    assert listed["fake-model"] == "upstream" and listed[MODEL] == "gemini"


def test_explicit_routes_win_over_the_gemini_prefix(gemini, fake, start_proxy):
    url = start_proxy(gemini_api_key="k", gemini_base_url=gemini.url, upstream_base_url=fake.url,
                      routes={MODEL: ["upstream:fake-model"]})
    client = openai.OpenAI(base_url=url, api_key="test-key", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MSG)
    assert raw.headers["x-provider"] == "upstream"


def test_health_reports_gemini(gemini, start_proxy):
    url = start_proxy(gemini_api_key="k", gemini_base_url=gemini.url, gemini_models=[MODEL])
    body = httpx.get(url.removesuffix("/v1") + "/health").json()
    assert body["components"]["upstream:gemini"] == "ok"


def test_several_candidates_are_several_choices(client, gemini):
    gemini.script.append(Behaviour(text="same answer"))
    reply = client.chat.completions.create(model=MODEL, messages=MSG, n=2)
    assert [c.message.content for c in reply.choices] == ["same answer", "same answer"]
    assert gemini.requests[-1]["generationConfig"]["candidateCount"] == 2


def test_json_schema_response_format(client, gemini):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "additionalProperties": False}
    gemini.script.append(Behaviour(text='{"answer": "yes"}'))
    reply = client.chat.completions.create(model=MODEL, messages=MSG, response_format={
        "type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}})
    assert json.loads(reply.choices[0].message.content) == {"answer": "yes"}
    config = gemini.requests[-1]["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == schema


def test_stream_cut_in_the_middle_sends_error_frame_then_done(client, gemini):
    gemini.script.append(Behaviour(text="a b c d e f g h i j k l", cut_after=2))
    url = str(client.base_url).rstrip("/")
    with httpx.stream("POST", url + "/chat/completions",
                      json={"model": MODEL, "messages": MSG, "stream": True}) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert "error" in json.loads(lines[-2][6:])
    assert any('"content"' in line for line in lines[:-2])


def test_client_disconnect_cancels_the_gemini_request(client, gemini):
    gemini.script.append(Behaviour(text=" ".join(["word"] * 200), chunk_delay=0.05))
    url = str(client.base_url).rstrip("/")
    with httpx.stream("POST", url + "/chat/completions",
                      json={"model": MODEL, "messages": MSG, "stream": True}) as response:
        for _ in zip(range(3), response.iter_lines()):
            pass
    deadline = time.monotonic() + 5
    while gemini.cancelled == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gemini.cancelled == 1
