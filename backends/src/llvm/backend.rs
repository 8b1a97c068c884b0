//! The LLVM backend: machine code for Linux application processors (x86-64, AArch64, RISC-V 64)
//! and bare-metal Cortex-M. It lowers the optimized function to kernel IR with this machine's
//! GEMM routines ([`LlvmKernels`]), generates an object with LLVM, writes the C header, and links
//! the generic harness with the C runtime to run the model natively, under qemu-user or on a
//! QEMU Cortex-M board.

use super::codegen::{emit_object, LlvmKernels, MachineSpec};
use crate::backend::{
    check_inputs, io_error, scratch_dir, Backend, BackendError, CodegenOptions, Compiled, Execution, Package,
};
use crate::lower::{lower, LowerOptions, Program};
use crate::profile::{median, KernelTimes, TimeUnit};
use crate::target::{Target, TargetError};
use edgec_ir::{Function, Tensor};
use edgec_passes::{GemmPanel, TargetInfo};
use edgec_runtime::toolchain::{self, TargetKind};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// The passes the LLVM backend runs after the shared prefix: kernel formation by equality
/// saturation, greedy fusion of what it does not model, and weights stored in the GEMM's panel
/// layout.
pub const PIPELINE: &str = "egraph-kernels,fuse,choose-layout";

/// The LLVM backend for one machine.
pub struct Llvm {
    target: Target,
    spec: MachineSpec,
    kind: TargetKind,
}

/// The registry's constructor.
pub fn create(target: &Target) -> Result<Box<dyn Backend>, BackendError> {
    let (spec, kind) = machine_of(target)?;
    Ok(Box::new(Llvm { target: target.clone(), spec, kind }))
}

/// The machine description and runtime toolchain of a target.
pub fn machine_of(target: &Target) -> Result<(MachineSpec, TargetKind), TargetError> {
    use target_lexicon::{Architecture, OperatingSystem};
    let Some(triple) = &target.triple else {
        return Err(TargetError::Unsupported {
            target: target.to_string(),
            reason: "not a machine target".into(),
        });
    };
    if target.name == "host" {
        return Ok((MachineSpec::host(), TargetKind::X86_64Linux));
    }
    let t = triple.to_string();
    let unsupported = |why: &str| TargetError::Unsupported { target: t.clone(), reason: why.into() };
    let cpu = target.cpu.as_deref();
    let (kind, default_cpu, default_features, bare) = match triple.architecture {
        Architecture::X86_64 => (TargetKind::X86_64Linux, "x86-64-v3", "", false),
        Architecture::Aarch64(_) => (TargetKind::Aarch64Linux, "generic", "+neon", false),
        Architecture::Riscv64(_) => (TargetKind::Riscv64Linux, "generic-rv64", "", false),
        Architecture::Arm(_) if triple.operating_system == OperatingSystem::None_ => {
            let m4 = cpu == Some("cortex-m4");
            (if m4 { TargetKind::CortexM4 } else { TargetKind::CortexM7 }, "cortex-m7", "+fp-armv8d16", true)
        }
        _ => return Err(unsupported("no runtime toolchain for this triple (supported: x86_64/aarch64/riscv64 Linux, thumbv7em bare metal)")),
    };
    if !bare && triple.operating_system != OperatingSystem::Linux {
        return Err(unsupported("only Linux is supported for application processors"));
    }
    Ok((
        MachineSpec {
            triple: t.clone(),
            cpu: cpu.unwrap_or(default_cpu).to_string(),
            features: target.features.clone().unwrap_or_else(|| default_features.into()),
            bare_metal: bare,
            sanitize_address: false,
        },
        kind,
    ))
}

fn tool_err(e: toolchain::ToolchainError) -> BackendError {
    BackendError::Environment(e.to_string())
}

