//! edgec's backends: the [`Backend`] interface and the [`registry`] of every backend, the kernel
//! IR ([`kir`]) and its lowering from the graph IR ([`lower`]), the C header shared by backends
//! whose output runs on the C runtime ([`c_header`]), and the backends themselves. Each heavy
//! backend is a cargo feature (`llvm`, `hls`, `mlir`); the registry lists it either way.

pub mod backend;
pub mod c_header;
pub mod interp;
pub mod kir;
pub mod lower;
pub mod profile;
pub mod quant;
pub mod registry;
pub mod target;

#[cfg(feature = "hls")]
pub mod hls;
#[cfg(feature = "llvm")]
pub mod llvm;

pub use backend::{Backend, BackendError, CodegenOptions, Compiled, Execution, Package};
pub use registry::{BackendInfo, BACKENDS};
pub use target::{Target, TargetError};
