//! Quantization passes (see `docs/quantization.md`).

pub mod int4_weights;

pub use int4_weights::{QuantizeInt4Weights, DEFAULT_GROUP_SIZE};
