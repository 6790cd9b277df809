"""The whole job of `switchyard embed --batch-size 1` done with ONNX Runtime: read prompts from a JSONL file,
tokenize each (the model's tokenizer.json, MAX_TOKENS tokens at most, 256 by default), run the ONNX graph one prompt at a time,
mean-pool, L2-normalise, and write one JSON line per prompt, as switchyard does.

    python scripts/onnxruntime_embed.py MODEL.onnx TOKENIZER.json PROMPTS.jsonl [THREADS [MAX_TOKENS]] > out.jsonl

Needs `pip install onnxruntime tokenizers numpy`. Used by scripts/whole-process.sh.
"""
import json
import sys

import numpy as np
from onnxruntime_common import session as session_for
from tokenizers import Tokenizer

model, tokenizer_file, prompts = sys.argv[1], sys.argv[2], sys.argv[3]
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
max_tokens = int(sys.argv[5]) if len(sys.argv) > 5 else 256
session = session_for(model, threads)
tokenizer = Tokenizer.from_file(tokenizer_file)
tokenizer.no_padding()
tokenizer.enable_truncation(max_tokens)
out = sys.stdout
for line in open(prompts, encoding="utf-8"):
    line = line.strip()
    if not line:
        continue
    value = json.loads(line)
    text = value if isinstance(value, str) else value["text"]
    encoding = tokenizer.encode(text)
    ids = np.array([encoding.ids], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    hidden = session.run(None, feed)[0][0]
    pooled = hidden.mean(axis=0)
    pooled /= max(float(np.linalg.norm(pooled)), 1e-12)
    out.write(json.dumps({"text": text, "tokens": len(encoding.ids), "embedding": pooled.tolist()}) + "\n")
