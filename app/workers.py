"""Several worker processes: served together from PostgreSQL, refused on SQLite files.

On SQLite (no DATABASE_URL) one process owns DATA_DIR: its caches, its per-conversation locks
and the files' one writer are in its RAM. So a second process is refused, two ways:

- `memory-proxy serve --workers N` (or WORKERS=N) with N > 1 exits with code 2 before anything
  starts (`refusal`);
- any other second process on the same DATA_DIR (`uvicorn --workers N`, a second `serve`) finds
  the lock file that the first one holds (`DataDirLock`, a POSIX lock the kernel drops when its
  process ends, even on SIGKILL) and fails its start-up; uvicorn's supervisor then stops them all.

    message = refusal(settings, workers=2)      # None when allowed
    with DataDirLock(settings.data_dir): ...    # raises WorkersRefused when another process serves it
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from app.memory.store.postgres.pool import is_postgres_url

LOCK_NAME = "serving.lock"


class WorkersRefused(RuntimeError):
    """A second process on SQLite files."""


def refusal(settings: Any, workers: int) -> str | None:
    """Why `workers` processes may not serve these settings, or None when they may."""
    if workers <= 1 or is_postgres_url(settings.database_url):
        return None
    return (f"{workers} workers refused: on SQLite (DATA_DIR={settings.data_dir}) one process serves the "
            "conversations. Set DATABASE_URL=postgresql://... to serve them from several, or run one worker.")


class DataDirLock:
    """Held while a process serves DATA_DIR's SQLite files; a second process cannot take it.

    A POSIX (`lockf`) lock belongs to the process: apps started in one process (tests) share it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WorkersRefused(f"DATA_DIR {self.path.parent} is already served by process {holder}: on SQLite "
                                 "one process serves the conversations. Set DATABASE_URL=postgresql://... to "
                                 "serve them from several workers.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *_: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None
