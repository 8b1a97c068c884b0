//! The pass manager.

pub use crate::pass::{parse_pipeline, Pass, PassArgs, PassContext, PassError};
use crate::target::TargetInfo;
use edgec_ir::verify::verify_module;
use edgec_ir::Module;
use std::time::{Duration, Instant};

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
    /// Wall-clock time.
    pub duration: Duration,
    /// CPU time of the thread that ran the pass: unlike `duration`, it leaves out the time the
    /// thread waited for a core, so benchmarks on a busy machine compare passes fairly.
    pub cpu: Duration,
}

/// CPU time the calling thread has used (zero where the platform has no per-thread clock).
pub fn thread_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant libc defines.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        }
    }
    Duration::ZERO
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
    /// Told `(index, count, pass name)` before each pass runs (a driver's progress bar).
    pub progress: Option<Box<dyn FnMut(usize, usize, &str)>>,
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
            progress: None,
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
        PassManager::parse_with(pipeline, &PassContext { target: target.clone(), ..PassContext::default() })
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
            let args = PassArgs {
                target: &cx.target,
                options: &options,
                calibration: cx.calibration.clone(),
                progress: cx.progress.clone(),
            };
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
        let count = self.passes.len();
        for (i, pass) in self.passes.iter_mut().enumerate() {
            if let Some(p) = self.progress.as_mut() {
                p(i, count, pass.name());
            }
            let (start, cpu) = (Instant::now(), thread_cpu_time());
            pass.run(module)?;
            let cpu = thread_cpu_time().saturating_sub(cpu);
            self.timings.push(PassTiming { pass: pass.name(), duration: start.elapsed(), cpu });
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
