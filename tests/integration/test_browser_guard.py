"""What a web page can make the browser do to a proxy on 127.0.0.1: nothing, unless its origin is allowed.

The requests are shaped as a browser sends them (httpx setting the headers a browser would); nothing
may be stored and the upstream may not be called when one is refused.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

ALLOWED = "http://localhost:3000"
BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "Hi from a web page"}]}


@pytest.fixture
def guarded(fake, start_proxy) -> str:
    return start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                       consolidate_interval_seconds=0, cors_origins=[ALLOWED])


def stored(url: str) -> list:
    return httpx.get(f"{url}/sessions").json()["data"]


@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/xml"])
def test_a_body_that_is_not_json_is_415_and_nothing_is_stored(guarded, fake, content_type):
    for path in ("/chat/completions", "/sessions/web/messages"):
        response = httpx.post(guarded + path, content=json.dumps(BODY), headers={"Content-Type": content_type,
                                                                                 "X-Session-Id": "web"})
        assert response.status_code == 415, response.text
        assert response.json()["error"]["code"] == "unsupported_media_type"
    assert httpx.put(f"{guarded}/sessions/web/persona", content='{"persona": "p"}',
                     headers={"Content-Type": "text/plain"}).status_code == 415
    assert httpx.post(f"{guarded}/sessions/web/summarize", headers={"Content-Type": "text/plain"}).status_code == 415
    assert fake.requests == [] and stored(guarded) == []


def test_a_foreign_origin_is_refused_and_nothing_is_stored(guarded, fake):
    foreign = {"Origin": "https://evil.example", "X-Session-Id": "web"}
    response = httpx.post(f"{guarded}/chat/completions", json=BODY, headers=foreign)
    assert response.status_code == 403 and response.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in response.headers
    assert httpx.get(f"{guarded}/sessions", headers=foreign).status_code == 403
    assert httpx.post(f"{guarded}/chat/completions", json=BODY, headers={"Origin": "null"}).status_code == 403
    assert fake.requests == [] and stored(guarded) == []


def test_an_allowed_origin_gets_its_preflight_and_can_read_the_answer(guarded, fake):
    preflight = httpx.options(f"{guarded}/chat/completions", headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-session-id"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-headers"] == "authorization, content-type, x-session-id"
    foreign = httpx.options(f"{guarded}/chat/completions", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
    answer = httpx.post(f"{guarded}/chat/completions", json=BODY, headers={"Origin": ALLOWED, "X-Session-Id": "web"})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == ALLOWED
    assert "x-session-id" in answer.headers["access-control-expose-headers"]
    assert len(fake.requests) == 1 and [s["id"] for s in stored(guarded)] == ["web"]


def test_a_preflight_needs_no_key_but_the_request_does(fake, start_proxy):
    url = start_proxy(upstream_base_url=fake.url, api_keys=["sk-web-123456"], cors_origins=[ALLOWED])
    preflight = httpx.options(f"{url}/models", headers={"Origin": ALLOWED, "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204
    refused = httpx.get(f"{url}/models", headers={"Origin": ALLOWED})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ALLOWED
    assert httpx.get(f"{url}/models", headers={"Origin": ALLOWED, "Authorization": "Bearer sk-web-123456"}).is_success


def test_a_foreign_host_is_refused(guarded, fake):
    port = guarded.split(":")[2].split("/")[0]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
        response = httpx.post(f"{guarded}/chat/completions", json=BODY, headers={"Host": host})
        assert response.status_code == 400 and response.json()["error"]["code"] == "host_not_allowed"
    assert httpx.get(guarded.removesuffix("/v1") + "/health", headers={"Host": "evil.example"}).status_code == 400
    assert fake.requests == [] and stored(guarded) == []
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert httpx.get(f"{guarded}/models", headers={"Host": host}).status_code == 200


def test_allowed_hosts_name_the_hosts_served(fake, start_proxy):
    url = start_proxy(upstream_base_url=fake.url, allowed_hosts=["proxy.example.com"])
    assert httpx.get(f"{url}/models", headers={"Host": "proxy.example.com"}).status_code == 200
    assert httpx.get(f"{url}/models").status_code == 400  # 127.0.0.1 is no longer among them
    anywhere = start_proxy(upstream_base_url=fake.url, host="0.0.0.0")
    assert httpx.get(f"{anywhere}/models", headers={"Host": "proxy.example.com"}).status_code == 200


def test_sdk_clients_send_no_origin_and_json_and_keep_working(guarded, fake):
    client = openai.OpenAI(base_url=guarded, api_key="unused", max_retries=0)
    reply = client.chat.completions.create(**BODY, extra_headers={"X-Session-Id": "sdk"})
    assert reply.choices[0].message.content
