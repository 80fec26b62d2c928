"""The performance report: percentiles, errors, conversation patterns, trends and suggestions.

Pure: `build_report(current, previous, days)` takes request-log rows of two equal periods and
returns a JSON-ready dict. Suggestions are ranked by severity (high, medium, low) and each one
carries the figures that triggered it.

    report = build_report(rows_this_week, rows_last_week, days=7)
    report["suggestions"][0]  # {"severity": "high", "title": ..., "evidence": {...}}
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from app.observability.requestlog import RequestRow

STAGES = ("sync_ms", "embed_ms", "retrieval_ms", "build_ms", "upstream_ms")
SEVERITY = {"high": 0, "medium": 1, "low": 2}


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of the values, None when there are none."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    rank = max(1, math.ceil(q / 100 * len(data)))
    return data[rank - 1]


def latency(values: Iterable[float | None]) -> dict[str, float | None]:
    data = [v for v in values if v is not None]
    return {"count": len(data), "p50": percentile(data, 50), "p95": percentile(data, 95),
            "p99": percentile(data, 99)}


def summary(rows: Sequence[RequestRow]) -> dict[str, Any]:
    errors = [r for r in rows if r.status >= 400]
    by_model: dict[str, list[RequestRow]] = defaultdict(list)
    for row in rows:
        by_model[row.model].append(row)
    return {
        "requests": len(rows),
        "error_rate": len(errors) / len(rows) if rows else 0.0,
        "ttft_ms": latency(r.ttft_ms for r in rows),
        "total_ms": latency(r.total_ms for r in rows),
        "stages_ms": {s.removesuffix("_ms"): latency(getattr(r, s) for r in rows) for s in STAGES},
        "per_model": {m: {"requests": len(rs), "ttft_ms": latency(r.ttft_ms for r in rs),
                          "total_ms": latency(r.total_ms for r in rs),
                          "error_rate": sum(r.status >= 400 for r in rs) / len(rs)} for m, rs in by_model.items()},
        "top_errors": top_errors(errors),
        "patterns": patterns(rows),
    }


def top_errors(errors: Sequence[RequestRow], n: int = 10) -> list[dict[str, Any]]:
    counts = Counter((r.provider, r.status, r.error_code, r.error_message) for r in errors)
    last = {}
    for r in errors:
        last[(r.provider, r.status, r.error_code, r.error_message)] = r.ts
    return [{"provider": k[0], "status": k[1], "code": k[2], "message": k[3], "count": c, "last_seen": last[k]}
            for k, c in counts.most_common(n)]


def patterns(rows: Sequence[RequestRow]) -> dict[str, Any]:
    turns = Counter(r.session_id for r in rows if r.session_id)
    lengths = [r.user_chars for r in rows if r.user_chars is not None]
    return {"sessions": len(turns),
            "turns_per_session": latency(turns.values()),
            "user_message_chars": latency(lengths),
            "memories_per_request": (sum(r.memories or 0 for r in rows) / len(rows)) if rows else 0.0}


def compare(current: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    def delta(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    return {"requests": current["requests"] - previous["requests"],
            "error_rate": current["error_rate"] - previous["error_rate"],
            "ttft_p50_ms": delta(current["ttft_ms"]["p50"], previous["ttft_ms"]["p50"]),
            "total_p95_ms": delta(current["total_ms"]["p95"], previous["total_ms"]["p95"])}


def suggestions(rows: Sequence[RequestRow], *, retrieval_budget_ms: float = 10.0) -> list[dict[str, Any]]:
    found = _provider_errors(rows) + _retrieval_slow(rows, retrieval_budget_ms) + _cut_replies(rows)
    return sorted(found, key=lambda s: SEVERITY[s["severity"]])


def _provider_errors(rows: Sequence[RequestRow], min_requests: int = 5) -> list[dict[str, Any]]:
    out = []
    by_provider: dict[str, list[RequestRow]] = defaultdict(list)
    for row in rows:
        by_provider[row.provider or "none"].append(row)
    for provider, rs in by_provider.items():
        rate = sum(r.status >= 400 for r in rs) / len(rs)
        if len(rs) >= min_requests and rate > 0.10:
            out.append({"severity": "high", "title": f"error rate {rate:.0%} on provider {provider}",
                        "advice": "check the upstream's health and key; add a failover route (ROUTES)",
                        "evidence": {"provider": provider, "requests": len(rs), "error_rate": rate}})
    return out


def _retrieval_slow(rows: Sequence[RequestRow], budget_ms: float) -> list[dict[str, Any]]:
    p95 = percentile([r.retrieval_ms for r in rows if r.retrieval_ms is not None], 95)
    if p95 is None or p95 <= budget_ms:
        return []
    return [{"severity": "medium", "title": f"memory retrieval p95 {p95:.1f} ms is over its {budget_ms:g} ms budget",
             "advice": "lower RETRIEVAL_K, or split very long sessions; check EMBEDDING_BACKEND is onnx",
             "evidence": {"retrieval_p95_ms": p95, "budget_ms": budget_ms}}]


def _cut_replies(rows: Sequence[RequestRow], share: float = 0.3, min_requests: int = 5) -> list[dict[str, Any]]:
    done = [r for r in rows if r.finish_reason]
    cut = sum(r.finish_reason == "length" for r in done)
    if len(done) < min_requests or cut / len(done) < share:
        return []
    return [{"severity": "low", "title": f"{cut / len(done):.0%} of replies were cut by max_tokens",
             "advice": "raise max_tokens in the client, or BUDGET_RESPONSE",
             "evidence": {"replies": len(done), "cut_by_length": cut}}]


def timeline(rows: Sequence[RequestRow], since: float, until: float, buckets: int = 24) -> list[dict[str, Any]]:
    """Latency over time: the period cut into `buckets` equal spans; for each span with requests,
    percentiles of the whole request per model and of each stage.

        >>> [b["start"] for b in timeline([RequestRow(ts=5.0, request_id="r", session_id=None, model="m",
        ...     provider=None, status=200, total_ms=9.0)], since=0.0, until=10.0, buckets=2)]
        [5.0]
    """
    width = (until - since) / buckets
    spans: dict[int, list[RequestRow]] = defaultdict(list)
    for row in rows:
        if since <= row.ts < until:
            spans[min(buckets - 1, int((row.ts - since) / width))].append(row)
    return [_span(since + i * width, width, spans[i]) for i in sorted(spans)]


def _span(start: float, width: float, rows: list[RequestRow]) -> dict[str, Any]:
    by_model: dict[str, list[RequestRow]] = defaultdict(list)
    for row in rows:
        by_model[row.model].append(row)
    return {"start": start, "end": start + width, "requests": len(rows),
            "models": {m: latency(r.total_ms for r in rs) for m, rs in by_model.items()},
            "stages": {s.removesuffix("_ms"): latency(getattr(r, s) for r in rows) for s in STAGES}}


def build_report(current: Sequence[RequestRow], previous: Sequence[RequestRow], days: float,
                 until: float | None = None) -> dict[str, Any]:
    """`until` ends the current period (default: the newest row); `timeline` cuts it into spans."""
    now, before = summary(current), summary(previous)
    end = until if until is not None else max((r.ts for r in current), default=0.0) + 1
    return {"object": "report", "days": days, "current": now, "previous": before,
            "change": compare(now, before), "suggestions": suggestions(current),
            "timeline": timeline(current, end - days * 86400, end)}
