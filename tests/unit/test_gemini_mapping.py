"""The pure OpenAI <-> Gemini mapping: requests, streamed responses, finish reasons, usage, errors."""

from __future__ import annotations

import base64

import pytest
from google.genai import types

from app.errors import InvalidRequest, UpstreamHTTPError, UpstreamStreamError
from app.providers.base import Delta, ToolCallDelta, UpstreamRequest, Usage
from app.providers.gemini_errors import retry_delay, upstream_error
from app.providers.gemini_mapping import (UNKNOWN_SIGNATURE, StreamMapper, calling_mode, finish_reason,
                                          generation_config, request_payload, safety_settings, split_messages,
                                          usage_of)

PNG = base64.b64encode(b"\x89PNG fake").decode()
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


def payload(messages, **params):
    return request_payload(UpstreamRequest("gemini-2.5-flash", messages, params))


# ---------------------------------------------------------------- messages

@pytest.mark.parametrize("messages, system, contents", [
    ([{"role": "user", "content": "Hi"}], None, [{"role": "user", "parts": [{"text": "Hi"}]}]),
    ([{"role": "system", "content": "Be brief."}, {"role": "developer", "content": "Use French."},
      {"role": "user", "content": "Hi"}],
     {"parts": [{"text": "Be brief."}, {"text": "Use French."}]}, [{"role": "user", "parts": [{"text": "Hi"}]}]),
    ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}],
     None, [{"role": "user", "parts": [{"text": "Hi"}]}, {"role": "model", "parts": [{"text": "Hello"}]},
            {"role": "user", "parts": [{"text": "Bye"}]}]),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": ""}],
     None, [{"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}]),
    ([{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                   {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}],
     None, [{"role": "user", "parts": [{"text": "What is this?"},
                                       {"inline_data": {"mime_type": "image/png", "data": b"\x89PNG fake"}}]}]),
    ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": PNG, "format": "mp3"}}]}],
     None, [{"role": "user", "parts": [{"inline_data": {"mime_type": "audio/mp3", "data": b"\x89PNG fake"}}]}]),
], ids=["user", "system-and-developer", "roles", "merged-and-empty", "image", "audio"])
def test_messages_map_to_system_instruction_and_contents(messages, system, contents):
    assert split_messages(messages, {}) == (system, contents)


def test_tool_round_trip_names_the_function_and_groups_results_in_one_turn():
    second = {**CALL, "id": "call_2", "function": {"name": "get_time", "arguments": "{}"}}
    messages = [{"role": "user", "content": "Weather and time in Paris?"},
                {"role": "assistant", "content": None, "tool_calls": [CALL, second]},
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
                {"role": "tool", "tool_call_id": "call_2", "content": "10:00"}]
    _, contents = split_messages(messages, {"call_1": b"sig"})
    assert contents[1] == {"role": "model", "parts": [
        {"function_call": {"name": "get_weather", "args": {"city": "Paris"}}, "thought_signature": b"sig"},
        {"function_call": {"name": "get_time", "args": {}}}]}
    assert contents[2] == {"role": "user", "parts": [
        {"function_response": {"name": "get_weather", "response": {"temp": 18}}},
        {"function_response": {"name": "get_time", "response": {"output": "10:00"}}}]}


def test_legacy_functions_and_unreadable_arguments():
    messages = [{"role": "user", "content": "x"},
                {"role": "assistant", "function_call": {"name": "lookup", "arguments": "not json"}},
                {"role": "function", "name": "lookup", "content": "[1, 2]"}]
    contents, config = payload(messages, functions=[{"name": "lookup"}], function_call={"name": "lookup"})
    assert contents[1]["parts"][0]["function_call"] == {"name": "lookup", "args": {"arguments": "not json"}}
    assert contents[2]["parts"][0]["function_response"] == {"name": "lookup", "response": {"output": [1, 2]}}
    assert config["tools"] == [{"function_declarations": [{"name": "lookup"}]}]
    assert config["tool_config"]["function_calling_config"] == {"mode": "ANY", "allowed_function_names": ["lookup"]}


