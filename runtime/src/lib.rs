//! The edgec runtime: the tiny C runtime (no heap, no OS, no libm) that edgec-generated code links
//! against, a generic harness that runs any compiled model, the toolchain driver that builds, links
//! and runs them per target (natively, under qemu-user or on Cortex-M under qemu-system-arm), and a
//! host loader for integrators. The ABI is described in `docs/runtime.md` and `c/edgec_runtime.h`.

pub mod host;
pub mod sources;
pub mod toolchain;

pub use host::{HostError, HostModel, TensorDesc};
pub use toolchain::{RunOutput, TargetKind, ToolchainError};
