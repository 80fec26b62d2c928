"""`GET /health`: each component's state, for curl checks and load balancers.

    $ curl -s localhost:8000/health
    {"status": "ok", "components": {"storage": "ok", "embedder": "ok (onnx)", "upstream:local": "ok"}}

Status is "ok" when every component is, "degraded" otherwise; the HTTP status stays 200 so the
service, which still serves memory and models, is not taken out of rotation by a dead upstream.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from app.routes.deps import StateDep

router = APIRouter()


@router.get("/health")
async def health(state: StateDep):
    checks = state.health_checks
    results = await asyncio.gather(*(check() for check in checks.values()), return_exceptions=True)
    components = {name: (f"error: {r}" if isinstance(r, BaseException) else r)
                  for name, r in zip(checks, results)}
    ok = all(str(v).startswith(("ok", "disabled", "not configured")) for v in components.values())
    return {"status": "ok" if ok else "degraded", "version": state.version, "components": components}
