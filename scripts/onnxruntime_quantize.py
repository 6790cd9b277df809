"""ONNX Runtime's own int8: dynamic quantisation of an fp32 ONNX graph with `onnxruntime.quantization`
(weights int8 per output channel, activations quantised at run time), the peer of `--precision int8`.

    python scripts/onnxruntime_quantize.py IN.onnx OUT.onnx
    python scripts/onnxruntime_quantize.py --model-for PRECISION IN.onnx   # prints the graph to time

The second form prints IN.onnx for f32, and for int8 IN.int8.onnx, writing it first if it is not there. Needs
`pip install onnxruntime onnx`. Used by scripts/compare-onnxruntime.sh and scripts/whole-process.sh.
"""
import sys

from onnxruntime_common import model_for, quantize

if len(sys.argv) == 4 and sys.argv[1] == "--model-for":
    print(model_for(sys.argv[2], sys.argv[3]))
elif len(sys.argv) == 3:
    quantize(sys.argv[1], sys.argv[2])
    print(f"wrote {sys.argv[2]}", file=sys.stderr)
else:
    raise SystemExit(__doc__)
