#!/usr/bin/env python3
"""Writes the malformed-model corpus: testsuite/malformed/*.onnx plus expected.json.

Each file is broken in exactly one way; everything else about it is a valid ONNX model. The
compiler must reject each with exit code 2 (the input is at fault) and a one-line message that
contains, after lowercasing, the `message` substring recorded in expected.json:

    {"<file>.onnx": {"why": "<what is wrong>", "message": "<lowercase substring>"}, ...}

The substrings are what any reasonable diagnostic for the case must mention: the op type of the
offending node (node names are chosen not to contain it, so the op must be named), the name of
the offending tensor or attribute, the external data path, or the key word ("cycle", "opset").
Files whose bytes do not decode as a protobuf at all expect "protobuf".

The models are built with onnx.helper and raw protobuf bytes, never passed through
onnx.checker or shape inference, so they stay exactly as malformed as described. Where a case
is about bytes (truncation, garbage), a small wire-format walker checks here that the bytes
really are undecodable, whatever protobuf library reads them.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "malformed"))

F = TensorProto.FLOAT


# ----------------------------------------------------------------------------------------------
# Building blocks


def model(nodes, inputs, outputs, inits=(), opset=17, ir_version=8, extra_opsets=()):
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), initializer=list(inits))
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    m = helper.make_model(graph, opset_imports=opsets, producer_name="edgec-gen-malformed")
    m.ir_version = ir_version
    return m


def vi(name, shape, elem=F):
    # shape None: a tensor type without a shape (used for outputs of nodes that cannot have one).
    return helper.make_tensor_value_info(name, elem, shape)


def f32(name, shape, seed=0):
    arr = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return onnx.numpy_helper.from_array(arr, name)


def raw_tensor(name, dims, data_type, raw):
    """A TensorProto built field by field: no helper checks that dims and data agree."""
    t = TensorProto()
    t.name = name
    t.dims.extend(dims)
    t.data_type = data_type
    t.raw_data = raw
    return t


def external_tensor(name, dims, location, offset=None, length=None):
    t = TensorProto()
    t.name = name
    t.dims.extend(dims)
    t.data_type = F
    t.data_location = TensorProto.EXTERNAL
    entries = [("location", location)]
    if offset is not None:
        entries.append(("offset", str(offset)))
    if length is not None:
        entries.append(("length", str(length)))
    for k, v in entries:
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def valid_base():
    """A small valid model (MatMul, Add, Relu; a 16x8 weight) that the byte-level cases cut up."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
        helper.make_node("Add", ["h", "b"], ["hb"], name="bias"),
        helper.make_node("Relu", ["hb"], ["y"], name="act"),
    ]
    return model(nodes, [vi("x", [1, 16])], [vi("y", [1, 8])], [f32("w", [16, 8]), f32("b", [8], 1)])


# Wire-format walker: decodes the top-level fields of a message without a schema and fails on
# anything no protobuf decoder accepts (bad varint, wire types 3/4/6/7, lengths past the end).
def wire_error(data):
    i, n = 0, len(data)

    def varint(i):
        shift, val = 0, 0
        while True:
            if i >= n:
                raise ValueError("varint runs past the end")
            b = data[i]
            i += 1
            val |= (b & 0x7F) << shift
            if not b & 0x80:
                return val, i
            shift += 7
            if shift >= 70:
                raise ValueError("varint longer than 10 bytes")

    try:
        while i < n:
            tag, i = varint(i)
            field, wt = tag >> 3, tag & 7
            if field == 0:
                raise ValueError("field number 0")
            if wt == 0:
                _, i = varint(i)
            elif wt == 1:
                i += 8
            elif wt == 2:
                ln, i = varint(i)
                i += ln
            elif wt == 5:
                i += 4
            else:
                raise ValueError(f"wire type {wt}")
            if i > n:
                raise ValueError("field runs past the end")
    except ValueError as e:
        return str(e)
    return None


def graph_field_span(data):
    """(start of the payload, end) of the top-level field 7 (ModelProto.graph) in `data`."""
    i = 0
    while i < len(data):
        tag = data[i]
        i += 1
        field, wt = tag >> 3, tag & 7
        if wt == 2:
            ln, shift = 0, 0
            while True:
                b = data[i]
                i += 1
                ln |= (b & 0x7F) << shift
                shift += 7
                if not b & 0x80:
                    break
            if field == 7:
                return i, i + ln
            i += ln
        elif wt == 0:
            while data[i] & 0x80:
                i += 1
            i += 1
        else:
            raise ValueError("unexpected wire type in the base model")
    raise ValueError("no graph field")


# ----------------------------------------------------------------------------------------------
# The cases. Each returns (bytes or ModelProto, why, message[, {aux file: bytes}]).

CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


