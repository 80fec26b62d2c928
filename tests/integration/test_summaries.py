"""Rolling summaries with a real local upstream: ranges, restarts, fallbacks, the story so far."""

from __future__ import annotations

import time

import httpx
import openai

from app.fakes.openai_server import Behaviour, FakeUpstream
from app.fakes.serve import serving

SUMMARY_SETTINGS = dict(memory_enabled=True, summary_enabled=True, summary_every=20,
                        consolidate_interval_seconds=0, upstream_max_retries=0, circuit_failures=1000)


def load(base: str, session: str, n: int, start: int = 0) -> None:
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"Line {i}: the caravan moved on."}
                for i in range(start, start + n)]
    assert httpx.post(f"{base}/sessions/{session}/messages", json={"messages": messages}, timeout=60).status_code == 200


def summarize(base: str, session: str) -> dict:
    response = httpx.post(f"{base}/sessions/{session}/summarize", timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def ranges(summaries: list[dict], level: int = 0) -> list[tuple[int, int]]:
    return sorted((s["start_position"], s["end_position"]) for s in summaries if s["level"] == level)


def assert_contiguous(spans: list[tuple[int, int]], size: int) -> None:
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert b0 > a1, "overlapping ranges"
    assert all(end - start + 1 == size for start, end in spans)


def test_two_hundred_turns_give_ten_rolling_and_two_higher_summaries(fake, start_proxy):
    base = start_proxy(upstream_base_url=fake.url, default_model="fake-model", **SUMMARY_SETTINGS)
    load(base, "saga", 200)
    result = summarize(base, "saga")
    summaries = result["summaries"]
    assert len(ranges(summaries, 0)) == 10 and len(ranges(summaries, 1)) == 2
    assert_contiguous(ranges(summaries, 0), 20)
    first, last = ranges(summaries, 0)[0], ranges(summaries, 0)[-1]
    assert ranges(summaries, 1) == [(first[0], ranges(summaries, 0)[4][1]), (ranges(summaries, 0)[5][0], last[1])]
    assert {s["kind"] for s in summaries} == {"rolling", "higher"}
    asked = [r for r in fake.requests if "Summarise" in r["messages"][0]["content"]]
    assert len(asked) == 10 and "Line 0: the caravan" in asked[0]["messages"][1]["content"]
    assert summarize(base, "saga")["written"] == 0  # never twice for the same span


def test_a_restart_in_the_middle_resumes_without_gaps_or_duplicates(fake, tmp_path):
    from tests.conftest import proxy_settings
    from app.main import create_app

    settings = proxy_settings(tmp_path, upstream_base_url=fake.url, default_model="fake-model", **SUMMARY_SETTINGS)
    with serving(create_app(settings)) as url:
        load(url + "/v1", "journey", 110)
        summarize(url + "/v1", "journey")
    with serving(create_app(settings)) as url:
        load(url + "/v1", "journey", 90, start=110)
        summaries = summarize(url + "/v1", "journey")["summaries"]
    spans = ranges(summaries, 0)
    assert len(spans) == 10
    assert_contiguous(spans, 20)


def test_upstream_down_gives_extractive_summaries_upgraded_later(fake, start_proxy):
    base = start_proxy(upstream_base_url=fake.url, default_model="fake-model", **SUMMARY_SETTINGS)
    load(base, "storm", 40)
    fake.script.extend([Behaviour(status=503)] * 2)
    first = summarize(base, "storm")["summaries"]
    assert [s["kind"] for s in first] == ["extractive", "extractive"]
    assert all(s["text"].startswith(("User:", "Assistant:")) for s in first)
    fake.script.extend([Behaviour(text="The caravan crossed the desert."), Behaviour(text="It reached the sea.")])
    upgraded = summarize(base, "storm")["summaries"]
    assert [s["kind"] for s in upgraded] == ["rolling", "rolling"]
    assert ranges(upgraded) == ranges(first)


def test_story_so_far_is_in_the_context(fake, start_proxy):
    base = start_proxy(upstream_base_url=fake.url, default_model="fake-model", **SUMMARY_SETTINGS)
    load(base, "tale", 20)
    fake.script.append(Behaviour(text="So far: Ada found a map to the sunken city of Ys."))
    summarize(base, "tale")
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "Where were we?"}]}
    shown = httpx.post(f"{base}/chat/completions/preview", json=body, headers={"X-Session-Id": "tale"}).json()
    assert "sunken city of Ys" in str(shown["messages"])


def test_summarizing_never_delays_a_chat_reply(fake, start_proxy):
    slow = FakeUpstream(models=["slow-summary-model"])
    slow.script.extend([Behaviour(delay=3.0)] * 5)
    with serving(slow.app()) as slow_url:
        base = start_proxy(upstream_base_url=fake.url, summary_model="slow-summary-model",
                           upstreams=[{"name": "slow", "base_url": slow_url + "/v1",
                                       "models": ["slow-summary-model"]}], **{**SUMMARY_SETTINGS, "summary_every": 2})
        client = openai.OpenAI(base_url=base, api_key="k", max_retries=0)
        timings = []
        for i in range(6):
            t0 = time.perf_counter()
            client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": f"hi {i}"}],
                                           extra_headers={"X-Session-Id": "quick"})
            timings.append(time.perf_counter() - t0)
        assert slow.requests, "the summarizer did ask the summary model"
        assert max(timings) < 1.5
