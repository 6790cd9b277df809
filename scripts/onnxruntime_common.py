"""What the ONNX Runtime helpers share: the session every measurement uses (CPU provider, all graph
optimisations, THREADS intra-op threads, one inter-op thread), and the graph a precision is measured on (the fp32
graph, or ONNX Runtime's dynamic int8 quantisation of it, written beside it once).

Used by scripts/onnxruntime_p50.py, scripts/onnxruntime_embed.py and scripts/onnxruntime_quantize.py.
"""
import os


def session(model, threads):
    """An inference session on MODEL with THREADS intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def quantize(src, dst):
    """ONNX Runtime's dynamic int8: int8 weights per output channel, activations quantised at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(src, dst, weight_type=QuantType.QInt8, per_channel=True)


def model_for(precision, model):
    """The graph to time for PRECISION ("f32" or "int8"): MODEL itself, or MODEL.int8.onnx beside it."""
    if precision == "f32":
        return model
    if precision != "int8":
        raise SystemExit(f"PRECISION must be f32 or int8, not {precision}")
    quantized = model[: -len(".onnx")] + ".int8.onnx" if model.endswith(".onnx") else model + ".int8.onnx"
    if not os.path.exists(quantized) or os.path.getsize(quantized) == 0:
        quantize(model, quantized)
    return quantized
