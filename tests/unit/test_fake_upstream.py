"""The fake model server paces its reply like a model: tokens take time, the finish and usage do not."""

from __future__ import annotations

import json
import time

import httpx

from app.fakes.openai_server import FakeUpstream
from app.fakes.serve import serving


def test_a_paced_reply_spaces_its_words_and_ends_at_once_after_the_last_one():
    with serving(FakeUpstream(chunk_delay=0.05).app()) as url:
        body = {"model": "fake-model", "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "hello there"}]}
        arrivals = []
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=10) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    arrivals.append((time.perf_counter(), json.loads(line[6:])))
    worded = [t for t, chunk in arrivals if any(c["delta"].get("content") for c in chunk["choices"])]
    ends = [t for t, chunk in arrivals if not chunk["choices"] or chunk["choices"][0]["finish_reason"]]
    assert len(worded) >= 2 and len(ends) == 2  # the finish, then the usage
    assert min(b - a for a, b in zip(worded, worded[1:])) > 0.04
    assert max(ends) - worded[-1] < 0.04


def test_random_faults_cover_every_kind_at_the_rate_asked():
    from app.fakes.openai_server import Faults

    faults = Faults(rate=0.5, seed=3)
    drawn = [faults.draw() for _ in range(2000)]
    failed = [b for b in drawn if b is not None]
    assert 900 < len(failed) < 1100
    assert set(faults.seen) == {"429", "500", "stall", "cut", "malformed"} and sum(faults.seen.values()) == len(failed)
    assert Faults(rate=0.0).draw() is None
