//! edgec library.
pub mod onnx;
