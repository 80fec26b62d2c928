"""Structured logs: one JSON object per line, with the request and session ids on every line.

Message text and API keys never reach the logs unless LOG_CONTENT is on. Lines go to stdout
and to `logs/proxy.log`, rotated by size.

    configure(level="INFO", log_dir=Path("logs"), json_lines=True)
    with log_context(request_id="req-1", session_id="s1"):
        logging.getLogger("app").info("upstream opened", extra={"provider": "local"})
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
session_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("session_id", default=None)

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
                "msg": record.getMessage(), "request_id": request_id.get(), "session_id": session_id.get()}
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        ids = f" [{request_id.get() or '-'} {session_id.get() or '-'}]"
        return f"{stamp} {record.levelname:<7} {record.name}{ids} {record.getMessage()}"


def configure(level: str, log_dir: Path | None, json_lines: bool = True, max_bytes: int = 20_000_000,
              backups: int = 5) -> None:
    """Install handlers on the `app` logger (idempotent: earlier handlers are replaced)."""
    logger = logging.getLogger("app")
    logger.setLevel(level.upper())
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = JsonFormatter() if json_lines else PlainFormatter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(log_dir / "proxy.log", maxBytes=max_bytes,
                                                             backupCount=backups, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)


@contextmanager
def log_context(*, request: str | None = None, session: str | None = None) -> Iterator[None]:
    tokens = [request_id.set(request) if request else None, session_id.set(session) if session else None]
    try:
        yield
    finally:
        for var, token in zip((request_id, session_id), tokens):
            if token is not None:
                var.reset(token)
