//! `edgec`: an ahead-of-time compiler for generative models on edge hardware.
//!
//! The library API is small: [`Session`] imports a model (ONNX or IR text) into the IR and
//! runs it in the reference interpreter; [`CompileOptions`] carries the target and dim
//! bindings; [`Error`] says whether the user's input is at fault. The ONNX frontend is in
//! [`onnx`], tensor files in [`io`], the target registry in [`target`], and the command line
//! in [`cli`].

pub mod cli;
pub mod error;
pub mod io;
#[cfg(feature = "llvm")]
pub mod machine;
pub mod onnx;
pub mod session;
pub mod target;

pub use error::Error;
pub use session::{CompileOptions, Pipeline, Quantize, Session, DEFAULT_PIPELINE};
pub use target::Target;
