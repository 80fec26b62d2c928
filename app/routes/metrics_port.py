"""`GET /metrics` on its own port on 127.0.0.1 (METRICS_PORT), for a scraper on the same machine.

    stop = await serve_metrics(metrics, 9464)     # in the lifespan
    await stop()                                   # at shutdown

The main port then answers `/metrics` with a 404 that names this port, and no key is needed here:
only this machine can connect. A uvicorn server on the app's own event loop, owned by the lifespan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.observability.metrics import CONTENT_TYPE, Metrics

LOOPBACK = "127.0.0.1"
START_SECONDS = 10.0


async def serve_metrics(metrics: Metrics, port: int) -> Callable[[], Awaitable[None]]:
    """Start serving; returns the coroutine function that stops the server and waits for it."""
    async def scrape(_: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    app = Starlette(routes=[Route("/metrics", scrape)])
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(), name="metrics-port")
    async with asyncio.timeout(START_SECONDS):
        while not server.started:
            if task.done():
                await task
                raise RuntimeError(f"the metrics port {LOOPBACK}:{port} could not be opened (METRICS_PORT)")
            await asyncio.sleep(0.01)

    async def stop() -> None:
        server.should_exit = True
        await task

    return stop
