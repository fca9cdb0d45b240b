"""Does this machine's onnxruntime int8 MatMul saturate? The answer decides the weights' bit width.

Dynamic int8 multiplies uint8 activations by int8 weights. On x86 CPUs without VNNI (AVX2 only, e.g.
the AMD EPYC of benchmarks/RESULTS.md), onnxruntime's kernel adds pairs of those products in 16-bit
registers that saturate: 2 x 255 x 127 = 64,770 does not fit in 32,767. Measured there, a 384 x 64
MatMul with full-range inputs came out up to 131,162 off an exact |y| of about 217,000, while the same
MatMul with weights in [-64, 64] (7 bits) was exact. CPUs with VNNI (and ARM) accumulate in 32 bits
and lose nothing at 8 bits.

This module runs one small MatMul through onnxruntime and compares it with exact integer arithmetic.
The export records the answer in its parity report, and the latency benchmark prints it: the same
int8 graph can agree less with fp32 on a CPU that saturates. It does not switch the export to 7-bit
weights (onnxruntime's ``reduce_range``): on the Banking77 model of latency run 5 (benchmarks/RESULTS.md)
the saturating 8-bit kernel still agreed with fp32 on 99.35% of the test set, exact 7-bit weights on
99.16%; real activations rarely line up two full-range products.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

log = logging.getLogger(__name__)

INNER, OUTER = 64, 16  # enough pairs of large products to overflow 16 bits many times over


def _probe_graph(weights: np.ndarray) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("MatMulInteger", ["a", "w", "a_zero", "w_zero"], ["y"])
    graph = helper.make_graph(
        [node], "int8-saturation-probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [1, INNER])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, OUTER])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.array(0, np.uint8), "a_zero"),
         numpy_helper.from_array(np.zeros(OUTER, np.int8), "w_zero")])
    # IR 8 / opset 17: what every onnxruntime this project supports reads (a newer onnx writes a newer IR).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


@functools.cache
def int8_matmul_saturates() -> bool:
    """True when onnxruntime's CPU int8 MatMul on this machine gets full-range 8-bit weights wrong."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    weights = rng.choice(np.array([-127, 127], np.int8), size=(INNER, OUTER))
    activations = np.full((1, INNER), 255, np.uint8)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(_probe_graph(weights), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {"a": activations})[0].astype(np.int64)
    exact = activations.astype(np.int64) @ weights.astype(np.int64)
    saturates = bool((got != exact).any())
    log.info("int8 MatMul on this CPU %s at 8-bit weights", "saturates" if saturates else "is exact")
    return saturates
