//! Import errors. Each renders as one line that names the ONNX node and op type where there is
//! one, so the CLI can print it as is (exit code 2: the model is at fault).

use edgec_ir::IrError;
use std::path::PathBuf;

/// Why a model could not be imported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    /// The model file (or an external data file) could not be read.
    #[error("cannot read {}: {}", one_line(&path.display().to_string()), one_line(message))]
    Io { path: PathBuf, message: String },
    /// The bytes are not a valid ONNX protobuf (truncated, garbage, wrong file).
    #[error("malformed ONNX protobuf: {}", one_line(.0))]
    Malformed(String),
    /// A `ModelProto` without a graph.
    #[error("the model has no graph")]
    MissingGraph,
    /// The default-domain opset is outside the supported range.
    #[error("{}", one_line(.0))]
    UnsupportedOpset(String),
    /// An op type (or domain) the frontend has no mapping for.
    #[error("node {node:?}: unsupported op {}", one_line(&qualified(domain, op_type)))]
    UnsupportedOp { node: String, op_type: String, domain: String },
    /// A supported op used in a way edgec does not support (training mode, non-tensor types...).
    #[error("node {node:?} ({}): {}", one_line(op_type), one_line(message))]
    Unsupported { node: String, op_type: String, message: String },
    /// A node input or graph output that no node, initializer or graph input defines.
    #[error("node {node:?} ({}) uses undefined tensor {tensor:?}", one_line(op_type))]
    UndefinedTensor { node: String, op_type: String, tensor: String },
    /// A graph output that nothing defines.
    #[error("graph output {0:?} is not defined by any node, initializer or graph input")]
    UndefinedOutput(String),
    /// A tensor name defined twice (two initializers, two inputs, two node outputs...).
    #[error("tensor {tensor:?} is defined twice ({} and {})", one_line(first), one_line(second))]
    Duplicate { tensor: String, first: String, second: String },
    /// The nodes do not form a DAG.
    #[error("node {node:?} ({}) is on a cycle of the graph", one_line(op_type))]
    Cycle { node: String, op_type: String },
    /// An attribute is missing, of the wrong kind, or has an invalid value.
    #[error("node {node:?} ({}): attribute {attr:?}: {}", one_line(op_type), one_line(message))]
    BadAttribute { node: String, op_type: String, attr: String, message: String },
    /// A node input has an invalid value (e.g. a non-constant where a constant is required).
    #[error("node {node:?} ({}): {}", one_line(op_type), one_line(message))]
    BadInput { node: String, op_type: String, message: String },
    /// An initializer or constant tensor whose data cannot be decoded.
    #[error("tensor {tensor:?}: {}", one_line(message))]
    BadTensor { tensor: String, message: String },
    /// A graph input/output whose type edgec cannot represent.
    #[error("graph {kind} {name:?}: {}", one_line(message))]
    BadValueType { kind: &'static str, name: String, message: String },
    /// The IR shape rule of the op rejected the node.
    #[error("node {node:?} ({}): {}", one_line(op_type), one_line(message))]
    Shape { node: String, op_type: String, message: String },
    /// `--dim` bindings that do not match the model's symbolic dims.
    #[error("{}", one_line(.0))]
    Dims(String),
    /// The imported module failed verification (a frontend bug rather than a model problem).
    #[error("imported IR does not verify: {}", one_line(&.0.to_string()))]
    Verify(IrError),
}

/// Escapes control characters so that every message is one line whatever the model contains
/// (names, attribute strings and paths come from the file).
pub(crate) fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
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
