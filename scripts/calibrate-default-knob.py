#!/usr/bin/env python3
"""Chooses the default router's min-quality bar on a realistic traffic mix, without looking at the test set.

The mix is training-data/complexity/prompts.jsonl: everyday and expert prompts labelled easy, medium or hard.
Each prompt must be routed by a router that did not learn from its label, so the labels are split in two by a
hash of the normalised text, a router is trained with each half (same data and flags as
scripts/train-default-router.sh), and each routes the other half. The bars 0.50, 0.55, ..., 0.90 are then
applied to the routed prompts' P(success) and costs; the chosen bar is the highest at which no easy prompt goes
to the dearest third of the catalog (the higher the bar, the more quality bought on hard prompts).

Usage:  python3 scripts/calibrate-default-knob.py [--predictor KINDS] [--work DIR]
Needs target/release/switchyard (cargo build --release). Takes two trainings (a few minutes each on 2 cores with
the embedding cache warm, with --predictor irt, the default router's kind) and one `route` per labelled prompt.
"""
import argparse
import hashlib
import json
import os
import subprocess
from pathlib import Path

root = Path(__file__).resolve().parent.parent
exe = str(root / "target/release/switchyard")
env = dict(os.environ, HF_HUB_OFFLINE="1")
parser = argparse.ArgumentParser()
parser.add_argument("--predictor", default="irt")
parser.add_argument("--work", default="/tmp/switchyard-knob")
args = parser.parse_args()
work = Path(args.work)
work.mkdir(parents=True, exist_ok=True)

rows = [json.loads(line) for line in open(root / "training-data/complexity/prompts.jsonl") if line.strip()]
halves = {"a": [], "b": []}
for row in rows:
    digest = hashlib.sha256(" ".join(row["prompt"].lower().split()).encode()).hexdigest()
    halves["a" if int(digest, 16) % 2 == 0 else "b"].append(row)

routed = []
for learn, held in [("a", "b"), ("b", "a")]:
    labels = work / f"labels-{learn}.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in halves[learn]))
    router = work / f"router-{learn}"
    subprocess.run([exe, "train", "--quiet", "--logs", "training-data/default/logs.jsonl.gz",
                    "--catalog", "training-data/default/catalog.toml",
                    "--profiles", "training-data/default/profiles.toml",
                    "--complexity-labels", str(labels), "--predictor", args.predictor,
                    "--out", str(router)], cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    for row in halves[held]:
        out = subprocess.run([exe, "route", "--router", str(router), row["prompt"]], cwd=root, env=env,
                             capture_output=True, text=True, check=True)
        routed.append((row["label"], json.loads(out.stdout)["models"]))

manifest = json.load(open(root / "models/default/manifest.json"))
price = {m["model"]: 300 * (m["input_usd_per_mtok"] + m["output_usd_per_mtok"]) for m in manifest["models"]}
by_price = sorted(price, key=price.get)
dearest = set(by_price[len(by_price) - len(by_price) // 3:])


def choose(models, bar):
    ok = [m for m in models if m["p_success"] >= bar]
    if ok:
        return min(ok, key=lambda m: m["expected_cost_usd"])["model"]
    return max(models, key=lambda m: m["p_success"])["model"]


easy = [m for label, m in routed if label == "easy"]
hard = [m for label, m in routed if label == "hard"]
chosen = None
print("bar   easy to dearest third   hard to dearest third   easy/hard spend")
for step in range(9):
    bar = round(0.5 + 0.05 * step, 2)
    e = [choose(m, bar) for m in easy]
    h = [choose(m, bar) for m in hard]
    easy_dear = sum(c in dearest for c in e)
    spend = (sum(price[c] for c in e) / len(e)) / (sum(price[c] for c in h) / len(h))
    print(f"{bar:.2f}  {easy_dear:>10} of {len(e):<10} {sum(c in dearest for c in h):>10} of {len(h):<10} {spend:.3f}")
    if easy_dear == 0:
        chosen = bar
print(f"chosen: min-quality {chosen}" if chosen is not None else "no bar keeps every easy prompt off the dearest third")
