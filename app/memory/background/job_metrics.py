"""The job queue seen from outside: its line in `/health` and its series in `/metrics`.

    proxy_jobs_queue_depth{kind="score"} 3        # waiting (the whole queue, on PostgreSQL)
    proxy_jobs_claimed{kind="score"} 1            # being done by this process now
    proxy_jobs_failed_total{kind="summary"} 2     # by this process, since it started
    proxy_jobs_reclaimed_total{kind="score"} 1    # taken over from a replica whose lease ran out

Read at scrape time from the queue's counters and its last read of the table (refreshed every
JOBS_POLL_SECONDS), so a scrape never waits for the database.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from app.memory.background.jobs import JobQueue, QueueState


def queue_health(backend: str, state: QueueState) -> str:
    """`/health`'s line for the queue.

        >>> queue_health("local", QueueState(waiting=2, claimed=1, oldest=3.04))
        'ok (local: 2 waiting, 1 claimed, oldest 3.0 s)'
    """
    return f"ok ({backend}: {state.waiting} waiting, {state.claimed} claimed, oldest {state.oldest:.1f} s)"


class JobCollector:
    """A Prometheus collector over a `JobQueue` (register it on the app's registry)."""

    def __init__(self, jobs: JobQueue) -> None:
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        kinds = sorted(self.jobs.stats)
        depth = GaugeMetricFamily("proxy_jobs_queue_depth", "Background jobs waiting", labels=["kind"])
        claimed = GaugeMetricFamily("proxy_jobs_claimed", "Background jobs this process is doing now",
                                    labels=["kind"])
        failed = CounterMetricFamily("proxy_jobs_failed", "Background jobs that failed here", labels=["kind"])
        reclaimed = CounterMetricFamily("proxy_jobs_reclaimed", "Background jobs taken over from a replica "
                                        "whose lease ran out", labels=["kind"])
        for kind in kinds:
            stats = self.jobs.stats[kind]
            depth.add_metric([kind], self.jobs.depth(kind))
            claimed.add_metric([kind], self.jobs.claimed(kind))
            failed.add_metric([kind], stats.failed)
            reclaimed.add_metric([kind], stats.reclaimed)
        yield from (depth, claimed, failed, reclaimed)