# --- bytes that are not an ONNX protobuf ---


@case
def truncated_first_byte():
    data = valid_base().SerializeToString()
    return data[:1], "only the first byte of a model: a field tag without its value", "protobuf"


@case
def truncated_in_graph():
    data = valid_base().SerializeToString()
    start, end = graph_field_span(data)
    return (data[: (start + end) // 2], "cut in the middle of the graph field (its length prefix "
            "promises more bytes than remain)", "protobuf")


@case
def truncated_in_raw_data():
    m = valid_base()
    data = m.SerializeToString()
    raw = m.graph.initializer[0].raw_data
    at = data.index(raw) + len(raw) // 3
    return data[:at], "cut inside the raw_data of the 16x8 weight initializer", "protobuf"


@case
def truncated_last_byte():
    data = valid_base().SerializeToString()
    return data[:-1], "the last byte is missing (the graph field ends the file)", "protobuf"


@case
def truncated_in_length_prefix():
    data = valid_base().SerializeToString()
    start, end = graph_field_span(data)
    # The graph is over 127 bytes, so its length prefix is a multi-byte varint: stop after its
    # first byte, which has the continuation bit set.
    assert end - start > 127
    return data[: start - 1], "cut inside the multi-byte length prefix of the graph field", "protobuf"


@case
def garbage():
    rng = np.random.default_rng(1234)
    # 0xff bytes first: a tag varint that never terminates within 10 bytes, so no decoder can
    # read even the first field; random bytes after it.
    data = b"\xff" * 12 + rng.integers(0, 256, 500, dtype=np.uint8).tobytes()
    return data, "512 bytes of noise starting with an over-long varint", "protobuf"


@case
def text_file():
    text = (
        "<ir_version: 8, opset_import: [\"\" : 17]>\n"
        "agraph (float[1, 16] x) => (float[1, 16] y) {\n"
        "    y = Relu(x)\n"
        "}\n"
    )
    return (text.encode(), "the ONNX textual syntax of a model instead of its protobuf encoding "
            "('<' is a tag with the invalid wire type 4)", "protobuf")


@case
def wrong_message():
    t = onnx.numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "input_0")
    return (t.SerializeToString(), "a serialized TensorProto (an input_0.pb), not a ModelProto: its "
            "data_type (field 2, varint) collides with ModelProto.opset_import (field 2, length-delimited)",
            "protobuf")


# --- well-formed protobuf, broken model ---


@case
def empty():
    return (b"", "an empty file: decodes as an empty ModelProto, which has no graph (nor opset)",
            "graph")


@case
def no_graph():
    m = helper.make_model(helper.make_graph([], "g", [], []), opset_imports=[helper.make_opsetid("", 17)])
    m.ClearField("graph")
    m.ir_version = 8
    return m, "a ModelProto with ir_version and opset_import but no graph", "graph"


@case
def opset_7():
    # Opset-7 models import node by node where the op's form is unchanged since; Slice-1 took
    # starts/ends as attributes, a form edgec does not upgrade.
    m = model([helper.make_node("Slice", ["x"], ["y"], name="n0", starts=[0], ends=[1])],
              [vi("x", [2, 3])], [vi("y", [1, 3])], opset=7, ir_version=3)
    return m, "Slice at opset 7, whose attribute form predates the forms the compiler imports", "opset"


@case
def opset_99():
    m = model([helper.make_node("Relu", ["x"], ["y"], name="n0")], [vi("x", [2, 3])], [vi("y", [2, 3])],
              opset=99, ir_version=10)
    return m, "default-domain opset 99, which does not exist", "opset"


@case
def no_default_opset():
    m = model([helper.make_node("Relu", ["x"], ["y"], name="n0")], [vi("x", [2, 3])], [vi("y", [2, 3])])
    del m.opset_import[:]
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    return m, "opset_import lists only a custom domain: the default ONNX opset is not imported", "opset"


@case
def cycle():
    nodes = [
        helper.make_node("Add", ["x", "t2"], ["t1"], name="n0"),
        helper.make_node("Relu", ["t1"], ["t2"], name="n1"),
    ]
    return (model(nodes, [vi("x", [2, 3])], [vi("t2", [2, 3])]),
            "n0 (Add) consumes t2, which n1 (Relu) computes from n0's output: a cycle", "cycle")


@case
def undefined_input():
    nodes = [helper.make_node("MatMul", ["x", "missing_weight"], ["y"], name="n0")]
    return (model(nodes, [vi("x", [2, 3])], [vi("y", [2, 4])]),
            "MatMul reads 'missing_weight', which is neither a graph input, an initializer nor a "
            "node output (a dangling name, e.g. a dropped initializer)", "missing_weight")