/// The runtime object for a target kind and its code bytes, built once per process (the
/// runtime's source is part of this binary, so the object never changes).
fn runtime_object(kind: TargetKind) -> Result<Arc<(Vec<u8>, u64)>, BackendError> {
    static CACHE: OnceLock<Mutex<HashMap<TargetKind, Arc<(Vec<u8>, u64)>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(rt) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&kind) {
        return Ok(rt.clone());
    }
    let dir = scratch_dir("runtime")?;
    let res = (|| -> Result<_, BackendError> {
        let o = toolchain::build_runtime(kind, &dir).map_err(tool_err)?;
        let code = toolchain::code_bytes_of_object(&o).map_err(tool_err)?;
        Ok(Arc::new((std::fs::read(&o).map_err(|e| io_error(&o, e))?, code)))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let rt = res?;
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(kind, rt.clone());
    Ok(rt)
}

impl Llvm {
    fn program<'a>(&self, c: &'a Compiled) -> Result<&'a Program, BackendError> {
        c.program.as_ref().ok_or_else(|| BackendError::internal(None, "an LLVM compile without its program"))
    }

    fn object<'a>(&self, c: &'a Compiled) -> Result<&'a [u8], BackendError> {
        c.file("model.o").ok_or_else(|| BackendError::internal(None, "an LLVM compile without model.o"))
    }

    /// How [`Backend::execute`] runs code for this target, for messages.
    fn how(&self) -> String {
        match self.kind.qemu_machine() {
            Some(board) => format!("under qemu-system-arm on the {board} board (semihosting)"),
            None => {
                let (prog, _) = toolchain::run_command(self.kind, Path::new("model.elf"));
                if prog.contains("qemu") {
                    format!("under {prog}")
                } else {
                    "natively".to_string()
                }
            }
        }
    }

    /// Links the compiled model with the generic harness in `dir` (`model.elf`) and writes the
    /// inputs beside it.
    fn link_harness(
        &self,
        c: &Compiled,
        inputs: &[Tensor],
        dir: &Path,
        options: &toolchain::HarnessOptions,
    ) -> Result<std::path::PathBuf, BackendError> {
        let p = self.program(c)?;
        let obj = dir.join("model.o");
        std::fs::write(&obj, self.object(c)?).map_err(|e| io_error(&obj, e))?;
        let io_bytes: u64 = p.inputs.iter().chain(&p.outputs).map(harness_io_bytes).sum();
        let exe = dir.join("model.elf");
        toolchain::link_harness_with(
            self.kind,
            &obj,
            &format!("{}_model", c.symbol),
            p.arena.arena_bytes.max(1),
            io_bytes.max(64),
            &exe,
            options,
        )
        .map_err(tool_err)?;
        for (i, t) in inputs.iter().enumerate() {
            let path = dir.join(format!("in_{i}.bin"));
            std::fs::write(&path, t.to_le_bytes()).map_err(|e| io_error(&path, e))?;
        }
        Ok(exe)
    }

    /// Runs a linked harness; a failing run is a bug (the inputs were checked).
    fn run_harness(&self, exe: &Path, dir: &Path, count: bool) -> Result<toolchain::RunOutput, BackendError> {
        let out = toolchain::run_harness_counting(self.kind, exe, dir, toolchain::DEFAULT_RUN_TIMEOUT, count)
            .map_err(tool_err)?;
        if !out.success() {
            return Err(BackendError::internal(
                None,
                format!(
                    "the compiled model failed on {} (status {:?}): {}{}",
                    self.kind.name(),
                    out.status,
                    out.stdout.trim(),
                    out.stderr.trim()
                ),
            ));
        }
        Ok(out)
    }

    /// Whether this target's code runs in this process (a shared object on the host).
    fn in_process(&self) -> bool {
        self.kind == TargetKind::X86_64Linux && self.spec.triple == MachineSpec::host().triple
    }

    /// Links the compiled model into `dir/model.so` with the runtime and loads it.
    fn load_host(&self, c: &Compiled, dir: &Path) -> Result<edgec_runtime::HostModel, BackendError> {
        let obj = dir.join("model.o");
        std::fs::write(&obj, self.object(c)?).map_err(|e| io_error(&obj, e))?;
        let rt = dir.join("edgec_runtime.o");
        std::fs::write(&rt, &runtime_object(self.kind)?.0).map_err(|e| io_error(&rt, e))?;
        let so = dir.join("model.so");
        toolchain::link_shared_host(&obj, &rt, &so).map_err(tool_err)?;
        // SAFETY: the shared object was just generated by this compiler for this host.
        unsafe { edgec_runtime::HostModel::load(&so, &format!("{}_model", c.symbol)) }
            .map_err(|e| BackendError::Environment(e.to_string()))
    }

    /// Per-call times of a profiled build run in this process: the host clock around each
    /// kernel call, summed over `runs` runs after a warm-up run.
    fn profile_in_process(
        &self,
        c: &Compiled,
        inputs: &[Tensor],
        runs: usize,
    ) -> Result<KernelTimes, BackendError> {
        let calls = self.program(c)?.calls.len();
        let dir = scratch_dir("profile")?;
        let res = (|| {
            let mut m = self.load_host(c, &dir)?;
            let ins: Vec<Vec<u8>> = inputs.iter().map(|t| t.to_le_bytes()).collect();
            let in_refs: Vec<&[u8]> = ins.iter().map(|v| v.as_slice()).collect();
            let mut outs: Vec<Vec<u8>> = m.outputs().iter().map(|d| vec![0u8; d.bytes as usize]).collect();
            let mut out_refs: Vec<&mut [u8]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
            let usage = |e: edgec_runtime::host::HostError| BackendError::Usage(e.to_string());
            m.run(&in_refs, &mut out_refs).map_err(usage)?;
            // Medians over the runs, per call and of the whole: a shared machine's outliers (a
            // run preempted once) would move means far more than the kernels' own variation.
            let mut per_run = Vec::with_capacity(runs);
            let mut wholes = Vec::with_capacity(runs);
            for _ in 0..runs {
                let mut per_call = vec![0.0; calls];
                wholes.push(m.run_profiled(&in_refs, &mut out_refs, &mut per_call).map_err(usage)?);
                per_run.push(per_call);
            }
            Ok(KernelTimes {
                unit: TimeUnit::Nanoseconds,
                clock: "monotonic clock around each kernel call, in process; medians over the runs".into(),
                runs,
                calls: (0..calls).map(|i| median(per_run.iter().map(|r| r[i]).collect())).collect(),
                whole: median(wholes),
            })
        })();
        let _ = std::fs::remove_dir_all(&dir);
        res
    }
}

