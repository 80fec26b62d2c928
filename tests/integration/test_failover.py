"""Failover along a ROUTES chain and the circuit breaker, through the proxy with the openai SDK.

Upstreams are real servers on 127.0.0.1: two OpenAI fakes ("a", "b") and the Gemini fake; a dead
upstream is a closed port. `X-Provider` names who served.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from app.fakes.gemini_server import Behaviour as GeminiBehaviour
from app.fakes.gemini_server import FakeGemini
from app.fakes.openai_server import Behaviour, FakeUpstream
from app.fakes.serve import free_port, serving

MSG = [{"role": "user", "content": "Hello there"}]


def served(fake):
    with serving(fake.app()) as url:
        fake.url = url
        yield fake


@pytest.fixture
def a():
    yield from served(FakeUpstream())


@pytest.fixture
def b():
    yield from served(FakeUpstream())


@pytest.fixture
def gemini():
    yield from served(FakeGemini(api_key="k"))


def chain(start_proxy, first: str, second: str, **overrides) -> openai.OpenAI:
    """A proxy where "my-model" goes to `first`, then `second` (each "name=base_url" or "gemini=url")."""
    upstreams, links, extra = [], [], {}
    for link in (first, second):
        name, url = link.split("=", 1)
        if name == "gemini":
            extra.update(gemini_api_key="k", gemini_base_url=url)
            links.append("gemini:gemini-2.5-flash")
        else:
            upstreams.append({"name": name, "base_url": url + "/v1"})
            links.append(f"{name}:fake-model")
    # The request log is off: these tests look at routing only, and stop the proxy right after a request.
    url = start_proxy(upstreams=upstreams, routes={"my-model": links},
                      **extra, **overrides)
    return openai.OpenAI(base_url=url, api_key="k", max_retries=0, timeout=10)


def ask(client: openai.OpenAI, **extra) -> tuple[str, str]:
    """(X-Provider, reply text) of one non-streamed request."""
    raw = client.chat.completions.with_raw_response.create(model="my-model", messages=MSG, **extra)
    return raw.headers["x-provider"], raw.parse().choices[0].message.content


def test_first_upstream_down_second_serves(start_proxy, b):
    client = chain(start_proxy, f"down=http://127.0.0.1:{free_port()}", f"b={b.url}")
    b.script.append(Behaviour(text="from b"))
    assert ask(client) == ("b", "from b")


def test_first_upstream_slow_past_first_byte_timeout(start_proxy, a, b):
    client = chain(start_proxy, f"a={a.url}", f"b={b.url}", upstream_first_byte_timeout=0.2,
                   upstream_max_retries=0)
    a.script.append(Behaviour(delay=0.6))
    started = time.monotonic()
    assert ask(client)[0] == "b"
    assert time.monotonic() - started < 1.0
    assert len(a.requests) == 1 and len(b.requests) == 1


def test_first_upstream_500_second_serves_streaming(start_proxy, a, b):
    client = chain(start_proxy, f"a={a.url}", f"b={b.url}")
    a.script.extend([Behaviour(status=500)] * 3)
    b.script.append(Behaviour(text="streamed by b"))
    with client.chat.completions.with_streaming_response.create(model="my-model", messages=MSG,
                                                                stream=True) as response:
        assert response.headers["x-provider"] == "b"
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == "streamed by b"
    assert len(a.requests) == 3


def test_openai_upstream_fails_over_to_gemini(start_proxy, a, gemini):
    client = chain(start_proxy, f"a={a.url}", f"gemini={gemini.url}", upstream_max_retries=0)
    a.script.append(Behaviour(status=503))
    gemini.script.append(GeminiBehaviour(text="from gemini"))
    assert ask(client) == ("gemini", "from gemini")
    assert gemini.paths == ["gemini-2.5-flash:streamGenerateContent"]


def test_gemini_slow_past_first_byte_timeout_fails_over(start_proxy, gemini, b):
    client = chain(start_proxy, f"gemini={gemini.url}", f"b={b.url}", upstream_first_byte_timeout=0.2,
                   upstream_max_retries=0)
    gemini.script.append(GeminiBehaviour(delay=0.6))
    assert ask(client)[0] == "b"
    assert len(gemini.requests) == 1


def test_gemini_quota_with_a_long_retry_delay_fails_over_at_once(start_proxy, gemini, b):
    client = chain(start_proxy, f"gemini={gemini.url}", f"b={b.url}")
    gemini.script.append(GeminiBehaviour(status=429, retry_delay=30))
    started = time.monotonic()
    assert ask(client)[0] == "b"
    assert time.monotonic() - started < 2.0 and len(gemini.requests) == 1


def test_long_retry_after_alone_is_relayed_at_once(start_proxy, a):
    url = start_proxy(upstream_base_url=a.url + "/v1")
    a.script.append(Behaviour(status=429, retry_after=30))
    started = time.monotonic()
    response = httpx.post(url + "/chat/completions", json={"model": "fake-model", "messages": MSG})
    assert response.status_code == 429 and response.headers["retry-after"] == "30"
    assert time.monotonic() - started < 2.0 and len(a.requests) == 1


def test_a_400_is_relayed_without_failover_and_never_opens_the_breaker(start_proxy, a, b):
    client = chain(start_proxy, f"a={a.url}", f"b={b.url}", circuit_failures=2)
    a.script.extend([Behaviour(status=400, text="context too long")] * 3)
    for _ in range(3):
        with pytest.raises(openai.BadRequestError):
            ask(client)
    assert ask(client)[0] == "a"
    assert len(a.requests) == 4 and b.requests == []


def test_an_answered_error_between_failures_resets_the_count(start_proxy, a, b):
    client = chain(start_proxy, f"a={a.url}", f"b={b.url}", circuit_failures=2, upstream_max_retries=0)
    a.script.extend([Behaviour(status=500), Behaviour(status=400), Behaviour(status=500)])
    assert ask(client)[0] == "b"
    with pytest.raises(openai.BadRequestError):
        ask(client)
    assert ask(client)[0] == "b"
    assert ask(client)[0] == "a", "the 400 showed the upstream alive: two failures, but not in a row"


def test_breaker_opens_after_failures_skips_the_upstream_and_closes_after_reset(start_proxy, a, b):
    client = chain(start_proxy, f"a={a.url}", f"b={b.url}", circuit_failures=2, circuit_reset_seconds=0.5,
                   upstream_max_retries=0)
    a.script.extend([Behaviour(status=500)] * 2)
    assert [ask(client)[0] for _ in range(2)] == ["b", "b"]
    assert len(a.requests) == 2
    assert ask(client)[0] == "b"
    assert len(a.requests) == 2, "an open breaker skips the failing upstream"
    time.sleep(0.55)
    assert ask(client)[0] == "a", "after CIRCUIT_RESET_SECONDS one request tries it again"
    assert len(a.requests) == 3 and len(b.requests) == 3


def test_half_open_sends_one_trial_upstream_while_the_others_fail_over(start_proxy, a, b):
    client = chain(start_proxy, f"a={a.url}", f"b={b.url}", circuit_failures=1, circuit_reset_seconds=0.3,
                   upstream_max_retries=0)
    a.script.append(Behaviour(status=500))
    assert ask(client)[0] == "b"
    time.sleep(0.35)
    a.script.append(Behaviour(text="trial", delay=0.6))
    with ThreadPoolExecutor(4) as pool:
        trial = pool.submit(ask, client)
        time.sleep(0.15)  # the trial is out, waiting on a
        others = [pool.submit(ask, client) for _ in range(3)]
        served = [f.result()[0] for f in others]
    assert trial.result() == ("a", "trial")
    assert served == ["b"] * 3 and len(a.requests) == 2, "one trial call, the rest skipped a"
    assert ask(client)[0] == "a", "the trial's success closed the circuit"


def test_every_route_failing_relays_the_last_error(start_proxy, a, b):
    client = chain(start_proxy, f"a={a.url}", f"b={b.url}", upstream_max_retries=0)
    a.script.append(Behaviour(status=500, text="a broke"))
    b.script.append(Behaviour(status=502, text="b broke"))
    with pytest.raises(openai.APIStatusError) as info:
        ask(client)
    assert info.value.status_code == 502 and info.value.body["message"] == "b broke"
