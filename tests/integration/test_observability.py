"""Request log, Prometheus metrics, the report and its suggestions, under real traffic."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.fakes.openai_server import Behaviour
from app.observability.report import percentile

MSG = [{"role": "user", "content": "Hello there"}]


def wait_rows(base: str, n: int) -> dict:
    deadline = time.monotonic() + 5
    while True:
        report = httpx.get(base + "/v1/report?days=1").json()
        if report["current"]["requests"] >= n or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


def scrape(base: str) -> dict[tuple, float]:
    text = httpx.get(base + "/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_traffic_with_failures_is_logged_scraped_and_reported(fake, start_proxy, tmp_path):
    url = start_proxy(upstream_base_url=fake.url, upstream_max_retries=0, circuit_failures=100)
    base = url.removesuffix("/v1")
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    fake.script.extend([Behaviour(delay=0.05 * i) for i in range(6)])
    fake.script.extend([Behaviour(status=500, text="overloaded")] * 4)
    for i in range(10):
        try:
            client.chat.completions.create(model="fake-model", messages=MSG, stream=i % 2 == 0)
        except openai.InternalServerError:
            pass
    report = wait_rows(base, 10)
    assert report["current"]["requests"] == 10
    assert report["current"]["error_rate"] == pytest.approx(0.4)
    top = report["current"]["top_errors"][0]
    assert top["count"] == 4 and top["status"] == 500 and top["message"] == "overloaded"
    high = [s for s in report["suggestions"] if s["severity"] == "high"]
    assert high and high[0]["evidence"]["error_rate"] == pytest.approx(0.4)

    import sqlite3
    rows = sqlite3.connect(tmp_path / "data" / "requests.sqlite").execute(
        "SELECT status, total_ms, ttft_ms FROM requests ORDER BY id").fetchall()
    assert sorted(r[0] for r in rows) == [200] * 6 + [500] * 4
    totals = [r[1] for r in rows]
    assert report["current"]["total_ms"]["p50"] == percentile(totals, 50)
    assert report["current"]["total_ms"]["p95"] == percentile(totals, 95)
    assert max(r[2] for r in rows if r[0] == 200) >= 250  # the slowest reply waited 0.25 s upstream

    metrics = scrape(base)
    ok = ("proxy_requests_total", (("model", "fake-model"), ("provider", "upstream"), ("status", "200")))
    failed = ("proxy_requests_total", (("model", "fake-model"), ("provider", "upstream"), ("status", "500")))
    assert metrics[ok] == 6 and metrics[failed] == 4
    ttft_count = ("proxy_time_to_first_token_seconds_count", (("model", "fake-model"), ("provider", "upstream")))
    assert metrics[ttft_count] == 6


def test_healthy_traffic_has_no_suggestions(client, proxy):
    for _ in range(6):
        client.chat.completions.create(model="fake-model", messages=MSG)
    report = wait_rows(proxy.removesuffix("/v1"), 6)
    assert report["current"]["error_rate"] == 0
    assert report["suggestions"] == []


def test_replies_cut_by_max_tokens_give_a_low_suggestion(client, proxy, fake):
    fake.script.extend([Behaviour(text="one two three four five six")] * 6)
    for _ in range(6):
        client.chat.completions.create(model="fake-model", messages=MSG, max_tokens=2)
    report = wait_rows(proxy.removesuffix("/v1"), 6)
    assert [s["severity"] for s in report["suggestions"]] == ["low"]
    assert report["suggestions"][0]["evidence"]["cut_by_length"] == 6


def test_retries_are_counted(fake, start_proxy):
    url = start_proxy(upstream_base_url=fake.url)
    fake.script.extend([Behaviour(status=429, retry_after=0.01), Behaviour()])
    openai.OpenAI(base_url=url, api_key="k", max_retries=0).chat.completions.create(model="fake-model",
                                                                                    messages=MSG)
    metrics = scrape(url.removesuffix("/v1"))
    assert metrics[("proxy_upstream_retries_total", (("provider", "upstream"),))] == 1


def test_logs_are_json_lines_with_request_ids_and_no_content(fake, start_proxy, tmp_path):
    url = start_proxy(upstream_base_url=fake.url, log_json=True)
    secret = "my very private message"
    openai.OpenAI(base_url=url, api_key="sk-secret", max_retries=0).chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": secret}])
    time.sleep(0.1)
    lines = (tmp_path / "logs" / "proxy.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    done = [r for r in records if r["msg"] == "exchange finished"]
    assert done and done[-1]["request_id"].startswith("chatcmpl-") and done[-1]["status"] == 200
    assert secret not in "\n".join(lines) and "sk-secret" not in "\n".join(lines)


def test_memory_gauges_are_exported(memory_proxy, fake):
    openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0).chat.completions.create(
        model="fake-model", messages=MSG, extra_headers={"X-Session-Id": "gauges"})
    metrics = scrape(memory_proxy.removesuffix("/v1"))
    assert metrics[("proxy_active_sessions", ())] == 1
    assert metrics[("proxy_working_memory_messages", ())] == 2
    for name in ("proxy_embedding_queue_depth", "proxy_memory_writer_queue_depth", "proxy_background_failures"):
        assert (name, ()) in metrics
