"""MEMORY_RAM_MB bounds the conversations' in-RAM caches; a conversation that left RAM loses nothing."""

from __future__ import annotations

import time

import httpx
import openai


def gauge(base: str, name: str) -> float:
    for line in httpx.get(base.removesuffix("/v1") + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_least_recently_used_conversations_leave_ram_and_come_back_whole(fake, start_proxy):
    base = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                       consolidate_interval_seconds=0, memory_ram_mb=1)
    client = openai.OpenAI(base_url=base, api_key="k", max_retries=0, timeout=30)
    long = " ".join(f"lantern{i}" for i in range(20_000))  # about 250 KB of text and its index each
    for k in range(6):
        client.chat.completions.create(model="fake-model", extra_headers={"X-Session-Id": f"big-{k}"},
                                       messages=[{"role": "user", "content": f"Chat {k}: {long}"}])
    assert gauge(base, "proxy_active_sessions") == 6
    deadline = time.monotonic() + 20
    while gauge(base, "proxy_active_sessions") > 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert gauge(base, "proxy_active_sessions") <= 2
    reply = client.chat.completions.create(model="fake-model", extra_headers={"X-Session-Id": "big-0"},
                                           messages=[{"role": "user", "content": f"Chat 0: {long}"},
                                                     {"role": "assistant", "content": "I hear you. Tell me more."},
                                                     {"role": "user", "content": "Still there?"}])
    assert reply.choices[0].message.content
    rows = httpx.get(f"{base}/sessions/big-0/messages").json()["data"]
    assert [r["role"] for r in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[0]["content"] == f"Chat 0: {long}"


def test_a_persons_index_leaves_ram_first_and_is_read_again_when_needed(fake, start_proxy):
    base = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                       consolidate_interval_seconds=0, memory_ram_mb=1)
    client = openai.OpenAI(base_url=base, api_key="k", max_retries=0, timeout=30)
    long = " ".join(f"lantern{i}" for i in range(20_000))
    for k in range(3):
        client.chat.completions.create(model="fake-model", extra_headers={"X-Session-Id": f"p-{k}", "X-User-Id": "ann"},
                                       messages=[{"role": "user", "content": f"Chat {k}: {long}"}])
    deadline = time.monotonic() + 60
    while any(httpx.get(f"{base}/sessions/p-{k}").json()["pending"] for k in range(3)) and time.monotonic() < deadline:
        time.sleep(0.2)  # every turn scored: ann's index holds all of them, 1.5 MB in all with the sessions'
    while gauge(base, "proxy_people_indexed_messages") > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert gauge(base, "proxy_people_indexed_messages") == 0
    assert gauge(base, "proxy_active_sessions") >= 1
    hits = httpx.get(f"{base}/users/ann/search", params={"q": "lantern7"}).json()["data"]
    assert hits and hits[0]["session_id"] in {"p-0", "p-1", "p-2"}  # read again from the files
    assert gauge(base, "proxy_people_indexed_messages") == 6  # three turns and their replies
