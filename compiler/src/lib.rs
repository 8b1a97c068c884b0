//! `edgec`: an ahead-of-time compiler for generative models on edge hardware.
//!
//! The library API is small: [`Session`] imports a model (ONNX or IR text), runs it in the
//! reference interpreter, optimizes it for a target's backend and compiles it; [`CompileOptions`]
//! carries the target, dim bindings, pipeline and quantization; [`Error`] says whether the
//! user's input is at fault. The modules depend on each other in one direction only:
//! [`target`] (data and the backend registry) ← [`session`] ← [`cli`]; [`onnx`] (the frontend)
//! and [`io`] (tensor files, atomic writes) sit below them, and [`error`] collects every error.
//! [`build`] compiles a model from a Cargo build script, on top of [`session`].
//! [`profile`] (per-kernel profiles) and [`progress`] (verbosity, progress bars) serve the
//! session and the command line; [`media`] (PNG/WAV outputs) and [`plot`] (`memory.png`) the
//! command line.

pub mod build;
pub mod cli;
pub mod error;
pub mod io;
pub mod media;
pub mod onnx;
pub mod plot;
pub mod profile;
pub mod progress;
pub mod session;
pub mod target;

pub use edgec_backends::{Backend, BackendError, CodegenOptions, Compiled, Execution};
pub use error::Error;
pub use session::{Calibration, CompileOptions, Optimized, Pipeline, Quantize, Session, SHARED_PASSES};
pub use target::Target;
