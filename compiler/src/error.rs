//! The library's error type and the CLI's exit-code policy.

use crate::io::IoError;
use crate::onnx::ImportError;
use crate::target::TargetError;
use edgec_backends::BackendError;
use edgec_ir::IrError;
use edgec_passes::PassError;

/// Everything that can go wrong in a compile or run. Each variant knows whether the user's
/// input is at fault ([`Error::is_user_error`]), which the CLI maps to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Import(#[from] ImportError),
    #[error("{0}")]
    Io(#[from] IoError),
    #[error("{0}")]
    Target(#[from] TargetError),
    #[error("{0}")]
    Pass(#[from] PassError),
    /// What a backend reports: unsupported ops (with their ONNX nodes), a disabled backend, a
    /// bug inside it, a failing tool.
    #[error("{0}")]
    Backend(BackendError),
    /// An invalid IR text file or IR that does not verify.
    #[error("{0}")]
    Ir(#[from] IrError),
    /// A failure while executing a model that imported and verified.
    #[error("while running: {0}")]
    Run(IrError),
    /// Bad flags or option values.
    #[error("{0}")]
    Usage(String),
    /// Quantization could not use the calibration data (wrong inputs, a failing sample).
    #[error("quantization: {0}")]
    Quantize(String),
    /// A bug or an environment problem (disk full, ...).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether the input (model, IR file, flags, input data) is at fault.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Import(_) | Error::Target(_) | Error::Ir(_) | Error::Usage(_) | Error::Quantize(_) => true,
            Error::Io(IoError::Write { .. }) => false,
            Error::Io(_) => true,
            Error::Pass(PassError::UnknownPass { .. } | PassError::Pipeline(_) | PassError::Input { .. }) => {
                true
            }
            Error::Pass(_) => false,
            Error::Backend(e) => e.is_user_error(),
            Error::Run(IrError::Input(_)) => true,
            Error::Run(_) | Error::Internal(_) => false,
        }
    }

    /// The process exit code per the CLI contract: 2 when the input is at fault, else 1.
    pub fn exit_code(&self) -> i32 {
        if self.is_user_error() {
            2
        } else {
            1
        }
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Error {
        match e {
            // One variant for target errors, wherever they surface.
            BackendError::Target(t) => Error::Target(t),
            e => Error::Backend(e),
        }
    }
}
