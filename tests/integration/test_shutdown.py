"""Stopping the service with background work queued ends it quietly and loses nothing.

The real command (`python -m app.cli serve`) runs as a child process; a few hundred messages are
loaded so the background embedding has work queued, then the child gets SIGTERM. It must exit
cleanly without a "Future exception was never retrieved" line, and a restart on the same data
finds every message and finishes the background work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.fakes.serve import free_port

ROOT = Path(__file__).resolve().parents[2]


def start(data: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PORT": str(port), "DATA_DIR": str(data), "LOG_DIR": str(data / "logs"),
           "LOG_JSON": "false", "MEMORY_ENABLED": "true", "SUMMARY_ENABLED": "false",
           "EMBEDDING_CACHE_DIR": os.environ.get("EMBEDDING_CACHE_DIR") or str(ROOT / "data" / "models"),
           "UPSTREAM_BASE_URL": "", "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], cwd=data, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code < 500:
                return child
        except httpx.HTTPError:
            time.sleep(0.1)
    child.kill()
    raise RuntimeError(child.communicate()[0])


def test_sigterm_with_background_work_queued_is_quiet_and_loses_nothing(tmp_path):
    port = free_port()
    child = start(tmp_path, port)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for batch in range(6):
            messages = [{"role": "user" if k % 2 == 0 else "assistant",
                         "content": f"Batch {batch} line {k}: the lighthouse keeper counts {k * 7} gulls today."}
                        for k in range(50)]
            assert httpx.post(f"{base}/sessions/quiet/messages", json={"messages": messages}).status_code == 200
    finally:
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=60)
    assert child.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises the signal it handled
    assert "never retrieved" not in output and "Traceback" not in output, output
    child = start(tmp_path, port)
    try:
        deadline = time.monotonic() + 60
        while (info := httpx.get(f"{base}/sessions/quiet").json())["pending"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert info["message_count"] == 300 and info["pending"] == 0
    finally:
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=60)
