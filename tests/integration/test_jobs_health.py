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


def test_on_postgresql_health_and_metrics_show_the_pool_the_cache_and_the_queue(fake, start_proxy, pg_url):
    url = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                      consolidate_interval_seconds=0, database_url=pg_url)
    client = openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "Hello there"}],
                                   extra_headers={"X-Session-Id": "pool"})
    base = url.removesuffix("/v1")
    health = httpx.get(f"{base}/health", timeout=10).json()["components"]
    assert health["storage"].startswith("ok (1 sessions, pool ") and health["storage"].endswith(" in use)")
    assert health["jobs"].startswith("ok (postgresql: ")
    text = httpx.get(f"{base}/metrics", timeout=10).text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    assert values["proxy_db_pool_max"] == 10 and 1 <= values["proxy_db_pool_connections"] <= 10
    assert 0 <= values["proxy_db_pool_in_use"] <= values["proxy_db_pool_connections"]
    assert values["proxy_cache_refreshes_total"] == 0 and values["proxy_sync_replans_total"] == 0
    assert 'proxy_jobs_queue_depth{kind="score"}' in values
