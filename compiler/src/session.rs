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
        Ok(Session { module })
    }

    /// Wraps an existing module (verifying it).
    pub fn from_module(module: Module) -> Result<Session, Error> {
        edgec_ir::verify::verify_module(&module)?;
        Ok(Session { module })
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
}
