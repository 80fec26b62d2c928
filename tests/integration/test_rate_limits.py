"""Per-key limits through the real SDK: exactly N of a concurrent burst get through, the rest a 429 with
Retry-After, and every chat answer carries OpenAI's x-ratelimit-* headers."""

from __future__ import annotations

import asyncio
import re

import httpx
import openai
import pytest

KEY_A, KEY_B = "sk-alice-0123456789", "sk-bob-9876543210"
MSG = [{"role": "user", "content": "Hello there"}]
DURATION = re.compile(r"(\d+h)?(\d+m)?\d+(\.\d+)?s|\d+ms")


async def burst(url: str, key: str, n: int) -> list[object]:
    client = openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=30)
    async with client:
        calls = [client.chat.completions.with_raw_response.create(model="fake-model", messages=MSG, stream=i % 2 == 0)
                 for i in range(n)]
        return await asyncio.gather(*calls, return_exceptions=True)


def test_exactly_the_limit_of_a_concurrent_burst_succeeds_and_the_rest_get_429(fake, start_proxy):
    url = start_proxy(upstream_base_url=fake.url, api_keys=[KEY_A, KEY_B], rate_limit_rpm=5)
    results = asyncio.run(burst(url, KEY_A, 12))
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(ok) == 5 and len(refused) == 7, results
    assert len(fake.requests) == 5  # the refused never reached the upstream
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == [0, 1, 2, 3, 4]
    for response in ok:
        assert response.headers["x-ratelimit-limit-requests"] == "5"
        assert DURATION.fullmatch(response.headers["x-ratelimit-reset-requests"])
    error = refused[0]
    assert error.status_code == 429 and error.code == "rate_limit_exceeded" and error.body["type"] == "requests"
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert "per minute" in error.message
    other = asyncio.run(burst(url, KEY_B, 1))[0]  # another key has its own window
    assert not isinstance(other, Exception) and other.headers["x-ratelimit-remaining-requests"] == "4"
    scraped = httpx.get(url.removesuffix("/v1") + "/metrics", headers={"Authorization": f"Bearer {KEY_A}"}).text
    assert 'proxy_rate_limited_total{limit="requests"} 7.0' in scraped


def test_tokens_per_minute_are_charged_after_each_answer(fake, start_proxy):
    url = start_proxy(upstream_base_url=fake.url, api_keys=[KEY_A], rate_limit_tpm=20)
    client = openai.OpenAI(base_url=url, api_key=KEY_A, max_retries=0)
    first = client.chat.completions.with_raw_response.create(model="fake-model", messages=MSG)
    assert first.headers["x-ratelimit-limit-tokens"] == "20" and first.headers["x-ratelimit-remaining-tokens"] == "20"
    assert "x-ratelimit-limit-requests" not in first.headers  # only the limits in force
    spent = first.parse().usage.total_tokens
    second = client.chat.completions.with_raw_response.create(model="fake-model", messages=MSG, stream=True)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 20 - spent
    list(second.parse())
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="fake-model", messages=MSG)
    assert refused.value.body["type"] == "tokens" and refused.value.response.headers["retry-after"]
    assert len(fake.requests) == 2


def test_errors_after_the_count_carry_the_headers_too(fake, start_proxy):
    url = start_proxy(upstream_base_url=fake.url, rate_limit_rpm=3)  # no keys: one window for everyone
    missing = httpx.post(f"{url}/chat/completions", json={"model": "no-such-model", "messages": MSG})
    assert missing.status_code == 404 and missing.headers["x-ratelimit-remaining-requests"] == "2"
    bad = httpx.post(f"{url}/chat/completions", json={"model": "fake-model"})
    assert bad.status_code == 400 and bad.headers["x-ratelimit-remaining-requests"] == "1"
    assert httpx.get(f"{url}/models").status_code == 200  # only chat completions count
    assert httpx.post(f"{url}/chat/completions", json={"model": "fake-model", "messages": MSG}).status_code == 200
    assert httpx.post(f"{url}/chat/completions", json={"model": "fake-model", "messages": MSG}).status_code == 429
