//! Import errors. Each renders as one line that names the ONNX node and op type where there is
//! one, so the CLI can print it as is (exit code 2: the model is at fault).

use edgec_ir::IrError;
use std::path::PathBuf;

/// Why a model could not be imported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    /// The model file (or an external data file) could not be read.
    #[error("cannot read {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    /// The bytes are not a valid ONNX protobuf (truncated, garbage, wrong file).
    #[error("malformed ONNX protobuf: {0}")]
    Malformed(String),
    /// A `ModelProto` without a graph.
    #[error("the model has no graph")]
    MissingGraph,
    /// The default-domain opset is outside the supported range.
    #[error("{0}")]
    UnsupportedOpset(String),
    /// An op type (or domain) the frontend has no mapping for.
    #[error("node {node:?}: unsupported op {}", qualified(domain, op_type))]
    UnsupportedOp { node: String, op_type: String, domain: String },
    /// A supported op used in a way edgec does not support (training mode, non-tensor types...).
    #[error("node {node:?} ({op_type}): {message}")]
    Unsupported { node: String, op_type: String, message: String },
    /// A node input or graph output that no node, initializer or graph input defines.
    #[error("node {node:?} ({op_type}) uses undefined tensor {tensor:?}")]
    UndefinedTensor { node: String, op_type: String, tensor: String },
    /// A graph output that nothing defines.
    #[error("graph output {0:?} is not defined by any node, initializer or graph input")]
    UndefinedOutput(String),
    /// A tensor name defined twice (two initializers, two inputs, two node outputs...).
    #[error("tensor {tensor:?} is defined twice ({first} and {second})")]
    Duplicate { tensor: String, first: String, second: String },
    /// The nodes do not form a DAG.
    #[error("node {node:?} ({op_type}) is on a cycle of the graph")]
    Cycle { node: String, op_type: String },
    /// An attribute is missing, of the wrong kind, or has an invalid value.
    #[error("node {node:?} ({op_type}): attribute {attr:?}: {message}")]
    BadAttribute { node: String, op_type: String, attr: String, message: String },
    /// A node input has an invalid value (e.g. a non-constant where a constant is required).
    #[error("node {node:?} ({op_type}): {message}")]
    BadInput { node: String, op_type: String, message: String },
    /// An initializer or constant tensor whose data cannot be decoded.
    #[error("tensor {tensor:?}: {message}")]
    BadTensor { tensor: String, message: String },
    /// A graph input/output whose type edgec cannot represent.
    #[error("graph {kind} {name:?}: {message}")]
    BadValueType { kind: &'static str, name: String, message: String },
    /// The IR shape rule of the op rejected the node.
    #[error("node {node:?} ({op_type}): {message}")]
    Shape { node: String, op_type: String, message: String },
    /// `--dim` bindings that do not match the model's symbolic dims.
    #[error("{0}")]
    Dims(String),
    /// The imported module failed verification (a frontend bug rather than a model problem).
    #[error("imported IR does not verify: {0}")]
    Verify(IrError),
}

fn qualified(domain: &str, op_type: &str) -> String {
    if domain.is_empty() || domain == "ai.onnx" {
        op_type.to_string()
    } else {
        format!("{domain}:{op_type}")
    }
}

impl ImportError {
    /// A short, stable tag for the kind of error (used to tally import failures).
    pub fn kind(&self) -> &'static str {
        match self {
            ImportError::Io { .. } => "io",
            ImportError::Malformed(_) => "malformed",
            ImportError::MissingGraph => "missing-graph",
            ImportError::UnsupportedOpset(_) => "unsupported-opset",
            ImportError::UnsupportedOp { .. } => "unsupported-op",
            ImportError::Unsupported { .. } => "unsupported",
            ImportError::UndefinedTensor { .. } | ImportError::UndefinedOutput(_) => "undefined-tensor",
            ImportError::Duplicate { .. } => "duplicate",
            ImportError::Cycle { .. } => "cycle",
            ImportError::BadAttribute { .. } => "bad-attribute",
            ImportError::BadInput { .. } => "bad-input",
            ImportError::BadTensor { .. } => "bad-tensor",
            ImportError::BadValueType { .. } => "bad-value-type",
            ImportError::Shape { .. } => "shape",
            ImportError::Dims(_) => "dims",
            ImportError::Verify(_) => "verify",
        }
    }
}
