//! LLVM code generation (inkwell, LLVM 22).
pub fn llvm_version() -> (u32, u32, u32) {
    inkwell::support::get_llvm_version()
}

pub mod backend;
pub mod codegen;
pub mod gemm;
pub mod gemm_bench;
mod ir_helpers;
pub mod lookup;
pub mod math;
pub mod qgemm;
