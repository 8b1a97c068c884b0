//! The interface every backend implements, and what passes through it.
//!
//! A backend is made for one [`Target`] by its registry entry ([`crate::registry::BACKENDS`]).
//! The compiler then asks it, in this order:
//! 1. what the graph passes should know of the machine ([`Backend::pass_target`], the e-graph's
//!    cost model) and which passes it wants after the shared prefix ([`Backend::pipeline`]);
//! 2. whether it supports every op of the optimized function ([`Backend::supports`], checked
//!    for all ops before any code is generated, each unsupported op reported with its ONNX node);
//! 3. to compile the function into named files and report fields ([`Backend::compile`],
//!    [`Backend::package`]);
//! 4. optionally, to run what it compiled ([`Backend::execute`], [`Backend::bench`]).

use crate::lower::{loc_text, IoDesc, LowerError, Program};
use crate::target::Target;
use edgec_ir::{Function, Loc, OpKind, Tensor};
use edgec_passes::TargetInfo;

/// Why a backend could not do what was asked. [`BackendError::is_user_error`] decides the exit
/// code: the user's model or flags (2) or a bug or broken environment (1).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Ops the backend cannot compile, each with its ONNX node (the input is at fault).
    #[error("{}", unsupported_message(backend, ops))]
    Unsupported { backend: &'static str, ops: Vec<UnsupportedOp> },
    /// The target's backend was compiled out of this build.
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
    /// Lowering to kernel IR refused an op (the input's fault) or broke an invariant (a bug).
    #[error(transparent)]
    Lower(#[from] LowerError),
    /// A request the backend cannot serve with these arguments (wrong input shapes, running a
    /// target that cannot run here, a size beyond the target's limits).
    #[error("{0}")]
    Usage(String),
    /// A bug inside edgec, with the op it concerns when known.
    #[error("internal error{}: {message} (this is a bug in edgec)", op.as_ref().map(|o| format!(" in {o}")).unwrap_or_default())]
    Internal { op: Option<String>, message: String },
    /// An external tool (compiler, linker, emulator) or the file system failed.
    #[error("{0}")]
    Environment(String),
}

/// One op a backend cannot compile.
#[derive(Clone, Debug, PartialEq)]
pub struct UnsupportedOp {
    /// The op's name (`nn.lrn`).
    pub op: &'static str,
    /// The ONNX node(s) it came from.
    pub loc: Loc,
    pub reason: String,
}

fn unsupported_message(backend: &str, ops: &[UnsupportedOp]) -> String {
    let list: Vec<String> =
        ops.iter().map(|o| format!("{} (node {}): {}", o.op, loc_text(&o.loc), o.reason)).collect();
    match list.len() {
        1 => format!("the {backend} backend cannot compile {}", list[0]),
        n => format!("the {backend} backend cannot compile {n} ops: {}", list.join("; ")),
    }
}

impl BackendError {
    /// Whether the user's input (model, flags, input data) is at fault.
    pub fn is_user_error(&self) -> bool {
        match self {
            BackendError::Unsupported { .. } | BackendError::Target(_) | BackendError::Usage(_) => true,
            BackendError::Lower(e) => matches!(e, LowerError::Unsupported { .. }),
            BackendError::Internal { .. } | BackendError::Environment(_) => false,
        }
    }

    /// A bug, with the op it concerns.
    pub fn internal(op: Option<&str>, message: impl Into<String>) -> BackendError {
        BackendError::Internal { op: op.map(str::to_string), message: message.into() }
    }
}

/// What the caller wants of one compile.
#[derive(Clone, Debug)]
pub struct CodegenOptions {
    /// Prefix of the generated C symbols (`<symbol>_model`, `<symbol>_init`, ...).
    pub symbol: String,
    /// Also produce the backend's textual intermediate form (the LLVM backend's `model.ll`).
    pub emit_text: bool,
    /// Instrument every load and store with AddressSanitizer (machine backends; for tests).
    pub sanitize_address: bool,
    /// Bytes of RAM the arena plus the inputs and outputs must fit, and bytes of flash
    /// (read-only memory) the weights must fit; `None` is the target's default board (for
    /// Cortex-M the QEMU board edgec runs it on) or no limit beyond the address space.
    pub ram_bytes: Option<u64>,
    pub flash_bytes: Option<u64>,
    /// Call the runtime's per-kernel hook (`edgec_rt_kernel_hook`) around every kernel call, for
    /// per-kernel profiles (`edgec bench --profile`). Off by default: the hooks then do not exist
    /// in the code at all.
    pub profile: bool,
}

impl CodegenOptions {
    pub fn new(symbol: &str) -> CodegenOptions {
        CodegenOptions {
            symbol: symbol.to_string(),
            emit_text: false,
            sanitize_address: false,
            ram_bytes: None,
            flash_bytes: None,
            profile: false,
        }
    }
}

/// A compiled model: named files and what the report says of them.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The target it was compiled for.
    pub target: Target,
    /// The registry name of the backend that compiled it.
    pub backend: &'static str,
    pub symbol: String,
    /// The files of `edgec compile`'s output directory, by name, in the order they are written.
    pub files: Vec<(String, Vec<u8>)>,
    /// The kernel program, for backends that lower to kernel IR (memory plots, profiles).
    pub program: Option<Program>,
    /// The model's inputs and outputs as the generated code takes them.
    pub inputs: Vec<IoDesc>,
    pub outputs: Vec<IoDesc>,
    /// Seconds spent in the backend (lowering and code generation).
    pub seconds: f64,
    /// Fields for `report.json` known when compiling (the driver adds its own, such as the
    /// quantization summary; [`Backend::package`] adds measured ones).
    pub report: serde_json::Map<String, serde_json::Value>,
}

