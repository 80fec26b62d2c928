"""`GET /metrics` (Prometheus), `GET /v1/report?days=N` and `GET /v1/sessions/{id}/stats`.

With keys in use, `/metrics` needs one (or is served on its own loopback port, METRICS_PORT), the
report needs an admin key, and a session's stats are its owner's (404 for anyone else's).
"""

from __future__ import annotations

import time
from collections import Counter

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.errors import NotFound
from app.observability.metrics import CONTENT_TYPE
from app.observability.report import build_report, latency
from app.routes.deps import AdminDep, SessionMemoryDep, StateDep

router = APIRouter()


def _log(state):
    if getattr(state, "request_log", None) is None:
        raise NotFound("the request log is switched off (REQUEST_LOG_ENABLED=false)", code="request_log_disabled")
    return state.request_log


@router.get("/metrics")
async def metrics(state: StateDep):
    if getattr(state, "metrics", None) is None:
        raise NotFound("metrics are switched off (METRICS_ENABLED=false)", code="metrics_disabled")
    if state.settings.metrics_port:
        raise NotFound(f"metrics are served on 127.0.0.1:{state.settings.metrics_port} (METRICS_PORT)",
                       code="metrics_elsewhere")
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/v1/report")
async def report(state: StateDep, _: AdminDep, days: float = Query(7.0, gt=0, le=3650)):
    now = time.time()
    span = days * 86400
    log = _log(state)
    current = await log.rows(since=now - span, until=now + 1)
    previous = await log.rows(since=now - 2 * span, until=now - span)
    return build_report(current, previous, days, until=now + 1)


@router.get("/v1/sessions/{session_id}/stats")
async def session_stats(session_id: str, state: StateDep, memory: SessionMemoryDep):
    emotions = (await memory.emotions(session_id)).get("shares", {})  # 404 unless the caller's
    rows = await _log(state).rows(session_id=session_id, owner=memory.owner)
    ok = [r for r in rows if r.status < 400]
    return {"id": session_id, "object": "session.stats", "exchanges": len(rows),
            "success_rate": len(ok) / len(rows) if rows else None,
            "avg_total_ms": sum(r.total_ms or 0 for r in rows) / len(rows) if rows else None,
            "ttft_ms": latency(r.ttft_ms for r in rows),
            "tokens": {"prompt": sum(r.prompt_tokens or 0 for r in rows),
                       "completion": sum(r.completion_tokens or 0 for r in rows)},
            "models": dict(Counter(r.model for r in rows)), "emotions": emotions}
