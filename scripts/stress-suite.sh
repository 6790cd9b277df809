#!/usr/bin/env bash
# Runs the whole test suite (scripts/test.sh) N times in a row with `stress-ng --cpu 2` busy beside it, and
# stops at the first failure: the check that the tests hold no race against the clock and no timing
# assumption that a loaded machine breaks. Installs stress-ng (Debian) when it is missing.
#   scripts/stress-suite.sh            # five runs
#   scripts/stress-suite.sh 3 -p switchyard-server   # three runs of one crate's tests
# Prints one line per run (its wall time and result) and the log's path; each run's output is kept under
# target/stress/.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shift || true
if ! command -v stress-ng >/dev/null; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq stress-ng >/dev/null
fi
logs="${CARGO_TARGET_DIR:-target}/stress"
mkdir -p "$logs"
# Build first, so that every timed run is the tests alone.
scripts/test.sh --no-run "$@" >"$logs/build.log" 2>&1 || { tail -n 40 "$logs/build.log"; exit 1; }
stress-ng --cpu 2 --quiet &
stress=$!
trap 'kill $stress 2>/dev/null || true' EXIT
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if scripts/test.sh "$@" >"$logs/run-$i.log" 2>&1; then
    echo "run $i of $runs: passed in $(( $(date +%s) - start )) s beside stress-ng --cpu 2 ($logs/run-$i.log)"
  else
    echo "run $i of $runs: FAILED after $(( $(date +%s) - start )) s ($logs/run-$i.log):"
    grep -E "^test .* FAILED|panicked|^failures:" "$logs/run-$i.log" | head -n 20
    exit 1
  fi
done
echo "$runs runs in a row passed beside stress-ng --cpu 2"
