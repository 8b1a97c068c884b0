//! Errors of the IR layer. Each names the op (by its printed name) and its location, so a
//! diagnostic can point at the ONNX node it came from.

use crate::entity::Op;
use crate::module::Loc;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum IrError {
    /// An invariant of the IR does not hold (see `verify.rs` for the list).
    #[error("{loc}: `{op_name}`: {message}")]
    Verify { op: Option<Op>, op_name: String, loc: Loc, message: String },
    /// An op's shape rule or reference evaluation failed.
    #[error("{loc}: `{op_name}`: {message}")]
    Op { op: Option<Op>, op_name: String, loc: Loc, message: String },
    /// The text form could not be parsed.
    #[error("line {line}, column {col}: {message}")]
    Parse { line: usize, col: usize, message: String },
    /// Interpreter inputs do not match the function signature.
    #[error("{0}")]
    Input(String),
}

impl IrError {
    /// The human-readable message without the location prefix.
    pub fn message(&self) -> &str {
        match self {
            IrError::Verify { message, .. } | IrError::Op { message, .. } => message,
            IrError::Parse { message, .. } => message,
            IrError::Input(m) => m,
        }
    }
}