def test_a_call_without_a_known_signature_gets_the_documented_placeholder():
    _, contents = split_messages([{"role": "user", "content": "x"},
                                  {"role": "assistant", "tool_calls": [CALL]}], {})
    assert contents[1]["parts"][0]["thought_signature"] == UNKNOWN_SIGNATURE
    assert base64.urlsafe_b64encode(UNKNOWN_SIGNATURE) == b"skip_thought_signature_validator"


@pytest.mark.parametrize("messages, param", [
    ([{"role": "system", "content": "only a system prompt"}], "messages"),
    ([{"role": "tool", "tool_call_id": "call_unknown", "content": "x"}], "messages"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}], "messages"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@"}}]}],
     "messages"),
    ([{"role": "user", "content": [{"type": "video", "video": {}}]}], "messages"),
])
def test_what_gemini_cannot_take_is_a_400_naming_the_field(messages, param):
    with pytest.raises(InvalidRequest) as info:
        payload(messages)
    assert info.value.param == param and info.value.status == 400


# ---------------------------------------------------------------- parameters

@pytest.mark.parametrize("params, expected", [
    ({}, {}),
    ({"temperature": 0.3, "top_p": 0.9, "seed": 7, "n": 2, "presence_penalty": 0.1, "frequency_penalty": -0.2},
     {"temperature": 0.3, "top_p": 0.9, "seed": 7, "candidate_count": 2, "presence_penalty": 0.1,
      "frequency_penalty": -0.2}),
    ({"max_tokens": 100}, {"max_output_tokens": 100}),
    ({"max_tokens": 100, "max_completion_tokens": 50}, {"max_output_tokens": 50}),
    ({"stop": "\nUser:"}, {"stop_sequences": ["\nUser:"]}),
    ({"stop": ["a", "b"], "top_k": 40}, {"stop_sequences": ["a", "b"], "top_k": 40}),
    ({"response_format": {"type": "text"}}, {}),
    ({"response_format": {"type": "json_object"}}, {"response_mime_type": "application/json"}),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
     {"response_mime_type": "application/json", "response_json_schema": {"type": "object"}}),
    ({"logit_bias": {"1": 2}, "user": "u", "parallel_tool_calls": False, "logprobs": True}, {}),
])
def test_generation_config(params, expected):
    config = generation_config(params, None, [])
    assert config.pop("automatic_function_calling") == {"disable": True}
    assert config == expected


def test_tools_become_function_declarations_with_json_schema():
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                             "parameters": {"type": "object", "additionalProperties": False}}}
    config = generation_config({"tools": [tool], "tool_choice": "auto"}, None, [])
    assert config["tools"] == [{"function_declarations": [
        {"name": "get_weather", "description": "Weather for a city",
         "parameters_json_schema": {"type": "object", "additionalProperties": False}}]}]
    assert config["tool_config"] == {"function_calling_config": {"mode": "AUTO"}}


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowed_function_names": ["f"]}),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "f"}}]}}, {"mode": "ANY", "allowed_function_names": ["f"]}),
])
def test_tool_choice(choice, expected):
    assert calling_mode(choice) == expected


