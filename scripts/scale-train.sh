#!/usr/bin/env bash
# Training at scale: writes 1,000,000 labelled rows over 200,000 distinct prompts (gzip; see
# scripts/scale-logs.py), then trains on them twice, first with an empty embedding cache and then with the
# cache warm, each under /usr/bin/time. Prints each run's wall time, peak resident memory and phase times.
#   scripts/scale-train.sh                 # 200,000 prompts x 5 rows
#   PROMPTS=20000 scripts/scale-train.sh   # a smaller run
#   scripts/scale-train.sh --precision int8   # extra arguments go to `switchyard train`
# Needs the encoder model (switchyard model fetch) and about 2 GB of disk under $WORK (default /tmp/switchyard-scale).
set -euo pipefail
cd "$(dirname "$0")/.."
PROMPTS=${PROMPTS:-200000}
WORK=${WORK:-/tmp/switchyard-scale}
mkdir -p "$WORK"
cargo build --release -p switchyard
logs="$WORK/logs-$PROMPTS.jsonl.gz"
[ -f "$logs" ] || python3 scripts/scale-logs.py --prompts "$PROMPTS" --rows-per-prompt 5 --out "$logs"
rm -rf "$WORK/cache" "$WORK/router"
for run in cold warm; do
  HF_HUB_OFFLINE=1 RUST_LOG=switchyard_train=info /usr/bin/time -v ./target/release/switchyard train --quiet \
    --logs "$logs" --catalog training-data/llmrouter/catalog.toml \
    --cache-dir "$WORK/cache" --out "$WORK/router" "$@" 2> "$WORK/$run.log" > /dev/null \
    || { tail -20 "$WORK/$run.log" >&2; exit 1; }
  wall=$(grep "Elapsed (wall clock)" "$WORK/$run.log" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$WORK/$run.log" | awk '{printf "%.2f GB", $NF / 1048576}')
  echo "$run cache: wall $wall, peak memory $rss"
  grep -E "INFO .*(prompts embedded|prompts: choosing|heads cross-fitted|candidates cross-validated|refitted)" "$WORK/$run.log" \
    | sed 's/^[^ ]* *INFO [^ ]* /  /' || true
done
