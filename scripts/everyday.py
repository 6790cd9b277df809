#!/usr/bin/env python3
"""How a router decides on everyday prompts: crates/switchyard-core/tests/fixtures/everyday-prompts.jsonl (40 easy,
64 hard, written for switchyard) routed with `switchyard route`, at the router's default knob or the one given.

Usage:  python3 scripts/everyday.py [ROUTER_DIR] [route options, e.g. --willingness-to-pay 0.01]
Prints the AUC of complexity for hard against easy prompts, how many easy prompts went to the dearest third of
the catalog, how many hard ones to its cheapest half, the easy/hard spend ratio per prompt (a call priced at 300 input
and 300 output tokens), and the models chosen. Needs target/release/switchyard (cargo build --release).
"""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

root = Path(__file__).resolve().parent.parent
router = sys.argv[1] if len(sys.argv) > 1 else str(root / "models/default")
knob = sys.argv[2:]
manifest = json.load(open(Path(router) / "manifest.json"))
price = {m["model"]: 300 * (m["input_usd_per_mtok"] + m["output_usd_per_mtok"]) for m in manifest["models"]}
by_price = sorted(price, key=price.get)
dearest_third = set(by_price[len(by_price) - len(by_price) // 3:])
cheapest_half = set(by_price[: len(by_price) // 2])
fixture = root / "crates/switchyard-core/tests/fixtures/everyday-prompts.jsonl"
rows = [json.loads(line) for line in open(fixture) if line.strip()]
results = []
for row in rows:
    out = subprocess.run([str(root / "target/release/switchyard"), "route", "--router", router, *knob, row["prompt"]],
                         capture_output=True, text=True, cwd=root, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        sys.exit(out.stderr)
    d = json.loads(out.stdout)
    top = max(d["models"], key=lambda m: m["p_success"])["model"]
    results.append((row["label"], d["model"], d["complexity"], d["ood"], top))
easy = [r for r in results if r[0] == "easy"]
hard = [r for r in results if r[0] == "hard"]
auc = sum((h[2] > e[2]) + 0.5 * (h[2] == e[2]) for h in hard for e in easy) / (len(hard) * len(easy))
print(f"complexity AUC (hard above easy): {auc:.3f}")
print(f"easy prompts to the dearest third {sorted(dearest_third)}: {sum(r[1] in dearest_third for r in easy)} of {len(easy)}")
print(f"hard prompts to the cheapest half: {sum(r[1] in cheapest_half for r in hard)} of {len(hard)}")
print(f"easy/hard spend ratio (mean per prompt): "
      f"{(sum(price[r[1]] for r in easy) / len(easy)) / (sum(price[r[1]] for r in hard) / len(hard)):.3f}")
print("easy:", Counter(r[1] for r in easy).most_common())
print("hard:", Counter(r[1] for r in hard).most_common())
print("highest P on hard prompts:", Counter(r[4] for r in hard).most_common())
