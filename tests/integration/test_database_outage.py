"""The database going away under a running proxy: every request meanwhile gets an OpenAI-style 503
with Retry-After (not a 500), and once it is back the conversation carries on with nothing lost."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
import openai
import pytest

from app.memory.store.postgres.embedded import create_database, start

KEY = "sk-outage"


@pytest.fixture
def own_server():
    """A PostgreSQL of this test's own, so that stopping it touches nothing else."""
    root = Path(tempfile.mkdtemp(prefix="mp-pgo-"))
    server = start(root / "data", cleanup="stop")
    yield root / "data", server
    start(root / "data", cleanup="stop").cleanup()
    shutil.rmtree(root, ignore_errors=True)


def chat(base: str, messages: list[dict]) -> httpx.Response:
    return httpx.post(base + "/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {KEY}", "X-Session-Id": "outage"},
                      json={"model": "fake-model", "messages": messages})


@pytest.mark.parametrize("limits", [{}, {"rate_limit_rpm": 1000}], ids=["no-limits", "limits"])
def test_requests_while_the_database_is_down_get_503_and_nothing_is_lost(own_server, fake, start_proxy, limits):
    import asyncio

    pgdata, server = own_server
    url = asyncio.run(create_database(server.get_uri(), "memory"))
    base = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                       consolidate_interval_seconds=0, database_url=url, api_keys=[KEY], **limits)
    messages = [{"role": "user", "content": "My sister Ada keeps bees on the roof."}]
    first = chat(base, messages)
    assert first.status_code == 200, first.text
    messages.append({"role": "assistant", "content": first.json()["choices"][0]["message"]["content"]})

    server.cleanup()  # stops the server; the proxy's pooled connections die with it
    messages.append({"role": "user", "content": "What does Ada keep?"})
    for _ in range(3):
        down = chat(base, messages)
        assert down.status_code == 503, down.text
        error = down.json()["error"]
        assert error["type"] == "server_error" and error["code"] == "store_unavailable"
        assert "database" in error["message"]
        assert int(down.headers["Retry-After"]) >= 1

    start(pgdata, cleanup="stop")  # back on the same data
    again = chat(base, messages)
    assert again.status_code == 200, again.text
    stored = httpx.get(base + "/sessions/outage/messages", headers={"Authorization": f"Bearer {KEY}"},
                       timeout=30).json()
    texts = [m["content"] for m in stored["data"]]
    assert texts[:3] == [m["content"] for m in messages]  # each turn once, in order
    assert len(texts) == 4


def test_the_sdk_retries_a_503_from_an_outage_and_gets_its_answer(own_server, fake, start_proxy):
    """The openai SDK retries 503 by itself; a short outage is invisible to its caller."""
    import asyncio
    import threading

    pgdata, server = own_server
    url = asyncio.run(create_database(server.get_uri(), "memory"))
    base = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                       consolidate_interval_seconds=0, database_url=url, api_keys=[KEY])
    client = openai.OpenAI(base_url=base, api_key=KEY, max_retries=4, timeout=30)
    server.cleanup()
    threading.Timer(0.5, lambda: start(pgdata, cleanup="stop")).start()
    reply = client.chat.completions.create(model="fake-model", extra_headers={"X-Session-Id": "sdk-outage"},
                                           messages=[{"role": "user", "content": "Hello after the outage."}])
    assert reply.choices[0].message.content
