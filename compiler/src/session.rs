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
use crate::profile::Profile;
use crate::target::Target;
use edgec_backends::{Backend, CodegenOptions, Compiled};
use edgec_ir::{Module, Tensor};
use edgec_passes::quant::{Int8Options, QuantReport, QuantizeInt8};
use edgec_passes::{PassContext, PassError, PassManager, PassTiming, PrintAfter};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The graph passes every backend's pipeline starts with (see `docs/passes.md`); quantization
/// and then the backend's own passes ([`Backend::pipeline`]) follow.
pub const SHARED_PASSES: &str = "fold-constants,simplify,cse,fold-batchnorm,egraph,dce";

/// The graph optimization pipeline and what to show of it.
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    /// Comma-separated pass names (`--passes`) replacing the whole pipeline; `None`:
    /// [`SHARED_PASSES`], quantization, then the backend's passes.
    pub passes: Option<String>,
    /// Print the IR after these passes, to standard error (`--print-after-all`, `--print-after`).
    pub print_after: PrintAfter,
    /// Print each pass's time to standard error (`--time-passes`).
    pub time_passes: bool,
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
    /// Post-training static int8 quantization (`--quantize int8 --calibrate DATA.npz`): the
    /// `quantize-int8` pass, after the shared passes and before the backend's.
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
    /// The RAM and flash the compiled model must fit (`--ram-bytes`, `--flash-bytes`); `None`
    /// is the target's default board ([`CodegenOptions::ram_bytes`]).
    pub ram_bytes: Option<u64>,
    pub flash_bytes: Option<u64>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            target: Target::interp(),
            dims: BTreeMap::new(),
            pipeline: Pipeline::default(),
            quantize: Quantize::None,
            ram_bytes: None,
            flash_bytes: None,
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
    /// The target [`Session::optimize`] and the interpreter run optimize for (`compile` uses the
    /// target it is given).
    target: Target,
    /// Memory limits every compile checks (see [`CompileOptions::ram_bytes`]).
    ram_bytes: Option<u64>,
    flash_bytes: Option<u64>,
}

