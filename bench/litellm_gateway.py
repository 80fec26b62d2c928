"""LiteLLM's proxy as a memory-less gateway to compare with, served from a virtualenv of its own.

    python bench/proxy_bench.py --variants on-history,litellm --concurrency 1,10

The first use makes `data/bench/litellm-venv` and installs `litellm[proxy]` into it from the
package index (LiteLLM's dependencies would clash with the proxy's own, so it never enters the
project's environment). It then runs offline: the model cost map is read from the package
(`LITELLM_LOCAL_MODEL_COST_MAP`), telemetry is off, and its one model is the fake upstream,
reached as an OpenAI-compatible server, streamed like every other target.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "data" / "bench" / "litellm-venv"
REQUIREMENT = "litellm[proxy]"
MASTER_KEY = "sk-bench-litellm-0123456789abcdef"  # LiteLLM refuses to start without a key
CONFIG = """model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {upstream}
      api_key: none
litellm_settings:
  telemetry: false
"""


def ensure_installed() -> Path:
    """The `litellm` command, installing it into its own virtualenv the first time."""
    command = VENV / "bin" / "litellm"
    if not command.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", REQUIREMENT], check=True)
    return command


def version() -> str:
    out = subprocess.run([str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; "
                          "print(m.version('litellm'))"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def command(port: int, upstream: str, model: str = "fake-model") -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one LiteLLM worker in front of `upstream` (…/v1)."""
    config = ROOT / "data" / "bench" / f"litellm-{port}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG.format(model=model, upstream=upstream))
    env = {"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    cmd = [str(ensure_installed()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
           "--num_workers", "1"]
    return cmd, env


HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}
HEALTH = "/health/liveliness"
