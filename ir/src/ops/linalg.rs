//! `nn.*` matrix multiplication, convolution, einsum, attention, rotary embedding and pooling.

use crate::stub_op;

stub_op!(MATMUL, "nn.matmul");
stub_op!(GEMM, "nn.gemm");
stub_op!(CONV, "nn.conv");
stub_op!(CONV_TRANSPOSE, "nn.conv_transpose");
stub_op!(EINSUM, "nn.einsum");
stub_op!(ATTENTION, "nn.attention");
stub_op!(ROTARY_EMBEDDING, "nn.rotary_embedding");
stub_op!(MAX_POOL, "nn.max_pool");
stub_op!(AVERAGE_POOL, "nn.average_pool");
stub_op!(GLOBAL_AVERAGE_POOL, "nn.global_average_pool");
stub_op!(GLOBAL_MAX_POOL, "nn.global_max_pool");
