"""The job queue in `/health` and `/metrics`, through the running proxy (local queue, SQLite)."""

from __future__ import annotations

import httpx
import openai


def test_health_and_metrics_show_the_job_queue(memory_proxy):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "Hello there"}],
                                   extra_headers={"X-Session-Id": "jobs"})
    base = memory_proxy.removesuffix("/v1")
    health = httpx.get(f"{base}/health", timeout=10).json()
    assert health["components"]["jobs"].startswith("ok (local: ")
    assert " waiting, " in health["components"]["jobs"] and " s)" in health["components"]["jobs"]
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for series in ('proxy_jobs_queue_depth{kind="score"}', 'proxy_jobs_claimed{kind="score"}',
                   'proxy_jobs_failed_total{kind="score"}', 'proxy_jobs_reclaimed_total{kind="score"}'):
        assert series in text
    assert "# TYPE proxy_jobs_failed_total counter" in text