impl Compiled {
    /// A file's bytes by name.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.iter().find(|(n, _)| n == name).map(|(_, b)| b.as_slice())
    }
}

/// What `edgec compile` writes beside the compiled files: more files (the runtime) and the
/// backend's fields of `report.json`.
#[derive(Clone, Debug, Default)]
pub struct Package {
    pub files: Vec<(String, Vec<u8>)>,
    pub report: serde_json::Map<String, serde_json::Value>,
}

/// The outputs of one run of a compiled model.
#[derive(Clone, Debug)]
pub struct Execution {
    pub outputs: Vec<Tensor>,
    /// What the program printed.
    pub log: String,
    /// How it ran, for messages ("natively", "under qemu-aarch64-static", ...).
    pub how: String,
}

/// A code generator for one target. See the module docs for the order of calls.
pub trait Backend {
    /// The name of its registry entry (`llvm`).
    fn name(&self) -> &'static str;

    /// The target it compiles for.
    fn target(&self) -> &Target;

    /// What the graph passes know of the machine: the e-graph's cost model, the GEMM panel
    /// `choose-layout` stores weights in.
    fn pass_target(&self) -> TargetInfo;

    /// The passes this backend runs after the shared prefix and quantization (comma-separated;
    /// `docs/passes.md` lists them).
    fn pipeline(&self) -> &'static str;

    /// Whether the backend can compile `op` of `f` (checked on the optimized function before any
    /// code is generated); `Err` says why not.
    fn supports(&self, f: &Function, op: edgec_ir::Op) -> Result<(), String>;

    /// Compiles the optimized entry function.
    fn compile(&self, f: &Function, options: &CodegenOptions) -> Result<Compiled, BackendError>;

    /// The runtime files and measured report fields of a compiled model (may build things, so
    /// it is separate from [`Backend::compile`], which `run` and `bench` use alone).
    fn package(&self, compiled: &Compiled) -> Result<Package, BackendError>;

    /// Runs a compiled model on `inputs`, natively, under emulation or in an external
    /// interpreter.
    fn execute(&self, compiled: &Compiled, inputs: &[Tensor]) -> Result<Execution, BackendError> {
        let _ = (compiled, inputs);
        Err(BackendError::Usage(format!(
            "target `{}` compiles models but cannot run them here",
            self.target()
        )))
    }

    /// Times a compiled model: per-run milliseconds after one warm-up run.
    fn bench(&self, compiled: &Compiled, inputs: &[Tensor], runs: usize) -> Result<Vec<f64>, BackendError> {
        let _ = (compiled, inputs, runs);
        Err(BackendError::Usage(format!("target `{}` cannot be benchmarked here", self.target())))
    }

