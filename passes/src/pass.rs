//! What a pass is: the [`Pass`] trait, the errors a pass reports, the context and options a
//! pass is built with, and the pipeline syntax. The pass modules and the registry depend on this
//! module; the [`crate::PassManager`] builds pipelines from the registry.

use crate::target::TargetInfo;
use edgec_ir::{IrError, Module, Tensor};
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// Told `(what, done, total)` as a pass works through a long list (calibration samples), so a
/// driver can show progress.
#[derive(Clone)]
pub struct StepProgress(pub Arc<dyn Fn(&str, usize, usize) + Send + Sync>);

impl StepProgress {
    pub fn report(&self, what: &str, done: usize, total: usize) {
        (self.0)(what, done, total)
    }
}

impl std::fmt::Debug for StepProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepProgress")
    }
}

/// What the driver gives the passes beyond the IR: the target and data the IR does not hold.
#[derive(Clone, Debug, Default)]
pub struct PassContext {
    pub target: TargetInfo,
    /// Calibration samples for `quantize-int8`, one input list per sample in parameter order.
    pub calibration: Option<Arc<Vec<Vec<Tensor>>>>,
    /// Where passes report progress through long work.
    pub progress: Option<StepProgress>,
}

/// What a pass's constructor sees: the context and the options the pipeline gave it.
pub struct PassArgs<'a> {
    pub target: &'a TargetInfo,
    pub options: &'a BTreeMap<String, String>,
    pub calibration: Option<Arc<Vec<Vec<Tensor>>>>,
    pub progress: Option<StepProgress>,
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
