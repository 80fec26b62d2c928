"""Several worker processes: refused on SQLite (exit code 2, or a failed start for a second
process on the same DATA_DIR), served on PostgreSQL. The real command runs as a child process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.fakes.serve import free_port
from app.workers import DataDirLock, refusal

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("url, workers, refused", [
    (None, 1, False),
    (None, 2, True),
    ("postgresql://u@h/db", 4, False),
    ("postgres://u@h/db", 2, False),
    ("sqlite:///x", 2, True),
])
def test_refusal_names_database_url_when_sqlite_would_get_several_workers(tmp_path, url, workers, refused):
    message = refusal(Settings(_env_file=None, data_dir=tmp_path, database_url=url), workers)
    assert (message is not None) == refused
    assert message is None or "DATABASE_URL" in message


def env_for(data: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "WORKERS")}
    return {**env, "PORT": str(port), "DATA_DIR": str(data / "data"), "LOG_DIR": str(data / "logs"),
            "LOG_JSON": "false", "MEMORY_ENABLED": "false", "UPSTREAM_BASE_URL": "", "PYTHONPATH": str(ROOT),
            **extra}


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def spawn(args: list[str], env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return child
        except httpx.HTTPError:
            time.sleep(0.1)
    child.kill()
    raise RuntimeError(child.communicate()[0])


def stop(child: subprocess.Popen) -> str:
    child.send_signal(signal.SIGTERM)
    return child.communicate(timeout=60)[0]


@pytest.mark.parametrize("how", [["--workers", "2"], ["WORKERS=2"]])
def test_serve_with_several_workers_on_sqlite_exits_2_naming_database_url(tmp_path, how):
    extra = dict(a.split("=") for a in how if "=" in a)
    done = run(["app.cli", "serve", *[a for a in how if "=" not in a]], env_for(tmp_path, free_port(), **extra),
               tmp_path)
    assert done.returncode == 2
    assert "DATABASE_URL" in done.stderr and "2 workers refused" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_plain_uvicorn_with_several_workers_on_sqlite_stops(tmp_path):
    port = free_port()
    done = run(["uvicorn", "--factory", "app.main:app_from_env", "--workers", "2", "--port", str(port)],
               env_for(tmp_path, port), tmp_path, timeout=120)
    output = done.stdout + done.stderr
    assert "is already served by process" in output and "DATABASE_URL" in output
    assert "failed to start, stopping the parent process" in output


def test_a_second_process_on_the_same_data_dir_is_refused_and_the_first_serves_on(tmp_path):
    port, other = free_port(), free_port()
    first = spawn(["app.cli", "serve"], env_for(tmp_path, port), tmp_path, port)
    try:
        second = run(["app.cli", "serve"], env_for(tmp_path, other), tmp_path)
        assert second.returncode != 0
        assert f"already served by process {first.pid}" in second.stdout + second.stderr
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        stop(first)
    with DataDirLock(tmp_path / "data"):  # the first one's lock went with it
        pass


def test_serve_with_two_workers_on_postgresql(tmp_path, pg_url):
    port = free_port()
    child = spawn(["app.cli", "serve", "--workers", "2"], env_for(tmp_path, port, DATABASE_URL=pg_url), tmp_path,
                  port)
    try:
        for _ in range(10):
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        output = stop(child)
    assert "Started parent process" in output
    assert output.count("Application startup complete") == 2, output
