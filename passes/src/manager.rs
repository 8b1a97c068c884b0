//! The pass manager.

use crate::target::TargetInfo;
use edgec_ir::verify::verify_module;
use edgec_ir::{IrError, Module, Tensor};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A transformation (or analysis) of a whole module.
pub trait Pass {
    /// The name the pipeline uses (`dce`, `verify`, ...).
    fn name(&self) -> &'static str;
    /// Runs the pass. A pass must leave the module verifier-clean.
    fn run(&mut self, module: &mut Module) -> Result<(), PassError>;
    /// The pass as `Any`, for passes whose results the driver reads after the pipeline (see
    /// [`PassManager::find`]).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// What the driver gives the passes beyond the IR: the target and data the IR does not hold.
#[derive(Clone, Debug, Default)]
pub struct PassContext {
    pub target: TargetInfo,
    /// Calibration samples for `quantize-int8`, one input list per sample in parameter order.
    pub calibration: Option<Arc<Vec<Vec<Tensor>>>>,
}

/// What a pass's constructor sees: the context and the options the pipeline gave it.
pub struct PassArgs<'a> {
    pub target: &'a TargetInfo,
    pub options: &'a BTreeMap<String, String>,
    pub calibration: Option<Arc<Vec<Vec<Tensor>>>>,
}

impl PassArgs<'_> {
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options.get(name).map(String::as_str)
    }
}

/// Splits a pipeline at the commas outside `{...}` into `(name, options)` pairs; options are
/// `key=value` separated by spaces, as in MLIR's pass pipelines.
pub fn parse_pipeline(pipeline: &str) -> Result<Vec<(String, BTreeMap<String, String>)>, String> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    let bytes = pipeline.as_bytes();
    for i in 0..=bytes.len() {
        match bytes.get(i) {
            Some(b'{') => depth += 1,
            Some(b'}') => depth -= 1,
            Some(b',') | None if depth == 0 => {
                let item = pipeline[start..i].trim();
                start = i + 1;
                if item.is_empty() {
                    continue;
                }
                let (name, opts) = match item.split_once('{') {
                    None => (item, ""),
                    Some((n, rest)) => {
                        let o = rest
                            .strip_suffix('}')
                            .ok_or_else(|| format!("`{item}`: options must end with `}}`"))?;
                        (n.trim(), o)
                    }
                };
                let mut options = BTreeMap::new();
                for kv in opts.split_whitespace() {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| format!("`{name}`: option `{kv}` is not key=value"))?;
                    if options.insert(k.to_string(), v.to_string()).is_some() {
                        return Err(format!("`{name}`: option `{k}` given twice"));
                    }
                }
                items.push((name.to_string(), options));
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("unbalanced `}}` in pipeline `{pipeline}`"));
        }
    }
    if depth != 0 {
        return Err(format!("unbalanced `{{` in pipeline `{pipeline}`"));
    }
    Ok(items)
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The pipeline text names a pass that does not exist.
    #[error("unknown pass `{name}` (available: {available})")]
    UnknownPass { name: String, available: String },
    /// The IR given to the pipeline, or produced by a pass, does not verify.
    #[error("after pass `{pass}`: {error}")]
    Verify { pass: String, error: IrError },
    /// The pipeline text is malformed, or gives a pass options it does not take.
    #[error("pipeline: {0}")]
    Pipeline(String),
    /// The data given to a pass is at fault (calibration samples that do not fit the model).
    #[error("{pass}: {message}")]
    Input { pass: String, message: String },
    /// A pass failed for another reason.
    #[error("pass `{pass}`: {message}")]
    Failed { pass: String, message: String },
}

/// Which passes to print the IR after.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PrintAfter {
    #[default]
    None,
    All,
    Passes(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct PassTiming {
    pub pass: &'static str,
    pub duration: Duration,
}

/// Runs a pipeline of passes over a module.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    /// Verify after every pass (default: on in debug builds).
    pub verify_each: bool,
    pub print_after: PrintAfter,
    /// Receives `(pass name, printed IR)` when `print_after` selects a pass.
    pub printer: Option<Box<dyn FnMut(&str, &str)>>,
    pub timings: Vec<PassTiming>,
    /// The target the passes were built for ([`PassManager::parse_for`]).
    pub target: TargetInfo,
}

