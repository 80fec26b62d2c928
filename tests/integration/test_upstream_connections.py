"""The proxy keeps its connection to an OpenAI-compatible upstream open between requests."""

from __future__ import annotations

import asyncio
import time

import openai
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

from app.fakes.serve import serving


def test_one_connection_serves_every_request_streamed_or_not(fake, start_proxy):
    client = openai.OpenAI(base_url=start_proxy(upstream_base_url=fake.url), api_key="k", max_retries=0)
    for stream in (True, False, True, False, True):
        response = client.chat.completions.create(model="fake-model", stream=stream,
                                                  messages=[{"role": "user", "content": "hello"}])
        if stream:
            assert "".join(c.choices[0].delta.content or "" for c in response if c.choices)
        else:
            assert response.choices[0].message.content
    assert len(fake.ports) == 5 and len(set(fake.ports)) == 1


def test_an_upstream_that_keeps_the_body_open_after_done_still_ends_the_reply(start_proxy):
    async def chat(_):
        async def body():
            yield b'data: {"id":"x","object":"chat.completion.chunk","created":0,"model":"m",' \
                  b'"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}\n\n'
            yield b'data: {"id":"x","object":"chat.completion.chunk","created":0,"model":"m",' \
                  b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
            yield b"data: [DONE]\n\n"
            await asyncio.sleep(30)  # never ends the body
        return StreamingResponse(body(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with serving(app) as url:
        client = openai.OpenAI(base_url=start_proxy(upstream_base_url=url + "/v1"), api_key="k", max_retries=0)
        started = time.monotonic()
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello"}])
        assert reply.choices[0].message.content == "hi"
        assert time.monotonic() - started < 5


def test_gemini_requests_share_one_connection(start_proxy):
    from app.fakes.gemini_server import FakeGemini

    gemini = FakeGemini(api_key="k")
    with serving(gemini.app()) as url:
        base = start_proxy(gemini_api_key="k", gemini_base_url=url, upstream_base_url="")
        client = openai.OpenAI(base_url=base, api_key="k", max_retries=0)
        for stream in (True, False, True):
            response = client.chat.completions.create(model="gemini-2.5-flash", stream=stream,
                                                      messages=[{"role": "user", "content": "hello"}])
            if stream:
                list(response)
    assert len(gemini.ports) == 3 and len(set(gemini.ports)) == 1
