//! The library API for integrators: import a model once, then inspect, transform or run it.
//!
//! ```no_run
//! use edgec::{CompileOptions, Session};
//! let session = Session::import("model.onnx", &CompileOptions::default())?;
//! println!("{}", session.print());
//! let outputs = session.run(session.read_inputs("inputs.npz")?)?;
//! # Ok::<(), edgec::Error>(())
//! ```

use crate::error::Error;
use crate::onnx::{import_model, ImportOptions};
use crate::target::Target;
use edgec_ir::{Module, Tensor};
use std::collections::BTreeMap;
use std::path::Path;

/// Options shared by `import`, `compile`, `run` and `bench`.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub target: Target,
    /// Bindings of symbolic dims (`--dim seq=128`).
    pub dims: BTreeMap<String, u64>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions { target: Target::Interp, dims: BTreeMap::new() }
    }
}

/// A model imported into the IR.
pub struct Session {
    module: Module,
    /// Node count of the imported ONNX graph (for reports).
    onnx_nodes: Option<usize>,
}

impl Session {
    /// Imports an ONNX model (`.onnx`) or an IR text file (`.eir`), and verifies it.
    pub fn import(path: impl AsRef<Path>, options: &CompileOptions) -> Result<Session, Error> {
        let path = path.as_ref();
        let module = if path.extension().is_some_and(|e| e == "eir") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
            let m = edgec_ir::parser::parse_module(&text)?;
            edgec_ir::verify::verify_module(&m)?;
            m
        } else {
            import_model(path, &ImportOptions { dims: options.dims.clone() })?
        };
        let onnx_nodes = crate::onnx::count_nodes(path).ok();
        Ok(Session { module, onnx_nodes })
    }

    /// Wraps an existing module (verifying it).
    pub fn from_module(module: Module) -> Result<Session, Error> {
        edgec_ir::verify::verify_module(&module)?;
        Ok(Session { module, onnx_nodes: None })
    }

    pub fn module(&self) -> &Module {
        &self.module
    }

    pub fn module_mut(&mut self) -> &mut Module {
        &mut self.module
    }

    /// The IR in text form.
    pub fn print(&self) -> String {
        edgec_ir::printer::print_module(&self.module)
    }

    /// Names of the entry function's inputs, in order.
    pub fn input_names(&self) -> Vec<String> {
        let f = self.main();
        f.params()
            .iter()
            .enumerate()
            .map(|(i, &p)| f.values[p].name.clone().unwrap_or_else(|| format!("input_{i}")))
            .collect()
    }

    /// Names of the entry function's outputs, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.main().result_names.clone()
    }

    fn main(&self) -> &edgec_ir::Function {
        self.module.main().expect("a verified module has an entry function")
    }

    /// Reads inputs for this model from an `.npz` file or an `input_N.pb` directory.
    pub fn read_inputs(&self, path: impl AsRef<Path>) -> Result<Vec<Tensor>, Error> {
        Ok(crate::io::read_inputs(path.as_ref(), self.main())?)
    }

    /// Runs the model in the reference interpreter.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        edgec_ir::interp::run_function(self.main(), inputs).map_err(Error::Run)
    }

    /// Compiles the model for a machine target; `symbol` prefixes the generated C names.
    #[cfg(feature = "llvm")]
    pub fn compile(
        &self,
        target: &Target,
        symbol: &str,
        want_llvm_ir: bool,
    ) -> Result<crate::machine::Compiled, Error> {
        target.check_available()?;
        crate::machine::compile(self.main(), target, symbol, want_llvm_ir)
    }

    /// Writes model.o, model.h, the runtime and report.json into `dir`; returns the report.
    #[cfg(feature = "llvm")]
    pub fn write_artifacts(
        &self,
        c: &crate::machine::Compiled,
        dir: &Path,
    ) -> Result<serde_json::Value, Error> {
        crate::machine::write_artifacts(c, dir, self.onnx_nodes)
    }

    /// report.json's value for a compiled model, without writing any file.
    #[cfg(feature = "llvm")]
    pub fn report(&self, c: &crate::machine::Compiled) -> Result<serde_json::Value, Error> {
        crate::machine::measured_report(c, self.onnx_nodes)
    }

    /// Runs a compiled model on its target (natively or under emulation).
    #[cfg(feature = "llvm")]
    pub fn execute(
        &self,
        c: &crate::machine::Compiled,
        inputs: &[Tensor],
    ) -> Result<(Vec<Tensor>, String), Error> {
        crate::machine::execute(c, inputs)
    }

    /// Times a host-compiled model in-process; per-run milliseconds after one warm-up run.
    #[cfg(feature = "llvm")]
    pub fn bench_host(
        &self,
        c: &crate::machine::Compiled,
        inputs: &[Tensor],
        runs: usize,
    ) -> Result<Vec<f64>, Error> {
        crate::machine::bench_host(c, inputs, runs)
    }
}
