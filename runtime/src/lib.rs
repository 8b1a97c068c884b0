//! The edgec runtime. The C runtime and the host loader arrive with the LLVM backend; this crate already fixes the ABI names shared with the compiler.