@case
def undefined_output():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="n0")]
    return (model(nodes, [vi("x", [2, 3])], [vi("y", [2, 3]), vi("ghost_output", [2, 3])]),
            "graph output 'ghost_output' is produced by nothing", "ghost_output")


@case
def duplicate_output():
    nodes = [
        helper.make_node("Relu", ["x"], ["dup_value"], name="n0"),
        helper.make_node("Neg", ["x"], ["dup_value"], name="n1"),
        helper.make_node("Identity", ["dup_value"], ["y"], name="n2"),
    ]
    return (model(nodes, [vi("x", [2, 3])], [vi("y", [2, 3])]),
            "two nodes (Relu n0, Neg n1) both define 'dup_value' (SSA violated)", "dup_value")


@case
def unknown_op():
    nodes = [helper.make_node("FooBar", ["x"], ["y"], name="n0")]
    return (model(nodes, [vi("x", [2, 3])], [vi("y", [2, 3])]),
            "op type FooBar does not exist in the default domain", "foobar")


@case
def custom_domain_op():
    nodes = [helper.make_node("FusedMatMul", ["a", "b"], ["y"], name="n0", domain="com.microsoft",
                              alpha=1.0, transA=0, transB=0)]
    return (model(nodes, [vi("a", [2, 3]), vi("b", [3, 4])], [vi("y", [2, 4])],
                  extra_opsets=[("com.microsoft", 1)]),
            "com.microsoft FusedMatMul: an ONNX Runtime contrib op outside the ONNX standard", "fusedmatmul")


@case
def matmul_shapes():
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"], name="n0")]
    return (model(nodes, [vi("a", [2, 3]), vi("b", [4, 5])], [vi("y", None)]),
            "MatMul of 2x3 by 4x5: inner dims 3 and 4 differ", "matmul")


@case
def add_not_broadcastable():
    nodes = [helper.make_node("Add", ["a", "b"], ["y"], name="n0")]
    return (model(nodes, [vi("a", [2, 3]), vi("b", [2, 4])], [vi("y", None)]),
            "Add of [2,3] and [2,4]: 3 and 4 do not broadcast", "add")


@case
def reshape_incompatible():
    shape = onnx.numpy_helper.from_array(np.array([4, 2], dtype=np.int64), "new_shape")
    nodes = [helper.make_node("Reshape", ["x", "new_shape"], ["y"], name="n0")]
    return (model(nodes, [vi("x", [2, 3])], [vi("y", None)], [shape]),
            "Reshape of 6 elements ([2,3]) to the constant shape [4,2] (8 elements)", "reshape")


@case
def conv_kernel_too_large():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="n0")]
    return (model(nodes, [vi("x", [1, 1, 4, 4])], [vi("y", None)], [f32("w", [1, 1, 5, 5])]),
            "Conv with a 5x5 kernel over a 4x4 input and no padding: negative output size", "conv")


@case
def gather_float_indices():
    nodes = [helper.make_node("Gather", ["data", "idx"], ["y"], name="n0", axis=0)]
    return (model(nodes, [vi("data", [5, 3]), vi("idx", [2])], [vi("y", [2, 3])]),
            "Gather whose indices are float32 (must be int32 or int64)", "gather")


@case
def matmul_missing_operand():
    nodes = [helper.make_node("MatMul", ["a"], ["y"], name="n0")]
    return (model(nodes, [vi("a", [2, 3])], [vi("y", [2, 3])]),
            "MatMul with one input (it takes exactly two)", "matmul")


@case
def attribute_wrong_type():
    node = helper.make_node("Transpose", ["x"], ["y"], name="n0")
    node.attribute.append(helper.make_attribute("perm", [1.0, 0.0]))  # FLOATS, must be INTS
    return (model([node], [vi("x", [2, 3])], [vi("y", [3, 2])]),
            "Transpose attribute perm given as FLOATS [1.0, 0.0] instead of INTS", "perm")


@case
def missing_required_attribute():
    nodes = [helper.make_node("Concat", ["a", "b"], ["y"], name="n0")]
    return (model(nodes, [vi("a", [2, 3]), vi("b", [2, 3])], [vi("y", [4, 3])]),
            "Concat without its required attribute axis", "axis")


@case
def unknown_attribute():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="n0", alpha=0.1)]
    return (model(nodes, [vi("x", [2, 3])], [vi("y", [2, 3])]),
            "Relu with an attribute alpha, which Relu does not have", "alpha")


# --- broken tensors ---


def tensor_case(t, why, message, shape):
    """A model whose only defect is the initializer `t`, added to x by an Add node."""
    nodes = [helper.make_node("Add", ["x", t.name], ["y"], name="n0")]
    # The output's shape is left undeclared: with a broken initializer there is no right one.
    return model(nodes, [vi("x", shape)], [vi("y", None)], [t]), why, message


