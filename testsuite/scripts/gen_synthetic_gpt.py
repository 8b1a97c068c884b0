#!/usr/bin/env python3
"""Writes a GPT-2-shaped decoder of about 45M parameters with random weights, built directly
with the onnx helper API (no torch needed), for measuring what edgec itself needs to compile a
model of that size: peak memory and time (docs/optimization.md, "Memory of the compiler").

The graph is what exporters write for GPT-2: token and position embeddings (Gather), per layer a
decomposed layer norm, one fused QKV projection split into heads, scaled masked attention, an
output projection and a tanh-GELU MLP, residual adds; a final layer norm and the LM head tied to
the token embedding (a Transpose of the same initializer).

usage: gen_synthetic_gpt.py OUT_DIR [--layers 9] [--dim 512] [--vocab 32000] [--seq 64]
writes OUT_DIR/model.onnx and OUT_DIR/inputs.npz (one sample of token ids; several samples in
OUT_DIR/calibration.npz for --quantize int8).
"""
import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(layers, dim, vocab, seq, heads, rng):
    inits, nodes = [], []
    count = [0]

    def name(prefix):
        count[0] += 1
        return f"{prefix}_{count[0]}"

    def const(prefix, array):
        n = name(prefix)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), n))
        return n

    def node(op, inputs, **attrs):
        out = name(op.lower())
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def weight(rows, cols):
        return const("w", (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32))

    def layer_norm(x):
        axes = const("axes", np.array([-1], np.int64))
        mean = node("ReduceMean", [x, axes])
        d = node("Sub", [x, mean])
        var = node("ReduceMean", [node("Pow", [d, const("two", np.array(2.0, np.float32))]), axes])
        std = node("Sqrt", [node("Add", [var, const("eps", np.array(1e-5, np.float32))])])
        n = node("Div", [d, std])
        gamma = const("gamma", np.ones(dim, np.float32))
        beta = const("beta", np.zeros(dim, np.float32))
        return node("Add", [node("Mul", [n, gamma]), beta])

    def linear(x, rows, cols):
        return node("Add", [node("MatMul", [x, weight(rows, cols)]), const("b", np.zeros(cols, np.float32))])

    hd = dim // heads
    wte = const("wte", (rng.standard_normal((vocab, dim)) * 0.02).astype(np.float32))
    wpe = const("wpe", (rng.standard_normal((seq, dim)) * 0.01).astype(np.float32))
    h = node("Add", [node("Gather", [wte, "input_ids"], axis=0), wpe])
    mask = const("mask", np.triu(np.full((seq, seq), -1e4, np.float32), 1))
    scale = const("scale", np.array(1.0 / np.sqrt(hd), np.float32))
    split = const("split", np.array([dim, dim, dim], np.int64))
    to_heads = const("shape", np.array([1, seq, heads, hd], np.int64))
    to_model = const("shape", np.array([1, seq, dim], np.int64))
    for _ in range(layers):
        qkv = linear(layer_norm(h), dim, 3 * dim)
        q, k, v = [name("part") for _ in range(3)]
        nodes.append(helper.make_node("Split", [qkv, split], [q, k, v], name=name("split"), axis=-1))
        q = node("Transpose", [node("Reshape", [q, to_heads])], perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [k, to_heads])], perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [v, to_heads])], perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k]), scale]), mask])
        attn = node("MatMul", [node("Softmax", [scores], axis=-1), v])
        attn = node("Reshape", [node("Transpose", [attn], perm=[0, 2, 1, 3]), to_model])
        h = node("Add", [h, linear(attn, dim, dim)])
        u = linear(layer_norm(h), dim, 4 * dim)
        cube = node("Mul", [node("Pow", [u, const("three", np.array(3.0, np.float32))]),
                            const("c", np.array(0.044715, np.float32))])
        t = node("Tanh", [node("Mul", [node("Add", [u, cube]), const("k", np.array(0.7978845608, np.float32))])])
        g = node("Mul", [node("Mul", [u, const("half", np.array(0.5, np.float32))]),
                         node("Add", [t, const("one", np.array(1.0, np.float32))])])
        h = node("Add", [h, linear(g, 4 * dim, dim)])
    logits = node("MatMul", [layer_norm(h), node("Transpose", [wte], perm=[1, 0])])
    nodes[-1].output[0] = "logits"
    graph = helper.make_graph(
        nodes, "synthetic_gpt",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, seq, vocab])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=9)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seq", type=int, default=64)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    model = build(args.layers, args.dim, args.vocab, args.seq, args.heads, rng)
    onnx.checker.check_model(model)
    os.makedirs(args.out, exist_ok=True)
    onnx.save(model, os.path.join(args.out, "model.onnx"))
    ids = rng.integers(0, args.vocab, (1, args.seq), dtype=np.int64)
    np.savez(os.path.join(args.out, "inputs.npz"), input_ids=ids)
    calib = rng.integers(0, args.vocab, (4, 1, args.seq), dtype=np.int64)
    np.savez(os.path.join(args.out, "calibration.npz"), input_ids=calib)
    params = sum(int(np.prod(i.dims)) for i in model.graph.initializer)
    print(f"{args.out}/model.onnx: {params / 1e6:.1f}M parameters, {len(model.graph.node)} nodes")


if __name__ == "__main__":
    main()
