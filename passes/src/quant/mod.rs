//! Quantization: post-training static int8 quantization with calibration data
//! ([`int8::quantize_int8`]).
//!
//! Unlike the registry's passes, quantization needs data the IR does not hold (calibration
//! samples), so it is a function the compiler driver calls between the pipeline's
//! canonicalization and `fuse`; see `docs/quantization.md`.

pub mod int8;
pub mod observer;

pub use int8::{quantize_int8, Int8Options, LayerReport, QuantReport};
pub use observer::Observer;