    /// Times every kernel call of a model compiled with [`CodegenOptions::profile`], through the
    /// runtime's per-kernel hook: one warm-up run, then the mean of `runs` runs.
    fn profile(
        &self,
        compiled: &Compiled,
        inputs: &[Tensor],
        runs: usize,
    ) -> Result<crate::profile::KernelTimes, BackendError> {
        let _ = (compiled, inputs, runs);
        Err(BackendError::Usage(format!("target `{}` cannot be profiled per kernel", self.target())))
    }
}

/// The inputs given to run a compiled model must be the ones it takes, in number, element type
/// and shape (the input's fault otherwise, exit 2).
pub fn check_inputs(expected: &[IoDesc], given: &[Tensor]) -> Result<(), BackendError> {
    if given.len() != expected.len() {
        return Err(BackendError::Usage(format!(
            "the model takes {} inputs, {} given",
            expected.len(),
            given.len()
        )));
    }
    for (t, d) in given.iter().zip(expected) {
        if t.shape() != d.dims.as_slice() || t.scalar_type() != d.ty {
            return Err(BackendError::Usage(format!(
                "input {:?}: expected {} {:?}, got {} {:?}",
                d.name,
                d.ty.name(),
                d.dims,
                t.scalar_type().name(),
                t.shape()
            )));
        }
    }
    Ok(())
}

/// A file-system failure while a backend builds or runs what it compiled (exit 1).
pub fn io_error(path: &std::path::Path, e: std::io::Error) -> BackendError {
    BackendError::Environment(format!("{}: {e}", path.display()))
}

/// A fresh private directory under the system temp dir (`edgec-<what>-<pid>-<n>`), for backends
/// that build and run what they compile; the caller removes it.
pub fn scratch_dir(what: &str) -> Result<std::path::PathBuf, BackendError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "edgec-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).map_err(|e| io_error(&d, e))?;
    Ok(d)
}

/// Checks every op of `f` with [`Backend::supports`] and reports all unsupported ones at once.
pub fn check_supported(backend: &dyn Backend, f: &Function) -> Result<(), BackendError> {
    let mut ops = Vec::new();
    // The ops of the body and of the regions inside it (a fused kernel's members), in order.
    let mut stack: Vec<edgec_ir::Op> = f.body_ops().iter().rev().copied().collect();
    while let Some(op) = stack.pop() {
        let d = &f.ops[op];
        if matches!(d.kind, OpKind::Return | OpKind::Constant | OpKind::Yield) {
            continue;
        }
        if let Err(reason) = backend.supports(f, op) {
            ops.push(UnsupportedOp { op: d.kind.name(), loc: d.loc.clone(), reason });
        }
        for r in d.regions.iter().rev() {
            for &b in r.blocks.iter().rev() {
                stack.extend(f.blocks[b].ops.iter().rev());
            }
        }
    }
    if ops.is_empty() {
        Ok(())
    } else {
        Err(BackendError::Unsupported { backend: backend.name(), ops })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An op the kernels do not cover blames the input (exit 2); a broken invariant of
    /// lowering is a bug (exit 1), whatever the op.
    #[test]
    fn lowering_errors_keep_whose_fault_they_are() {
        let unsupported = LowerError::Unsupported {
            op: "nn.lrn",
            loc: Loc::Name("n1".into()),
            message: "no kernel".into(),
        };
        let e = BackendError::from(unsupported);
        assert!(e.is_user_error());
        assert_eq!(e.to_string(), "nn.lrn (node \"n1\"): no kernel");
        let bug = LowerError::Internal { op: "func", message: "the memory plan is wrong".into() };
        let e = BackendError::from(bug);
        assert!(!e.is_user_error());
        assert_eq!(
            e.to_string(),
            "internal error in func: the memory plan is wrong (this is a bug in edgec)"
        );
        let internal = BackendError::internal(Some("llvm"), "no object");
        assert!(!internal.is_user_error());
        assert_eq!(internal.to_string(), "internal error in llvm: no object (this is a bug in edgec)");
    }
}
