//! The `edgec` command line (see `docs/cli.md`; the contract scripts rely on is in
//! `architecture.md`): `import`, `opt`, `compile`, `run`, `bench`, `targets`. Exit codes: 0
//! success, 2 the input is at fault (one line naming the node/op), 1 anything else.

use crate::error::Error;
use crate::io::write_atomically;
use crate::session::{Calibration, CompileOptions, Pipeline, Quantize, Session};
use crate::target::Target;
use clap::{Args, Parser, Subcommand};
use edgec_passes::quant::Int8Options;
use edgec_passes::{PassError, PassManager, PrintAfter};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(name = "edgec", version, about = "Compiles generative ONNX models for edge hardware")]
pub struct Cli {
    /// Say nothing on standard error but errors: no warnings, no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print each stage's time and the pipeline's per-pass timings (standard error).
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// What `edgec --version` prints after the name: the crate version, the LLVM it links, MLIR,
/// and the backends of the registry with whether this build has each.
pub fn version_text() -> String {
    #[cfg(feature = "llvm")]
    let llvm = {
        let (a, b, c) = edgec_backends::llvm::llvm_version();
        format!("LLVM {a}.{b}.{c}")
    };
    #[cfg(not(feature = "llvm"))]
    let llvm = "LLVM: not linked (built without the `llvm` feature)".to_string();
    let backends: Vec<String> = edgec_backends::registry::BACKENDS
        .iter()
        .map(|b| format!("{} ({})", b.name, if b.available() { "enabled" } else { "disabled" }))
        .collect();
    format!(
        "{}\n{llvm}\nMLIR: not linked (no backend uses it in this build)\nbackends: {}",
        env!("CARGO_PKG_VERSION"),
        backends.join(", ")
    )
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Import an ONNX model and print its IR.
    Import {
        model: PathBuf,
        /// Write the IR here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        dims: DimArgs,
        /// Print constants larger than N bytes as `dense_elided<...>` (the result does not parse).
        #[arg(long, value_name = "N")]
        elide_constants: Option<usize>,
    },
    /// Run passes over an IR text file (like mlir-opt).
    Opt {
        input: PathBuf,
        /// Comma-separated pipeline, e.g. `--passes=dce,verify`.
        #[arg(long, default_value = "verify")]
        passes: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Print the IR after every pass (to standard error).
        #[arg(long)]
        print_after_all: bool,
        /// Print the IR after the named pass (repeatable).
        #[arg(long, value_name = "PASS")]
        print_after: Vec<String>,
        /// Print how long each pass took (to standard error).
        #[arg(long)]
        time_passes: bool,
        /// The target the passes optimize for (cost model, layouts): `host`, a triple or an
        /// alias; `interp` means no particular machine.
        #[arg(long, default_value = "host")]
        target: String,
    },
    /// Compile a model for a target into DIR (object, header, report.json).
    Compile {
        model: PathBuf,
        #[arg(long)]
        target: String,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        common: CommonArgs,
        /// Also write the optimized LLVM IR as DIR/model.ll.
        #[arg(long)]
        emit_llvm: bool,
        /// Also write DIR/memory.svg and its twin DIR/memory.png: the arena over time (tensors
        /// and scratch as boxes, time × offset, the lower bound, a legend).
        #[arg(long)]
        memory_plot: bool,
        /// Also write the lowered kernel IR as DIR/model.kir (docs/kernel-ir.md).
        #[arg(long)]
        emit_kir: bool,
    },
    /// Compile and execute a model on inputs; write outputs to an .npz.
    Run {
        model: PathBuf,
        /// An .npz with arrays named after the graph inputs, or a directory of input_N.pb files.
        #[arg(long)]
        inputs: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, default_value = "interp")]
        target: String,
        /// Also write image-shaped outputs as PNG and audio-shaped ones as WAV into DIR.
        #[arg(long, value_name = "DIR")]
        save_media: Option<PathBuf>,
        /// Sample rate of the WAV files --save-media writes.
        #[arg(long, value_name = "HZ", default_value_t = 22050, requires = "save_media")]
        sample_rate: u32,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// List every target, its backend and cargo feature, and whether this build has it.
    Targets,
    /// Time a model on a target.
    Bench {
        model: PathBuf,
        #[arg(long)]
        inputs: PathBuf,
        #[arg(long, default_value = "host")]
        target: String,
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Print one JSON line with median_ms, min_ms, runs (with --profile: the profile).
        #[arg(long)]
        json: bool,
        /// Time every kernel call (a build with the runtime's per-kernel hooks) and print the
        /// kernels by time with their ONNX nodes, share and rates (docs/profiling.md).
        #[arg(long)]
        profile: bool,
        /// With --profile: also write a Chrome trace (chrome://tracing, Perfetto) to FILE.
        #[arg(long, value_name = "FILE", requires = "profile")]
        trace: Option<PathBuf>,
        /// With --profile: the machine's peak f32 GFLOP/s (default: measured with edgec's GEMM).
        #[arg(long, value_name = "GFLOPS", requires = "profile")]
        peak_gflops: Option<f64>,
        /// With --profile: the machine's peak memory bandwidth in GB/s (default: measured).
        #[arg(long, value_name = "GBPS", requires = "profile")]
        peak_gbps: Option<f64>,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct DimArgs {
    /// Bind a symbolic dim: `--dim seq=128` (repeatable).
    #[arg(long = "dim", value_name = "NAME=VALUE")]
    pub dims: Vec<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CommonArgs {
    #[command(flatten)]
    pub dims: DimArgs,
    /// none | int8 | int4-weights
    #[arg(long, default_value = "none")]
    pub quantize: String,
    /// Group size of --quantize int4-weights: consecutive weights along the reduction dim that
    /// share one f32 scale (a power of two >= 2; default 64).
    #[arg(long, value_name = "N")]
    pub group_size: Option<i64>,
    /// Calibration data (.npz) for --quantize int8: arrays named after the graph inputs, one
    /// sample or a leading axis of samples.
    #[arg(long)]
    pub calibrate: Option<PathBuf>,
    /// How --quantize int8 picks activation ranges: minmax, percentile[:P] (default P 99.99) or mse.
    #[arg(long, default_value = "minmax")]
    pub observer: String,
    /// Layers whose int8 SQNR on the calibration data is below this many dB stay in float.
    #[arg(long, value_name = "DB", default_value_t = edgec_passes::quant::int8::DEFAULT_MIN_SQNR_DB)]
    pub quant_min_sqnr: f64,
    /// CPU to tune for (e.g. cortex-a55, cortex-a76 for aarch64); the target's default otherwise.
    #[arg(long)]
    pub cpu: Option<String>,
    /// Prefix of the generated C symbols (`<name>_model`, `<name>_init`...); default `model`.
    #[arg(long, default_value = "model")]
    pub name: String,
    /// Replace the whole graph pipeline (comma-separated pass names; default: the shared passes,
    /// quantization, then the target backend's passes).
    #[arg(long)]
    pub passes: Option<String>,
    /// Print the IR after every pass of the pipeline (to standard error).
    #[arg(long)]
    pub print_after_all: bool,
    /// Print the IR after the named pass (repeatable).
    #[arg(long, value_name = "PASS")]
    pub print_after: Vec<String>,
    /// Print how long each pass took (to standard error).
    #[arg(long)]
    pub time_passes: bool,
    /// Bytes of RAM the arena plus the inputs and outputs must fit (default for Cortex-M: the
    /// 8 MiB the QEMU board gives them; no limit elsewhere beyond the address space).
    #[arg(long, value_name = "BYTES")]
    pub ram_bytes: Option<u64>,
    /// Bytes of flash the weights must fit (default for Cortex-M: the QEMU board's 4 MiB).
    #[arg(long, value_name = "BYTES")]
    pub flash_bytes: Option<u64>,
}

impl DimArgs {
    fn parse(&self) -> Result<BTreeMap<String, u64>, Error> {
        let mut out = BTreeMap::new();
        for d in &self.dims {
            let (name, value) =
                d.split_once('=').ok_or_else(|| Error::Usage(format!("--dim {d}: expected NAME=VALUE")))?;
            let value: u64 = value
                .trim()
                .parse()
                .map_err(|_| Error::Usage(format!("--dim {d}: `{value}` is not a non-negative integer")))?;
            if out.insert(name.trim().to_string(), value).is_some() {
                return Err(Error::Usage(format!("--dim {name} given twice")));
            }
        }
        Ok(out)
    }
}

impl CommonArgs {
    fn options(&self, target: &str) -> Result<CompileOptions, Error> {
        let mut target = Target::parse(target)?;
        if let Some(c) = &self.cpu {
            // An alias (host, cortex-m7) already names its CPU.
            let is_triple = target.triple.as_ref().is_some_and(|t| t.to_string() == target.name);
            if !is_triple {
                return Err(Error::Usage(format!("--cpu {c} applies only to a target triple")));
            }
            target.cpu = Some(c.clone());
        }
        if self.name.is_empty()
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || self.name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(Error::Usage(format!("--name {:?}: expected a C identifier", self.name)));
        }
        let quantize = match self.quantize.as_str() {
            "none" => Quantize::None,
            "int8" => {
                let Some(path) = &self.calibrate else {
                    return Err(Error::Usage("--quantize int8 needs --calibrate DATA.npz".into()));
                };
                let observer = self.observer.parse().map_err(|e| Error::Usage(format!("--observer: {e}")))?;
                if !self.quant_min_sqnr.is_finite() {
                    return Err(Error::Usage("--quant-min-sqnr must be a finite number of dB".into()));
                }
                let options = Int8Options { observer, min_sqnr_db: self.quant_min_sqnr };
                Quantize::Int8 { calibration: Calibration::File(path.clone()), options }
            }
            "int4-weights" => {
                let g = self.group_size.unwrap_or(edgec_passes::quant::DEFAULT_GROUP_SIZE as i64);
                if !(2..=1 << 16).contains(&g) || (g as u64).count_ones() != 1 {
                    return Err(Error::Usage(format!(
                        "--group-size {g}: expected a power of two between 2 and 65536"
                    )));
                }
                Quantize::Int4Weights { group_size: g as usize }
            }
            other => {
                return Err(Error::Usage(format!("--quantize {other}: expected none, int8 or int4-weights")))
            }
        };
        if self.group_size.is_some() && !matches!(quantize, Quantize::Int4Weights { .. }) {
            return Err(Error::Usage("--group-size needs --quantize int4-weights".into()));
        }
        if self.calibrate.is_some() && !matches!(quantize, Quantize::Int8 { .. }) {
            return Err(Error::Usage("--calibrate needs --quantize int8".into()));
        }
        // Reject an unknown pass or option before any work starts.
        if let Some(p) = &self.passes {
            check_pipeline(p)?;
        }
        let print_after = if self.print_after_all {
            PrintAfter::All
        } else if !self.print_after.is_empty() {
            PrintAfter::Passes(self.print_after.clone())
        } else {
            PrintAfter::None
        };
        let time_passes =
            self.time_passes || crate::progress::verbosity() == crate::progress::Verbosity::Verbose;
        let pipeline = Pipeline { passes: self.passes.clone(), print_after, time_passes };
        for (flag, v) in [("--ram-bytes", self.ram_bytes), ("--flash-bytes", self.flash_bytes)] {
            if v == Some(0) {
                return Err(Error::Usage(format!("{flag} must be at least 1")));
            }
        }
        Ok(CompileOptions {
            target,
            dims: self.dims.parse()?,
            pipeline,
            quantize,
            ram_bytes: self.ram_bytes,
            flash_bytes: self.flash_bytes,
        })
    }
}

/// Fails on a pipeline that names an unknown pass or gives a pass an option it does not take
/// (without building the passes, which may need data such as calibration samples).
fn check_pipeline(pipeline: &str) -> Result<(), Error> {
    for (name, options) in edgec_passes::parse_pipeline(pipeline).map_err(PassError::Pipeline)? {
        let info = edgec_passes::pass_info(&name).ok_or_else(|| PassError::UnknownPass {
            name: name.clone(),
            available: edgec_passes::PASSES.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
        })?;
        if let Some(k) = options.keys().find(|k| !info.options.iter().any(|o| o.0 == k.as_str())) {
            return Err(PassError::Pipeline(format!("pass `{name}` has no option `{k}`")).into());
        }
    }
    Ok(())
}

/// Runs a parsed command line. Returns the process exit code.
pub fn run(cli: Cli) -> Result<(), Error> {
    use crate::progress::{set_verbosity, Verbosity};
    set_verbosity(if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    });
    // `--target help` lists the targets, as `edgec targets` does.
    let target = match &cli.command {
        Command::Opt { target, .. }
        | Command::Compile { target, .. }
        | Command::Run { target, .. }
        | Command::Bench { target, .. } => Some(target.as_str()),
        Command::Import { .. } | Command::Targets => None,
    };
    if target == Some("help") {
        print!("{}", crate::target::targets_text());
        return Ok(());
    }
    match cli.command {
        Command::Import { model, output, dims, elide_constants } => {
            let opts = CompileOptions { dims: dims.parse()?, ..CompileOptions::default() };
            let session = Session::import(&model, &opts)?;
            let text = edgec_ir::printer::print_module_with(
                session.module(),
                edgec_ir::printer::PrintOptions { elide_constants_over: elide_constants },
            );
            emit_text(output.as_deref(), &text)
        }
        Command::Opt { input, passes, output, print_after_all, print_after, time_passes, target } => {
            let target = crate::target::lookup(&Target::parse(&target)?)?.pass_target();
            let text = std::fs::read_to_string(&input)
                .map_err(|e| Error::Usage(format!("{}: {e}", input.display())))?;
            let mut module = edgec_ir::parser::parse_module(&text)?;
            edgec_ir::verify::verify_module(&module)?;
            let mut pm = PassManager::parse_for(&passes, &target)?;
            pm.verify_each = true;
            pm.print_after = if print_after_all {
                PrintAfter::All
            } else if !print_after.is_empty() {
                PrintAfter::Passes(print_after)
            } else {
                PrintAfter::None
            };
            pm.printer = Some(Box::new(|pass, ir| eprint!("// ----- IR after {pass} -----\n{ir}")));
            pm.run(&mut module)?;
            if time_passes {
                eprint!("{}", pm.timing_report());
            }
            emit_text(output.as_deref(), &edgec_ir::printer::print_module(&module))
        }
        Command::Compile { model, target, output, common, emit_llvm, memory_plot, emit_kir } => {
            let opts = common.options(&target)?;
            // Fail on a disabled or unknown backend before importing anything.
            crate::target::lookup(&opts.target)?;
            let session = Session::import(&model, &opts)?;
            let compiled = session.compile(&opts.target, &common.name, emit_llvm)?;
            let report = session.write_artifacts(&compiled, &output)?;
            let program = |flag: &str| {
                compiled.program.as_ref().ok_or_else(|| {
                    Error::Usage(format!(
                        "{flag}: the {} backend does not lower to kernel IR",
                        compiled.backend
                    ))
                })
            };
            if memory_plot {
                let p = program("--memory-plot")?;
                let svg = edgec_backends::lower::memory_svg(p);
                write_atomically(&output.join("memory.svg"), svg.as_bytes())?;
                let png = crate::plot::memory_png(&edgec_backends::lower::memory_plot(p))?;
                write_atomically(&output.join("memory.png"), &png)?;
            }
            if emit_kir {
                let text = edgec_backends::lower::print_program(program("--emit-kir")?);
                write_atomically(&output.join("model.kir"), text.as_bytes())?;
            }
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            Ok(())
        }
        Command::Run { model, inputs, output, target, save_media, sample_rate, common } => {
            let opts = common.options(&target)?;
            if sample_rate == 0 {
                return Err(Error::Usage("--sample-rate must be at least 1 Hz".into()));
            }
            crate::target::lookup(&opts.target)?;
            let session = Session::import(&model, &opts)?;
            let inputs = session.read_inputs(&inputs)?;
            let outputs = if opts.target.is_interp() {
                session.run(inputs)?
            } else {
                let compiled = session.compile(&opts.target, &common.name, false)?;
                let progress = crate::progress::Progress::new(0, "running");
                progress.message(&format!("on {}", opts.target));
                let run = session.execution(&compiled, &inputs)?;
                drop(progress);
                let report = session.report(&compiled);
                println!("compiled for {} and ran it {}; report.json:", opts.target, run.how);
                println!("{}", serde_json::to_string_pretty(&report?).unwrap_or_default());
                run.outputs
            };
            let named: Vec<_> = session.output_names().into_iter().zip(outputs).collect();
            crate::io::write_npz(&output, &named)?;
            println!("wrote {} ({} outputs, target {})", output.display(), named.len(), opts.target);
            for (name, t) in &named {
                println!("  {}", summarize(name, t));
            }
            if let Some(dir) = save_media {
                let media = crate::media::save_media(&dir, &named, sample_rate)?;
                for (path, what) in &media.written {
                    println!("wrote {}: {what}", path.display());
                }
                for (name, why) in &media.skipped {
                    crate::progress::warn(&format!(
                        "--save-media: output {name:?} is not written as media: {why}"
                    ));
                }
            }
            Ok(())
        }
        Command::Targets => {
            print!("{}", crate::target::targets_text());
            Ok(())
        }
        Command::Bench {
            model,
            inputs,
            target,
            runs,
            json,
            profile,
            trace,
            peak_gflops,
            peak_gbps,
            common,
        } => {
            let opts = common.options(&target)?;
            crate::target::lookup(&opts.target)?;
            if runs == 0 {
                return Err(Error::Usage("--runs must be at least 1".into()));
            }
            if profile {
                let peaks = PeakArgs { gflops: peak_gflops, gbps: peak_gbps };
                return bench_profile(
                    &model,
                    &inputs,
                    &opts,
                    &common.name,
                    runs,
                    json,
                    trace.as_deref(),
                    peaks,
                );
            }
            let session = Session::import(&model, &opts)?;
            let inputs = session.read_inputs(&inputs)?;
            let mut times = Vec::with_capacity(runs);
            if opts.target.is_interp() {
                // One warm-up run, then `runs` timed runs.
                session.run(inputs.clone())?;
                for _ in 0..runs {
                    let start = Instant::now();
                    session.run(inputs.clone())?;
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                }
            } else {
                let compiled = session.compile(&opts.target, &common.name, false)?;
                times = session.bench_host(&compiled, &inputs, runs)?;
            }
            times.sort_by(|a, b| a.total_cmp(b));
            let median = edgec_backends::profile::median(times.clone());
            let min = times[0];
            if json {
                println!(
                    "{}",
                    serde_json::json!({"target": opts.target.to_string(), "median_ms": median, "min_ms": min, "runs": runs})
                );
            } else {
                println!("{}: median {median:.3} ms, min {min:.3} ms over {runs} runs", opts.target);
            }
            Ok(())
        }
    }
}

/// `--peak-gflops`, `--peak-gbps`.
struct PeakArgs {
    gflops: Option<f64>,
    gbps: Option<f64>,
}

/// `bench --profile`: the per-kernel profile as text or JSON, and a Chrome trace.
#[allow(clippy::too_many_arguments)]
fn bench_profile(
    model: &Path,
    inputs: &Path,
    opts: &CompileOptions,
    symbol: &str,
    runs: usize,
    json: bool,
    trace: Option<&Path>,
    peaks: PeakArgs,
) -> Result<(), Error> {
    if opts.target.is_interp() {
        return Err(Error::Usage(
            "--profile times compiled kernels; the interpreter has none (pick a machine target)".into(),
        ));
    }
    for (flag, v) in [("--peak-gflops", peaks.gflops), ("--peak-gbps", peaks.gbps)] {
        if v.is_some_and(|v| !(v.is_finite() && v > 0.0)) {
            return Err(Error::Usage(format!("{flag} must be a positive number")));
        }
    }
    // An unwritable trace path is the user's to fix; say so before the long work, not after.
    if let Some(t) = trace {
        let dir = t.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() || t.is_dir() {
            return Err(Error::Usage(format!("--trace {}: no such directory to write it in", t.display())));
        }
    }
    let session = Session::import(model, opts)?;
    let inputs = session.read_inputs(inputs)?;
    let mut profile = session.profile(&opts.target, symbol, &inputs, runs, true)?;
    if matches!(profile.times.unit, edgec_backends::profile::TimeUnit::Nanoseconds)
        && opts.target.name == "host"
    {
        profile.peak = Some(host_peak(&peaks));
    }
    if let Some(t) = trace {
        let text = serde_json::to_string(&profile.chrome_trace()).unwrap_or_default() + "\n";
        write_atomically(t, text.as_bytes()).map_err(|e| Error::Usage(format!("--trace: {e}")))?;
    }
    if json {
        println!("{}", profile.json());
    } else {
        print!("{}", profile.text());
    }
    Ok(())
}

/// The host's peak rates: given by flags, or measured here.
fn host_peak(peaks: &PeakArgs) -> crate::profile::Peak {
    let (flops, flops_source) = match peaks.gflops {
        Some(g) => (g * 1e9, "--peak-gflops".to_string()),
        None => measured_gemm_peak(),
    };
    let (bytes, bytes_source) = match peaks.gbps {
        Some(g) => (g * 1e9, "--peak-gbps".to_string()),
        None => (crate::profile::measure_memory_bandwidth(), "measured: best copy of 64 MiB".to_string()),
    };
    crate::profile::Peak { flops, flops_source, bytes, bytes_source }
}

/// The best rate of edgec's own f32 GEMM micro-kernel at 512³ on this machine: what tuned code
/// reaches here (a lower bound of the FMA units' peak).
#[cfg(feature = "llvm")]
fn measured_gemm_peak() -> (f64, String) {
    match edgec_backends::llvm::gemm_bench::bench_sgemm_host(512, 512, 512, 0.1) {
        Ok(b) => (b.best_gflops * 1e9, "measured: edgec's f32 GEMM at 512^3".to_string()),
        Err(e) => (f64::NAN, format!("not measured: {e}")),
    }
}

#[cfg(not(feature = "llvm"))]
fn measured_gemm_peak() -> (f64, String) {
    (f64::NAN, "not measured: this build has no llvm backend".to_string())
}

/// One line describing a tensor: name, type, and value range.
fn summarize(name: &str, t: &edgec_ir::Tensor) -> String {
    let v = t.to_f64_vec();
    let (min, max) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let mean = if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
    format!("{name}: {} min {min:.6} max {max:.6} mean {mean:.6}", t.ty())
}

fn emit_text(output: Option<&Path>, text: &str) -> Result<(), Error> {
    match output {
        Some(p) => Ok(write_atomically(p, text.as_bytes())?),
        None => {
            let mut out = std::io::stdout().lock();
            // A closed pipe (`edgec import m.onnx | head`) is not an error worth a message.
            let _ = out.write_all(text.as_bytes());
            Ok(())
        }
    }
}