impl Session {
    /// Imports an ONNX model (`.onnx`) or an IR text file (`.eir`), and verifies it.
    pub fn import(path: impl AsRef<Path>, options: &CompileOptions) -> Result<Session, Error> {
        let path = path.as_ref();
        let progress = crate::progress::Progress::new(0, "importing");
        progress.message(&path.display().to_string());
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
            target: options.target.clone(),
            ram_bytes: options.ram_bytes,
            flash_bytes: options.flash_bytes,
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
            target: Target::interp(),
            ram_bytes: None,
            flash_bytes: None,
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

    /// A model without outputs computes nothing a caller could see: compiling or running it is
    /// an error (the input's fault), not an empty program. Importing and printing it still work.
    fn check_has_outputs(&self) -> Result<(), Error> {
        if self.main().results().is_empty() {
            return Err(Error::Usage(format!(
                "the model's graph @{} has no outputs, so there is nothing to compute",
                self.main().name
            )));
        }
        Ok(())
    }

    /// Runs the model in the reference interpreter: the imported model, or the quantized one
    /// when the session quantizes (so that `--target interp` shows the quantized numerics).
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        self.check_has_outputs()?;
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

    /// Sets the target [`Session::optimize`] optimizes for (`compile` optimizes for the target
    /// it is given).
    pub fn set_target(&mut self, target: Target) {
        self.target = target;
    }

    /// The target [`Session::optimize`] optimizes for.
    pub fn target(&self) -> &Target {
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

    /// The session's pipeline for its target (see [`Session::optimize_for`]).
    pub fn optimize(&self) -> Result<Optimized, Error> {
        let backend = edgec_backends::registry::lookup(&self.target)?;
        self.optimize_for(backend.as_ref())
    }

    /// The pipeline `compile` runs for `backend`, as pass names with options: folding of ONNX
    /// quantization ops first when the model has them, int4 weight quantization when asked,
    /// then [`SHARED_PASSES`], `quantize-int8` when asked, and the backend's passes. A
    /// `--passes` pipeline replaces the shared and backend passes; `quantize-int8` then goes
    /// before the first of the backend's passes it names (quantization must see the layers
    /// before kernels are formed), or last.
    pub fn pipeline_for(&self, backend: &dyn Backend) -> Result<String, Error> {
        let parse = |p: &str| edgec_passes::parse_pipeline(p).map_err(PassError::Pipeline);
        let own = parse(backend.pipeline())?;
        let mut body = match self.pipeline.passes.as_deref() {
            Some(p) => parse(p)?,
            None => parse(SHARED_PASSES)?.into_iter().chain(own.iter().cloned()).collect(),
        };
        let names: Vec<&str> = body.iter().map(|(n, _)| n.as_str()).collect();
        let mut head = Vec::new();
        // A pre-quantized model states its integer arithmetic as ONNX quantization ops; they
        // fold into the integer kernels before anything else (constant folding would turn the
        // weights' DequantizeLinear into float constants).
        let prequantized = self.module.functions.iter().any(edgec_passes::quant::has_onnx_quant_ops);
        if prequantized && !names.is_empty() && !names.contains(&"fold-quantized") {
            head.push(("fold-quantized".to_string(), BTreeMap::new()));
        }
        if let Quantize::Int4Weights { group_size } = &self.quantize {
            let options = BTreeMap::from([("group-size".to_string(), group_size.to_string())]);
            head.push(("quantize-int4-weights".to_string(), options));
        }
        if let Quantize::Int8 { options, .. } = &self.quantize {
            if !names.contains(&"quantize-int8") {
                let at = body.iter().position(|(n, _)| own.iter().any(|(o, _)| o == n)).unwrap_or(body.len());
                let options = BTreeMap::from([
                    ("min-sqnr".to_string(), options.min_sqnr_db.to_string()),
                    ("observer".to_string(), options.observer.to_string()),
                ]);
                body.insert(at, ("quantize-int8".to_string(), options));
            }
        }
        let text: Vec<String> = head
            .into_iter()
            .chain(body)
            .map(|(name, options)| {
                if options.is_empty() {
                    return name;
                }
                let kv: Vec<String> = options.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{name}{{{}}}", kv.join(" "))
            })
            .collect();
        Ok(text.join(","))
    }

    /// Runs [`Session::pipeline_for`] `backend` on a copy of the module, with the backend's
    /// target description. The result is verified.
    pub fn optimize_for(&self, backend: &dyn Backend) -> Result<Optimized, Error> {
        let calibration = match &self.quantize {
            Quantize::Int8 { calibration: Calibration::File(p), .. } => {
                Some(Arc::new(crate::io::read_calibration(p, self.main())?))
            }
            Quantize::Int8 { calibration: Calibration::Samples(s), .. } => Some(Arc::new(s.clone())),
            _ => None,
        };
        let progress = crate::progress::Progress::new(1, "optimizing");
        let cx = PassContext {
            target: backend.pass_target(),
            calibration,
            progress: Some(progress.sample_steps()),
        };
        let mut pm = PassManager::parse_with(&self.pipeline_for(backend)?, &cx)?;
        pm.progress = Some(progress.pass_steps());
        pm.print_after = self.pipeline.print_after.clone();
        pm.printer = Some(Box::new(|pass, ir| eprint!("// ----- IR after {pass} -----\n{ir}")));
        let mut module = self.module.clone();
        pm.run(&mut module)?;
        drop(progress);
        if !pm.verify_each {
            // Release builds skip per-pass verification; the pipeline's result is still checked.
            edgec_ir::verify::verify_module(&module)
                .map_err(|error| PassError::Verify { pass: "pipeline".into(), error })?;
        }
        if self.pipeline.time_passes {
            eprint!("{}", pm.timing_report());
        }
        let quantization = pm.find::<QuantizeInt8>().and_then(|q| q.report.clone());
        Ok(Optimized { module, timings: pm.timings.clone(), quantization })
    }

    /// Optimizes and compiles the model for `target`; `symbol` prefixes the generated C names,
    /// `emit_text` also keeps the backend's text form (LLVM IR). `compile_seconds` covers the
    /// passes and the backend.
    pub fn compile(&self, target: &Target, symbol: &str, emit_text: bool) -> Result<Compiled, Error> {
        self.compile_with(target, &CodegenOptions { emit_text, ..self.codegen_options(symbol) })
    }

    /// The codegen options of this session's compiles: `symbol`, and the memory limits it was
    /// imported with.
    pub fn codegen_options(&self, symbol: &str) -> CodegenOptions {
        CodegenOptions {
            ram_bytes: self.ram_bytes,
            flash_bytes: self.flash_bytes,
            ..CodegenOptions::new(symbol)
        }
    }

    /// [`Session::compile`] with every codegen option.
    pub fn compile_with(&self, target: &Target, options: &CodegenOptions) -> Result<Compiled, Error> {
        let backend = edgec_backends::registry::lookup(target)?;
        self.compile_for(backend.as_ref(), options)
    }

    /// Optimizes for `backend` (its pass target and pipeline), checks that it supports every op
    /// of the result, and compiles with it. Also for backends that are not in the registry (an
    /// integrator's own; `docs/add-a-backend.md`).
    pub fn compile_for(&self, backend: &dyn Backend, options: &CodegenOptions) -> Result<Compiled, Error> {
        self.check_has_outputs()?;
        let start = std::time::Instant::now();
        let opt = self.optimize_for(backend)?;
        self.compile_optimized(backend, &opt, options, start)
    }

    /// The backend half of [`Session::compile_for`], on an already optimized module.
    fn compile_optimized(
        &self,
        backend: &dyn Backend,
        opt: &Optimized,
        options: &CodegenOptions,
        start: std::time::Instant,
    ) -> Result<Compiled, Error> {
        let f = opt.module.main().expect("a verified module has an entry function");
        edgec_backends::backend::check_supported(backend, f)?;
        let progress = crate::progress::Progress::new(0, "generating code");
        progress.message(&format!("{} backend, {}", backend.name(), backend.target()));
        let mut c = backend.compile(f, options)?;
        drop(progress);
        c.seconds = start.elapsed().as_secs_f64();
        let q = quantization_json(self.quantize.name(), opt.quantization.as_ref());
        c.report.insert("quantize".into(), q.get("mode").cloned().unwrap_or_else(|| "none".into()));
        c.report.insert("quantization".into(), q);
        Ok(c)
    }

    /// Writes what `edgec compile` writes into `dir`: the compiled files, the backend's package
    /// (the runtime) and report.json; returns the report. Everything that can fail before
    /// writing (building the runtime) happens first, and each file is written atomically.
    pub fn write_artifacts(&self, c: &Compiled, dir: &Path) -> Result<serde_json::Value, Error> {
        let (package, report) = self.package(c)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::Usage(format!("cannot create {}: {e}", dir.display())))?;
        for (name, bytes) in c.files.iter().chain(&package.files) {
            // Backends may name files in subdirectories (`firmware/model.cpp`).
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::Usage(format!("cannot create {}: {e}", parent.display())))?;
            }
            crate::io::write_atomically(&path, bytes)?;
        }
        let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        crate::io::write_atomically(&dir.join("report.json"), text.as_bytes())?;
        Ok(report)
    }

    /// report.json's value for a compiled model, without writing any file.
    pub fn report(&self, c: &Compiled) -> Result<serde_json::Value, Error> {
        Ok(self.package(c)?.1)
    }

    fn package(&self, c: &Compiled) -> Result<(edgec_backends::Package, serde_json::Value), Error> {
        let backend = edgec_backends::registry::lookup(&c.target)?;
        let package = backend.package(c)?;
        // The contract's fields (architecture.md): the backend's, then the driver's.
        let mut report = package.report.clone();
        report.extend(c.report.clone());
        if let Some(n) = self.onnx_nodes {
            report.insert("onnx_nodes".into(), n.into());
        }
        report.insert("compile_seconds".into(), c.seconds.into());
        report.insert("symbol".into(), c.symbol.clone().into());
        let io = |list: &[edgec_backends::lower::IoDesc]| -> serde_json::Value {
            list.iter()
                .map(|d| serde_json::json!({"name": d.name, "dtype": d.ty.name(), "shape": d.dims}))
                .collect::<Vec<_>>()
                .into()
        };
        report.insert("inputs".into(), io(&c.inputs));
        report.insert("outputs".into(), io(&c.outputs));
        Ok((package, serde_json::Value::Object(report)))
    }

    /// Runs a compiled model on its target (natively, under emulation or in an external
    /// interpreter); returns the outputs and what the program printed.
    pub fn execute(&self, c: &Compiled, inputs: &[Tensor]) -> Result<(Vec<Tensor>, String), Error> {
        let e = self.execution(c, inputs)?;
        Ok((e.outputs, e.log))
    }

    /// [`Session::execute`], with how it ran.
    pub fn execution(&self, c: &Compiled, inputs: &[Tensor]) -> Result<edgec_backends::Execution, Error> {
        let backend = edgec_backends::registry::lookup(&c.target)?;
        Ok(backend.execute(c, inputs)?)
    }

    /// Times a compiled model in-process; per-run milliseconds after one warm-up run.
    pub fn bench_host(&self, c: &Compiled, inputs: &[Tensor], runs: usize) -> Result<Vec<f64>, Error> {
        let backend = edgec_backends::registry::lookup(&c.target)?;
        Ok(backend.bench(c, inputs, runs)?)
    }

    /// A per-kernel profile on `target` (`edgec bench --profile`, `docs/profiling.md`): compiles
    /// the model with the runtime's per-kernel hook around every kernel call (a separate build:
    /// the code `compile` emits has no hooks) and runs it `runs` times after a warm-up run, in
    /// process on the host or through the harness under emulation. With `uninstrumented`, and
    /// where the target can be timed in process, also times the same optimized model compiled
    /// without hooks ([`Profile::uninstrumented_ms`], the median), so that the kernels' sum can
    /// be checked against the time a user sees.
    pub fn profile(
        &self,
        target: &Target,
        symbol: &str,
        inputs: &[Tensor],
        runs: usize,
        uninstrumented: bool,
    ) -> Result<Profile, Error> {
        self.check_has_outputs()?;
        let backend = edgec_backends::registry::lookup(target)?;
        let start = std::time::Instant::now();
        let opt = self.optimize_for(backend.as_ref())?;
        let hooked = CodegenOptions { profile: true, ..self.codegen_options(symbol) };
        let c = self.compile_optimized(backend.as_ref(), &opt, &hooked, start)?;
        let p = c.program.as_ref().ok_or_else(|| {
            Error::Usage(format!("--profile: the {} backend does not lower to kernel IR", c.backend))
        })?;
        let progress = crate::progress::Progress::new(0, "profiling");
        progress.message(&format!("{runs} runs on {target}"));
        let times = backend.profile(&c, inputs, runs)?;
        drop(progress);
        let mut profile = Profile::new(&p.name, &target.to_string(), p, times);
        if uninstrumented && matches!(profile.times.unit, edgec_backends::profile::TimeUnit::Nanoseconds) {
            let plain =
                self.compile_optimized(backend.as_ref(), &opt, &self.codegen_options(symbol), start)?;
            // Only targets that run in process can be timed this way; the others keep the
            // instrumented run's own total.
            let progress = crate::progress::Progress::new(0, "timing without hooks");
            progress.message(&format!("{runs} runs on {target}"));
            if let Ok(t) = backend.bench(&plain, inputs, runs) {
                profile.uninstrumented_ms = Some(edgec_backends::profile::median(t));
            }
        }
        Ok(profile)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let src = "func @f(%x: tensor<2xf32>) -> (\"y\": tensor<2xf32>) {\n  %0 = math.relu %x : tensor<2xf32> loc(\"r\")\n  func.return %0 loc(unknown)\n}\n";
        Session::from_module(edgec_ir::parser::parse_module(src).unwrap()).unwrap()
    }

    #[test]
    fn pipelines_place_quantization_between_shared_and_backend_passes() {
        let interp = edgec_backends::registry::lookup(&Target::interp()).unwrap();
        let mut s = session();
        assert_eq!(s.pipeline_for(interp.as_ref()).unwrap(), format!("{SHARED_PASSES},egraph-kernels,fuse"));
        let int8 =
            Quantize::Int8 { calibration: Calibration::Samples(Vec::new()), options: Int8Options::default() };
        s.set_quantize(int8);
        assert_eq!(
            s.pipeline_for(interp.as_ref()).unwrap(),
            format!("{SHARED_PASSES},quantize-int8{{min-sqnr=20 observer=minmax}},egraph-kernels,fuse")
        );
        // A pipeline of one's own: before the first of the backend's passes it names, or last.
        s.set_pipeline(Pipeline { passes: Some("dce,fuse,cse".into()), ..Pipeline::default() });
        assert_eq!(
            s.pipeline_for(interp.as_ref()).unwrap(),
            "dce,quantize-int8{min-sqnr=20 observer=minmax},fuse,cse"
        );
        s.set_pipeline(Pipeline { passes: Some("dce".into()), ..Pipeline::default() });
        assert_eq!(
            s.pipeline_for(interp.as_ref()).unwrap(),
            "dce,quantize-int8{min-sqnr=20 observer=minmax}"
        );
        s.set_quantize(Quantize::Int4Weights { group_size: 32 });
        assert_eq!(s.pipeline_for(interp.as_ref()).unwrap(), "quantize-int4-weights{group-size=32},dce");
        s.set_pipeline(Pipeline { passes: Some("dce{".into()), ..Pipeline::default() });
        assert!(s.pipeline_for(interp.as_ref()).unwrap_err().is_user_error());
    }
}
