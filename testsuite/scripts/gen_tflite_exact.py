#!/usr/bin/env python3
"""Bit-exactness fixtures: one-op int8 TFLite models run by TFLite's reference kernels.

Builds tiny TFLite models directly as flatbuffers (the `tflite` package's generated schema
builders), one builtin op each (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV, ADD,
QUANTIZE, DEQUANTIZE), with seeded random parameters that cover awkward cases (requantization
multipliers below 2^-20 and above 1, zero points across -128..127, saturation, fused RELU/RELU6),
runs each in LiteRT with the BUILTIN_REF op resolver (the reference kernels, not the optimized
ones, which may differ by one LSB), and writes

    testsuite/fixtures/tflite_exact/<case>.npz   x [, x2], w [, b], y  in TFLite's layouts
                                                (NHWC activations, OHWI / 1HWC weights)
    testsuite/fixtures/tflite_exact/manifest.json  every case's op, attributes and quantization
                                                parameters (float32 scales as exact decimals)

`testsuite/tests/tflite_exact.rs` rebuilds each case as edgec IR and requires the interpreter
and the compiled code to reproduce `y` bit for bit. Run from the repository root:

    python3 testsuite/scripts/gen_tflite_exact.py [--out DIR] [--keep-models]

Needs flatbuffers, tflite and ai-edge-litert (pinned in testsuite/requirements.txt).
"""

import argparse
import json
import math
import os
import sys
import tempfile

import flatbuffers
import numpy as np
import tflite
from ai_edge_litert.interpreter import Interpreter, OpResolverType

SEED = 20240611
F32, I32, I8 = tflite.TensorType.FLOAT32, tflite.TensorType.INT32, tflite.TensorType.INT8
NP_OF = {F32: np.float32, I32: np.int32, I8: np.int8}
ACT = {"NONE": tflite.ActivationFunctionType.NONE, "RELU": tflite.ActivationFunctionType.RELU,
       "RELU6": tflite.ActivationFunctionType.RELU6}
PAD = {"SAME": tflite.Padding.SAME, "VALID": tflite.Padding.VALID}


# ------------------------------------------------------------------------------------------------
# Flatbuffer writing
# ------------------------------------------------------------------------------------------------

class T:
    """One tensor of the model: shape, type, optional constant data and quantization."""

    def __init__(self, name, shape, ty, data=None, scale=None, zero_point=None, qdim=0):
        self.name, self.shape, self.ty, self.data = name, list(shape), ty, data
        self.scale, self.zero_point, self.qdim = scale, zero_point, qdim


def _vec(b, arr, dtype):
    return b.CreateNumpyVector(np.asarray(arr, dtype=dtype))


