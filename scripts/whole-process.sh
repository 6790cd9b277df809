#!/usr/bin/env bash
# Whole-process runs, switchyard against ONNX Runtime, alternating: each run is a fresh process that embeds
# the same prompts one at a time (batch 1, 2 threads) and writes their embeddings as JSON lines, start-up,
# tokenizer and model load included. Prints every run's wall time, each side's median and spread (fastest and
# slowest run against the median), and the ratio of the medians.
#
#   scripts/whole-process.sh MODEL.onnx                 # RUNS=7, PROMPTS=400 short prompts, PRECISION=f32
#   PRECISION=int8 scripts/whole-process.sh MODEL.onnx  # --precision int8 against ONNX Runtime's dynamic int8
#   MIN_WORDS=120 MAX_WORDS=100000 MAX_TOKENS=128 scripts/whole-process.sh MODEL.onnx   # long prompts, cut at 128
#
# MODEL.onnx: an fp32 ONNX graph of the same weights (see scripts/compare-onnxruntime.sh). The prompts are the
# first PROMPTS distinct prompts of MIN_WORDS to MAX_WORDS words (default 1 to 25) from
# training-data/*/logs.jsonl.gz, test rows, in file order; both sides cut them at MAX_TOKENS tokens (256). PYTHON must have `onnxruntime`, `onnx`, `tokenizers` and `numpy` (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
onnx=${1:?usage: scripts/whole-process.sh MODEL.onnx}
RUNS=${RUNS:-7}
PROMPTS=${PROMPTS:-400}
PRECISION=${PRECISION:-f32}
PYTHON=${PYTHON:-python3}
MIN_WORDS=${MIN_WORDS:-1}
MAX_WORDS=${MAX_WORDS:-25}
MAX_TOKENS=${MAX_TOKENS:-256}
onnx=$("$PYTHON" scripts/onnxruntime_quantize.py --model-for "$PRECISION" "$onnx")
cargo build --release -q -p switchyard
bin=${CARGO_TARGET_DIR:-target}/release/switchyard
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$PROMPTS" "$MIN_WORDS" "$MAX_WORDS" > "$work/prompts.jsonl" <<'PY'
import glob, gzip, json, sys
want, low, high, seen = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), set()
for path in sorted(glob.glob("training-data/*/logs.jsonl.gz")):
    for line in gzip.open(path, "rt", encoding="utf-8"):
        row = json.loads(line)
        text = row.get("prompt")
        if row.get("split") != "test" or not isinstance(text, str) or text in seen:
            continue
        if not low <= len(text.split()) <= high:
            continue
        seen.add(text)
        print(json.dumps(text))
        if len(seen) == want:
            sys.exit(0)
PY
echo "$(wc -l < "$work/prompts.jsonl") prompts of $MIN_WORDS to $MAX_WORDS words cut at $MAX_TOKENS tokens, $RUNS alternating runs each, precision $PRECISION, 2 threads"
# Wall time of one command, from bash's own clock (no process started around the measured one).
time_run() {
  local start=$EPOCHREALTIME
  "$@" > "$work/out.jsonl"
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$start" "$EPOCHREALTIME"
}
ours=() theirs=()
for i in $(seq "$RUNS"); do
  ours+=("$(time_run env HF_HUB_OFFLINE=1 "$bin" --threads 2 embed --batch-size 1 --max-tokens "$MAX_TOKENS" --precision "$PRECISION" -i "$work/prompts.jsonl")")
  theirs+=("$(time_run "$PYTHON" scripts/onnxruntime_embed.py "$onnx" models/all-MiniLM-L6-v2/tokenizer.json "$work/prompts.jsonl" 2 "$MAX_TOKENS")")
  echo "run $i: switchyard ${ours[-1]} s, ONNX Runtime ${theirs[-1]} s"
done
python3 - "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
a, b = ([float(x) for x in s.split()] for s in sys.argv[1:3])
def line(name, v):
    m = statistics.median(v)
    return f"{name:<13} median {m:.3f} s, spread {min(v) / m - 1:+.1%} / {max(v) / m - 1:+.1%}", m
la, ma = line("switchyard", a)
lb, mb = line("ONNX Runtime", b)
print(la); print(lb)
print(f"switchyard / ONNX Runtime, medians: {ma / mb:.2f}x")
PY
