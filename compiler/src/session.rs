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
use edgec_passes::quant::{Int8Options, QuantReport};
use edgec_passes::{PassError, PassManager, PassTiming, PrintAfter, TargetInfo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The passes `compile` runs before lowering, in order (see `docs/passes.md`).
pub const DEFAULT_PIPELINE: &str =
    "fold-constants,simplify,cse,fold-batchnorm,egraph,dce,egraph-kernels,fuse,choose-layout";

/// The graph optimization pipeline and what to show of it.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// Comma-separated pass names (`--passes`).
    pub passes: String,
    /// Print the IR after these passes, to standard error (`--print-after-all`, `--print-after`).
    pub print_after: PrintAfter,
    /// Print each pass's time to standard error (`--time-passes`).
    pub time_passes: bool,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline { passes: DEFAULT_PIPELINE.into(), print_after: PrintAfter::None, time_passes: false }
    }
}

/// Where calibration samples come from.
#[derive(Clone, Debug)]
pub enum Calibration {
    /// An `.npz` file with one array per graph input, named after it, holding one sample or a
    /// leading axis of samples (`--calibrate DATA.npz`).
    File(PathBuf),
    /// Samples given directly, each one tensor per graph input in order.
    Samples(Vec<Vec<Tensor>>),
}

/// Quantization (`--quantize`).
#[derive(Clone, Debug, Default)]
pub enum Quantize {
    #[default]
    None,
    /// Post-training static int8 quantization (`--quantize int8 --calibrate DATA.npz`), run
    /// just before `fuse`.
    Int8 { calibration: Calibration, options: Int8Options },
    /// Group-wise int4 weights, float activations: the `quantize-int4-weights` pass with groups
    /// of `group_size` (a power of two) consecutive elements along the reduction dim, run
    /// before the pipeline (a tied head's transposed table is still a transpose of the
    /// embedding constant there).
    Int4Weights { group_size: usize },
}

impl Quantize {
    /// The mode's name as `--quantize` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Quantize::None => "none",
            Quantize::Int8 { .. } => "int8",
            Quantize::Int4Weights { .. } => "int4-weights",
        }
    }
}

/// Options shared by `import`, `compile`, `run` and `bench`.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub target: Target,
    /// Bindings of symbolic dims (`--dim seq=128`).
    pub dims: BTreeMap<String, u64>,
    /// What `compile` runs before lowering.
    pub pipeline: Pipeline,
    /// Quantization (see [`Quantize`] for where in the pipeline it runs).
    pub quantize: Quantize,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            target: Target::Interp,
            dims: BTreeMap::new(),
            pipeline: Pipeline::default(),
            quantize: Quantize::None,
        }
    }
}

/// The optimized module and what the pipeline reports about it.
pub struct Optimized {
    pub module: Module,
    pub timings: Vec<PassTiming>,
    /// What quantization did, when it ran.
    pub quantization: Option<QuantReport>,
}