def test_unsupported_tools_are_refused():
    with pytest.raises(InvalidRequest):
        generation_config({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, None, [])
    with pytest.raises(InvalidRequest):
        calling_mode("sometimes")


def test_generated_config_is_valid_for_the_sdk():
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    contents, config = payload([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
                               tools=[tool], tool_choice="required", max_tokens=5, stop="x",
                               response_format={"type": "json_object"})
    types.GenerateContentConfig(**config)
    [types.Content(**c) for c in contents]


@pytest.mark.parametrize("given, expected", [
    ({"harassment": "block_none"}, [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]),
    ({"HARM_CATEGORY_DANGEROUS_CONTENT": "only_high"},
     [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_ONLY_HIGH"}]),
    ({"hate-speech": "OFF"}, [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}]),
])
def test_safety_settings(given, expected):
    assert safety_settings(given, [e.value for e in types.HarmCategory],
                           [e.value for e in types.HarmBlockThreshold]) == expected


@pytest.mark.parametrize("given", [{"violence": "block_none"}, {"harassment": "sometimes"}])
def test_unknown_safety_settings_say_what_is_allowed(given):
    with pytest.raises(ValueError, match="GEMINI_SAFETY_SETTINGS.*BLOCK_NONE|HARM_CATEGORY_HARASSMENT"):
        safety_settings(given, [e.value for e in types.HarmCategory], [e.value for e in types.HarmBlockThreshold])


# ---------------------------------------------------------------- responses

def chunk(*parts, finish=None, index=0, usage=None, blocked=None):
    candidates = None
    if parts or finish:
        content = types.Content(role="model", parts=list(parts)) if parts else None
        candidates = [types.Candidate(index=index, content=content, finish_reason=finish)]
    feedback = types.GenerateContentResponsePromptFeedback(block_reason=blocked) if blocked else None
    meta = types.GenerateContentResponseUsageMetadata(**usage) if usage else None
    return types.GenerateContentResponse(candidates=candidates, prompt_feedback=feedback, usage_metadata=meta)


def text(value):
    return types.Part(text=value)


def call(name, args, call_id=None, signature=None):
    return types.Part(function_call=types.FunctionCall(name=name, args=args, id=call_id), thought_signature=signature)


def run(*chunks):
    mapper = StreamMapper(new_id=iter(f"call_gen{i}" for i in range(10)).__next__)
    events = [event for c in chunks for event in mapper.events(c)]
    return events + mapper.finish(), mapper


def test_text_stream_becomes_deltas_then_finish_then_usage_once():
    events, _ = run(chunk(text("Hel"), usage={"prompt_token_count": 5}),
                    chunk(text("lo"), usage={"prompt_token_count": 5, "candidates_token_count": 1}),
                    chunk(finish="STOP", usage={"prompt_token_count": 5, "candidates_token_count": 2}))
    assert events == [Delta(role="assistant", content="Hel"), Delta(content="lo"), Delta(finish_reason="stop"),
                      Usage(5, 2)]


def test_function_calls_become_tool_call_deltas_with_generated_ids():
    events, mapper = run(chunk(call("get_weather", {"city": "Paris"}, signature=b"sig"), call("get_time", {}),
                               finish="STOP"))
    assert events == [
        Delta(role="assistant", tool_calls=[ToolCallDelta(0, "call_gen0", "get_weather", '{"city":"Paris"}')]),
        Delta(tool_calls=[ToolCallDelta(1, "call_gen1", "get_time", "{}")]),
        Delta(finish_reason="tool_calls")]
    assert mapper.signatures == {"call_gen0": b"sig"}


def test_gemini_call_ids_are_kept_and_thoughts_skipped():
    events, _ = run(chunk(types.Part(text="thinking...", thought=True), call("f", {}, call_id="abc"), finish="STOP"))
    assert events[0].tool_calls[0].id == "abc"
    assert all(e.content is None for e in events if isinstance(e, Delta))


@pytest.mark.parametrize("reason, called, expected", [
    ("STOP", False, "stop"), ("STOP", True, "tool_calls"), ("MAX_TOKENS", False, "length"),
    ("SAFETY", False, "content_filter"), ("RECITATION", False, "content_filter"),
    ("BLOCKLIST", False, "content_filter"), ("PROHIBITED_CONTENT", False, "content_filter"),
    ("SPII", False, "content_filter"), ("OTHER", False, "stop"), ("MALFORMED_FUNCTION_CALL", False, "stop"),
])
def test_finish_reasons(reason, called, expected):
    assert finish_reason(reason, called) == expected


def test_reply_blocked_midway_ends_with_content_filter():
    events, _ = run(chunk(text("Here is how")), chunk(finish="SAFETY"))
    assert events[-1] == Delta(finish_reason="content_filter")


def test_blocked_prompt_is_a_400_content_filter_error():
    mapper = StreamMapper()
    with pytest.raises(UpstreamHTTPError) as info:
        mapper.events(chunk(blocked="SAFETY", usage={"prompt_token_count": 3}))
    assert info.value.status == 400 and info.value.code == "content_filter"
    assert "SAFETY" in info.value.message and not info.value.retryable


def test_several_candidates_become_choices():
    events, _ = run(chunk(text("a"), index=0), chunk(text("b"), index=1),
                    chunk(finish="STOP", index=0), chunk(finish="STOP", index=1))
    assert [(e.choice, e.role, e.content, e.finish_reason) for e in events] == [
        (0, "assistant", "a", None), (1, "assistant", "b", None), (0, None, None, "stop"), (1, None, None, "stop")]


@pytest.mark.parametrize("chunks", [(), (chunk(text("cut off")),)], ids=["empty", "no-finish"])
def test_a_stream_without_finish_is_an_error(chunks):
    with pytest.raises(UpstreamStreamError):
        run(*chunks)


def test_usage_counts_thinking_as_completion_tokens():
    meta = types.GenerateContentResponseUsageMetadata(prompt_token_count=10, candidates_token_count=5,
                                                      thoughts_token_count=20, cached_content_token_count=4)
    assert usage_of(meta) == Usage(10, 25, {"completion_tokens_details": {"reasoning_tokens": 20},
                                            "prompt_tokens_details": {"cached_tokens": 4}})


# ---------------------------------------------------------------- errors

def google(code, message, status, *details):
    return {"error": {"code": code, "message": message, "status": status, "details": list(details)}}


RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "23s"}
KEY = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}


@pytest.mark.parametrize("code, body, status, kind, retryable, retry_after", [
    (400, google(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", KEY),
     401, "authentication_error", False, None),
    (403, google(403, "Method doesn't allow unregistered callers (callers without established identity).",
                 "PERMISSION_DENIED"), 401, "authentication_error", False, None),
    (403, google(403, "Generative Language API has not been used in project 1", "PERMISSION_DENIED"),
     403, "permission_error", False, None),
    (429, google(429, "You exceeded your current quota", "RESOURCE_EXHAUSTED", RETRY),
     429, "rate_limit_error", True, 23.0),
    (400, google(400, "Request contains an invalid argument.", "INVALID_ARGUMENT"),
     400, "invalid_request_error", False, None),
    (500, google(500, "An internal error has occurred.", "INTERNAL"), 500, "server_error", True, None),
    (503, google(503, "The model is overloaded.", "UNAVAILABLE"), 503, "server_error", True, None),
    (502, {"message": "Bad Gateway", "status": "Bad Gateway"}, 502, "server_error", True, None),
])
def test_gemini_errors(code, body, status, kind, retryable, retry_after):
    error = upstream_error(code, body)
    assert (error.status, error.type, error.retryable, error.retry_after) == (status, kind, retryable, retry_after)
    assert "Gemini" in error.message


def test_invalid_key_message_names_the_setting():
    error = upstream_error(400, google(400, "API key not valid.", "INVALID_ARGUMENT", KEY))
    assert "GEMINI_API_KEY" in error.message and error.code == "invalid_api_key"


@pytest.mark.parametrize("delay, seconds", [("23s", 23.0), ("0.250s", 0.25), ("soon", None)])
def test_retry_delay(delay, seconds):
    assert retry_delay([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]) == seconds


def test_retry_after_header_is_the_fallback():
    assert upstream_error(429, google(429, "slow down", "RESOURCE_EXHAUSTED"), 2.0).retry_after == 2.0
