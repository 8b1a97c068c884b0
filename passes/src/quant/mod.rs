//! Quantization (see `docs/quantization.md`):
//! - post-training static int8 quantization with calibration data, the registry pass
//!   `quantize-int8` ([`QuantizeInt8`], over [`int8::quantize_int8`]): the driver hands it the
//!   calibration samples through the [`crate::PassContext`] and places it between the shared
//!   graph passes and the backend's;
//! - int4 weight-only quantization, a registry pass ([`QuantizeInt4Weights`]);
//! - folding of pre-quantized ONNX (QDQ pairs, QLinear ops) into the `q.*` integer kernels, a
//!   registry pass ([`FoldQuantized`]).

pub mod fold;
pub mod int4_weights;
pub mod int8;
pub mod lookup;
pub mod observer;

pub use fold::{has_onnx_quant_ops, FoldQuantized};
pub use int4_weights::{QuantizeInt4Weights, DEFAULT_GROUP_SIZE};
pub use int8::{quantize_int8, Int8Options, LayerReport, QuantReport, QuantizeInt8};
pub use observer::Observer;
