#!/usr/bin/env python3
"""Times one ONNX model with ONNX Runtime on one thread; prints one JSON line.

Usage: ort_bench.py MODEL.onnx INPUTS.npz [--runs N] [--warmup W]

Policy (same as `edgec bench`): W warm-up runs (default 1), then N timed runs (default 10) of
`session.run`, each timed with a monotonic clock; prints {"median_ms","min_ms","runs","ort_nodes"}. The
session uses intra_op_num_threads=1, inter_op_num_threads=1, ORT_SEQUENTIAL and ORT_ENABLE_ALL.
`ort_nodes` is the node count of ONNX Runtime's own optimized graph (saved through
`SessionOptions.optimized_model_filepath` at this optimization level): the kernel count edgec's
fusion is compared with.
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import onnx

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
        # The weights may be written beside it as external data; only the nodes are counted.
        ort_nodes = len(onnx.load(so.optimized_model_filepath, load_external_data=False).graph.node)
    data = np.load(a.inputs)
    feeds = {i.name: data[i.name] for i in sess.get_inputs()}
    for _ in range(max(a.warmup, 0)):
        sess.run(None, feeds)
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        sess.run(None, feeds)
        times.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "runs": a.runs,
        "ort_nodes": ort_nodes,
        "ort_version": ort.__version__,
    }))


if __name__ == "__main__":
    main()
