//! edgec backends. Each heavy backend is a cargo feature (`llvm`, `mlir`).

#[cfg(feature = "llvm")]
pub mod llvm;
