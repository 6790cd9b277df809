#!/usr/bin/env bash
# Measures `switchyard profile add` by leave-one-out on every set, over several training seeds, and writes the
# summary table into README.md (between the leave-out markers).
#
# For each set, each pick (`strongest`: the model with the highest mean success in the training rows, the
# launch-day case; `auto`: the one the full router depends on most) and each training seed, one run of
#   switchyard bench --train-logs S --logs S --catalog C --leave-out PICK --profile-rows 200 --train-seed SEED
# writes bench-out/leave-out/<set>-<pick>-<seed>/leave-out.json. Runs already written are kept (delete the
# folder to rerun one), so the script can be stopped and resumed.
#   scripts/leave-out-all.sh                       # every set, both picks, seeds 17 1 2 3 4
#   SETS="routellm" SEEDS="17 1" scripts/leave-out-all.sh
#   scripts/leave-out-all.sh --summary-only        # rewrite the table from the runs on disk
#   BIN=/tmp/switchyard THREADS=1 scripts/leave-out-all.sh   # a binary built before (no build), one core
set -euo pipefail
cd "$(dirname "$0")/.."
# The whole matrix: what the README table always covers, whatever subset this call runs.
ALL_SETS="llmrouter zeroeval routellm mmlu-pro"
ALL_PICKS="strongest auto"
ALL_SEEDS="17 1 2 3 4"
SETS=${SETS:-$ALL_SETS}
PICKS=${PICKS:-$ALL_PICKS}
SEEDS=${SEEDS:-$ALL_SEEDS}
ROWS=${ROWS:-200}
BOOTSTRAP=${BOOTSTRAP:-1000}
BIN=${BIN:-}
THREADS=${THREADS:-}
if [ "${1:-}" != "--summary-only" ]; then
  if [ -z "$BIN" ]; then
    cargo build --release -p switchyard
    BIN=./target/release/switchyard
  fi
  for pick in $PICKS; do
    for set in $SETS; do
      for seed in $SEEDS; do
        out="bench-out/leave-out/$set-$pick-$seed"
        [ -f "$out/leave-out.json" ] && continue
        echo "== $set $pick seed $seed" >&2
        mkdir -p "$out"
        "$BIN" bench --quiet ${THREADS:+--threads "$THREADS"} \
          --train-logs "training-data/$set/logs.jsonl.gz" \
          --logs "training-data/$set/logs.jsonl.gz" \
          --catalog "training-data/$set/catalog.toml" \
          --leave-out "$pick" --profile-rows "$ROWS" --train-seed "$seed" --bootstrap "$BOOTSTRAP" \
          --out "$out" > "$out/stdout.txt" 2> "$out/stderr.txt" || { cat "$out/stderr.txt" >&2; exit 1; }
        rm -rf "$out/routers"
      done
    done
  done
fi
# The table is written from every run on disk of the whole matrix, not only the runs of this call.
SETS="$ALL_SETS" PICKS="$ALL_PICKS" SEEDS="$ALL_SEEDS" python3 - <<'PY'
import json, os, re
sets, picks, seeds = (os.environ[k].split() for k in ("SETS", "PICKS", "SEEDS"))
def ci(e, d=3, signed=False):
    f = f"{{:{'+' if signed else ''}.{d}f}}"
    c = e.get("ci")
    return f.format(e["value"]) + (f" [{f.format(c['lo'])}, {f.format(c['hi'])}]" if c else "")
rows, detail = [], []
for s in sets:
    for pick in picks:
        runs = []
        for seed in seeds:
            p = f"bench-out/leave-out/{s}-{pick}-{seed}/leave-out.json"
            if os.path.exists(p):
                runs.append((seed, json.load(open(p))))
        if not runs:
            continue
        models = {r["model"] for _, r in runs}
        model = ", ".join(sorted(models))
        if pick == "auto" and os.path.exists(f"bench-out/leave-out/{s}-strongest-{runs[0][0]}/leave-out.json"):
            strongest = json.load(open(f"bench-out/leave-out/{s}-strongest-{runs[0][0]}/leave-out.json"))["model"]
            if models == {strongest}:
                continue  # the same model as `strongest`: the same runs
        mean = lambda f: sum(f(r) for _, r in runs) / len(runs)
        aiq = lambda name: mean(lambda r: r["aiq"][name]["aiq"])
        full, added, retrained, zero = aiq("full"), aiq("added"), aiq("retrained"), aiq("zero_router")
        pooled = lambda x: (x - zero) / (full - zero) if full > zero else float("nan")
        n = len(runs)
        r0 = runs[0][1]
        rows.append(
            f"| {s} | {pick}: {model} | {n} | {full:.4f} | {aiq('without'):.4f} | {added:.4f} | {retrained:.4f} | "
            f"{zero:.4f} | {aiq('knn40'):.4f} | **{pooled(added):.3f}** | {mean(lambda r: r['added_share']['value']):.3f} | "
            f"{pooled(retrained):.3f} | {added - full:+.4f} | **{added - retrained:+.4f}** |")
        for seed, r in runs:
            detail.append(
                f"| {s} | {pick}: {r['model']} | {seed} | {r['aiq']['full']['aiq']:.4f} | {r['aiq']['added']['aiq']:.4f} | "
                f"{r['aiq']['retrained']['aiq']:.4f} | {r['aiq']['zero_router']['aiq']:.4f} | {ci(r['added_share'])} | "
                f"{ci(r['retrained_share'])} | {ci(r['added_minus_retrained'], 4, True)} |")
table = "\n".join([
    "| set | left out | seeds | full | without | added (200 prompts) | retrained (the same 200) | zero router | kNN40 | added: share of full's gain (of the means) | added: mean of the per-seed shares | retrained: share (of the means) | added − full | added − retrained |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    *rows,
    "",
    "Per training seed (brackets: 95% paired bootstrap intervals over the held-out prompts):",
    "",
    "| set | left out | train seed | full | added | retrained | zero router | added: share | retrained: share | added − retrained |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    *detail])
readme = open("README.md").read()
start, end = "<!-- leave-out:start -->", "<!-- leave-out:end -->"
new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: start + "\n" + table + "\n" + end, readme, flags=re.S)
open("README.md", "w").write(new)
print(table)
PY