@case
def negative_dim():
    t = raw_tensor("weight_a", [-3, 2], F, b"\0" * 24)
    return tensor_case(t, "initializer weight_a has dims [-3, 2]", "negative", [3, 2])


@case
def huge_dims():
    t = raw_tensor("weight_huge", [1 << 62, 4], F, b"\0" * 16)
    return tensor_case(t, "initializer weight_huge has dims [2^62, 4] (2^64 elements, 2^66 bytes) "
                       "with 16 bytes of data: sizes overflow 64 bits", "weight_huge", [1, 4])


@case
def raw_data_length():
    t = raw_tensor("weight_raw", [4, 4], F, b"\0" * 60)
    return tensor_case(t, "initializer weight_raw is float32 [4,4] (64 bytes) but raw_data has 60 bytes",
                       "weight_raw", [4, 4])


@case
def unknown_dtype():
    t = raw_tensor("weight_t99", [2, 2], 99, b"\0" * 16)
    return tensor_case(t, "initializer weight_t99 has data_type 99, which does not exist", "99", [2, 2])


@case
def string_input():
    nodes = [helper.make_node("Identity", ["text"], ["y"], name="n0")]
    return (model(nodes, [vi("text", [2], TensorProto.STRING)], [vi("y", [2], TensorProto.STRING)]),
            "graph input 'text' is a string tensor", "string")


# --- external data ---


@case
def external_missing_file():
    t = external_tensor("weight_ext", [2, 3], "does_not_exist.bin", 0, 24)
    m, _, _ = tensor_case(t, "", "", [2, 3])
    return m, "initializer stored in external file does_not_exist.bin, which is absent", "does_not_exist.bin"


@case
def external_escape_etc_passwd():
    t = external_tensor("weight_ext", [2, 3], "../../etc/passwd", 0, 24)
    m, _, _ = tensor_case(t, "", "", [2, 3])
    return (m, "external data location ../../etc/passwd points outside the model directory",
            "../../etc/passwd")


@case
def external_escape_existing_file():
    # From testsuite/malformed/ this is the workspace Cargo.toml, a file that exists and is long
    # enough: only the path check can reject it.
    t = external_tensor("weight_ext", [2, 3], "../../Cargo.toml", 0, 24)
    m, _, _ = tensor_case(t, "", "", [2, 3])
    return (m, "external data location ../../Cargo.toml leaves the model directory for a file that "
            "exists (the path check, not a failed open, must reject it)", "../../cargo.toml")


@case
def external_absolute_path():
    t = external_tensor("weight_ext", [2, 3], "/etc/passwd", 0, 24)
    m, _, _ = tensor_case(t, "", "", [2, 3])
    return m, "external data location is the absolute path /etc/passwd", "/etc/passwd"


@case
def external_offset_out_of_range():
    name = "external_offset_out_of_range.bin"
    t = external_tensor("weight_ext", [2, 3], name, 4096, 24)
    m, _, _ = tensor_case(t, "", "", [2, 3])
    return (m, f"external data offset 4096 is past the end of {name} (24 bytes)", "weight_ext",
            {name: np.arange(6, dtype=np.float32).tobytes()})


@case
def external_length_out_of_range():
    name = "external_length_out_of_range.bin"
    t = external_tensor("weight_ext", [2, 3], name, 8, 24)
    m, _, _ = tensor_case(t, "", "", [2, 3])
    return (m, f"external data range 8..32 runs past the end of {name} (24 bytes)", "weight_ext",
            {name: np.arange(6, dtype=np.float32).tobytes()})


# ----------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    out = os.path.abspath(args.out)

    # Rewrite the generated files from scratch (keeping the hand-written README) so that a
    # removed case leaves nothing stale behind.
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        if f != "README.md":
            p = os.path.join(out, f)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)

    expected = {}
    for name, fn in CASES.items():
        result = fn()
        payload, why, message = result[:3]
        aux = result[3] if len(result) > 3 else {}
        data = payload if isinstance(payload, bytes) else payload.SerializeToString()
        if message != message.lower() or not message:
            raise SystemExit(f"{name}: message {message!r} must be a non-empty lowercase substring")
        if message == "protobuf" and wire_error(data) is None and name != "wrong_message":
            raise SystemExit(f"{name}: expected undecodable bytes, but they walk as valid protobuf")
        fname = name + ".onnx"
        with open(os.path.join(out, fname), "wb") as f:
            f.write(data)
        for aux_name, aux_bytes in aux.items():
            with open(os.path.join(out, aux_name), "wb") as f:
                f.write(aux_bytes)
        expected[fname] = {"why": why, "message": message}

    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(dict(sorted(expected.items())), f, indent=1)
        f.write("\n")
    print(f"wrote {len(expected)} malformed models to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
