//! The ONNX frontend (being written).
