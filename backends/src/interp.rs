//! The reference interpreter as a backend: it optimizes for no machine in particular (the
//! generic cost model) and compiles nothing; `edgec run --target interp` runs the graph IR
//! itself (`edgec_ir::interp`): the imported graph for a float model, the optimized one when the
//! session quantizes. Its pipeline (what `Session::optimize` runs for a session without a
//! machine target) forms kernels as the CPU backend does but keeps weights in their own layout,
//! so that an interpreted quantized model runs the same fused kernels the machine code computes.

use crate::backend::{Backend, BackendError, CodegenOptions, Compiled, Package};
use crate::target::Target;
use edgec_ir::Function;
use edgec_passes::TargetInfo;

/// The interpreter "backend".
pub struct Interp {
    target: Target,
}

/// The registry's constructor.
pub fn create(target: &Target) -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(Interp { target: target.clone() }))
}

impl Backend for Interp {
    fn name(&self) -> &'static str {
        "interp"
    }
    fn target(&self) -> &Target {
        &self.target
    }
    fn pass_target(&self) -> TargetInfo {
        TargetInfo::generic()
    }
    fn pipeline(&self) -> &'static str {
        "egraph-kernels,fuse"
    }
    fn supports(&self, _: &Function, _: edgec_ir::Op) -> Result<(), String> {
        // Every op the IR declares has reference semantics.
        Ok(())
    }
    fn compile(&self, _: &Function, _: &CodegenOptions) -> Result<Compiled, BackendError> {
        Err(BackendError::Usage(
            "target `interp` runs models but does not compile them; use `edgec run --target interp`".into(),
        ))
    }
    fn package(&self, _: &Compiled) -> Result<Package, BackendError> {
        Err(BackendError::internal(None, "the interpreter compiles nothing to package"))
    }
}
