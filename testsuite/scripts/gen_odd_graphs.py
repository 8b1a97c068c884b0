#!/usr/bin/env python3
"""Random small, valid but unusual ONNX graphs for differential testing (edgec's interpreter and
host code against ONNX Runtime): size-1 dims and broadcasts, rank 0 to 4, elementwise, MatMul
(vector and batched operands), reductions with negative axes and keepdims 0/1, Transpose,
Reshape with 0 and -1, Concat, Softmax, Flatten, Squeeze/Unsqueeze, Slice with negative steps
and clamped ends, Gather with negative indices, Expand, Clip, ArgMax; attributes at their limits
(axis = -rank, axis = rank - 1), large and negative constants, opsets 13 and 18.

    python3 testsuite/scripts/gen_odd_graphs.py OUT_DIR [--count N] [--first-seed S]

writes OUT_DIR/gSEED/{model.onnx,inputs.npz,ref.npz} (ref: ONNX Runtime, CPU, graph
optimizations off, one thread, like the zoo) and OUT_DIR/manifest.json. Graph SEED is the same on
every machine (numpy's PCG64). `odd-graphs OUT_DIR` (a test-suite bin) runs them through
`edgec run --target interp` and `--target host`; testsuite/odd-graphs/ holds a committed set.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

INT64_MAX = np.iinfo(np.int64).max
DIMS = [1, 1, 2, 3, 4, 5]


class G:
    """A graph under construction: one chain of f32 values plus the nodes, constants and inputs."""

    def __init__(self, rng, opset):
        self.rng, self.opset = rng, opset
        self.nodes, self.inits, self.inputs, self.feeds = [], [], [], {}
        self.n = 0

    def name(self, p):
        self.n += 1
        return f"{p}{self.n}"

    def const(self, arr, p="c"):
        nm = self.name(p)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def input(self, shape):
        nm = self.name("in")
        self.inputs.append(helper.make_tensor_value_info(nm, TensorProto.FLOAT, list(shape)))
        scale = self.rng.choice([1.0, 1.0, 100.0, 1e-3])
        self.feeds[nm] = np.asarray(self.rng.standard_normal(shape) * scale, dtype=np.float32)
        return nm

    def node(self, op, ins, **attrs):
        out = self.name(op.lower() + "_")
        self.nodes.append(helper.make_node(op, ins, [out], name=self.name("n"), **attrs))
        return out


def rand_shape(rng, rank=None):
    rank = int(rng.integers(0, 5)) if rank is None else rank
    return [int(rng.choice(DIMS)) for _ in range(rank)]


def bcast_partner(rng, shape):
    """A shape that broadcasts with `shape` to `shape`: dims set to 1, leading dims dropped."""
    s = [d if rng.random() < 0.6 else 1 for d in shape]
    return s[int(rng.integers(0, len(s) + 1)):] if s else s


def odd_constant(rng, shape):
    kind = rng.integers(0, 4)
    if kind == 0:
        v = rng.standard_normal(shape)
    elif kind == 1:
        v = rng.uniform(-3e3, 3e3, shape)  # large magnitudes
    elif kind == 2:
        v = -np.abs(rng.standard_normal(shape)) - 0.5  # negative, away from zero
    else:
        v = np.full(shape, rng.choice([0.0, -1.0, 1e4, -2.5]))
    return np.asarray(v, dtype=np.float32)


def step(g, x, shape):
    """Appends one random op to value `x` of `shape`; returns the new value and its shape."""
    rng = g.rng
    r = len(shape)
    ops = ["unary", "binary", "binary", "matmul", "reduce", "transpose", "reshape", "concat", "softmax",
           "flatten", "unsqueeze", "squeeze", "slice", "gather", "expand", "clip", "argmax"]
    op = rng.choice(ops)
    if op == "unary":
        u = rng.choice(["Relu", "Sigmoid", "Tanh", "Neg", "Abs", "Floor", "Ceil", "Erf"])
        return g.node(u, [x]), shape
    if op == "binary":
        b = rng.choice(["Add", "Sub", "Mul", "Div", "Max", "Min"])
        other = bcast_partner(rng, shape)
        if rng.random() < 0.3:
            # The wider operand second, the chain value broadcast up to it.
            wide = [d if d != 1 else int(rng.choice(DIMS)) for d in shape]
            lead = rand_shape(rng, int(rng.integers(0, 2)))
            wide = lead + wide
            c = odd_constant(rng, wide)
            if b == "Div":
                c = np.where(np.abs(c) < 0.5, 1.5, c).astype(np.float32)
            return g.node(b, [x, g.const(c)]), wide
        c = odd_constant(rng, other)
        if b == "Div":
            c = np.where(np.abs(c) < 0.5, 1.5, c).astype(np.float32)
        ins = [x, g.const(c)] if b == "Div" or rng.random() < 0.5 else [g.const(c), x]
        return g.node(b, ins), shape
    if op == "matmul":
        if r == 0:
            return g.node("Relu", [x]), shape
        k = shape[-1]
        if rng.random() < 0.2:
            wshape = [k]  # x @ vector: the last dim disappears
        else:
            wshape = [k, int(rng.choice(DIMS))]
            if rng.random() < 0.4:
                wshape = rand_shape(rng, int(rng.integers(1, 3))) + wshape  # batched, broadcast
        w = (odd_constant(rng, wshape) / (100 * max(k, 1))).astype(np.float32)
        try:
            out = list(np.matmul(np.zeros(shape, np.float32), np.zeros(wshape, np.float32)).shape)
        except ValueError:
            return g.node("Relu", [x]), shape
        ins = None
        if r >= 2 and rng.random() < 0.2:
            # The constant first: w2 @ x with w2 of shape [m, x's second-to-last dim].
            w2 = odd_constant(rng, [int(rng.choice(DIMS)), shape[-2]]) / 100
            out = list(np.matmul(np.zeros(w2.shape, np.float32), np.zeros(shape, np.float32)).shape)
            ins = [g.const(w2.astype(np.float32)), x]
        return g.node("MatMul", ins or [x, g.const(w)]), out
    if op == "reduce":
        if r == 0:
            return g.node("Abs", [x]), shape
        red = rng.choice(["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2"])
        k = int(rng.integers(1, r + 1))
        axes = sorted(rng.choice(r, size=k, replace=False).tolist())
        axes = [a - r if rng.random() < 0.5 else a for a in axes]  # negative axes, down to -rank
        keep = int(rng.integers(0, 2))
        pos = {a % r for a in axes}
        out = [1 if i in pos else d for i, d in enumerate(shape)] if keep else [d for i, d in enumerate(shape) if i not in pos]
        axes_as_input = red == "ReduceSum" or g.opset >= 18
        if red == "ReduceProd":
            x = g.node("Tanh", [x])  # keep products bounded
        if axes_as_input:
            return g.node(red, [x, g.const(np.array(axes, np.int64), "axes")], keepdims=keep), out
        return g.node(red, [x], axes=axes, keepdims=keep), out
    if op == "transpose":
        perm = rng.permutation(r).tolist()
        if r == 0 or rng.random() < 0.3:
            return g.node("Transpose", [x]), shape[::-1]
        return g.node("Transpose", [x], perm=perm), [shape[p] for p in perm]
    if op == "reshape":
        total = int(np.prod(shape)) if shape else 1
        # Factor the element count into a random new shape, then mark one dim -1 and maybe
        # copy one with 0 (allowzero = 0: 0 means "keep the input's dim").
        new = []
        rest = total
        for _ in range(int(rng.integers(0, 4))):
            ds = [d for d in [1, 2, 3, 4, 5] if rest % d == 0]
            d = int(rng.choice(ds))
            new.append(d)
            rest //= d
        new.append(rest)
        rng.shuffle(new)
        spec = list(new)
        if rng.random() < 0.6:
            spec[int(rng.integers(0, len(spec)))] = -1
        for i in range(min(len(spec), r)):
            if spec[i] == shape[i] and spec[i] != -1 and rng.random() < 0.5:
                spec[i] = 0
        return g.node("Reshape", [x, g.const(np.array(spec, np.int64), "shape")]), new
    if op == "concat":
        if r == 0:
            return g.node("Neg", [x]), shape
        ax = int(rng.integers(-r, r))
        extra = int(rng.choice([1, 2]))
        cs = list(shape)
        cs[ax % r] = extra
        other = g.const(odd_constant(rng, cs)) if rng.random() < 0.5 else x
        oshape = list(shape)
        oshape[ax % r] += extra if other != x else shape[ax % r]
        ins = [x, other] if rng.random() < 0.5 else [other, x]
        return g.node("Concat", ins, axis=ax), oshape
    if op == "softmax":
        if r == 0:
            return g.node("Sigmoid", [x]), shape
        ax = int(rng.choice([-r, r - 1, int(rng.integers(-r, r))]))
        return g.node(rng.choice(["Softmax", "LogSoftmax"]), [x], axis=ax), shape
    if op == "flatten":
        ax = int(rng.integers(-r, r + 1)) if r else 0
        a = ax % r if (r and ax < 0) else ax
        lead = int(np.prod(shape[:a])) if a else 1
        return g.node("Flatten", [x], axis=ax), [lead, int(np.prod(shape[a:])) if shape[a:] else 1]
    if op == "unsqueeze":
        if r >= 4:
            return g.node("Relu", [x]), shape
        ax = int(rng.integers(-(r + 1), r + 1))
        out = list(shape)
        out.insert(ax % (r + 1), 1)
        return g.node("Unsqueeze", [x, g.const(np.array([ax], np.int64), "axes")]), out
    if op == "squeeze":
        ones = [i for i, d in enumerate(shape) if d == 1]
        if not ones:
            return g.node("Abs", [x]), shape
        if rng.random() < 0.3:
            return g.node("Squeeze", [x]), [d for d in shape if d != 1]
        i = int(rng.choice(ones))
        ax = i - r if rng.random() < 0.5 else i
        return g.node("Squeeze", [x, g.const(np.array([ax], np.int64), "axes")]), shape[:i] + shape[i + 1:]
    if op == "slice":
        if r == 0:
            return g.node("Tanh", [x]), shape
        ax = int(rng.integers(-r, r))
        d = shape[ax % r]
        if rng.random() < 0.5:
            starts, ends, steps = [-1], [-INT64_MAX], [-1]  # reverse the whole axis
            n = d
        else:
            s0 = int(rng.integers(-d, d)) if d > 1 else 0
            starts, ends, steps = [s0], [INT64_MAX], [int(rng.choice([1, 2]))]
            n = len(range(*slice(s0, None, steps[0]).indices(d)))
        if n == 0:
            return g.node("Neg", [x]), shape
        out = list(shape)
        out[ax % r] = n
        ins = [x, g.const(np.array(starts, np.int64)), g.const(np.array(ends, np.int64)),
               g.const(np.array([ax], np.int64)), g.const(np.array(steps, np.int64))]
        return g.node("Slice", ins), out
    if op == "gather":
        if r == 0:
            return g.node("Ceil", [x]), shape
        ax = int(rng.integers(-r, r))
        d = shape[ax % r]
        ishape = rand_shape(rng, int(rng.integers(0, 3)))
        idx = rng.integers(-d, d, size=ishape).astype(np.int64)
        out = shape[:ax % r] + list(ishape) + shape[ax % r + 1:]
        if len(out) > 5:
            return g.node("Relu", [x]), shape
        return g.node("Gather", [x, g.const(idx, "idx")], axis=ax), out
    if op == "expand":
        tgt = [d if d != 1 else int(rng.choice(DIMS)) for d in shape]
        if r < 4 and rng.random() < 0.3:
            tgt = [int(rng.choice([1, 2]))] + tgt
        spec = [1 if (rng.random() < 0.3 and i >= len(tgt) - r and shape[i - (len(tgt) - r)] == t) else t
                for i, t in enumerate(tgt)]
        return g.node("Expand", [x, g.const(np.array(spec, np.int64), "shape")]), tgt
    if op == "clip":
        lo, hi = sorted(rng.uniform(-2, 2, 2).tolist())
        ins = [x, g.const(np.float32(lo)), g.const(np.float32(hi))] if rng.random() < 0.7 else [x, "", g.const(np.float32(hi))]
        return g.node("Clip", ins), shape
    if op == "argmax":
        # An int64 result; cast back so the chain stays f32.
        if r == 0:
            return g.node("Relu", [x]), shape
        ax = int(rng.integers(-r, r))
        keep = int(rng.integers(0, 2))
        out = [1 if i == ax % r else d for i, d in enumerate(shape)] if keep else shape[:ax % r] + shape[ax % r + 1:]
        a = g.node(rng.choice(["ArgMax", "ArgMin"]), [x], axis=ax, keepdims=keep)
        return g.node("Cast", [a], to=TensorProto.FLOAT), out
    raise AssertionError(op)


def build(seed):
    rng = np.random.default_rng(seed)
    opset = int(rng.choice([13, 18]))
    g = G(rng, opset)
    shape = rand_shape(rng)
    x = g.input(shape)
    outputs = []
    if rng.random() < 0.3:
        # A second input broadcast against the first.
        y = g.input(bcast_partner(rng, shape))
        x = g.node(rng.choice(["Add", "Mul", "Sub"]), [x, y] if rng.random() < 0.5 else [y, x])
    for i in range(int(rng.integers(2, 6))):
        x, shape = step(g, x, shape)
        if int(np.prod(shape)) > 4096 or len(shape) > 5:
            return None
        if rng.random() < 0.15:
            outputs.append((x, shape))
    outputs.append((x, shape))
    seen, outs = set(), []
    for v, s in outputs:
        if v not in seen:
            seen.add(v)
            outs.append(helper.make_tensor_value_info(v, TensorProto.FLOAT, list(s)))
    graph = helper.make_graph(g.nodes, f"odd{seed}", g.inputs, outs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model, g.feeds


def reference(model, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    s = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, feeds)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    written, skipped, seed = [], 0, a.first_seed
    while len(written) < a.count:
        if skipped > 10 * a.count + 100:
            sys.exit(f"gen_odd_graphs: {skipped} seeds skipped, {len(written)} written: the generator is broken")
        try:
            built = build(seed)
            if built is not None:
                model, feeds = built
                ref = reference(model, feeds)
        except Exception as e:  # an invalid draw (shape inference or ORT rejects it): next seed
            print(f"seed {seed}: skipped ({type(e).__name__}: {str(e).splitlines()[0][:120]})", file=sys.stderr)
            built = None
        if built is None:
            skipped += 1
        else:
            d = os.path.join(a.out, f"g{seed}")
            os.makedirs(d, exist_ok=True)
            onnx.save(model, os.path.join(d, "model.onnx"))
            np.savez(os.path.join(d, "inputs.npz"), **feeds)
            np.savez(os.path.join(d, "ref.npz"), **ref)
            written.append(f"g{seed}")
        seed += 1
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump({"generator": "testsuite/scripts/gen_odd_graphs.py", "first_seed": a.first_seed,
                   "graphs": written, "skipped_seeds": skipped, "onnxruntime": ort.__version__,
                   "onnx": onnx.__version__, "numpy": np.__version__,
                   "reference": "onnxruntime CPUExecutionProvider, graph optimizations disabled, 1 thread"},
                  f, indent=1)
        f.write("\n")
    print(f"{len(written)} graphs in {a.out} ({skipped} seeds skipped)")


if __name__ == "__main__":
    main()
