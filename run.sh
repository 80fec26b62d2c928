#!/usr/bin/env bash
# One entry point for a newcomer.
#   ./run.sh          set up (virtualenv, dependencies, embedding model) and start the service
#   ./run.sh test     set up and run the whole test suite
#   ./run.sh setup    only set up
#   ./run.sh bench    set up and run the benchmarks under bench/
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtualenv in $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local stamp="$VENV/.requirements.sha"
  local want
  want=$(cat requirements.txt setup.py | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing dependencies (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -r requirements.txt
    "$VENV/bin/python" -m pip install --quiet -e ".[livekit]"
    echo "$want" > "$stamp"
  fi
  mkdir -p data logs
  [ -f .env ] || { [ "${1:-}" = "quiet-env" ] || cp .env.example .env; }
  "$VENV/bin/python" -m app.cli prepare
}

# The inspector's browser tests drive Debian's Chromium (never a browser downloaded by Playwright).
browser() {
  [ -x /usr/bin/chromium ] && return 0
  echo "==> installing Chromium for the browser tests (apt-get install chromium)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null \
    || { echo "could not install Chromium: run 'apt-get install chromium' as root" >&2; exit 1; }
}

case "${1:-start}" in
  setup)
    setup
    ;;
  start)
    setup
    exec "$VENV/bin/python" -m app.cli serve
    ;;
  test)
    setup quiet-env
    browser
    shift || true
    set +e
    "$VENV/bin/python" -m pytest -q "$@"
    rc=$?
    set -e
    if [ $rc -eq 5 ]; then
      echo "no tests were collected: that is a failure" >&2
      exit 1
    fi
    exit $rc
    ;;
  bench)
    setup quiet-env
    shift || true
    for script in bench/proxy_bench.py; do "$VENV/bin/python" "$script" "$@"; done
    ;;
  *)
    echo "usage: ./run.sh [start|test|setup|bench]" >&2
    exit 2
    ;;
esac
