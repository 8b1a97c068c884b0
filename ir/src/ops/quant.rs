//! `q.*`: quantize/dequantize and integer matmul/conv with ONNX semantics.

use crate::stub_op;

stub_op!(QUANTIZE_LINEAR, "q.quantize_linear");
stub_op!(DEQUANTIZE_LINEAR, "q.dequantize_linear");
stub_op!(DYNAMIC_QUANTIZE_LINEAR, "q.dynamic_quantize_linear");
stub_op!(MATMUL_INTEGER, "q.matmul_integer");
stub_op!(CONV_INTEGER, "q.conv_integer");
stub_op!(QLINEAR_MATMUL, "q.qlinear_matmul");
stub_op!(QLINEAR_CONV, "q.qlinear_conv");