impl Default for PassManager {
    fn default() -> Self {
        PassManager {
            passes: Vec::new(),
            verify_each: cfg!(debug_assertions),
            print_after: PrintAfter::None,
            printer: None,
            timings: Vec::new(),
            target: TargetInfo::generic(),
        }
    }
}

impl PassManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a pipeline from comma-separated pass names, for no particular target
    /// ([`TargetInfo::generic`]).
    pub fn parse(pipeline: &str) -> Result<PassManager, PassError> {
        PassManager::parse_for(pipeline, &TargetInfo::generic())
    }

    /// Builds a pipeline from comma-separated pass names, each pass made for `target`.
    pub fn parse_for(pipeline: &str, target: &TargetInfo) -> Result<PassManager, PassError> {
        PassManager::parse_with(pipeline, &PassContext { target: target.clone(), calibration: None })
    }

    /// Builds a pipeline (`a,b{opt=v},c`), each pass made with the context and its options.
    pub fn parse_with(pipeline: &str, cx: &PassContext) -> Result<PassManager, PassError> {
        let mut pm = PassManager { target: cx.target.clone(), ..PassManager::new() };
        for (name, options) in parse_pipeline(pipeline).map_err(PassError::Pipeline)? {
            let info = crate::registry::pass_info(&name).ok_or_else(|| PassError::UnknownPass {
                name: name.clone(),
                available: crate::registry::PASSES.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
            })?;
            if let Some(k) = options.keys().find(|k| !info.options.iter().any(|o| o.0 == k.as_str())) {
                let takes: Vec<&str> = info.options.iter().map(|o| o.0).collect();
                return Err(PassError::Pipeline(format!(
                    "pass `{name}` has no option `{k}` (it takes: {})",
                    if takes.is_empty() { "none".to_string() } else { takes.join(", ") }
                )));
            }
            let args =
                PassArgs { target: &cx.target, options: &options, calibration: cx.calibration.clone() };
            let pass =
                (info.create)(&args).map_err(|m| PassError::Pipeline(format!("pass `{name}`: {m}")))?;
            pm.add(pass);
        }
        Ok(pm)
    }

    /// The first pass of type `T` in the pipeline (to read what it found after running).
    pub fn find<T: 'static>(&self) -> Option<&T> {
        self.passes.iter().find_map(|p| p.as_any().and_then(|a| a.downcast_ref::<T>()))
    }

    pub fn add(&mut self, pass: Box<dyn Pass>) {
        self.passes.push(pass);
    }

    /// Puts `pass` before every pass already added.
    pub fn prepend(&mut self, pass: Box<dyn Pass>) {
        self.passes.insert(0, pass);
    }

    pub fn pass_names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs every pass in order.
    pub fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        for pass in self.passes.iter_mut() {
            let start = Instant::now();
            pass.run(module)?;
            self.timings.push(PassTiming { pass: pass.name(), duration: start.elapsed() });
            if self.verify_each {
                verify_module(module)
                    .map_err(|error| PassError::Verify { pass: pass.name().into(), error })?;
            }
            let print = match &self.print_after {
                PrintAfter::None => false,
                PrintAfter::All => true,
                PrintAfter::Passes(names) => names.iter().any(|n| n == pass.name()),
            };
            if print {
                if let Some(p) = self.printer.as_mut() {
                    p(pass.name(), &edgec_ir::printer::print_module(module));
                }
            }
        }
        Ok(())
    }

    /// A table of pass timings, like `--time-passes` prints.
    pub fn timing_report(&self) -> String {
        let total: Duration = self.timings.iter().map(|t| t.duration).sum();
        let mut out = String::from("pass timings:\n");
        for t in &self.timings {
            out.push_str(&format!("  {:>10.3} ms  {}\n", t.duration.as_secs_f64() * 1e3, t.pass));
        }
        out.push_str(&format!("  {:>10.3} ms  total\n", total.as_secs_f64() * 1e3));
        out
    }
}