def _table_vec(b, start, offs):
    start(b, len(offs))
    for o in reversed(offs):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def build_model(tensors, opcode, version, op_inputs, op_outputs, options=None):
    """A TFL3 flatbuffer with one subgraph holding one operator.

    `tensors`: list of T; `op_inputs`/`op_outputs`: tensor indices (-1 = omitted optional);
    `options`: (BuiltinOptions type, fn(builder) -> table offset) or None. Non-constant
    inputs of the operator become subgraph inputs."""
    b = flatbuffers.Builder(4096)
    # Buffers: 0 is the empty sentinel; each constant tensor gets its own.
    buffer_offs, buf_index = [], []
    tflite.BufferStart(b)
    buffer_offs.append(tflite.BufferEnd(b))
    for t in tensors:
        if t.data is None:
            buf_index.append(0)
            continue
        raw = np.ascontiguousarray(t.data, dtype=NP_OF[t.ty]).tobytes()
        b.StartVector(1, len(raw), 16)  # 16-byte aligned payload
        for byte in reversed(raw):
            b.PrependByte(byte)
        data = b.EndVector()
        tflite.BufferStart(b)
        tflite.BufferAddData(b, data)
        buf_index.append(len(buffer_offs))
        buffer_offs.append(tflite.BufferEnd(b))

    tensor_offs = []
    for i, t in enumerate(tensors):
        name = b.CreateString(t.name)
        shape = _vec(b, t.shape, np.int32)
        quant = None
        if t.scale is not None:
            scale = _vec(b, np.asarray(t.scale, np.float32).reshape(-1), np.float32)
            zp = _vec(b, np.asarray(t.zero_point, np.int64).reshape(-1), np.int64)
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zp)
            tflite.QuantizationParametersAddQuantizedDimension(b, t.qdim)
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, t.ty)
        tflite.TensorAddBuffer(b, buf_index[i])
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        tensor_offs.append(tflite.TensorEnd(b))

    opts = options[1](b) if options else None
    ins = _vec(b, op_inputs, np.int32)
    outs = _vec(b, op_outputs, np.int32)
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, ins)
    tflite.OperatorAddOutputs(b, outs)
    if options:
        tflite.OperatorAddBuiltinOptionsType(b, options[0])
        tflite.OperatorAddBuiltinOptions(b, opts)
    op = tflite.OperatorEnd(b)

    graph_inputs = [i for i in op_inputs if i >= 0 and tensors[i].data is None]
    sg_tensors = _table_vec(b, tflite.SubGraphStartTensorsVector, tensor_offs)
    sg_inputs = _vec(b, graph_inputs, np.int32)
    sg_outputs = _vec(b, op_outputs, np.int32)
    sg_ops = _table_vec(b, tflite.SubGraphStartOperatorsVector, [op])
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, sg_tensors)
    tflite.SubGraphAddInputs(b, sg_inputs)
    tflite.SubGraphAddOutputs(b, sg_outputs)
    tflite.SubGraphAddOperators(b, sg_ops)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)

    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(opcode, 127))
    tflite.OperatorCodeAddBuiltinCode(b, opcode)
    tflite.OperatorCodeAddVersion(b, version)
    code = tflite.OperatorCodeEnd(b)

    codes = _table_vec(b, tflite.ModelStartOperatorCodesVector, [code])
    subgraphs = _table_vec(b, tflite.ModelStartSubgraphsVector, [subgraph])
    buffers = _table_vec(b, tflite.ModelStartBuffersVector, buffer_offs)
    desc = b.CreateString("edgec tflite_exact fixture")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, buffers)
    model = tflite.ModelEnd(b)
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def run_ref(model, feeds, keep_dir=None, name="model", resolver=OpResolverType.BUILTIN_REF):
    """Runs the model with TFLite's reference kernels (or `resolver`); returns the op's output."""
    fd, path = tempfile.mkstemp(suffix=".tflite")
    with os.fdopen(fd, "wb") as f:
        f.write(model)
    try:
        interp = Interpreter(model_path=path, experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
        for d, v in zip(interp.get_input_details(), feeds):
            interp.set_tensor(d["index"], v)
        interp.invoke()
        out = interp.get_tensor(interp.get_output_details()[0]["index"]).copy()
    finally:
        if keep_dir:
            os.replace(path, os.path.join(keep_dir, name + ".tflite"))
        else:
            os.unlink(path)
    return out


# ------------------------------------------------------------------------------------------------
# Quantization helpers (what TFLite computes, in the same precision)
# ------------------------------------------------------------------------------------------------

def f32(v):
    return float(np.float32(v))


def round_half_away(v):
    return math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)


def act_range(act, scale, zp):
    """TFLite's CalculateActivationRangeQuantized for int8: 0 and 6 quantized in float."""
    q = lambda r: zp + int(round_half_away(float(np.float32(r) / np.float32(scale))))
    if act == "RELU":
        return max(-128, q(0.0)), 127
    if act == "RELU6":
        return max(-128, q(0.0)), min(127, q(6.0))
    return -128, 127


def log_uniform(rng, lo, hi, n=None):
    v = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    return v.astype(np.float32)


def sym_weights(rng, shape, lim=127):
    return rng.integers(-lim, lim + 1, size=shape, dtype=np.int64).astype(np.int8)


def act_values(rng, shape, zp, spread=128):
    lo, hi = max(-128, zp - spread), min(127, zp + spread)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64).astype(np.int8)


def out_scale_for(act, s_x, real_per_sx, rng):
    """(input scale, output scale) so that most outputs land inside int8 (some saturate); for
    RELU6 the input scale is rescaled so that real outputs reach past 6."""
    if act == "RELU6":
        s_y = f32(6.0 / rng.uniform(50, 100))
        return f32(rng.uniform(5, 10) / (2.5 * real_per_sx)), s_y
    return s_x, f32(2.5 * real_per_sx * s_x / rng.uniform(60, 100))


# ------------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------------

CASES = []  # (manifest entry, arrays, model bytes)


