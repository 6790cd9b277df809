#!/usr/bin/env bash
# The cosine between int8 and f32 embeddings over 1,000 prompts of mixed length: 200 test prompts drawn from
# each benchmark set in training-data/ (seeded; a set with fewer gives all it has, and the LLMRouter set fills
# up to 1,000), each embedded with --precision f32 and int8. Prints the smallest and mean cosine and the
# prompts' token counts.
#   scripts/int8-cosine.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p switchyard
bin=${CARGO_TARGET_DIR:-target}/release/switchyard
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - > "$work/prompts.jsonl" <<'PY'
import gzip, json, random
random.seed(1)
def test_prompts(name):
    seen, out = set(), []
    for line in gzip.open(f"training-data/{name}/logs.jsonl.gz", "rt", encoding="utf-8"):
        row = json.loads(line)
        text = row.get("prompt")
        if row.get("split") == "test" and isinstance(text, str) and text not in seen:
            seen.add(text)
            out.append(text)
    random.shuffle(out)
    return out
picked = []
pools = {name: test_prompts(name) for name in ["llmrouter", "zeroeval", "routellm", "routerarena", "mmlu-pro"]}
for pool in pools.values():
    picked += pool[:200]
picked += [p for p in pools["llmrouter"][200:] if p not in set(picked)][: 1000 - len(picked)]
for text in picked:
    print(json.dumps(text))
PY
for precision in f32 int8; do
  HF_HUB_OFFLINE=1 "$bin" embed --precision "$precision" -i "$work/prompts.jsonl" > "$work/$precision.jsonl"
done
python3 - "$work" <<'PY'
import json, sys
load = lambda p: [json.loads(line) for line in open(f"{sys.argv[1]}/{p}.jsonl")]
a, b = load("f32"), load("int8")
cos = [sum(x * y for x, y in zip(u["embedding"], v["embedding"])) for u, v in zip(a, b)]
tokens = [u["tokens"] for u in a]
print(f"{len(cos)} prompts of {min(tokens)} to {max(tokens)} tokens (mean {sum(tokens) / len(tokens):.0f}): "
      f"cosine int8 to f32 min {min(cos):.5f}, mean {sum(cos) / len(cos):.5f}")
PY
