"""What the inspector page reads from the API: conversations searched by id, messages paged from
the newest, stored persona chunks, the preview's budget parts and what it left out, the report's
latency over time."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.integration.test_memory_api import wait_indexed


@pytest.fixture
def memory_proxy(store_overrides, fake, start_proxy) -> str:
    """The memory proxy on each store backend (SQLite files, PostgreSQL); the database outlives it."""
    return start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                       consolidate_interval_seconds=0, **store_overrides)


def append(base: str, session: str, texts: list[str]) -> None:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]
    httpx.post(f"{base}/sessions/{session}/messages", json={"messages": messages}).raise_for_status()


def test_the_list_searches_ids_literally_and_says_what_is_pending(memory_proxy):
    for session in ("story-one", "story-two", "notes", "sale_50", "sale-50"):
        append(memory_proxy, session, [f"Hello from {session}."])
    ids = lambda **q: [s["id"] for s in httpx.get(f"{memory_proxy}/sessions", params=q).json()["data"]]  # noqa: E731
    assert sorted(ids(q="story")) == ["story-one", "story-two"]
    assert sorted(ids(q="STORY-O")) == ["story-one"]
    assert ids(q="e_5") == ["sale_50"]  # `_` is a plain character, not LIKE's wildcard
    assert ids(q="story", limit=1, offset=1) and len(ids(q="story", limit=1)) == 1
    assert ids(q="nothing-like-it") == []
    assert all("pending" in s for s in httpx.get(f"{memory_proxy}/sessions").json()["data"])


def test_messages_page_from_the_newest(memory_proxy):
    append(memory_proxy, "long", [f"Message number {i}." for i in range(25)])
    page = lambda **q: [m["position"] for m in  # noqa: E731
                        httpx.get(f"{memory_proxy}/sessions/long/messages", params=q).json()["data"]]
    oldest_first = page(limit=100)
    assert len(oldest_first) == 25 and oldest_first == sorted(oldest_first)
    assert page(order="desc", limit=10) == oldest_first[::-1][:10]
    assert page(order="desc", limit=10, offset=20) == oldest_first[4::-1]
    assert httpx.get(f"{memory_proxy}/sessions/long/messages", params={"order": "sideways"}).status_code == 400


def test_the_persona_chunks_are_listed(memory_proxy):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    prompt = "You are Odile, a botanist on a research ship. You keep a herbarium of seaweed."
    client.chat.completions.create(model="fake-model", messages=[{"role": "system", "content": prompt},
                                                                 {"role": "user", "content": "Hello!"}],
                                   extra_headers={"X-Session-Id": "botanist"})
    deadline = time.monotonic() + 60
    while not (chunks := httpx.get(f"{memory_proxy}/sessions/botanist/persona/chunks").json()["data"]):
        assert time.monotonic() < deadline, "the system prompt was never stored as chunks"
        time.sleep(0.05)
    assert chunks and "Odile" in " ".join(c["text"] for c in chunks)
    assert all(c["tokens"] > 0 and c["created_at"] for c in chunks)
    assert httpx.get(f"{memory_proxy}/sessions/botanist/persona").json()["chunks"] == len(chunks)
    assert httpx.get(f"{memory_proxy}/sessions/nobody/persona/chunks").status_code == 404


def test_the_preview_names_its_budget_parts_and_what_found_no_room(memory_proxy):
    facts = [f"My friend Name{i} lives by the river in town {i}. Name{i} rows a boat on the river every morning, "
             "and the river is wide there. The river floods in spring." for i in range(40)]
    append(memory_proxy, "crowded", [t for f in facts for t in (f, "Noted.")])
    wait_indexed(memory_proxy, "crowded")
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "Which friends live by the river?"}]}
    preview = httpx.post(f"{memory_proxy}/chat/completions/preview", json=body,
                         headers={"X-Session-Id": "crowded", "X-Context-Budget": "300"}).json()
    parts, budget = preview["parts"], preview["budget"]
    assert sum(parts.values()) == budget["limit"] + budget["response_reserve"]
    assert parts["memories"] + parts["summaries"] == budget["memories"]
    assert parts["reply_reserve"] == budget["response_reserve"] and parts["recent"] > 0
    assert preview["memories"] and all(m["tokens"] > 0 for m in preview["memories"])
    left = preview["left_out"]
    assert left and preview["dropped"]["memories"] >= len(left)
    assert [m["score"] for m in left] == sorted((m["score"] for m in left), reverse=True)
    assert max(m["score"] for m in left) <= max(m["score"] for m in preview["memories"])
    assert not {m["text"] for m in left} & {m["text"] for m in preview["memories"]}


def test_the_report_has_latency_over_time_per_model_and_stage(memory_proxy):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    for model in ("fake-model", "fake-model-large"):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
    time.sleep(1.2)  # the request log writes in batches
    report = httpx.get(f"{memory_proxy}/report", params={"days": 1}).json()
    spans = report["timeline"]
    assert spans and sum(s["requests"] for s in spans) == report["current"]["requests"]
    models = {m for s in spans for m in s["models"]}
    assert models == {"fake-model", "fake-model-large"}
    assert set(spans[-1]["stages"]) == {"sync", "embed", "retrieval", "build", "upstream"}
    assert spans[-1]["models"]["fake-model"]["p95"] > 0
