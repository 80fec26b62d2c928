"""Schemathesis against the proxy's own OpenAPI document: every operation, no server error.

The real `st` command generates requests from `/openapi.json` (valid and invalid bodies, odd
query values, odd path ids) and sends them to the real server with memory on. Any 5xx fails it.
A bounded run here; a longer one is `st run URL/openapi.json --checks not_a_server_error -n 500`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

EXAMPLES = 12


def test_no_operation_answers_a_server_error(memory_proxy, tmp_path):
    root = memory_proxy.removesuffix("/v1")
    operations = sum(len(methods) for methods in httpx.get(root + "/openapi.json").json()["paths"].values())
    assert operations >= 15
    st = Path(sys.executable).with_name("st")
    run = subprocess.run([str(st), "run", root + "/openapi.json", "--checks", "not_a_server_error",
                          "-n", str(EXAMPLES), "--seed", "1", "--request-timeout", "20", "--no-color"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert cases and cases.group(1) == cases.group(2), run.stdout[-3000:]
    assert int(cases.group(1)) > 20 * operations
