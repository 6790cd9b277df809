"""ONNX Runtime's own int8: dynamic quantisation of an fp32 ONNX graph with `onnxruntime.quantization`
(weights int8 per output channel, activations quantised at run time), the peer of `--precision int8`.

    python scripts/onnxruntime_quantize.py IN.onnx OUT.onnx

Needs `pip install onnxruntime onnx`. Used by scripts/compare-onnxruntime.sh and scripts/whole-process.sh.
"""
import sys

from onnxruntime.quantization import QuantType, quantize_dynamic

src, dst = sys.argv[1], sys.argv[2]
quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)
print(f"wrote {dst}")
