#!/usr/bin/env python3
"""Writes the fuzz seed corpora, testsuite/fuzz/corpus/{onnx,ir_text,tensor_file}/, from the
repository's own files (malformed models, filetests, zoo inputs, ONNX node tests under
testsuite/cache/node/ when setup.sh has written them) plus a few small models built here (one with
external data). Deterministic; keeps the corpus small (files under a size limit).

    python3 testsuite/scripts/gen_fuzz_seeds.py
"""
import glob
import io
import os
import shutil
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TS = os.path.join(ROOT, "testsuite")
OUT = os.path.join(TS, "fuzz", "corpus")
SEP = b"\n--edgec-fuzz-external-data--\n"  # fuzz.rs EXTERNAL_DATA_SEPARATOR
NODE_TESTS = [
    "test_add_bcast", "test_matmul_2d", "test_reduce_sum_keepdims_example", "test_softmax_axis_0",
    "test_transpose_default", "test_reshape_negative_dim", "test_concat_2d_axis_negative_1",
    "test_gather_0", "test_conv_with_strides_padding", "test_slice_neg_steps", "test_cast_FLOAT_to_FLOAT16",
    "test_constantofshape_int_zeros", "test_expand_dim_changed", "test_where_example", "test_layer_normalization_2d_axis0",
    "test_gemm_default_no_bias", "test_split_equal_parts_1d_opset18", "test_range_float_type_positive_delta",
    "test_resize_upsample_scales_nearest", "test_convtranspose", "test_averagepool_2d_default",
    "test_dequantizelinear", "test_quantizelinear", "test_if", "test_clip_default_min", "test_squeeze",
    "test_unsqueeze_negative_axes", "test_tile", "test_pad", "test_einsum_batch_matmul", "test_cumsum_1d",
    "test_argmax_default_axis_example", "test_trilu_lower", "test_gelu_tanh_1", "test_topk",
]


def reset(name):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def external_model():
    """A MatMul + Add whose weights live in the side file, as the `onnx` target splits it."""
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    b = np.array([1, -2, 3, -4], dtype=np.float32)
    data = w.tobytes() + b.tobytes()
    inits = []
    for name, arr, off in [("w", w, 0), ("b", b, w.nbytes)]:
        t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=arr.shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in [("location", "model.onnx.data"), ("offset", str(off)), ("length", str(arr.nbytes))]:
            e = t.external_data.add()
            e.key, e.value = k, v
        inits.append(t)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"], name="n0"), helper.make_node("Add", ["m", "b"], ["y"], name="n1")],
        "ext", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    return m.SerializeToString() + SEP + data


def onnx_seeds():
    d = reset("onnx")
    for p in sorted(glob.glob(os.path.join(TS, "malformed", "*.onnx"))):
        if os.path.getsize(p) <= 4096:
            shutil.copy(p, os.path.join(d, "malformed_" + os.path.basename(p)))
    for t in NODE_TESTS:
        p = os.path.join(TS, "cache", "node", t, "model.onnx")
        if os.path.exists(p) and os.path.getsize(p) <= 4096:
            shutil.copy(p, os.path.join(d, t + ".onnx"))
    with open(os.path.join(d, "external_data.onnx"), "wb") as f:
        f.write(external_model())
    for name in ["vae_mlp_dynamo", "dcgan_dynamo"]:
        # The model part only: its external data is missing, which must be a clean error.
        shutil.copy(os.path.join(TS, "zoo", name, "model.onnx"), os.path.join(d, name + "_no_data.onnx"))


def ir_seeds():
    d = reset("ir_text")
    for p in sorted(glob.glob(os.path.join(TS, "filetests", "**", "*.eir"), recursive=True)):
        if os.path.getsize(p) <= 2048:
            rel = os.path.relpath(p, os.path.join(TS, "filetests")).replace(os.sep, "_")
            shutil.copy(p, os.path.join(d, rel))


def npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def tensor_seeds():
    d = reset("tensor_file")
    # The fuzz model's inputs: x f32[2,3], y i64[4].
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.array([1, -2, 3, 1 << 40], dtype=np.int64)
    seeds = {
        "xy.npz": npz_bytes({"x": x, "y": y}),
        "xy_f16_bool.npz": npz_bytes({"x": x.astype(np.float16), "y": np.array([True, False, True, True])}),
        "xy_fortran.npz": npz_bytes({"x": np.asfortranarray(x), "y": y.astype(">i8")}),
        "scalar_u8_f64.npz": npz_bytes({"x": np.float64(3.5), "z": np.zeros((0, 3), np.uint8)}),
        "x_only.pb": numpy_helper.from_array(x, "x").SerializeToString(),
        "y_i64.pb": numpy_helper.from_array(y, "y").SerializeToString(),
        "f16.pb": numpy_helper.from_array(x.astype(np.float16), "x").SerializeToString(),
        "bool.pb": numpy_helper.from_array(np.array([True, False]), "b").SerializeToString(),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for k, v in {"x": x, "y": y}.items():
            a = io.BytesIO()
            np.save(a, v)
            z.writestr(k + ".npy", a.getvalue())
    seeds["xy_compressed.npz"] = buf.getvalue()
    t = helper.make_tensor("x", TensorProto.FLOAT, [2, 3], [float(v) for v in x.flat])  # float_data
    seeds["x_float_data.pb"] = t.SerializeToString()
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    for name in ["vae_mlp", "gpt2"]:
        shutil.copy(os.path.join(TS, "zoo", name, "inputs.npz"), os.path.join(d, name + "_inputs.npz"))
    pbs = sorted(glob.glob(os.path.join(TS, "cache", "node", "test_*", "test_data_set_0", "input_0.pb")))
    for t in ["test_cast_FLOAT_to_BFLOAT16", "test_cast_FLOAT_to_FLOAT8E4M3FN", "test_cast_FLOAT_to_INT4",
              "test_cast_FLOAT_to_UINT4", "test_cast_INT4_to_FLOAT", "test_cast_STRING_to_FLOAT", "test_gather_0"]:
        p = os.path.join(TS, "cache", "node", t, "test_data_set_0", "input_0.pb")
        if os.path.exists(p) and os.path.getsize(p) <= 4096:
            shutil.copy(p, os.path.join(d, t + "_input_0.pb"))
    del pbs


if __name__ == "__main__":
    onnx_seeds()
    ir_seeds()
    tensor_seeds()
    for t in ["onnx", "ir_text", "tensor_file"]:
        files = glob.glob(os.path.join(OUT, t, "*"))
        print(f"{t}: {len(files)} seeds, {sum(os.path.getsize(f) for f in files)} bytes")
