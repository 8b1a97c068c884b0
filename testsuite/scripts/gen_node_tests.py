#!/usr/bin/env python3
"""Writes the ONNX backend node tests from the installed `onnx` wheel's generators.

The wheel ships the generators, not the files; this writes the standard layout
    OUT/test_NAME/model.onnx
    OUT/test_NAME/test_data_set_N/{input,output}_K.pb
into a cache directory (default: testsuite/cache/node). A stamp file records the onnx version,
so a re-run with the same version is a no-op.
"""
import argparse
import json
import os
import shutil
import sys

import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node as node_cases


def write_case(case, out_dir):
    d = os.path.join(out_dir, case.name)
    os.makedirs(d, exist_ok=True)
    onnx.save(case.model, os.path.join(d, "model.onnx"))
    for i, (inputs, outputs) in enumerate(case.data_sets):
        ds = os.path.join(d, f"test_data_set_{i}")
        os.makedirs(ds, exist_ok=True)
        graph = case.model.graph
        for k, arr in enumerate(inputs):
            name = graph.input[k].name if k < len(graph.input) else f"input_{k}"
            write_value(arr, name, graph.input[k].type if k < len(graph.input) else None,
                        os.path.join(ds, f"input_{k}.pb"))
        for k, arr in enumerate(outputs):
            name = graph.output[k].name if k < len(graph.output) else f"output_{k}"
            write_value(arr, name, graph.output[k].type if k < len(graph.output) else None,
                        os.path.join(ds, f"output_{k}.pb"))


def write_value(value, name, type_proto, path):
    # Sequences/optionals are written as their protos; plain arrays as TensorProto.
    if isinstance(value, onnx.TensorProto):
        proto = value
    elif type_proto is not None and type_proto.HasField("sequence_type"):
        proto = numpy_helper.from_list(value, name)
    elif type_proto is not None and type_proto.HasField("optional_type"):
        proto = numpy_helper.from_optional(value, name)
    else:
        elem = None
        if type_proto is not None and type_proto.HasField("tensor_type"):
            elem = type_proto.tensor_type.elem_type
        try:
            proto = numpy_helper.from_array(value, name)
        except Exception:
            proto = onnx.helper.make_tensor(name, elem, value.shape, value.flatten().tolist())
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def describe(model):
    """Ops (with domain, including subgraphs) and graph I/O element types of a test model."""
    ops = set()

    def walk(g):
        for n in g.node:
            dom = n.domain if n.domain not in ("", "ai.onnx") else ""
            ops.add(f"{dom}:{n.op_type}" if dom else n.op_type)
            for a in n.attribute:
                if a.HasField("g"):
                    walk(a.g)
                for sub in a.graphs:
                    walk(sub)

    walk(model.graph)
    io_types = []
    for v in list(model.graph.input) + list(model.graph.output):
        t = v.type
        if t.HasField("tensor_type"):
            io_types.append(onnx.TensorProto.DataType.Name(t.tensor_type.elem_type))
        else:
            io_types.append(t.WhichOneof("value") or "unknown")
    return {"ops": sorted(ops), "io_types": sorted(set(io_types))}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "cache", "node"))
    ap.add_argument("--force", action="store_true", help="rewrite even if up to date")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    stamp = os.path.join(out, ".onnx-version")
    if not args.force and os.path.exists(stamp) and open(stamp).read().strip() == onnx.__version__:
        print(f"node tests for onnx {onnx.__version__} already in {out}")
        return 0
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    cases = node_cases.collect_testcases(None)
    written = 0
    index = {}
    for case in cases:
        try:
            write_case(case, out)
            index[case.name] = describe(case.model)
            written += 1
        except Exception as e:  # a generator the wheel cannot serialize: report, keep going
            print(f"skip {case.name}: {e}", file=sys.stderr)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=0, sort_keys=True)
    with open(stamp, "w") as f:
        f.write(onnx.__version__)
    print(f"wrote {written} node tests to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
