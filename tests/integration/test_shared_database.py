"""Two proxies on one PostgreSQL database, as two replicas: RATE_LIMIT_RPM holds across both, and
both log their exchanges to the one request log the report (HTTP and `memory-proxy report`) reads."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai

KEY, ADMIN = "sk-alice-0123456789", "sk-admin-0123456789"
MSG = [{"role": "user", "content": "Hello there"}]


async def burst(urls: list[str], n: int) -> list[object]:
    clients = [openai.AsyncOpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=30) for url in urls]
    calls = [clients[i % len(clients)].chat.completions.with_raw_response.create(
        model="fake-model", messages=MSG, stream=i % 3 == 0) for i in range(n)]
    try:
        return await asyncio.gather(*calls, return_exceptions=True)
    finally:
        for client in clients:
            await client.close()


def reported(url: str, expected: int) -> dict:
    """The report once `expected` exchanges reached the database (the other replica flushes on its own)."""
    for _ in range(50):
        body = httpx.get(f"{url}/report?days=1", headers={"Authorization": f"Bearer {ADMIN}"}).json()
        if body["current"]["requests"] >= expected:
            return body
        time.sleep(0.1)
    return body


def test_two_replicas_admit_exactly_rpm_and_share_one_request_log(pg_url, fake, start_proxy, monkeypatch,
                                                                 tmp_path, capsys):
    common = dict(upstream_base_url=fake.url, database_url=pg_url, api_keys=[KEY], admin_api_keys=[ADMIN],
                  rate_limit_rpm=5)
    first, second = start_proxy(**common), start_proxy(**common)
    results = asyncio.run(burst([first, second], 12))
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(ok) == 5 and len(refused) == 7, results
    assert len(fake.requests) == 5
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == [0, 1, 2, 3, 4]
    assert {r.headers["x-ratelimit-limit-requests"] for r in ok} == {"5"}
    assert all(1 <= int(e.response.headers["retry-after"]) <= 60 for e in refused)

    assert reported(second, 5)["current"]["requests"] == 5  # the exchanges of both replicas
    assert not (tmp_path / "data" / "requests.sqlite").exists()

    from app.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", pg_url)
    capsys.readouterr()  # the servers' logs so far
    assert main(["report", "--days", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["current"]["requests"] == 5