/// A model imported into the IR.
pub struct Session {
    module: Module,
    /// Node count of the imported ONNX graph (for reports).
    onnx_nodes: Option<usize>,
    pipeline: Pipeline,
    quantize: Quantize,
    /// What the passes optimize for (from `CompileOptions::target`; `compile` uses its own).
    target: TargetInfo,
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
        Ok(Session {
            module,
            onnx_nodes,
            pipeline: options.pipeline.clone(),
            quantize: options.quantize.clone(),
            target: options.target.pass_target(),
        })
    }

    /// Wraps an existing module (verifying it).
    pub fn from_module(module: Module) -> Result<Session, Error> {
        edgec_ir::verify::verify_module(&module)?;
        Ok(Session {
            module,
            onnx_nodes: None,
            pipeline: Pipeline::default(),
            quantize: Quantize::None,
            target: TargetInfo::generic(),
        })
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

    /// Runs the model in the reference interpreter: the imported model, or the quantized one
    /// when the session quantizes (so that `--target interp` shows the quantized numerics).
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        if matches!(self.quantize, Quantize::None) {
            return edgec_ir::interp::run_function(self.main(), inputs).map_err(Error::Run);
        }
        let opt = self.optimize()?;
        let f = opt.module.main().expect("a verified module has an entry function");
        edgec_ir::interp::run_function(f, inputs).map_err(Error::Run)
    }

    /// Sets the pipeline `compile` runs.
    pub fn set_pipeline(&mut self, pipeline: Pipeline) {
        self.pipeline = pipeline;
    }

    /// Sets the target the passes optimize for in [`Session::optimize`] (`compile` optimizes
    /// for the target it is given).
    pub fn set_target(&mut self, target: TargetInfo) {
        self.target = target;
    }

    /// The target the passes optimize for.
    pub fn target(&self) -> &TargetInfo {
        &self.target
    }

    /// Sets the quantization `compile` (and the quantized interpreter run) applies.
    pub fn set_quantize(&mut self, quantize: Quantize) {
        self.quantize = quantize;
    }

    /// The module after the session's pipeline (the imported module is left as it is), and the
    /// time each pass took. The result is verified.
    pub fn optimized(&self) -> Result<(Module, Vec<PassTiming>), Error> {
        let o = self.optimize()?;
        Ok((o.module, o.timings))
    }

    pub fn quantize(&self) -> &Quantize {
        &self.quantize
    }

    /// The pipeline with quantization, for the session's target: the passes before the first
    /// kernel-forming pass (`egraph-kernels` or `fuse`), then quantization, then the rest
    /// (quantization must see the layers before they are fused). The result is verified.
    pub fn optimize(&self) -> Result<Optimized, Error> {
        self.optimize_for(&self.target)
    }

    /// [`Session::optimize`] with the passes built for `target`.
    pub fn optimize_for(&self, target: &TargetInfo) -> Result<Optimized, Error> {
        let names: Vec<&str> =
            self.pipeline.passes.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let split = match self.quantize {
            Quantize::Int8 { .. } => {
                names.iter().position(|&n| n == "fuse" || n == "egraph-kernels").unwrap_or(names.len())
            }
            _ => names.len(),
        };
        let mut module = self.module.clone();
        let run_part = |module: &mut Module, names: &[&str], first: bool| -> Result<PassManager, Error> {
            let mut pm = PassManager::parse_for(&names.join(","), target)?;
            if let (true, Quantize::Int4Weights { group_size }) = (first, &self.quantize) {
                pm.prepend(Box::new(edgec_passes::quant::QuantizeInt4Weights { group_size: *group_size }));
            }
            // A pre-quantized model states its integer arithmetic as ONNX quantization ops; they
            // fold into the integer kernels before anything else (constant folding would turn the
            // weights' DequantizeLinear into float constants).
            let prequantized = module.functions.iter().any(edgec_passes::quant::has_onnx_quant_ops);
            if first && prequantized && !names.is_empty() && !names.contains(&"fold-quantized") {
                pm.prepend(Box::new(edgec_passes::quant::FoldQuantized));
            }
            pm.print_after = self.pipeline.print_after.clone();
            pm.printer = Some(Box::new(|pass, ir| eprint!("// ----- IR after {pass} -----\n{ir}")));
            pm.run(module)?;
            Ok(pm)
        };
        let first = run_part(&mut module, &names[..split], true)?;
        let mut timings = first.timings.clone();
        let mut report_text = first.timing_report();
        let mut quantization = None;
        if let Quantize::Int8 { calibration, options } = &self.quantize {
            let start = std::time::Instant::now();
            let samples = match calibration {
                Calibration::File(p) => crate::io::read_calibration(p, self.main())?,
                Calibration::Samples(s) => s.clone(),
            };
            let f = module.main_mut().expect("a verified module has an entry function");
            let r = edgec_passes::quant::quantize_int8(f, &samples, options).map_err(Error::Quantize)?;
            edgec_ir::verify::verify_module(&module)
                .map_err(|error| PassError::Verify { pass: "quantize-int8".into(), error })?;
            timings.push(PassTiming { pass: "quantize-int8", duration: start.elapsed() });
            quantization = Some(r);
        }
        let rest = run_part(&mut module, &names[split..], false)?;
        timings.extend(rest.timings.iter().cloned());
        report_text.push_str(&rest.timing_report());
        if !rest.verify_each {
            // Release builds skip per-pass verification; the pipeline's result is still checked.
            edgec_ir::verify::verify_module(&module)
                .map_err(|error| PassError::Verify { pass: "pipeline".into(), error })?;
        }
        if self.pipeline.time_passes {
            eprint!("{report_text}");
        }
        Ok(Optimized { module, timings, quantization })
    }

    /// Optimizes and compiles the model for a machine target; `symbol` prefixes the generated C
    /// names. `compile_seconds` covers both.
    #[cfg(feature = "llvm")]
    pub fn compile(
        &self,
        target: &Target,
        symbol: &str,
        want_llvm_ir: bool,
    ) -> Result<crate::machine::Compiled, Error> {
        target.check_available()?;
        let start = std::time::Instant::now();
        let opt = self.optimize_for(&target.pass_target())?;
        let f = opt.module.main().expect("a verified module has an entry function");
        let pass_seconds = start.elapsed().as_secs_f64();
        let mut c = crate::machine::compile(f, target, symbol, want_llvm_ir)?;
        c.compile_seconds += pass_seconds;
        c.quantization = Some(quantization_json(self.quantize.name(), opt.quantization.as_ref()));
        Ok(c)
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

/// report.json's `quantization` object.
pub fn quantization_json(mode: &str, r: Option<&QuantReport>) -> serde_json::Value {
    let Some(r) = r else { return serde_json::json!({ "mode": mode }) };
    let float: Vec<&str> = r.layers.iter().filter(|l| !l.int8).map(|l| l.name.as_str()).collect();
    serde_json::json!({
        "mode": mode,
        "calibration_samples": r.samples,
        "observer": r.observer,
        "min_sqnr_db": r.min_sqnr_db,
        "int8_layers": r.layers.iter().filter(|l| l.int8).count(),
        "float_layers": float,
        "layers": r.layers.iter().map(|l| serde_json::json!({
            "name": l.name, "op": l.op, "sqnr_db": (l.sqnr_db * 100.0).round() / 100.0, "int8": l.int8,
        })).collect::<Vec<_>>(),
    })
}

/// Checks a tensor against a graph input's type (element type, rank, static dims).
pub(crate) fn check_input_value(ty: &edgec_ir::TensorType, t: &Tensor) -> Result<(), String> {
    edgec_ir::interp::check_value(ty, t)
}
