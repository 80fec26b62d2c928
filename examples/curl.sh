#!/usr/bin/env bash
# The proxy with curl. BASE_URL defaults to http://127.0.0.1:8000/v1; MODEL to fake-model; API_KEY to
# "unused" (set it to one of the proxy's API_KEYS when it has any).
set -euo pipefail
BASE_URL=${BASE_URL:-http://127.0.0.1:8000/v1}
MODEL=${MODEL:-fake-model}
ROOT=${BASE_URL%/v1}
H='Content-Type: application/json'
A="Authorization: Bearer ${API_KEY:-unused}"

curl -sf "$ROOT/health"; echo
curl -sf -H "$A" "$BASE_URL/models"; echo
curl -sf -H "$A" "$BASE_URL/chat/completions" -H "$H" -H 'X-Session-Id: curl-demo' \
  -d "{\"model\": \"$MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"My locker code is 4417.\"}]}"; echo
curl -sfN -H "$A" "$BASE_URL/chat/completions" -H "$H" -H 'X-Session-Id: curl-demo' \
  -d "{\"model\": \"$MODEL\", \"stream\": true, \"messages\": [{\"role\": \"user\", \"content\": \"Hello again!\"}]}"
curl -sf -H "$A" "$BASE_URL/chat/completions/preview" -H "$H" -H 'X-Session-Id: curl-demo' \
  -d "{\"model\": \"$MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"What is my locker code?\"}]}"; echo
curl -sf -H "$A" "$BASE_URL/sessions/curl-demo/messages"; echo
curl -sf -H "$A" "$BASE_URL/sessions/curl-demo/search?q=locker&k=3"; echo
curl -sf -H "$A" "$ROOT/metrics" | grep '^proxy_requests_total' || true
curl -sf -H "$A" -X DELETE "$BASE_URL/sessions/curl-demo"; echo
