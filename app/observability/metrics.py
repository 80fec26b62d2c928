"""Prometheus metrics, one registry per app (so several apps in one process never collide).

    metrics = Metrics()
    metrics.observe_exchange(model="m", provider="p", status="200", ttft=0.12, total=0.9, stages={...})
    body = metrics.render()          # text exposition format for GET /metrics
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("proxy_requests_total", "Chat completion requests",
                                ["model", "provider", "status"], registry=r)
        self.ttft = Histogram("proxy_time_to_first_token_seconds", "Time to first token",
                              ["model", "provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.total = Histogram("proxy_request_duration_seconds", "Whole request time",
                               ["model", "provider"], buckets=LATENCY_BUCKETS, registry=r)
        self.stage = Histogram("proxy_stage_duration_seconds", "Time per pipeline stage",
                               ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.upstream_errors = Counter("proxy_upstream_errors_total", "Upstream errors by provider and code",
                                       ["provider", "code"], registry=r)
        self.upstream_retries = Counter("proxy_upstream_retries_total", "Upstream retries", ["provider"],
                                        registry=r)
        self.tokens = Counter("proxy_tokens_total", "Tokens by kind", ["kind"], registry=r)
        self.memories = Counter("proxy_memories_injected_total", "Memories put into contexts", registry=r)
        self.rate_limited = Counter("proxy_rate_limited_total", "Requests refused by a key's rate limit",
                                    ["limit"], registry=r)

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time (active sessions, queue depth…)."""
        Gauge(name, doc, registry=self.registry).set_function(read)

    def counter(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A counter kept elsewhere (a plain int that only grows), read at scrape time; `name`
        ends in `_total` as Prometheus counters do."""
        self.registry.register(_ReadCounter(name, doc, read))

    def observe_exchange(self, *, model: str, provider: str, status: str, ttft: float | None, total: float,
                         stages: dict[str, float]) -> None:
        self.requests.labels(model, provider or "none", status).inc()
        if ttft is not None:
            self.ttft.labels(model, provider).observe(ttft)
        self.total.labels(model, provider or "none").observe(total)
        for stage, seconds in stages.items():
            self.stage.labels(stage).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ReadCounter:
    """A collector exposing one counter whose value is read from a function."""

    def __init__(self, name: str, doc: str, read: Callable[[], float]) -> None:
        self.name = name.removesuffix("_total")
        self.doc = doc
        self.read = read

    def describe(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.doc)]

    def collect(self) -> list[CounterMetricFamily]:
        return [CounterMetricFamily(self.name, self.doc, value=float(self.read()))]
