"""The recall benchmark runs end to end on a small conversation: a broken benchmark fails here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_recall_run_reports_the_product_above_trimming_and_writes_its_results(tmp_path: Path):
    out = tmp_path / "recall.json"
    bench("bench.recall.run", "--sizes", "200", "--seeds", "1", "--budgets", "2048",
          "--strategies", "recency", "cosine", "product", "--out", str(out))
    report = json.loads(out.read_text())
    overall = {row["strategy"]: row["by_id"] for row in report["overall"]}
    assert set(overall) == {"recency", "cosine", "product"}
    assert overall["product"] > overall["recency"]
    assert report["sizes"] == [200] and report["long_turns"] is False


def test_long_turns_and_the_miss_report_run(tmp_path: Path):
    out = tmp_path / "long.json"
    bench("bench.recall.run", "--long", "--sizes", "200", "--seeds", "1", "--budgets", "2048",
          "--strategies", "product", "--out", str(out))
    assert json.loads(out.read_text())["long_turns"] is True
    printed = bench("bench.recall.misses", "--sizes", "200", "--seeds", "1")
    assert "size 200 seed 1:" in printed and "questions" in printed
