#!/usr/bin/env bash
# The proxy with curl. BASE_URL defaults to http://127.0.0.1:8000/v1; MODEL to fake-model.
set -euo pipefail
BASE_URL=${BASE_URL:-http://127.0.0.1:8000/v1}
MODEL=${MODEL:-fake-model}
ROOT=${BASE_URL%/v1}
H='Content-Type: application/json'

curl -sf "$ROOT/health"; echo
curl -sf "$BASE_URL/models"; echo
curl -sf "$BASE_URL/chat/completions" -H "$H" -H 'X-Session-Id: curl-demo' \
  -d "{\"model\": \"$MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"My locker code is 4417.\"}]}"; echo
curl -sfN "$BASE_URL/chat/completions" -H "$H" -H 'X-Session-Id: curl-demo' \
  -d "{\"model\": \"$MODEL\", \"stream\": true, \"messages\": [{\"role\": \"user\", \"content\": \"Hello again!\"}]}"
curl -sf "$BASE_URL/chat/completions/preview" -H "$H" -H 'X-Session-Id: curl-demo' \
  -d "{\"model\": \"$MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"What is my locker code?\"}]}"; echo
curl -sf "$BASE_URL/sessions/curl-demo/messages"; echo
curl -sf "$BASE_URL/sessions/curl-demo/search?q=locker&k=3"; echo
curl -sf "$ROOT/metrics" | grep '^proxy_requests_total' || true
curl -sf -X DELETE "$BASE_URL/sessions/curl-demo"; echo
