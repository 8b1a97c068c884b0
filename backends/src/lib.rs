//! edgec backends. Each heavy backend is a cargo feature (`llvm`, `mlir`).

pub mod kir;
pub mod lower;
pub mod quant;

#[cfg(feature = "llvm")]
pub mod llvm;
