#!/usr/bin/env bash
# Benchmarks the learned router on every dense set in training-data/ and writes the results table into
# README.md (between the bench-results markers). Each set: train on its train split, evaluate on its test
# split, all baselines in the same run.
#   scripts/bench-all.sh            # reports and plots go to bench-out/<set>/
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p switchyard
for set in llmrouter zeroeval routellm routerarena; do
  echo "== $set" >&2
  ./target/release/switchyard bench --quiet \
    --train-logs "training-data/$set/logs.jsonl.gz" \
    --logs "training-data/$set/logs.jsonl.gz" \
    --catalog "training-data/$set/catalog.toml" \
    --out "bench-out/$set" "$@" 2> "bench-out-$set.log" || { cat "bench-out-$set.log" >&2; exit 1; }
  rm -f "bench-out-$set.log"
done
python3 - <<'PY'
import json, re
rows = []
for s in ["llmrouter", "zeroeval", "routellm", "routerarena"]:
    r = json.load(open(f"bench-out/{s}/report.json"))
    m, b = r["metrics"], r["baselines"]
    f = lambda v: "-" if v is None else f"{v:.3f}"
    models = len(r["single_models"])
    pair = lambda d: f"{f(d.get('apgr'))} / {f(d.get('cpt50'))} / {f(d.get('cpt80'))}" if models == 2 else "-"
    rows.append(f"| {s} | {r['prompts']} x {models} | **{m['aiq']:.4f}** | {b['knn10']['aiq']:.4f} | "
                f"{b['knn40']['aiq']:.4f} | {b['zero_router']['aiq']:.4f} | {b['random']['aiq']:.4f} | "
                f"{b['oracle']['aiq']:.4f} | {pair(m)} | {pair(b['knn40'])} | {m['auc']:.3f} | {m['ece']:.3f} |")
table = "\n".join([
    "| set | test prompts x models | learned AIQ | kNN10 | kNN40 | zero router | random | oracle | learned APGR / CPT50 / CPT80 | kNN40 APGR / CPT50 / CPT80 | AUC | ECE |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    *rows])
readme = open("README.md").read()
start, end = "<!-- bench-results:start -->", "<!-- bench-results:end -->"
new = re.sub(re.escape(start) + ".*?" + re.escape(end), start + "\n" + table + "\n" + end, readme, flags=re.S)
open("README.md", "w").write(new)
print(table)
PY
