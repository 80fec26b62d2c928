"""The access benchmarks run: the proxy bench's `keys` variant sends its key, and the micro-benchmark times
each piece."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_proxy_bench_measures_keys_against_off(tmp_path: Path):
    out = tmp_path / "proxy.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "bench/proxy_bench.py", "--variants", "off,keys", "--concurrency", "1",
                           "--requests", "5", "--rounds", "1", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads(out.read_text())["1"]
    assert rows["proxy-keys"]["ttft_ms"] > 0 and rows["proxy-off"]["ttft_ms"] > 0
    assert "keys - off" in done.stdout


def test_the_access_micro_benchmark_times_each_piece(tmp_path: Path):
    out = tmp_path / "access.json"
    done = subprocess.run([sys.executable, "bench/access_bench.py", "--n", "200", "--rounds", "1", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result) == {"app alone", "guard, no keys", "guard, 3 keys", "limiter admit + headers", "token charge"}
    assert all(value > 0 for value in result.values())
