#!/usr/bin/env python3
"""ONNX Runtime's own post-training static quantization, as the accuracy anchor for edgec's int8.

    ort_quantize.py MODEL.onnx CALIB.npz INPUTS.npz REF.npz

Quantizes MODEL with onnxruntime.quantization.quantize_static (QDQ format, int8 activations and
per-channel int8 weights, MinMax calibration: the settings closest to edgec's defaults) on the
samples of CALIB.npz (arrays named after the graph inputs with a leading sample axis), runs the
quantized model on INPUTS.npz with one thread, and prints one JSON line: for each output its
cosine similarity and SNR (dB) against REF.npz (the float reference), or {"error": ...}.
"""
import json
import os
import sys
import tempfile

import numpy as np


def accuracy(ref, out):
    r = ref.astype(np.float64).ravel()
    o = out.astype(np.float64).ravel()
    nr, no = np.dot(r, r), np.dot(o, o)
    cos = 1.0 if nr == 0 and no == 0 else float(np.dot(r, o) / np.sqrt(nr * no))
    err = float(np.sum((r - o) ** 2))
    snr = float("inf") if err == 0 else float(10 * np.log10(nr / err))
    return {"cos": cos, "snr_db": snr}


def main():
    model, calib, inputs, ref = sys.argv[1:5]
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    cal = np.load(calib)
    names = list(cal.files)
    count = cal[names[0]].shape[0]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= count:
                return None
            self.i += 1
            return {n: cal[n][self.i - 1] for n in names}

    with tempfile.TemporaryDirectory() as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        out = os.path.join(tmp, "q.onnx")
        try:
            quant_pre_process(model, pre, skip_symbolic_shape=True)
        except Exception:
            pre = model
        quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(out, so, providers=["CPUExecutionProvider"])
        feed = dict(np.load(inputs))
        outs = sess.run(None, feed)
        r = np.load(ref)
        result = {o.name: accuracy(r[o.name], v) for o, v in zip(sess.get_outputs(), outs)}
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line for the caller, whatever failed
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