impl Backend for Llvm {
    fn name(&self) -> &'static str {
        "llvm"
    }

    fn target(&self) -> &Target {
        &self.target
    }

    /// Vector width and FMA from the same ISA detection the GEMM tiles follow, a microcontroller
    /// model for bare-metal Arm, and the f32 GEMM's panel shape for `choose-layout`.
    fn pass_target(&self) -> TargetInfo {
        let name = self.target.to_string();
        let Ok(isa) = self.spec.isa() else { return TargetInfo::generic() };
        let mut info = if self.spec.bare_metal {
            TargetInfo::microcontroller(&name, isa.has_fma)
        } else {
            TargetInfo::application_core(&name, isa.vector_bits / 8, isa.has_fma)
        };
        let (lanes, vectors) = super::codegen::gemm_panel(isa);
        info.gemm_panel = Some(GemmPanel { lanes: lanes as u32, max_vectors: vectors as u32 });
        info
    }

    fn pipeline(&self) -> &'static str {
        PIPELINE
    }

    fn supports(&self, f: &Function, op: edgec_ir::Op) -> Result<(), String> {
        crate::lower::supports(f, op)
    }

    fn compile(&self, f: &Function, options: &CodegenOptions) -> Result<Compiled, BackendError> {
        let start = Instant::now();
        let mut spec = self.spec.clone();
        spec.sanitize_address = options.sanitize_address;
        let machine_err = |m: String| BackendError::Environment(format!("LLVM target {}: {m}", spec.triple));
        let isa = spec.isa().map_err(machine_err)?;
        let qtile = spec.qtile().map_err(machine_err)?;
        let opts = LowerOptions {
            kernels: Arc::new(LlvmKernels { isa, qtile }),
            // isize::MAX of the pointer width: Cortex-M is 32-bit, the rest 64-bit.
            max_bytes: if spec.bare_metal { i32::MAX as u64 } else { i64::MAX as u64 },
            align: if spec.bare_metal { 16 } else { 64 },
            // Dequantized int4 weight blocks: a few KiB of SRAM on a microcontroller, L2-sized elsewhere.
            nbits_block_bytes: if spec.bare_metal { 16 << 10 } else { 512 << 10 },
            ..LowerOptions::default()
        };
        let program = lower(f, &opts)?;
        check_memory(self.kind, f, &program, options)?;
        let obj = emit_object(&program, &spec, &options.symbol, options.emit_text, options.profile)
            .map_err(|m| BackendError::internal(Some("llvm"), m))?;
        let header = crate::c_header::header(&crate::c_header::HeaderSpec {
            symbol: &options.symbol,
            target: &self.target.to_string(),
            arena_bytes: program.arena.arena_bytes,
            arena_align: program.arena.alignment,
            inputs: &program.inputs,
            outputs: &program.outputs,
        });
        let mut files =
            vec![("model.o".to_string(), obj.bytes), ("model.h".to_string(), header.into_bytes())];
        if let Some(ir) = obj.llvm_ir {
            files.push(("model.ll".to_string(), ir.into_bytes()));
        }
        Ok(Compiled {
            target: self.target.clone(),
            backend: "llvm",
            symbol: options.symbol.clone(),
            files,
            inputs: program.inputs.clone(),
            outputs: program.outputs.clone(),
            program: Some(program),
            seconds: start.elapsed().as_secs_f64(),
            // Only a profiling build says so: report.json of a normal compile is unchanged.
            report: if options.profile {
                serde_json::Map::from_iter([("kernel_hooks".to_string(), true.into())])
            } else {
                Default::default()
            },
        })
    }

    /// The runtime (source, header, object for this target) and the report's code sizes: model
    /// code is `.text` + `.rodata` of the object less the constant data (weights and index
    /// tables), which `weights_bytes` reports separately.
    fn package(&self, c: &Compiled) -> Result<Package, BackendError> {
        let p = self.program(c)?;
        let rt = runtime_object(self.kind)?;
        let (runtime_o, runtime_code) = (&rt.0, rt.1);
        let dir = scratch_dir("measure")?;
        let model_code = (|| -> Result<u64, BackendError> {
            let model_o = dir.join("model.o");
            std::fs::write(&model_o, self.object(c)?).map_err(|e| io_error(&model_o, e))?;
            Ok(toolchain::code_bytes_of_object(&model_o).map_err(tool_err)?.saturating_sub(p.weights_bytes()))
        })();
        let _ = std::fs::remove_dir_all(&dir);
        let model_code = model_code?;
        let report = serde_json::json!({
            "target": self.spec.triple,
            "cpu": self.spec.cpu,
            "onnx_nodes": p.graph_ops,
            "kernels": p.calls.len(),
            "distinct_kernels": p.kernels.len(),
            "weights_bytes": p.weights_bytes(),
            "arena_bytes": p.arena.arena_bytes,
            "arena_lower_bound_bytes": p.arena.lower_bound_bytes,
            "arena_naive_bytes": p.arena.naive_bytes,
            "arena_greedy_by_size_bytes": p.arena.greedy_by_size_bytes,
            "arena_topological_lower_bound_bytes": p.arena.topological_lower_bound_bytes,
            "arena_placement": p.arena.placement,
            "arena_alignment": p.arena.alignment,
            "code_bytes": model_code + runtime_code,
            "code_bytes_model": model_code,
            "code_bytes_runtime": runtime_code,
        });
        let serde_json::Value::Object(report) = report else { unreachable!("a JSON object literal") };
        Ok(Package {
            files: vec![
                ("edgec_runtime.h".into(), edgec_runtime::sources::RUNTIME_H.as_bytes().to_vec()),
                ("edgec_runtime.c".into(), edgec_runtime::sources::RUNTIME_C.as_bytes().to_vec()),
                ("edgec_runtime.o".into(), runtime_o.clone()),
            ],
            report,
        })
    }

    /// Links the compiled model with the generic harness and runs it (natively or under
    /// emulation).
    fn execute(&self, c: &Compiled, inputs: &[Tensor]) -> Result<Execution, BackendError> {
        let p = self.program(c)?;
        check_inputs(&p.inputs, inputs)?;
        let dir = scratch_dir("run")?;
        let res = (|| {
            let exe = self.link_harness(c, inputs, &dir, &toolchain::HarnessOptions::default())?;
            let out = self.run_harness(&exe, &dir, false)?;
            let mut outs = Vec::new();
            for (i, d) in p.outputs.iter().enumerate() {
                let path = dir.join(format!("out_{i}.bin"));
                let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
                outs.push(
                    Tensor::from_le_bytes(d.ty, &d.dims, &bytes)
                        .map_err(|m| BackendError::internal(None, m))?,
                );
            }
            Ok(Execution { outputs: outs, log: out.stdout, how: self.how() })
        })();
        let _ = std::fs::remove_dir_all(&dir);
        res
    }

    /// Times the compiled model in-process on the host: loads it as a shared object, runs once
    /// to warm up, then `runs` times.
    fn bench(&self, c: &Compiled, inputs: &[Tensor], runs: usize) -> Result<Vec<f64>, BackendError> {
        if !self.in_process() {
            return Err(BackendError::Usage(
                "bench times compiled code in-process; use --target host (or --profile)".into(),
            ));
        }
        check_inputs(&self.program(c)?.inputs, inputs)?;
        let dir = scratch_dir("bench")?;
        let res = (|| {
            let mut m = self.load_host(c, &dir)?;
            let ins: Vec<Vec<u8>> = inputs.iter().map(|t| t.to_le_bytes()).collect();
            let in_refs: Vec<&[u8]> = ins.iter().map(|v| v.as_slice()).collect();
            let mut outs: Vec<Vec<u8>> = m.outputs().iter().map(|d| vec![0u8; d.bytes as usize]).collect();
            let mut run = |outs: &mut Vec<Vec<u8>>| -> Result<f64, BackendError> {
                let mut out_refs: Vec<&mut [u8]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
                let t = Instant::now();
                m.run(&in_refs, &mut out_refs).map_err(|e| BackendError::Usage(e.to_string()))?;
                Ok(t.elapsed().as_secs_f64() * 1e3)
            };
            run(&mut outs)?;
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs {
                times.push(run(&mut outs)?);
            }
            Ok(times)
        })();
        // EDGEC_KEEP_BENCH_DIR=1 keeps model.so for profilers (perf resolves the kernels' symbols).
        if std::env::var_os("EDGEC_KEEP_BENCH_DIR").is_some_and(|v| v == "1") {
            eprintln!("kept {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        res
    }

    /// Host: in process, the monotonic clock around each call. Other targets: the harness built
    /// with its profiler, under qemu-user (host clock) or qemu-system-arm counting instructions.
    fn profile(&self, c: &Compiled, inputs: &[Tensor], runs: usize) -> Result<KernelTimes, BackendError> {
        if c.report.get("kernel_hooks") != Some(&serde_json::Value::Bool(true)) {
            return Err(BackendError::internal(None, "profiling a model compiled without kernel hooks"));
        }
        let p = self.program(c)?;
        check_inputs(&p.inputs, inputs)?;
        if self.in_process() {
            return self.profile_in_process(c, inputs, runs);
        }
        let dir = scratch_dir("profile")?;
        let res = (|| {
            let exe = self.link_harness(c, inputs, &dir, &toolchain::HarnessOptions { profile: true })?;
            let bench = dir.join("bench.txt");
            std::fs::write(&bench, runs.to_string()).map_err(|e| io_error(&bench, e))?;
            let out = self.run_harness(&exe, &dir, true)?;
            parse_profile(&out.stdout, p.calls.len(), self.kind)
                .map_err(|m| BackendError::internal(None, format!("reading the harness's profile: {m}")))
        })();
        let _ = std::fs::remove_dir_all(&dir);
        res
    }
}

/// Reads the harness's `edgec-profile` lines (see `runtime/c/harness.c`).
fn parse_profile(stdout: &str, calls: usize, kind: TargetKind) -> Result<KernelTimes, String> {
    let head =
        stdout.lines().find_map(|l| l.strip_prefix("edgec-profile ")).ok_or("no edgec-profile line")?;
    let field = |name: &str| -> Result<&str, String> {
        head.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .ok_or_else(|| format!("no {name}= in {head:?}"))
    };
    let num = |name: &str| -> Result<f64, String> {
        field(name)?.parse::<f64>().map_err(|e| format!("{name}: {e}"))
    };
    let (hz, runs, whole) = (num("hz")?, num("runs")?, num("whole")?);
    if num("calls")? as usize != calls || runs < 1.0 || hz <= 0.0 {
        return Err(format!("unexpected profile header {head:?} for {calls} calls"));
    }
    let mut per_call = vec![0.0; calls];
    for l in stdout.lines().filter_map(|l| l.strip_prefix("edgec-profile-call ")) {
        let mut it = l.split_whitespace();
        let (Some(i), Some(t)) = (it.next(), it.next()) else { return Err(format!("bad line {l:?}")) };
        let i: usize = i.parse().map_err(|e| format!("{l:?}: {e}"))?;
        let t: f64 = t.parse().map_err(|e| format!("{l:?}: {e}"))?;
        *per_call.get_mut(i).ok_or_else(|| format!("call {i} out of range"))? = t;
    }
    let clock = field("clock")?.to_string();
    let (unit, scale, clock) = if kind.qemu_machine().is_some() {
        // -icount shift=0: 1 ns of virtual time per instruction.
        let per_tick = (1e9 / hz).round();
        let unit = TimeUnit::Instructions { granularity: per_tick as u64 };
        (
            unit,
            per_tick,
            format!(
                "{clock} at {hz} Hz under qemu-system-arm -icount shift=0 (1 tick = {per_tick} instructions)"
            ),
        )
    } else {
        let how = if kind == TargetKind::X86_64Linux { "natively" } else { "host time of the emulated run" };
        (TimeUnit::Nanoseconds, 1e9 / hz, format!("{clock} around each kernel call, {how}"))
    };
    let per_run = scale / runs;
    Ok(KernelTimes {
        unit,
        clock,
        runs: runs as usize,
        calls: per_call.into_iter().map(|t| t * per_run).collect(),
        whole: whole * per_run,
    })
}

/// Bytes a harness gives an input or output: its size rounded up to 64 (cache-line aligned).
fn harness_io_bytes(d: &crate::lower::IoDesc) -> u64 {
    d.bytes().div_ceil(64).saturating_mul(64)
}

/// The memory of the board a bare-metal target runs on by default: QEMU's mps2 boards, where
/// the harness keeps the arena and the inputs and outputs in the lower 8 MiB of PSRAM and the
/// weights with the code in the 4 MiB at address 0 (`runtime/c/cortex_m/mps2_an500.ld`).
fn default_board(kind: TargetKind) -> Option<(&'static str, u64, u64)> {
    match kind {
        TargetKind::CortexM7 => Some(("mps2-an500", 8 << 20, 4 << 20)),
        TargetKind::CortexM4 => Some(("mps2-an386", 8 << 20, 4 << 20)),
        _ => None,
    }
}

/// Fails (the input is at fault) when the program cannot fit the board's memory: the arena
/// plus the inputs and outputs (each 64-byte aligned, as a harness places them) against its
/// RAM, the weights against its flash. The message names the largest tensor that takes part.
fn check_memory(
    kind: TargetKind,
    f: &Function,
    p: &crate::lower::Program,
    options: &CodegenOptions,
) -> Result<(), BackendError> {
    let board = default_board(kind);
    // Where each limit comes from, for the message.
    let source = |flag: &str, given: Option<u64>| match (given, board) {
        (Some(_), _) => flag.to_string(),
        (None, Some((name, ..))) => format!("the {name} board's"),
        (None, None) => String::new(),
    };
    let (ram_of, flash_of) =
        (source("--ram-bytes", options.ram_bytes), source("--flash-bytes", options.flash_bytes));
    let ram = options.ram_bytes.or(board.map(|b| b.1));
    let flash = options.flash_bytes.or(board.map(|b| b.2));
    let io: Vec<(&str, u64)> =
        p.inputs.iter().chain(&p.outputs).map(|d| (d.name.as_str(), harness_io_bytes(d))).collect();
    let io_bytes = io.iter().try_fold(0u64, |a, (_, b)| a.checked_add(*b));
    let need = io_bytes.and_then(|io| io.checked_add(p.arena.arena_bytes));
    if let Some(ram) = ram {
        if need.is_none_or(|n| n > ram) {
            // The largest tensor in RAM: an input or output (first, so they win ties) or an
            // intermediate; weights and their panel views live in flash.
            let mut largest: Option<(u64, String)> = None;
            let mut consider = |b: u64, what: &dyn Fn() -> String| {
                if largest.as_ref().is_none_or(|l| b > l.0) {
                    largest = Some((b, what()));
                }
            };
            for &(name, b) in &io {
                consider(b, &|| format!("input/output `{name}`"));
            }
            for &op in f.body_ops() {
                let d = &f.ops[op];
                if matches!(d.kind, edgec_ir::OpKind::Constant | edgec_ir::OpKind::FromPanels) {
                    continue;
                }
                for &r in &d.results {
                    let b = f.values[r].ty.size_bytes().unwrap_or(u64::MAX);
                    consider(b, &|| {
                        format!("the {} result of node {}", d.kind.name(), crate::lower::loc_text(&d.loc))
                    });
                }
            }
            let what = largest.map_or("nothing".into(), |(b, what)| format!("{what} ({b} bytes)"));
            let need = need.map_or("more than 2^64".into(), |n| n.to_string());
            return Err(BackendError::Usage(format!(
                "the model needs {need} bytes of RAM (arena {} + inputs and outputs {}), more than {ram_of} {ram} bytes; the largest tensor is {what}",
                p.arena.arena_bytes,
                io_bytes.map_or("more than 2^64".into(), |b| b.to_string()),
            )));
        }
    }
    if let Some(flash) = flash {
        let weights = p.weights_bytes();
        if weights > flash {
            let big = p.consts.iter().map(|c| c.bytes.len()).max().unwrap_or(0);
            return Err(BackendError::Usage(format!(
                "the model's weights take {weights} bytes, more than {flash_of} {flash} bytes of flash (the largest constant is {big} bytes); quantize (--quantize int8 or int4-weights) or pick a board with more flash"
            )));
        }
    }
    Ok(())
}
