#!/usr/bin/env bash
# switchyard's encoder against ONNX Runtime on this machine, side by side: for each case, ROUNDS alternating
# one-second runs of each (2 threads both), then the median and the best of the per-run p50s.
#
#   scripts/compare-onnxruntime.sh MODEL.onnx      # ROUNDS=9; CASES="16 1,32 1,..." (tokens batch)
#   PRECISION=int8 scripts/compare-onnxruntime.sh MODEL.onnx
#
# MODEL.onnx: an fp32 ONNX graph of the same weights, e.g. from the peer script build_onnx.py
# (`python build_onnx.py models/all-MiniLM-L6-v2 /tmp/minilm.onnx`, needs `pip install onnx numpy`).
# PRECISION=int8 times switchyard's --precision int8 against ONNX Runtime's dynamic int8 quantisation of that
# graph (scripts/onnxruntime_quantize.py writes MODEL.int8.onnx beside it).
# PYTHON must have `onnxruntime`, `onnx` and `numpy` (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."
onnx=${1:?usage: scripts/compare-onnxruntime.sh MODEL.onnx}
ROUNDS=${ROUNDS:-9}
CASES=${CASES:-"8 1,16 1,32 1,64 1,128 1,15 32"}
PYTHON=${PYTHON:-python3}
PRECISION=${PRECISION:-f32}
onnx=$("$PYTHON" scripts/onnxruntime_quantize.py --model-for "$PRECISION" "$onnx")
echo "precision $PRECISION: switchyard --precision $PRECISION against ONNX Runtime on $onnx"
cargo build --release -q -p switchyard-encoder --example encode_loop
ours=${CARGO_TARGET_DIR:-target}/release/examples/encode_loop
summary() { sort -n | awk '{v[NR] = $1} END {printf "median %8.3f ms   best %8.3f ms", v[int((NR + 1) / 2)], v[1]}'; }
printf '%-22s %-40s %s\n' "tokens x batch" "switchyard (p50 per run)" "ONNX Runtime (p50 per run)"
IFS=, read -ra cases <<<"$CASES"
for case in "${cases[@]}"; do
  read -r tokens batch <<<"$case"
  a=() b=()
  for _ in $(seq "$ROUNDS"); do
    a+=("$(RAYON_NUM_THREADS=2 "$ours" "$tokens" "$batch" 1 "$PRECISION" | awk '{print $1}')")
    b+=("$("$PYTHON" scripts/onnxruntime_p50.py "$onnx" "$tokens" "$batch" 1 2 | awk '{print $1}')")
  done
  printf '%-22s %-40s %s\n' "$tokens x $batch" "$(printf '%s\n' "${a[@]}" | summary)" "$(printf '%s\n' "${b[@]}" | summary)"
done
