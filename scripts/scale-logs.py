#!/usr/bin/env python3
"""Writes a large labelled log for measuring training at scale (issue: 1,000,000 rows over 200,000 prompts).

Every row is real evidence re-used: each synthetic prompt is one of the LLMRouter set's prompts (training-data/
llmrouter, MIT) behind a distinct request header, and its rows are that prompt's real outcomes for a random
subset of the set's models. The prompts are therefore distinct texts (text-level splits and the embedding cache
see 200,000 prompts), with the length mix and the outcome structure of real routing data.

    scripts/scale-logs.py --prompts 200000 --rows-per-prompt 5 --out /tmp/scale.jsonl.gz
"""
import argparse
import gzip
import json
import random
from collections import OrderedDict

HEADERS = [
    "Ticket {n}:", "Question {n} from the help desk:", "Request #{n}.", "From chat session {n}:",
    "Homework item {n}:", "Customer query {n} -", "Task {n}.", "Forum post {n}:",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=200_000)
    ap.add_argument("--rows-per-prompt", type=int, default=5)
    ap.add_argument("--source", default="training-data/llmrouter/logs.jsonl.gz")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    source = OrderedDict()
    with gzip.open(args.source, "rt") as f:
        for line in f:
            r = json.loads(line)
            if r.get("split") == "test" or "score" not in r:
                continue
            entry = source.setdefault(r["prompt"], {"domain": r.get("domain"), "rows": {}})
            entry["rows"][r["model"]] = (r["score"], r.get("input_tokens"), r.get("output_tokens"))
    prompts = [(p, e) for p, e in source.items() if len(e["rows"]) >= args.rows_per_prompt]
    if not prompts:
        raise SystemExit(f"no prompt in {args.source} has {args.rows_per_prompt} models' outcomes")
    rng = random.Random(args.seed)
    rows = 0
    with gzip.open(args.out, "wt", compresslevel=3) as out:
        for n in range(args.prompts):
            text, entry = prompts[n % len(prompts)]
            header = HEADERS[(n // len(prompts)) % len(HEADERS)].format(n=n)
            prompt = f"{header} {text}"
            for model in rng.sample(sorted(entry["rows"]), args.rows_per_prompt):
                score, tin, tout = entry["rows"][model]
                row = {"id": f"scale-{n}", "prompt": prompt, "model": model, "score": score}
                if entry["domain"]:
                    row["domain"] = entry["domain"]
                if tin is not None:
                    row["input_tokens"] = tin + 6
                if tout is not None:
                    row["output_tokens"] = tout
                out.write(json.dumps(row) + "\n")
                rows += 1
    print(f"wrote {rows} rows over {args.prompts} prompts ({len(prompts)} source prompts) to {args.out}")


if __name__ == "__main__":
    main()
