#!/usr/bin/env bash
# Benchmarks the learned router on every dense set in training-data/ and writes the results table into
# README.md (between the bench-results markers). Each set: train on its train split, evaluate on its test
# split, all baselines in the same run.
#   scripts/bench-all.sh            # reports and plots go to bench-out/<set>/
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p switchyard
for set in llmrouter zeroeval routellm routerarena mmlu-pro; do
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
def with_ci(m, key, d=4):
    v = m.get(key)
    if v is None:
        return "-"
    c = m.get(key + "_ci")
    return f"{v:.{d}f}" + (f" [{c['lo']:.{d}f}, {c['hi']:.{d}f}]" if c else "")
def diff(r, metric, base):
    for x in r.get("differences", []):
        if x["metric"] == metric and x["baseline"] == base:
            c = x.get("ci")
            s = f"{x['value']:+.4f}" + (f" [{c['lo']:+.4f}, {c['hi']:+.4f}]" if c else "")
            return f"**{s}**" if c and c["lo"] > 0 else s
    return None
rows = []
for s in ["llmrouter", "zeroeval", "routellm", "routerarena", "mmlu-pro"]:
    r = json.load(open(f"bench-out/{s}/report.json"))
    m, b = r["metrics"], r["baselines"]
    models = len(r["single_models"])
    pair = lambda d: f"{with_ci(d, 'apgr', 3)} / {with_ci(d, 'cpt50', 3)}" if models == 2 else "-"
    diffs = lambda base: "<br>".join(
        f"{k} {v}" for k, v in [("AIQ", diff(r, "aiq", base)), ("APGR", diff(r, "apgr", base))] if v)
    prompts = f"{r['prompts']} x {models}" + (f" ({r['overlap_dropped']} left out)" if r.get("overlap_dropped") else "")
    rows.append(f"| {s} | {prompts} | **{with_ci(m, 'aiq')}** | {with_ci(b['knn10'], 'aiq')} | "
                f"{with_ci(b['knn40'], 'aiq')} | {with_ci(b['zero_router'], 'aiq')} | {b['random']['aiq']:.4f} | "
                f"{with_ci(b['oracle'], 'aiq')} | {diffs('knn40')} | {diffs('zero_router')} | "
                f"{pair(m)} | {pair(b['knn40'])} | {m['auc']:.3f} | {m['ece']:.3f} |")
table = "\n".join([
    "| set | test prompts x models | learned AIQ | kNN10 | kNN40 | zero router | random | oracle | learned − kNN40 | learned − zero router | learned APGR / CPT50 | kNN40 APGR / CPT50 | AUC | ECE |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    *rows,
    "",
    "Brackets: 95% paired bootstrap intervals over the test prompts (1000 resamples; every router on the same",
    "resamples). A difference in bold has its whole interval above 0. Test prompts whose normalised text also",
    "occurs in the training split are left out (their count in parentheses)."])
readme = open("README.md").read()
start, end = "<!-- bench-results:start -->", "<!-- bench-results:end -->"
new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: start + "\n" + table + "\n" + end, readme, flags=re.S)
open("README.md", "w").write(new)
print(table)
PY
