"""Which failures mean the database is out of reach for now, rather than a fault in the proxy.

    if is_outage(exc):    # answered 503 with Retry-After; the client's retry records the turn once

A request that meets one gets an OpenAI-style 503 (`StoreUnavailable`) instead of a 500: the
openai SDK and most clients retry a 503 by themselves, and since nothing of the request was
committed, the retry records its turn exactly once.
"""

from __future__ import annotations

import sqlite3
from types import TracebackType

import asyncpg

# The server refused, dropped or could not take the connection (SQLSTATE classes 08, 53, 57P).
_SERVER_GONE = (asyncpg.PostgresConnectionError, asyncpg.InsufficientResourcesError,
                asyncpg.OperatorInterventionError, asyncpg.ConnectionDoesNotExistError)
_SQLITE_BUSY = ("database is locked", "database table is locked")
_DRIVER = "asyncpg"


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, _SERVER_GONE):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return any(text in str(exc) for text in _SQLITE_BUSY)
    if isinstance(exc, (OSError, TimeoutError)):  # a socket that is gone or silent, seen by the driver
        return _raised_in_driver(exc.__traceback__)
    return False


def _raised_in_driver(tb: TracebackType | None) -> bool:
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module == _DRIVER or module.startswith(_DRIVER + "."):
            return True
        tb = tb.tb_next
    return False
