//! `nn.*` reductions, arg-reductions, softmax, cumulative sum, top-k and normalizations.

use crate::stub_op;

stub_op!(REDUCE_MEAN, "nn.reduce_mean");
stub_op!(REDUCE_SUM, "nn.reduce_sum");
stub_op!(REDUCE_MAX, "nn.reduce_max");
stub_op!(REDUCE_MIN, "nn.reduce_min");
stub_op!(REDUCE_PROD, "nn.reduce_prod");
stub_op!(REDUCE_L2, "nn.reduce_l2");
stub_op!(REDUCE_SUM_SQUARE, "nn.reduce_sum_square");
stub_op!(ARG_MAX, "nn.arg_max");
stub_op!(ARG_MIN, "nn.arg_min");
stub_op!(SOFTMAX, "nn.softmax");
stub_op!(LOG_SOFTMAX, "nn.log_softmax");
stub_op!(CUM_SUM, "nn.cumsum");
stub_op!(TOP_K, "nn.top_k");
stub_op!(LAYER_NORM, "nn.layer_norm");
stub_op!(BATCH_NORM, "nn.batch_norm");
stub_op!(INSTANCE_NORM, "nn.instance_norm");
stub_op!(GROUP_NORM, "nn.group_norm");
stub_op!(RMS_NORM, "nn.rms_norm");
