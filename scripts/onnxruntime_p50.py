"""Times ONNX Runtime on an ONNX export of all-MiniLM-L6-v2 (fp32, or its int8 quantisation), measured the way
`cargo run --release -p switchyard-encoder --example encode_loop` measures switchyard's encoder: the model call
alone on fixed token ids (no tokenizer, no pooling), TOKENS tokens per text including [CLS] and [SEP], for
SECONDS seconds, printing the p50 and mean per call.

    python scripts/onnxruntime_p50.py MODEL.onnx TOKENS BATCH SECONDS [THREADS]

Needs `pip install onnxruntime numpy`. Used by scripts/compare-onnxruntime.sh.
"""
import sys
import time

import numpy as np
from onnxruntime_common import session as session_for

model, tokens, batch, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
session = session_for(model, threads)
ids = np.array([[101] + [2000 + (i * 7) % 3000 for i in range(tokens - 2)] + [102]] * batch, dtype=np.int64)
feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
for _ in range(5):
    session.run(None, feed)
times = []
start = time.perf_counter()
while time.perf_counter() - start < seconds:
    t = time.perf_counter()
    session.run(None, feed)
    times.append(time.perf_counter() - t)
mean = (time.perf_counter() - start) / len(times)
times.sort()
print(f"{times[len(times) // 2] * 1e3:.3f} ms p50, {mean * 1e3:.3f} ms mean, {batch / mean:.0f} texts/s")
