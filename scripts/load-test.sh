#!/usr/bin/env bash
# Load test of `switchyard serve` on loopback with wrk (Debian package `wrk`), against a stand-in upstream.
#
#   scripts/load-test.sh            # DURATION=10 (seconds per run), CONNECTIONS=32, WRK_THREADS=1,
#                                   # BATCH_WAIT_MS (encoder.batch_wait_ms; default: the server's),
#                                   # PRECISION=f32|int8 (encoder.precision), ROUTER (default models/default)
#   PRECISION=int8 ROUTER=DIR scripts/load-test.sh
#
# A router is served at the precision it was trained at: for int8, train one first, e.g.
#   OUT=/tmp/default-int8 scripts/train-default-router.sh --precision int8
#
# Prints, each from its own wrk run:
#   1. routing decisions through POST /v1/route, every request a distinct 15-token prompt (no cache hits);
#   2. one prompt repeated (embedding-cache hits: the HTTP and policy path alone);
#   3. POST /v1/chat/completions naming a catalog model (no decision), and the stand-in upstream called
#      directly, at the same load, then both over one connection: the difference of their latency
#      percentiles is the gateway's own overhead;
#   4. /v1/route over one connection (the latency of one decision, batch 1);
# and the server's start-up time to /readyz and its resident memory after the runs.
# Everything runs on this machine: wrk, the server and the upstream share its cores, so read the figures as
# relative, not as a capacity plan.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-1}
PRECISION=${PRECISION:-f32}
ROUTER=${ROUTER:-models/default}
SERVE_PORT=${SERVE_PORT:-18080}
UPSTREAM_PORT=${UPSTREAM_PORT:-18081}

command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p switchyard -p switchyard-server --example stand_in_upstream
target=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${KEEP_RUNNING:-}" ] && trap - EXIT

"$target/examples/stand_in_upstream" "127.0.0.1:$UPSTREAM_PORT" 2>/dev/null &
pids+=($!)

{
  printf '[server]\nlisten = "127.0.0.1:%s"\nmax_concurrency = 1024\n' "$SERVE_PORT"
  printf '[log]\npath = "%s/decisions.sqlite"\n' "$work"
  printf '[router]\npath = "%s"\n' "$ROUTER"
  printf '[encoder]\nprecision = "%s"\n' "$PRECISION"
  if [ -n "${BATCH_WAIT_MS:-}" ]; then printf 'batch_wait_ms = %s\n' "$BATCH_WAIT_MS"; fi
  python3 - "$UPSTREAM_PORT" "$ROUTER" <<'PY'
import json, sys
for m in json.load(open(f"{sys.argv[2]}/manifest.json"))["models"]:
    print(f'[[models]]\nname = "{m["model"]}"\nbase_url = "http://127.0.0.1:{sys.argv[1]}/v1"\n'
          f'input_usd_per_mtok = {m["input_usd_per_mtok"] or 0}\noutput_usd_per_mtok = {m["output_usd_per_mtok"] or 0}')
PY
} > "$work/switchyard.toml"

start=$(date +%s.%N)
HF_HUB_OFFLINE=1 "$target/switchyard" serve --config "$work/switchyard.toml" 2>"$work/serve.log" &
serve_pid=$!
pids+=($serve_pid)
until curl -sf "http://127.0.0.1:$SERVE_PORT/readyz" >/dev/null; do
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.02
done
ready=$(echo "$(date +%s.%N) - $start" | bc)

# Each request is a distinct prompt of 13 common words (15 tokens with [CLS] and [SEP]): three of them are
# picked from 40 by a counter that starts at a random point, so runs rarely meet the embedding cache.
cat > "$work/route.lua" <<'LUA'
local words = {"apple", "river", "garden", "music", "market", "winter", "doctor", "engine", "forest", "letter",
               "island", "planet", "window", "school", "summer", "bridge", "animal", "castle", "coffee", "dinner",
               "family", "friend", "hunter", "jacket", "kitten", "ladder", "marble", "needle", "orange", "pepper",
               "rabbit", "silver", "tomato", "valley", "wallet", "yellow", "basket", "candle", "desert", "finger"}
local n = 0
init = function(args)
  math.randomseed(os.time() + os.clock() * 1e6)
  n = math.random(0, 63999)
end
request = function()
  n = (n + 1) % 64000
  local a, b, c = n % 40 + 1, math.floor(n / 40) % 40 + 1, math.floor(n / 1600) % 40 + 1
  local body = string.format('{"prompt": "please explain the %s and the %s and the %s to a student"}',
                             words[a], words[b], words[c])
  return wrk.format("POST", "/v1/route", {["content-type"] = "application/json"}, body)
end
LUA

cat > "$work/repeat.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"prompt": "Which of these two contracts gives the tenant more rights overall?"}'
LUA

cat > "$work/chat.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say ok."}]}'
LUA

run() { # name url script [connections]
  local out connections=${4:-$CONNECTIONS}
  out=$(wrk -t"$WRK_THREADS" -c"$connections" -d"${DURATION}s" --latency -s "$3" "$2")
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-52s %10s req/s   p50 %9s   p99 %9s   non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "${errors:-0}"
}

echo "switchyard load test: $CONNECTIONS connections, $WRK_THREADS wrk thread(s), ${DURATION}s per run, $(nproc) cores, encoder $PRECISION, router $ROUTER"
run "/v1/route, distinct 15-token prompts" "http://127.0.0.1:$SERVE_PORT/v1/route" "$work/route.lua"
run "/v1/route, one repeated prompt (cache hits)" "http://127.0.0.1:$SERVE_PORT/v1/route" "$work/repeat.lua"
run "/v1/chat/completions, catalog model (gateway)" "http://127.0.0.1:$SERVE_PORT/v1/chat/completions" "$work/chat.lua"
run "stand-in upstream called directly" "http://127.0.0.1:$UPSTREAM_PORT/v1/chat/completions" "$work/chat.lua"
echo "one connection (latency without queueing; the difference is the gateway's own overhead):"
run "/v1/chat/completions, catalog model (gateway)" "http://127.0.0.1:$SERVE_PORT/v1/chat/completions" "$work/chat.lua" 1
run "stand-in upstream called directly" "http://127.0.0.1:$UPSTREAM_PORT/v1/chat/completions" "$work/chat.lua" 1
run "/v1/route, distinct 15-token prompts" "http://127.0.0.1:$SERVE_PORT/v1/route" "$work/route.lua" 1
rss=$(awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$serve_pid/status")
hwm=$(awk '/VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$serve_pid/status")
printf 'start-up to ready: %.2f s   resident memory: %s now, %s peak\n' "$ready" "$rss" "$hwm"
curl -s "http://127.0.0.1:$SERVE_PORT/metrics" | awk '/^switchyard_encode_(batches|batched_prompts|rejected|cache_hits)_total / {print "  " $0}'
