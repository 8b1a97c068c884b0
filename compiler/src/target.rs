//! What `--target` accepts: plain data ([`Target`]), resolved through the backend registry
//! (`edgec_backends::registry`, which `edgec targets` prints). A target whose backend was built
//! out of this edgec is still recognized, and asking to compile for it is a clear error
//! ([`TargetError::Disabled`], exit 2), never a link failure.

pub use edgec_backends::registry::{lookup, targets_text, BackendInfo, BACKENDS};
pub use edgec_backends::target::{Target, TargetError};
