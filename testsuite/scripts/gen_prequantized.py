#!/usr/bin/env python3
"""Pre-quantized ONNX fixtures, quantized by ONNX Runtime itself, for `tests/prequantized.rs`.

    gen_prequantized.py OUT_DIR [--only NAME,...]

Writes one directory per fixture, OUT_DIR/<name>/{model.onnx, inputs.npz, ref.npz, meta.json}:
`ref.npz` is ONNX Runtime's output of the *quantized* model (one thread, CPU provider), so the
test compares edgec with ORT on the same integer model, not with the float original. `meta.json`
holds the fixture's kind (`op`: one quantized op, compared in output LSBs; `model`: compared by
cosine), the quantization mode, and for `op` fixtures the scale of the output's last
DequantizeLinear (one LSB of the int8 output).

Sources: small hand-built float graphs (one conv, a depthwise conv, a matmul, a gemm, an add of
two activations, a small CNN and an MLP) and zoo models (`testsuite/zoo/<m>/model.onnx` with their
`inputs.npz`). Modes, all from `onnxruntime.quantization`:
- `qdq_s8`: quantize_static, QDQ, int8 activations, per-channel int8 weights;
- `qdq_u8`: quantize_static, QDQ, uint8 activations, per-tensor int8 weights;
- `qop_u8`: quantize_static, QOperator (QLinearConv / QLinearMatMul: only Conv and MatMul, whose
  QOperator forms are standard ONNX), uint8 activations;
- `dyn`: quantize_dynamic (DynamicQuantizeLinear + MatMulInteger / ConvInteger), int8 weights;
- `int4`: MatMulNBitsQuantizer in QDQ format (blocked int4 DequantizeLinear -> MatMul),
  symmetric, block 32;
- `raw`: hand-built ONNX integer ops in forms that stay ONNX ops (run-time B, u8 weights with
  per-channel zero points, per-row/per-column matmul parameters), compared exactly.
Calibration uses 8 seeded random samples shaped like the test input (for zoo models, the test
input with shuffled elements). Everything is seeded; the test caches the output directory.
"""
import json
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ZOO = os.path.join(HERE, "..", "zoo")
SAMPLES = 8


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def graph_model(name, nodes, inputs, outputs, inits):
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    onnx.checker.check_model(m)
    return m


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def hand_built():
    """(name, kind, model, inputs) of the small float graphs."""
    rng = np.random.default_rng(7)
    w = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    out = []
    # One conv (3x3, pad 1, stride 1) with bias.
    out.append(("conv", "op", graph_model(
        "conv", [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
        [vi("x", [1, 4, 8, 8])], [vi("y", [1, 8, 8, 8])], [init("w", w(8, 4, 3, 3)), init("b", w(8))]),
        {"x": rng.standard_normal((1, 4, 8, 8)).astype(np.float32)}))
    # Depthwise conv, stride 2, then ReLU (folded into the clamp).
    out.append(("dwconv_relu", "op", graph_model(
        "dwconv", [helper.make_node("Conv", ["x", "w", "b"], ["t"], group=6, pads=[1, 1, 1, 1], strides=[2, 2]),
                   helper.make_node("Relu", ["t"], ["y"])],
        [vi("x", [1, 6, 9, 9])], [vi("y", [1, 6, 5, 5])], [init("w", w(6, 1, 3, 3)), init("b", w(6))]),
        {"x": rng.standard_normal((1, 6, 9, 9)).astype(np.float32)}))
    # MatMul with a constant [K, N] weight.
    out.append(("matmul", "op", graph_model(
        "matmul", [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [vi("x", [2, 5, 64])], [vi("y", [2, 5, 48])], [init("w", w(64, 48))]),
        {"x": rng.standard_normal((2, 5, 64)).astype(np.float32)}))
    # Gemm with transB and a bias.
    out.append(("gemm", "op", graph_model(
        "gemm", [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)],
        [vi("x", [4, 40])], [vi("y", [4, 24])], [init("w", w(24, 40)), init("b", w(24))]),
        {"x": rng.standard_normal((4, 40)).astype(np.float32)}))
    # An add of two activations (the quantizer puts a QuantizeLinear on each input).
    out.append(("add", "op", graph_model(
        "add", [helper.make_node("Add", ["a", "b"], ["y"])],
        [vi("a", [1, 4, 6, 6]), vi("b", [1, 4, 6, 6])], [vi("y", [1, 4, 6, 6])], []),
        {"a": rng.standard_normal((1, 4, 6, 6)).astype(np.float32),
         "b": (rng.standard_normal((1, 4, 6, 6)) * 0.5).astype(np.float32)}))
    # A small CNN: conv-relu, strided conv-relu, residual add, global pooling, flatten, gemm.
    nodes = [
        helper.make_node("Conv", ["x", "c1", "b1"], ["t1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["t1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2", "b2"], ["t2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["t2"], ["r2"]),
        helper.make_node("Add", ["r1", "r2"], ["s"]),
        helper.make_node("Conv", ["s", "c3", "b3"], ["t3"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["t3"], ["r3"]),
        helper.make_node("GlobalAveragePool", ["r3"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    out.append(("cnn", "model", graph_model(
        "cnn", nodes, [vi("x", [1, 3, 16, 16])], [vi("y", [1, 10])],
        [init("c1", w(16, 3, 3, 3)), init("b1", w(16)), init("c2", w(16, 16, 3, 3) * 0.3), init("b2", w(16)),
         init("c3", w(32, 16, 3, 3) * 0.3), init("b3", w(32)), init("fw", w(10, 32)), init("fb", w(10))]),
        {"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)}))
    # An MLP of matmuls (+ bias adds and ReLU), K = 64 and 128 for the int4 blocks.
    nodes = [
        helper.make_node("MatMul", ["x", "m1"], ["h1"]), helper.make_node("Add", ["h1", "a1"], ["g1"]),
        helper.make_node("Relu", ["g1"], ["r1"]),
        helper.make_node("MatMul", ["r1", "m2"], ["h2"]), helper.make_node("Add", ["h2", "a2"], ["g2"]),
        helper.make_node("Relu", ["g2"], ["r2"]),
        helper.make_node("MatMul", ["r2", "m3"], ["y"]),
    ]
    out.append(("mlp", "model", graph_model(
        "mlp", nodes, [vi("x", [8, 64])], [vi("y", [8, 16])],
        [init("m1", w(64, 128) * 0.5), init("a1", w(128)), init("m2", w(128, 64) * 0.4), init("a2", w(64)),
         init("m3", w(64, 16))]),
        {"x": rng.standard_normal((8, 64)).astype(np.float32)}))
    return out


def raw_integer_ops():
    """(name, model, inputs) of ONNX integer ops in forms fold-quantized leaves alone (the backends
    compile them with ONNX's numerics): run-time B, u8 weights with per-channel zero points,
    per-row / per-column matmul parameters. Outputs are integers, compared exactly (1 LSB = 1)."""
    rng = np.random.default_rng(11)
    u8 = lambda *s: rng.integers(0, 256, s, dtype=np.uint8)  # noqa: E731
    i8 = lambda *s: rng.integers(-128, 128, s, dtype=np.int8)  # noqa: E731
    t = numpy_helper.from_array
    ti = lambda n, ty, s: helper.make_tensor_value_info(n, ty, s)  # noqa: E731
    U8, I8, I32 = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32
    out = []
    # QLinearMatMul of two run-time u8 operands, per-column b scales (ONNX Runtime
    # wants the rest per tensor).
    nodes = [helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"])]
    inits = [t(np.array(0.013, np.float32), "sa"),
             t(np.array(120, np.uint8), "za"), t(np.linspace(0.02, 0.05, 5).astype(np.float32).reshape(1, 5), "sb"),
             t(np.array(133, np.uint8), "zb"), t(np.array(0.9, np.float32), "sy"), t(np.array(131, np.uint8), "zy")]
    out.append(("raw_qlinear_matmul", graph_model("m", nodes, [ti("a", U8, [2, 6, 16]), ti("b", U8, [16, 5])],
                                                  [ti("y", U8, [2, 6, 5])], inits),
                {"a": u8(2, 6, 16), "b": u8(16, 5)}))
    # QLinearConv with u8 weights and per-channel zero points (not int8 after centring), bias.
    nodes = [helper.make_node("QLinearConv", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy", "bias"], ["y"],
                              pads=[1, 1, 1, 1], strides=[2, 1], group=2)]
    inits = [t(np.array(0.02, np.float32), "sx"), t(np.array(100, np.uint8), "zx"), t(u8(6, 2, 3, 3), "w"),
             t(np.linspace(0.005, 0.01, 6).astype(np.float32), "sw"), t(u8(6), "zw"),
             t(np.array(0.5, np.float32), "sy"), t(np.array(7, np.uint8), "zy"),
             t(rng.integers(-5000, 5000, 6).astype(np.int32), "bias")]
    out.append(("raw_qlinear_conv", graph_model("c", nodes, [ti("x", U8, [1, 4, 7, 6])], [ti("y", U8, [1, 6, 4, 6])],
                                                inits), {"x": u8(1, 4, 7, 6)}))
    # MatMulInteger with a run-time B and ConvInteger with a constant i8 weight and run-time zp.
    nodes = [helper.make_node("MatMulInteger", ["a", "b", "za"], ["y"])]
    out.append(("raw_matmul_integer", graph_model("mi", nodes, [ti("a", U8, [3, 8]), ti("b", I8, [8, 4])],
                                                  [ti("y", I32, [3, 4])], [t(np.array(77, np.uint8), "za")]),
                {"a": u8(3, 8), "b": i8(8, 4)}))
    nodes = [helper.make_node("ConvInteger", ["x", "w", "zx"], ["y"], pads=[0, 1, 2, 1])]
    out.append(("raw_conv_integer", graph_model("ci", nodes, [ti("x", U8, [2, 3, 5, 5]), ti("zx", U8, [])],
                                                [ti("y", I32, [2, 4, 5, 5])], [t(i8(4, 3, 3, 3), "w")]),
                {"x": u8(2, 3, 5, 5), "zx": np.array(90, np.uint8)}))
    # Bad input for the backends: per-row parameters that also vary along a batch dim. The
    # interpreter evaluates it; compiling must fail with a one-line error naming the node (no
    # ORT reference: ONNX Runtime refuses non-scalar QLinearMatMul zero points altogether).
    nodes = [helper.make_node("QLinearMatMul", ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["y"],
                              name="qmm_batched_rows")]
    inits = [t(np.array(0.1, np.float32), "sa"), t(np.full((2, 3, 1), 5, np.uint8), "za"),
             t(np.array(0.1, np.float32), "sb"), t(np.array(3, np.uint8), "zb"), t(np.array(0.5, np.float32), "sy"),
             t(np.array(1, np.uint8), "zy")]
    out.append(("bad_qlinear_matmul", graph_model("bad", nodes, [ti("a", U8, [2, 3, 4]), ti("b", U8, [4, 5])],
                                                  [ti("y", U8, [2, 3, 5])], inits), {"a": u8(2, 3, 4), "b": u8(4, 5)}))
    return out


def shuffled_samples(inputs, seed):
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(SAMPLES):
        s = {}
        for k, v in inputs.items():
            if v.dtype.kind == "f":
                flat = v.ravel().copy()
                rng.shuffle(flat)
                s[k] = flat.reshape(v.shape)
            else:
                s[k] = v
        samples.append(s)
    return samples


def reader(samples):
    from onnxruntime.quantization import CalibrationDataReader

    class R(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(samples):
                return None
            self.i += 1
            return samples[self.i - 1]

    return R()


def quantize(mode, src, dst, samples):
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    if mode in ("qdq_s8", "qdq_u8", "qop_u8"):
        s8 = mode == "qdq_s8"
        quantize_static(src, dst, reader(samples),
                        quant_format=QuantFormat.QOperator if mode == "qop_u8" else QuantFormat.QDQ,
                        per_channel=s8, activation_type=QuantType.QInt8 if s8 else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        # QOperator forms of other ops (QGemm, QLinearAdd, ...) are com.microsoft
                        # contrib ops, not ONNX: only Conv and MatMul have standard QLinear forms.
                        op_types_to_quantize=["Conv", "MatMul"] if mode == "qop_u8" else None,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
    elif mode == "dyn":
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
    elif mode == "int4":
        from onnxruntime.quantization.matmul_nbits_quantizer import (DefaultWeightOnlyQuantConfig,
                                                                     MatMulNBitsQuantizer)
        cfg = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, quant_format=QuantFormat.QDQ,
                                           op_types_to_quantize=("MatMul",))
        q = MatMulNBitsQuantizer(onnx.load(src), algo_config=cfg)
        q.process()
        q.model.save_model_to_file(dst, False)
    else:
        raise ValueError(mode)


def output_lsb(model):
    """Scale of the DequantizeLinear producing the (first) graph output, if a constant scalar."""
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    for n in g.node:
        if n.output[0] == g.output[0].name and n.op_type == "DequantizeLinear":
            s = inits.get(n.input[1])
            if s is not None and s.size == 1:
                return float(s.ravel()[0])
    return None


def run_ort(path, inputs):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, inputs)
    return {o.name: v for o, v in zip(sess.get_outputs(), outs)}


def op_counts(model):
    c = {}
    for n in model.graph.node:
        c[n.op_type] = c.get(n.op_type, 0) + 1
    return c


# (source, kind, modes): the zoo models and what they exercise.
ZOO_CASES = [
    ("vae_mlp", ["qdq_s8", "qdq_u8", "dyn"]),
    ("vocoder", ["qdq_s8", "qop_u8"]),
    ("dcgan", ["qdq_s8", "qdq_u8"]),
    ("gpt2", ["dyn", "int4"]),
]
HAND_MODES = {
    "conv": ["qdq_s8", "qdq_u8", "qop_u8", "dyn"],
    "dwconv_relu": ["qdq_s8", "qop_u8"],
    "matmul": ["qdq_s8", "qdq_u8", "qop_u8", "dyn", "int4"],
    "gemm": ["qdq_s8", "qdq_u8", "dyn"],
    "add": ["qdq_s8", "qdq_u8"],
    "cnn": ["qdq_s8", "qdq_u8", "qop_u8", "dyn"],
    "mlp": ["qdq_s8", "qop_u8", "dyn", "int4"],
}


def main():
    out_dir = sys.argv[1]
    only = None
    if "--only" in sys.argv:
        only = set(sys.argv[sys.argv.index("--only") + 1].split(","))
    os.makedirs(out_dir, exist_ok=True)
    sources = []
    for name, kind, model, inputs in hand_built():
        sources.append((name, kind, model, inputs, HAND_MODES[name]))
    for name, modes in ZOO_CASES:
        d = os.path.join(ZOO, name)
        inputs = dict(np.load(os.path.join(d, "inputs.npz")))
        sources.append((name, "model", onnx.load(os.path.join(d, "model.onnx")), inputs, modes))
    done = []
    for name, model, inputs in raw_integer_ops():
        if only and name not in only:
            continue
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        mpath = os.path.join(d, "model.onnx")
        onnx.save(model, mpath)
        np.savez(os.path.join(d, "inputs.npz"), **inputs)
        bad = name.startswith("bad_")
        np.savez(os.path.join(d, "ref.npz"), **({} if bad else run_ort(mpath, inputs)))
        with open(os.path.join(d, "meta.json"), "w") as f:
            json.dump({"source": name, "kind": "error" if bad else "op", "mode": "raw", "lsb": 1.0,
                       "onnx_ops": op_counts(model)}, f, indent=1, sort_keys=True)
        done.append(name)
    with tempfile.TemporaryDirectory() as tmp:
        for si, (name, kind, model, inputs, modes) in enumerate(sources):
            src = os.path.join(tmp, f"{name}.onnx")
            onnx.save(model, src)
            try:
                from onnxruntime.quantization.shape_inference import quant_pre_process
                pre = os.path.join(tmp, f"{name}_pre.onnx")
                quant_pre_process(src, pre, skip_symbolic_shape=True)
            except Exception:
                pre = src
            samples = shuffled_samples(inputs, 100 + si)
            for mode in modes:
                fx = f"{name}_{mode}"
                if only and fx not in only:
                    continue
                d = os.path.join(out_dir, fx)
                os.makedirs(d, exist_ok=True)
                mpath = os.path.join(d, "model.onnx")
                quantize(mode, pre, mpath, samples)
                q = onnx.load(mpath)
                ref = run_ort(mpath, inputs)
                np.savez(os.path.join(d, "inputs.npz"), **inputs)
                np.savez(os.path.join(d, "ref.npz"), **ref)
                meta = {"source": name, "kind": kind, "mode": mode, "lsb": output_lsb(q),
                        "onnx_ops": op_counts(q)}
                with open(os.path.join(d, "meta.json"), "w") as f:
                    json.dump(meta, f, indent=1, sort_keys=True)
                done.append(fx)
    if not only:
        with open(os.path.join(out_dir, "index.json"), "w") as f:
            json.dump({"fixtures": done}, f, indent=1)
    print(json.dumps({"fixtures": done}))


if __name__ == "__main__":
    main()