def add_case(entry, arrays, model, feeds, keep_dir):
    y = run_ref(model, feeds, keep_dir, entry["name"])
    arrays["y"] = y
    if entry["op"] == "FULLY_CONNECTED":
        # LiteRT's reference int8 FULLY_CONNECTED rescales in floating point,
        # round(acc * (s_x * s_w / s_y)) in double, unlike its reference convolutions, its
        # optimized FULLY_CONNECTED and TFLite-Micro, which use the fixed-point
        # MultiplyByQuantizedMultiplier. Keep the optimized kernel's output as the fixed-point
        # oracle too.
        arrays["y_fixed_point"] = run_ref(
            model, feeds, None, entry["name"], OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    entry["y_shape"] = list(y.shape)
    CASES.append((entry, arrays))


def conv_like(rng, name, kind, *, n=1, hw=(7, 6), cin=3, cout=4, k=(3, 3), stride=(1, 1),
              dil=(1, 1), padding="SAME", act="NONE", bias=True, regime="normal", keep_dir=None):
    """CONV_2D (kind='conv') or DEPTHWISE_CONV_2D (kind='dw', depth multiplier 1)."""
    if kind == "dw":
        cout = cin
    x_zp = int(rng.integers(-128, 128))
    if regime == "normal":
        s_x = f32(log_uniform(rng, 1e-3, 0.5))
        s_w = log_uniform(rng, 1e-3, 0.1, cout)
        x = act_values(rng, (n, *hw, cin), x_zp)
        wlim = 127
    elif regime == "tiny":  # multipliers < 2^-20, one channel < 2^-31 (multiplier 0)
        s_x = f32(log_uniform(rng, 1e-4, 1e-3))
        s_w = log_uniform(rng, 1e-3, 0.1, cout)
        s_w[-1] = np.float32(1e-12)
        x = act_values(rng, (n, *hw, cin), x_zp)
        wlim = 127
    elif regime == "pot":  # power-of-two scales: many exact ties in the requantization
        s_x = f32(2.0 ** -int(rng.integers(4, 8)))
        s_w = np.array([2.0 ** -int(rng.integers(6, 10)) for _ in range(cout)], np.float32)
        x = act_values(rng, (n, *hw, cin), x_zp)
        wlim = 127
    else:  # "big": multipliers > 1, small accumulators
        s_x = f32(log_uniform(rng, 0.2, 0.6))
        s_w = log_uniform(rng, 0.01, 0.05, cout)
        x = act_values(rng, (n, *hw, cin), x_zp, spread=3)
        wlim = 3
    if kind == "conv":
        w = sym_weights(rng, (cout, *k, cin), wlim)  # OHWI
    else:
        w = sym_weights(rng, (1, *k, cout), wlim)  # 1HWC
    # Float magnitude of the accumulators, to pick the output scale.
    taps = k[0] * k[1] * (cin if kind == "conv" else 1)
    acc_mag = np.sqrt(taps) * float(np.abs(x.astype(np.int32) - x_zp).mean() + 1) * float(np.abs(w).mean() + 1)
    real = acc_mag * s_x * float(np.mean(s_w))
    if regime == "tiny":
        s_y = f32(s_x * float(np.max(s_w)) * 2.0 ** 21)
        b = rng.integers(-(1 << 30), 1 << 30, size=cout, dtype=np.int64).astype(np.int32)
    elif regime == "big":
        s_y = f32(s_x * float(np.mean(s_w)) / rng.uniform(2.0, 12.0))
        b = rng.integers(-20, 21, size=cout, dtype=np.int64).astype(np.int32)
    else:
        s_x, s_y = out_scale_for(act, s_x, real / s_x, rng)
        b = rng.integers(-int(acc_mag), int(acc_mag) + 1, size=cout, dtype=np.int64).astype(np.int32)
        if regime == "pot":
            s_y = f32(2.0 ** round(math.log2(s_y)))
    y_zp = int(rng.integers(-128, 128))
    bias_scale = (np.float64(s_x) * s_w.astype(np.float64)).astype(np.float32)
    oh, ow = out_hw(hw, k, stride, dil, padding)
    tensors = [
        T("x", x.shape, I8, scale=[s_x], zero_point=[x_zp]),
        T("w", w.shape, I8, data=w, scale=s_w, zero_point=[0] * cout, qdim=0 if kind == "conv" else 3),
        T("b", [cout], I32, data=b, scale=bias_scale, zero_point=[0] * cout),
        T("y", [n, oh, ow, cout], I8, scale=[s_y], zero_point=[y_zp]),
    ]
    ins = [0, 1, 2 if bias else -1]

    def options(bld):
        if kind == "conv":
            tflite.Conv2DOptionsStart(bld)
            tflite.Conv2DOptionsAddPadding(bld, PAD[padding])
            tflite.Conv2DOptionsAddStrideH(bld, stride[0])
            tflite.Conv2DOptionsAddStrideW(bld, stride[1])
            tflite.Conv2DOptionsAddDilationHFactor(bld, dil[0])
            tflite.Conv2DOptionsAddDilationWFactor(bld, dil[1])
            tflite.Conv2DOptionsAddFusedActivationFunction(bld, ACT[act])
            return tflite.Conv2DOptionsEnd(bld)
        tflite.DepthwiseConv2DOptionsStart(bld)
        tflite.DepthwiseConv2DOptionsAddPadding(bld, PAD[padding])
        tflite.DepthwiseConv2DOptionsAddStrideH(bld, stride[0])
        tflite.DepthwiseConv2DOptionsAddStrideW(bld, stride[1])
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(bld, 1)
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(bld, dil[0])
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(bld, dil[1])
        tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(bld, ACT[act])
        return tflite.DepthwiseConv2DOptionsEnd(bld)

    if kind == "conv":
        opcode, version, otype = tflite.BuiltinOperator.CONV_2D, 3, tflite.BuiltinOptions.Conv2DOptions
    else:
        opcode, version, otype = (tflite.BuiltinOperator.DEPTHWISE_CONV_2D, 3,
                                  tflite.BuiltinOptions.DepthwiseConv2DOptions)
    model = build_model(tensors, opcode, version, ins, [3], (otype, options))
    lo, hi = act_range(act, s_y, y_zp)
    entry = {
        "name": name, "op": "CONV_2D" if kind == "conv" else "DEPTHWISE_CONV_2D",
        "padding": padding, "strides": list(stride), "dilations": list(dil), "activation": act,
        "x": {"scale": s_x, "zero_point": x_zp}, "w_scales": [float(s) for s in s_w],
        "y": {"scale": s_y, "zero_point": y_zp}, "act_min": lo, "act_max": hi, "bias": bias,
        "multipliers": [float(np.float64(s_x) * np.float64(s) / np.float64(s_y)) for s in s_w],
    }
    arrays = {"x": x, "w": w}
    if bias:
        arrays["b"] = b
    add_case(entry, arrays, model, [x], keep_dir)


def out_hw(hw, k, stride, dil, padding):
    res = []
    for i in range(2):
        ek = (k[i] - 1) * dil[i] + 1
        res.append(-(-hw[i] // stride[i]) if padding == "SAME" else (hw[i] - ek + stride[i]) // stride[i])
    return res


def fully_connected(rng, name, *, in_shape=(3, 10), units=5, act="NONE", bias=True, keep_num_dims=False,
                    per_channel=True, regime="normal", keep_dir=None):
    k = in_shape[-1]
    x_zp = int(rng.integers(-128, 128))
    if regime == "big":
        s_x = f32(log_uniform(rng, 0.2, 0.6))
        s_w = log_uniform(rng, 0.01, 0.05, units)
        x = act_values(rng, in_shape, x_zp, spread=3)
        w = sym_weights(rng, (units, k), 3)
    else:
        s_x = f32(log_uniform(rng, 1e-3, 0.5))
        s_w = log_uniform(rng, 1e-3, 0.1, units)
        x = act_values(rng, in_shape, x_zp)
        w = sym_weights(rng, (units, k))
    if regime == "pot":  # power-of-two scales: many exact ties in the requantization
        s_x = f32(2.0 ** -int(rng.integers(4, 8)))
        s_w = np.array([2.0 ** -int(rng.integers(6, 10)) for _ in range(units)], np.float32)
    if not per_channel:
        s_w = s_w[:1]
    acc_mag = np.sqrt(k) * float(np.abs(x.astype(np.int32) - x_zp).mean() + 1) * float(np.abs(w).mean() + 1)
    if regime == "big":
        s_y = f32(s_x * float(np.mean(s_w)) / rng.uniform(2.0, 12.0))
        b = rng.integers(-20, 21, size=units, dtype=np.int64).astype(np.int32)
    elif regime == "tiny":
        s_y = f32(s_x * float(np.max(s_w)) / rng.uniform(2.0 ** -26, 2.0 ** -21))
        b = rng.integers(-(1 << 30), 1 << 30, size=units, dtype=np.int64).astype(np.int32)
    else:
        s_x, s_y = out_scale_for(act, s_x, acc_mag * float(np.mean(s_w)), rng)
        b = rng.integers(-int(acc_mag), int(acc_mag) + 1, size=units, dtype=np.int64).astype(np.int32)
        if regime == "pot":
            s_y = f32(2.0 ** round(math.log2(s_y)))
    y_zp = int(rng.integers(-128, 128))
    sw_all = np.broadcast_to(s_w, (units,)).astype(np.float32)
    bias_scale = (np.float64(s_x) * s_w.astype(np.float64)).astype(np.float32)
    out_shape = list(in_shape[:-1]) + [units] if keep_num_dims else [int(np.prod(in_shape[:-1])), units]
    tensors = [
        T("x", in_shape, I8, scale=[s_x], zero_point=[x_zp]),
        T("w", (units, k), I8, data=w, scale=s_w, zero_point=[0] * len(s_w), qdim=0),
        T("b", [units], I32, data=b, scale=bias_scale, zero_point=[0] * len(s_w)),
        T("y", out_shape, I8, scale=[s_y], zero_point=[y_zp]),
    ]

    def options(bld):
        tflite.FullyConnectedOptionsStart(bld)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(bld, ACT[act])
        tflite.FullyConnectedOptionsAddKeepNumDims(bld, keep_num_dims)
        return tflite.FullyConnectedOptionsEnd(bld)

    model = build_model(tensors, tflite.BuiltinOperator.FULLY_CONNECTED, 4 if not per_channel else 12,
                        [0, 1, 2 if bias else -1], [3], (tflite.BuiltinOptions.FullyConnectedOptions, options))
    lo, hi = act_range(act, s_y, y_zp)
    entry = {
        "name": name, "op": "FULLY_CONNECTED", "activation": act, "keep_num_dims": keep_num_dims,
        "x": {"scale": s_x, "zero_point": x_zp}, "w_scales": [float(s) for s in s_w],
        "per_channel": per_channel, "y": {"scale": s_y, "zero_point": y_zp}, "act_min": lo,
        "act_max": hi, "bias": bias,
        "multipliers": [float(np.float64(s_x) * np.float64(s) / np.float64(s_y)) for s in sw_all],
    }
    arrays = {"x": x, "w": w}
    if bias:
        arrays["b"] = b
    add_case(entry, arrays, model, [x], keep_dir)


def transpose_conv(rng, name, *, n=1, hw=(4, 3), cin=3, cout=4, k=(3, 3), stride=(2, 2), padding="SAME",
                   bias=True, keep_dir=None):
    x_zp = int(rng.integers(-128, 128))
    s_x = f32(log_uniform(rng, 1e-3, 0.5))
    s_w = log_uniform(rng, 1e-3, 0.1, cout)
    x = act_values(rng, (n, *hw, cin), x_zp)
    w = sym_weights(rng, (cout, *k, cin))  # OHWI
    if padding == "SAME":
        oh, ow = hw[0] * stride[0], hw[1] * stride[1]
    else:
        oh, ow = (hw[0] - 1) * stride[0] + k[0], (hw[1] - 1) * stride[1] + k[1]
    acc_mag = np.sqrt(k[0] * k[1] * cin / (stride[0] * stride[1])) * float(
        np.abs(x.astype(np.int32) - x_zp).mean() + 1) * float(np.abs(w).mean() + 1)
    s_x, s_y = out_scale_for("NONE", s_x, acc_mag * float(np.mean(s_w)), rng)
    y_zp = int(rng.integers(-128, 128))
    b = rng.integers(-int(acc_mag), int(acc_mag) + 1, size=cout, dtype=np.int64).astype(np.int32)
    bias_scale = (np.float64(s_x) * s_w.astype(np.float64)).astype(np.float32)
    out_shape = np.array([n, oh, ow, cout], np.int32)
    tensors = [
        T("output_shape", [4], I32, data=out_shape),
        T("w", w.shape, I8, data=w, scale=s_w, zero_point=[0] * cout, qdim=0),
        T("x", x.shape, I8, scale=[s_x], zero_point=[x_zp]),
        T("b", [cout], I32, data=b, scale=bias_scale, zero_point=[0] * cout),
        T("y", [n, oh, ow, cout], I8, scale=[s_y], zero_point=[y_zp]),
    ]

    def options(bld):
        tflite.TransposeConvOptionsStart(bld)
        tflite.TransposeConvOptionsAddPadding(bld, PAD[padding])
        tflite.TransposeConvOptionsAddStrideH(bld, stride[0])
        tflite.TransposeConvOptionsAddStrideW(bld, stride[1])
        return tflite.TransposeConvOptionsEnd(bld)

    model = build_model(tensors, tflite.BuiltinOperator.TRANSPOSE_CONV, 3, [0, 1, 2, 3 if bias else -1], [4],
                        (tflite.BuiltinOptions.TransposeConvOptions, options))
    # TFLite pads a transposed conv as the forward conv from its output back to its input would
    # be padded; it uses the leading pad and crops to output_shape.
    pads_begin, pads_end = [], []
    for i, (o, kk, s, inn) in enumerate(zip((oh, ow), k, stride, hw)):
        fwd_out = -(-o // s) if padding == "SAME" else (o - kk + s) // s
        total = max(0, (fwd_out - 1) * s + kk - o)
        pb = total // 2
        pads_begin.append(pb)
        pads_end.append((inn - 1) * s + kk - o - pb)
    entry = {
        "name": name, "op": "TRANSPOSE_CONV", "padding": padding, "strides": list(stride),
        "output_shape": [int(v) for v in out_shape], "pads": pads_begin + pads_end,
        "x": {"scale": s_x, "zero_point": x_zp}, "w_scales": [float(s) for s in s_w],
        "y": {"scale": s_y, "zero_point": y_zp}, "act_min": -128, "act_max": 127, "bias": bias,
        "multipliers": [float(np.float64(s_x) * np.float64(s) / np.float64(s_y)) for s in s_w],
    }
    arrays = {"x": x, "w": w}
    if bias:
        arrays["b"] = b
    add_case(entry, arrays, model, [x], keep_dir)


def add(rng, name, *, a_shape=(1, 4, 5, 3), b_shape=None, act="NONE", scales=None, keep_dir=None):
    b_shape = b_shape or a_shape
    if scales is None:
        s1, s2 = log_uniform(rng, 1e-3, 1.0, 2)
    else:
        s1, s2 = scales
    s1, s2 = f32(s1), f32(s2)
    z1, z2 = (int(v) for v in rng.integers(-128, 128, 2))
    a = act_values(rng, a_shape, z1)
    c = act_values(rng, b_shape, z2)
    s_y = f32((255 * s1 + 255 * s2) / rng.uniform(180, 255))
    y_zp = int(rng.integers(-128, 128))
    out_shape = list(np.broadcast_shapes(a_shape, b_shape))
    tensors = [
        T("x", a_shape, I8, scale=[s1], zero_point=[z1]),
        T("x2", b_shape, I8, scale=[s2], zero_point=[z2]),
        T("y", out_shape, I8, scale=[s_y], zero_point=[y_zp]),
    ]

    def options(bld):
        tflite.AddOptionsStart(bld)
        tflite.AddOptionsAddFusedActivationFunction(bld, ACT[act])
        return tflite.AddOptionsEnd(bld)

    model = build_model(tensors, tflite.BuiltinOperator.ADD, 2, [0, 1], [2], (tflite.BuiltinOptions.AddOptions, options))
    lo, hi = act_range(act, s_y, y_zp)
    entry = {
        "name": name, "op": "ADD", "activation": act,
        "x": {"scale": s1, "zero_point": z1}, "x2": {"scale": s2, "zero_point": z2},
        "y": {"scale": s_y, "zero_point": y_zp}, "act_min": lo, "act_max": hi,
    }
    add_case(entry, {"x": a, "x2": c}, model, [a, c], keep_dir)


def quantize_f32(rng, name, *, shape=(2, 3, 17), keep_dir=None):
    s = f32(log_uniform(rng, 1e-3, 1.0))
    zp = int(rng.integers(-128, 128))
    x = (rng.standard_normal(shape) * 60 * s).astype(np.float32).reshape(-1)
    # Exact halves (x / s = k + 0.5 in float), values that saturate, zeros and NaN-free extremes.
    m = len(x)
    for i in range(0, m, 5):
        kk = int(rng.integers(-140, 140))
        x[i] = np.float32((kk + 0.5) * s)
    x[1], x[2], x[3] = np.float32(1e6 * s), np.float32(-1e6 * s), np.float32(0.0)
    x[4] = np.float32(-0.0)
    x = x.reshape(shape)
    tensors = [T("x", shape, F32), T("y", shape, I8, scale=[s], zero_point=[zp])]
    model = build_model(tensors, tflite.BuiltinOperator.QUANTIZE, 1, [0], [1])
    entry = {"name": name, "op": "QUANTIZE", "y": {"scale": s, "zero_point": zp}}
    add_case(entry, {"x": x}, model, [x], keep_dir)


def requantize(rng, name, *, shape=(3, 40), ratio=None, keep_dir=None):
    s1 = f32(log_uniform(rng, 1e-3, 1.0))
    s2 = f32(s1 / (ratio if ratio else rng.uniform(0.05, 3.0)))
    z1, z2 = (int(v) for v in rng.integers(-128, 128, 2))
    x = rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)
    tensors = [T("x", shape, I8, scale=[s1], zero_point=[z1]), T("y", shape, I8, scale=[s2], zero_point=[z2])]
    model = build_model(tensors, tflite.BuiltinOperator.QUANTIZE, 2, [0], [1])
    entry = {"name": name, "op": "QUANTIZE", "x": {"scale": s1, "zero_point": z1},
             "y": {"scale": s2, "zero_point": z2}}
    add_case(entry, {"x": x}, model, [x], keep_dir)


def dequantize(rng, name, *, shape=(4, 64), scale=None, keep_dir=None):
    s = f32(scale if scale else log_uniform(rng, 1e-6, 10.0))
    zp = int(rng.integers(-128, 128))
    x = np.arange(-128, 128, dtype=np.int64).astype(np.int8)
    x = np.resize(rng.permutation(x), shape).astype(np.int8)
    tensors = [T("x", shape, I8, scale=[s], zero_point=[zp]), T("y", shape, F32)]
    model = build_model(tensors, tflite.BuiltinOperator.DEQUANTIZE, 2, [0], [1])
    entry = {"name": name, "op": "DEQUANTIZE", "x": {"scale": s, "zero_point": zp}}
    add_case(entry, {"x": x}, model, [x], keep_dir)


def all_cases(keep_dir):
    rng = np.random.default_rng(SEED)
    kw = {"keep_dir": keep_dir}
    # CONV_2D, per-channel int8 weights.
    conv_like(rng, "conv_same_s1_relu", "conv", act="RELU", **kw)
    conv_like(rng, "conv_valid_s1_none", "conv", padding="VALID", **kw)
    conv_like(rng, "conv_same_s2_relu6", "conv", stride=(2, 2), act="RELU6", hw=(8, 7), **kw)
    conv_like(rng, "conv_valid_s2_none", "conv", stride=(2, 2), padding="VALID", hw=(9, 8), **kw)
    conv_like(rng, "conv_same_dil2", "conv", dil=(2, 2), hw=(8, 8), **kw)
    conv_like(rng, "conv_valid_dil2_s1_relu", "conv", dil=(2, 1), padding="VALID", hw=(9, 7), act="RELU", **kw)
    conv_like(rng, "conv_same_s12_k23_batch2", "conv", n=2, k=(2, 3), stride=(1, 2), cin=5, cout=3, **kw)
    conv_like(rng, "conv_1x1", "conv", k=(1, 1), cin=6, cout=5, **kw)
    conv_like(rng, "conv_tiny_multipliers", "conv", regime="tiny", **kw)
    conv_like(rng, "conv_big_multipliers_relu6", "conv", regime="big", act="RELU6", **kw)
    # DEPTHWISE_CONV_2D, depth multiplier 1.
    conv_like(rng, "dw_same_s1_relu", "dw", cin=5, act="RELU", **kw)
    conv_like(rng, "dw_valid_s2_none", "dw", cin=4, stride=(2, 2), padding="VALID", hw=(9, 8), **kw)
    conv_like(rng, "dw_same_s2_dil2_relu6", "dw", cin=3, stride=(1, 1), dil=(2, 2), hw=(8, 8), act="RELU6", **kw)
    conv_like(rng, "dw_same_s2", "dw", cin=6, stride=(2, 2), **kw)
    conv_like(rng, "dw_tiny_multipliers", "dw", cin=4, regime="tiny", **kw)
    conv_like(rng, "dw_big_multipliers", "dw", cin=4, regime="big", **kw)
    # FULLY_CONNECTED.
    fully_connected(rng, "fc_per_channel", **kw)
    fully_connected(rng, "fc_per_channel_relu_nobias", act="RELU", bias=False, **kw)
    fully_connected(rng, "fc_per_tensor", per_channel=False, **kw)
    fully_connected(rng, "fc_per_tensor_relu6", per_channel=False, act="RELU6", units=7, in_shape=(2, 16), **kw)
    fully_connected(rng, "fc_keep_num_dims", in_shape=(2, 3, 8), keep_num_dims=True, **kw)
    fully_connected(rng, "fc_flatten_3d", in_shape=(2, 3, 8), keep_num_dims=False, **kw)
    fully_connected(rng, "fc_tiny_multipliers", regime="tiny", **kw)
    fully_connected(rng, "fc_big_multipliers", regime="big", **kw)
    # TRANSPOSE_CONV, per-channel int8 weights.
    transpose_conv(rng, "tconv_same_s2", **kw)
    transpose_conv(rng, "tconv_valid_s2", padding="VALID", **kw)
    transpose_conv(rng, "tconv_same_s1_nobias", stride=(1, 1), bias=False, **kw)
    transpose_conv(rng, "tconv_valid_s21_k23", stride=(2, 1), k=(2, 3), padding="VALID", **kw)
    transpose_conv(rng, "tconv_same_s2_k4", k=(4, 4), hw=(3, 3), cin=2, cout=3, **kw)
    # ADD.
    add(rng, "add_same_shape", **kw)
    add(rng, "add_relu", act="RELU", **kw)
    add(rng, "add_relu6", act="RELU6", scales=(0.02, 0.05), **kw)
    add(rng, "add_broadcast_channel", b_shape=(1, 1, 1, 3), **kw)
    add(rng, "add_broadcast_rows", a_shape=(2, 1, 5), b_shape=(3, 1), **kw)
    add(rng, "add_scale_ratio_1e4", scales=(1e-4, 1.0), **kw)
    add(rng, "add_equal_scales", scales=(0.03125, 0.03125), **kw)
    # QUANTIZE / DEQUANTIZE.
    quantize_f32(rng, "quantize_f32", **kw)
    quantize_f32(rng, "quantize_f32_b", shape=(50,), **kw)
    requantize(rng, "requantize_random", **kw)
    requantize(rng, "requantize_gain_above_1", ratio=7.3, **kw)
    requantize(rng, "requantize_tiny", ratio=3e-7, **kw)
    requantize(rng, "requantize_identity_scale", ratio=1.0, **kw)
    dequantize(rng, "dequantize_random", **kw)
    dequantize(rng, "dequantize_small_scale", scale=3.7e-7, **kw)
    # Power-of-two scales, where TFLite's two roundings (SaturatingRoundingDoublingHighMul, then
    # RoundingDivideByPOT) differ most often from a single rounding.
    conv_like(rng, "conv_pot_multipliers", "conv", regime="pot", hw=(8, 8), **kw)
    conv_like(rng, "dw_pot_multipliers", "dw", cin=6, regime="pot", hw=(8, 8), **kw)
    fully_connected(rng, "fc_pot_multipliers", in_shape=(8, 12), units=6, regime="pot", **kw)
    requantize(rng, "requantize_pot", ratio=0.125, **kw)
    requantize(rng, "requantize_pot_b", ratio=0.03125, **kw)
    add(rng, "add_pot_scales", scales=(0.25, 0.0625), **kw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--out", default=os.path.join(root, "testsuite", "fixtures", "tflite_exact"))
    ap.add_argument("--keep-models", action="store_true", help="also write each case's .tflite model")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):
        if f.endswith(".npz") or f.endswith(".tflite"):
            os.unlink(os.path.join(args.out, f))
    all_cases(args.out if args.keep_models else None)
    manifest = {"generator": "testsuite/scripts/gen_tflite_exact.py", "seed": SEED,
                "oracle": "LiteRT BUILTIN_REF op resolver", "cases": []}
    for entry, arrays in CASES:
        entry["file"] = entry["name"] + ".npz"
        np.savez_compressed(os.path.join(args.out, entry["file"]), **arrays)
        manifest["cases"].append(entry)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    ops = {}
    for e, _ in CASES:
        ops[e["op"]] = ops.get(e["op"], 0) + 1
    print(f"wrote {len(CASES)} cases to {args.out}: " + ", ".join(f"{k} {v}" for k, v in ops.items()))


if __name__ == "__main__":
    sys.exit(main())
