"""The local job queue (one process): deduplicated per (kind, key), a job submitted while it runs
runs again, a failure is counted and not retried, stop drains what asks to be drained."""

from __future__ import annotations

import asyncio

import pytest

from app.memory.background.job_metrics import JobCollector, queue_health
from app.memory.background.jobs import Job, LocalJobs, QueueState, backoff
from app.observability.metrics import Metrics

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("attempts, base, cap, wait", [
    (1, 2.0, 300.0, 2.0),
    (2, 2.0, 300.0, 4.0),
    (4, 2.0, 300.0, 16.0),
    (9, 2.0, 300.0, 300.0),
    (1000, 2.0, 300.0, 300.0),
    (0, 0.5, 10.0, 0.5),
    (3, 0.5, 1.0, 1.0),
])
def test_backoff_doubles_from_the_base_up_to_the_cap(attempts, base, cap, wait):
    assert backoff(attempts, base, cap) == wait


@pytest.mark.parametrize("state, line", [
    (QueueState(), "ok (local: 0 waiting, 0 claimed, oldest 0.0 s)"),
    (QueueState(waiting=12, claimed=2, oldest=61.26), "ok (local: 12 waiting, 2 claimed, oldest 61.3 s)"),
])
def test_queue_health_line(state, line):
    assert queue_health("local", state) == line


class Recorder:
    """A handler that records each job and can be held mid-job."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.jobs: list[Job] = []
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def __call__(self, job: Job) -> None:
        self.jobs.append(job)
        self.entered.set()
        await self.gate.wait()
        if job.key in self.fail:
            raise RuntimeError("boom")


async def started(*kinds: str, drain: bool = True) -> tuple[LocalJobs, Recorder]:
    jobs, recorder = LocalJobs(), Recorder()
    for kind in kinds:
        jobs.handle(kind, recorder, drain=drain)
    await jobs.start()
    return jobs, recorder


async def test_a_waiting_job_is_queued_once_and_keeps_the_newest_note():
    jobs, recorder = await started("summary")
    recorder.gate.clear()
    jobs.submit("summary", "busy")
    await recorder.entered.wait()
    for note in ("m1", "m2"):
        jobs.submit("summary", "k", note)
    assert jobs.depth() == 1 and jobs.claimed() == 1
    recorder.gate.set()
    assert await jobs.idle(timeout=5)
    assert [(j.key, j.note) for j in recorder.jobs] == [("busy", ""), ("k", "m2")]
    await jobs.stop()


async def test_a_job_submitted_while_it_runs_runs_again_after():
    jobs, recorder = await started("score")
    recorder.gate.clear()
    jobs.submit("score", "k")
    await recorder.entered.wait()
    jobs.submit("score", "k")
    recorder.gate.set()
    assert await jobs.idle(timeout=5)
    assert [j.key for j in recorder.jobs] == ["k", "k"]
    assert jobs.stats["score"].done == 2
    await jobs.stop()


async def test_a_failed_job_is_counted_and_the_worker_goes_on():
    jobs, recorder = await started("score")
    recorder.fail = {"bad"}
    for key in ("bad", "good"):
        jobs.submit("score", key)
    assert await jobs.idle(timeout=5)
    assert [j.key for j in recorder.jobs] == ["bad", "good"]
    assert (jobs.stats["score"].failed, jobs.stats["score"].done) == (1, 1)
    await jobs.stop()


async def test_kinds_have_workers_of_their_own():
    jobs, recorder = LocalJobs(), Recorder()
    slow = Recorder()
    slow.gate.clear()
    jobs.handle("summary", slow)
    jobs.handle("score", recorder)
    await jobs.start()
    jobs.submit("summary", "k")
    jobs.submit("score", "k")
    assert await jobs.idle(["score"], timeout=5)  # not held up by the summary
    assert not await jobs.idle(["summary"], timeout=0.05)
    slow.gate.set()
    await jobs.stop()


async def test_stop_drains_kinds_that_ask_and_abandons_the_others():
    jobs = LocalJobs()
    done: list[str] = []

    async def quick(job: Job) -> None:
        await asyncio.sleep(0.01)
        done.append(job.kind + ":" + job.key)

    async def forever(job: Job) -> None:
        await asyncio.Event().wait()

    jobs.handle("score", quick)
    jobs.handle("summary", forever, drain=False)
    await jobs.start()
    for key in ("a", "b", "c"):
        jobs.submit("score", key)
    jobs.submit("summary", "a")
    await asyncio.wait_for(jobs.stop(timeout=5), 2)
    assert done == ["score:a", "score:b", "score:c"]


async def test_a_full_queue_drops_and_counts():
    jobs, recorder = LocalJobs(max_queue=2), Recorder()
    jobs.handle("score", recorder)
    for key in ("a", "b", "c"):
        jobs.submit("score", key)
    assert jobs.depth("score") == 2 and jobs.stats["score"].dropped == 1


async def test_state_and_metrics_show_the_queue():
    jobs, recorder = await started("score")
    recorder.gate.clear()
    jobs.submit("score", "a")
    await recorder.entered.wait()
    jobs.submit("score", "b")
    await asyncio.sleep(0.05)
    state = await jobs.state()
    assert (state.waiting, state.claimed) == (1, 1) and state.oldest >= 0.05
    metrics = Metrics()
    metrics.registry.register(JobCollector(jobs))
    text = metrics.render().decode()
    assert 'proxy_jobs_queue_depth{kind="score"} 1.0' in text
    assert 'proxy_jobs_claimed{kind="score"} 1.0' in text
    assert 'proxy_jobs_failed_total{kind="score"} 0.0' in text
    assert 'proxy_jobs_reclaimed_total{kind="score"} 0.0' in text
    recorder.gate.set()
    await jobs.stop()
