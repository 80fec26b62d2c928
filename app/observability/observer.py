"""What happened to each exchange, told to the metrics, the request log and the logs at once.

`Observer.finished(exchange, assembler)` is called once per exchange by the pipeline (success,
error or client gone); it only appends to buffers and bumps counters, so it costs microseconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from app.observability.metrics import Metrics
from app.observability.requestlog import BufferedLog, RequestRow
from app.tokens import count_messages, count_tokens

log = logging.getLogger("app.requests")
STAGE_KEYS = {"sync": "sync_ms", "embed": "embed_ms", "retrieval": "retrieval_ms", "build": "build_ms",
              "upstream_open": "upstream_ms"}


class Observer:
    """`spend_tokens(owner, tokens)`, when given, is told each finished exchange's tokens (the
    rate limiter's tokens-per-minute count, app.ratelimit)."""

    def __init__(self, metrics: Metrics | None, request_log: BufferedLog | None,
                 spend_tokens: Callable[[str | None, int], None] | None = None) -> None:
        self.metrics = metrics
        self.request_log = request_log
        self.spend_tokens = spend_tokens

    def retried(self, provider: str, error: BaseException | None) -> None:
        if self.metrics is not None:
            self.metrics.upstream_retries.labels(provider).inc()

    def finished(self, exchange: Any, assembler: Any) -> None:
        stages = _stages(exchange)
        total = time.perf_counter() - exchange.started
        ttft = exchange.first_token - exchange.started if exchange.first_token else None
        status = exchange.error.status if exchange.error else 200
        if self.metrics is not None:
            self._metrics(exchange, assembler, stages, status, ttft, total)
        if self.request_log is not None:
            self.request_log.add(_row(exchange, assembler, stages, status, ttft, total))
        if self.spend_tokens is not None and assembler is not None:
            self.spend_tokens(getattr(exchange, "owner", None), _tokens(exchange, assembler))
        log.info("exchange finished", extra={"model": exchange.model, "provider": exchange.provider,
                                             "status": status, "total_ms": round(total * 1000, 2)})

    def _metrics(self, exchange: Any, assembler: Any, stages: dict[str, float], status: int,
                 ttft: float | None, total: float) -> None:
        m = self.metrics
        m.observe_exchange(model=exchange.model, provider=exchange.provider, status=str(status), ttft=ttft,
                           total=total, stages=stages)
        if exchange.error is not None and (status >= 500 or status == 429):
            m.upstream_errors.labels(exchange.provider or "none", exchange.error.code or str(status)).inc()
        usage = getattr(assembler, "usage", None)
        if usage is not None:
            m.tokens.labels("prompt").inc(usage.prompt_tokens)
            m.tokens.labels("completion").inc(usage.completion_tokens)
        turn = exchange.memory
        if turn is not None and getattr(turn, "recalled", None):
            m.memories.inc(len(turn.recalled))


def _tokens(exchange: Any, assembler: Any) -> int:
    """Prompt and reply tokens: the upstream's count, else ours."""
    usage = getattr(assembler, "usage", None)
    if usage is not None:
        return usage.prompt_tokens + usage.completion_tokens
    return count_messages(exchange.upstream.messages) + count_tokens(assembler.text)


def _stages(exchange: Any) -> dict[str, float]:
    stages = dict(exchange.timings)
    turn = exchange.memory
    if turn is not None:
        stages.update(getattr(turn, "timings", {}))
    stages.pop("memory", None)
    return stages


def _row(exchange: Any, assembler: Any, stages: dict[str, float], status: int, ttft: float | None,
         total: float) -> RequestRow:
    usage = getattr(assembler, "usage", None)
    turn = exchange.memory
    error = exchange.error
    last = exchange.request.messages[-1].content
    ms = {column: round(stages[key] * 1000, 3) for key, column in STAGE_KEYS.items() if key in stages}
    return RequestRow(
        ts=time.time(), request_id=exchange.cid, session_id=getattr(turn, "session_id", None),
        model=exchange.model, provider=exchange.provider or None, status=status,
        error_code=error.code if error else None, error_message=error.message[:300] if error else None,
        stream=bool(exchange.request.stream), ttft_ms=None if ttft is None else round(ttft * 1000, 3),
        total_ms=round(total * 1000, 3), prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        memories=len(turn.recalled) if turn is not None else None,
        finish_reason=getattr(assembler, "finish_reason", None) if assembler else None,
        user_chars=len(last) if isinstance(last, str) else None, owner=getattr(exchange, "owner", None), **ms)
