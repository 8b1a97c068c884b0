//! Compiling for machine targets: lowering, LLVM code generation, the artifacts of
//! `edgec compile` (model.o, model.h, report.json, the runtime), and executing a compiled model
//! natively or under emulation for `edgec run` / `edgec bench`.

use crate::error::Error;
use crate::target::Target;
use edgec_backends::llvm::codegen::{
    emit_object, gemm_nr, gemm_pack_fn, gemm_panel_fn, gemm_scratch_fn, onnx_dtype, qgemm_layout_fn,
    qgemm_pack_fn, qgemm_scratch_fn, MachineSpec,
};
use edgec_backends::lower::{lower, LowerOptions, Program};
use edgec_ir::{Function, Tensor};
use edgec_runtime::toolchain::{self, TargetKind};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A compiled model.
pub struct Compiled {
    pub program: Program,
    pub object: Vec<u8>,
    pub header: String,
    pub kind: TargetKind,
    pub spec: MachineSpec,
    pub symbol: String,
    pub compile_seconds: f64,
    pub llvm_ir: Option<String>,
    /// report.json's `quantization` object (set by the session).
    pub quantization: Option<serde_json::Value>,
}

/// The machine description and runtime toolchain of a target.
pub fn machine_of(target: &Target) -> Result<(MachineSpec, TargetKind), Error> {
    let Target::Machine { triple, cpu, features, alias } = target else {
        return Err(Error::Usage("the interpreter is not a machine target".into()));
    };
    use target_lexicon::{Architecture, OperatingSystem};
    if *alias == Some("host") {
        return Ok((MachineSpec::host(), TargetKind::X86_64Linux));
    }
    let t = triple.to_string();
    let unsupported = |why: &str| {
        Error::Target(crate::target::TargetError::Unsupported { target: t.clone(), reason: why.into() })
    };
    let (kind, default_cpu, default_features, bare) = match triple.architecture {
        Architecture::X86_64 => (TargetKind::X86_64Linux, "x86-64-v3", "", false),
        Architecture::Aarch64(_) => (TargetKind::Aarch64Linux, "generic", "+neon", false),
        Architecture::Riscv64(_) => (TargetKind::Riscv64Linux, "generic-rv64", "", false),
        Architecture::Arm(_) if triple.operating_system == OperatingSystem::None_ => {
            let m4 = cpu.as_deref() == Some("cortex-m4");
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
            cpu: cpu.clone().unwrap_or_else(|| default_cpu.into()),
            features: features.clone().unwrap_or_else(|| default_features.into()),
            bare_metal: bare,
            sanitize_address: false,
        },
        kind,
    ))
}

/// A C identifier from a model name.
pub fn symbol_for(name: &str) -> String {
    let mut s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "m_");
    }
    s
}

/// Lowers and generates code for `f`.
pub fn compile(f: &Function, target: &Target, symbol: &str, want_ir: bool) -> Result<Compiled, Error> {
    compile_with(f, target, symbol, want_ir, false)
}

/// [`compile`], optionally with every load and store checked by AddressSanitizer (the program
/// that runs it must link clang's ASan runtime: `clang-22 -fsanitize=address`).
pub fn compile_with(
    f: &Function,
    target: &Target,
    symbol: &str,
    want_ir: bool,
    sanitize_address: bool,
) -> Result<Compiled, Error> {
    let start = Instant::now();
    let (mut spec, kind) = machine_of(target)?;
    spec.sanitize_address = sanitize_address;
    let isa = spec.isa().map_err(Error::Internal)?;
    let qtile = spec.qtile().map_err(Error::Internal)?;
    let opts = LowerOptions {
        gemm_scratch: gemm_scratch_fn(isa),
        gemm_pack_b: Some(gemm_pack_fn(isa)),
        qgemm: Some((qgemm_scratch_fn(qtile), qgemm_pack_fn(qtile))),
        qgemm_layout: Some(qgemm_layout_fn(qtile)),
        align: if spec.bare_metal { 16 } else { 64 },
        // Dequantized int4 weight blocks: a few KiB of SRAM on a microcontroller, L2-sized elsewhere.
        nbits_block_bytes: if spec.bare_metal { 16 << 10 } else { 512 << 10 },
        gemm_nr: gemm_nr(isa),
        gemm_panel: Some(gemm_panel_fn(isa)),
        ..LowerOptions::default()
    };
    let program = lower(f, &opts).map_err(|e| Error::Usage(e.to_string()))?;
    let obj = emit_object(&program, &spec, symbol, want_ir).map_err(Error::Internal)?;
    let header = header(&program, symbol, target);
    Ok(Compiled {
        program,
        object: obj.bytes,
        header,
        kind,
        spec,
        symbol: symbol.to_string(),
        compile_seconds: start.elapsed().as_secs_f64(),
        llvm_ir: obj.llvm_ir,
        quantization: None,
    })
}

fn header(p: &Program, sym: &str, target: &Target) -> String {
    let up = sym.to_ascii_uppercase();
    let mut h = String::new();
    h += &format!(
        "/* Generated by edgec {} for target {target}. Do not edit. */\n",
        env!("CARGO_PKG_VERSION")
    );
    h += &format!("#ifndef EDGEC_{up}_H\n#define EDGEC_{up}_H\n\n#include \"edgec_runtime.h\"\n\n");
    h += "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n";
    h += &format!("/* The one arena the model needs: pass at least this many bytes, aligned as below. */\n");
    h += &format!(
        "#define {up}_ARENA_BYTES {}u\n#define {up}_ARENA_ALIGN {}u\n",
        p.arena.arena_bytes, p.arena.alignment
    );
    h += &format!(
        "#define {up}_NUM_INPUTS {}u\n#define {up}_NUM_OUTPUTS {}u\n\n",
        p.inputs.len(),
        p.outputs.len()
    );
    for (what, list) in [("INPUT", &p.inputs), ("OUTPUT", &p.outputs)] {
        for (i, d) in list.iter().enumerate() {
            h += &format!(
                "/* {} {i} \"{}\": {} {:?} */\n#define {up}_{what}{i}_BYTES {}u\n#define {up}_{what}{i}_DTYPE {}\n#define {up}_{what}{i}_RANK {}\n",
                what.to_ascii_lowercase(),
                d.name.replace("*/", "* /"),
                d.ty.name(),
                d.dims,
                d.bytes(),
                onnx_dtype(d.ty),
                d.dims.len()
            );
        }
    }
    h += &format!("\nextern const edgec_model {sym}_model;\n\n");
    h += &format!(
        "static inline edgec_status {sym}_init(edgec_ctx *ctx, void *arena, size_t arena_bytes) {{\n    return edgec_init(ctx, &{sym}_model, arena, arena_bytes);\n}}\n\n"
    );
    h += &format!(
        "static inline edgec_status {sym}_run(edgec_ctx *ctx, const void *const *inputs, void *const *outputs) {{\n    return edgec_run(ctx, inputs, outputs);\n}}\n\n"
    );
    h += &format!("#ifdef __cplusplus\n}}\n#endif\n\n#endif /* EDGEC_{up}_H */\n");
    h
}

fn tool_err(e: toolchain::ToolchainError) -> Error {
    Error::Internal(e.to_string())
}

/// Code sizes of a compiled model: (model code, runtime code, the runtime object for the
/// target). Model code is .text + .rodata of the object less the constant data (weights and index
/// tables), which `weights_bytes` reports separately.
fn measure(c: &Compiled) -> Result<(u64, u64, Vec<u8>), Error> {
    let dir = tempdir("measure")?;
    let res = (|| {
        let runtime_o = toolchain::build_runtime(c.kind, &dir).map_err(tool_err)?;
        let runtime_bytes = toolchain::code_bytes_of_object(&runtime_o).map_err(tool_err)?;
        let model_o = dir.join("model.o");
        std::fs::write(&model_o, &c.object).map_err(|e| Error::Internal(e.to_string()))?;
        let model_bytes = toolchain::code_bytes_of_object(&model_o)
            .map_err(tool_err)?
            .saturating_sub(c.program.weights_bytes());
        let rt = std::fs::read(&runtime_o).map_err(|e| Error::Internal(e.to_string()))?;
        Ok((model_bytes, runtime_bytes, rt))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    res
}

/// report.json's value for a compiled model (builds the runtime to measure its size).
pub fn measured_report(c: &Compiled, onnx_nodes: Option<usize>) -> Result<serde_json::Value, Error> {
    let (model_bytes, runtime_bytes, _) = measure(c)?;
    Ok(report(c, onnx_nodes, model_bytes, runtime_bytes))
}

/// Writes the artifacts of `edgec compile` into `dir` and returns report.json's value. Everything
/// that can fail before writing (building the runtime) happens first.
pub fn write_artifacts(
    c: &Compiled,
    dir: &Path,
    onnx_nodes: Option<usize>,
) -> Result<serde_json::Value, Error> {
    let (model_bytes, runtime_bytes, runtime_o) = measure(c)?;
    let report = report(c, onnx_nodes, model_bytes, runtime_bytes);
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::Usage(format!("cannot create {}: {e}", dir.display())))?;
    let write = crate::cli::write_atomically;
    write(&dir.join("model.o"), &c.object)?;
    write(&dir.join("model.h"), c.header.as_bytes())?;
    write(&dir.join("edgec_runtime.h"), edgec_runtime::sources::RUNTIME_H.as_bytes())?;
    write(&dir.join("edgec_runtime.c"), edgec_runtime::sources::RUNTIME_C.as_bytes())?;
    write(&dir.join("edgec_runtime.o"), &runtime_o)?;
    let text = serde_json::to_string_pretty(&report).unwrap() + "\n";
    write(&dir.join("report.json"), text.as_bytes())?;
    Ok(report)
}

/// The report.json value (see architecture.md for the contract).
pub fn report(
    c: &Compiled,
    onnx_nodes: Option<usize>,
    model_code: u64,
    runtime_code: u64,
) -> serde_json::Value {
    let p = &c.program;
    serde_json::json!({
        "target": c.spec.triple,
        "cpu": c.spec.cpu,
        "onnx_nodes": onnx_nodes.unwrap_or(p.graph_ops),
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
        "compile_seconds": c.compile_seconds,
        "quantize": c.quantization.as_ref().and_then(|q| q.get("mode").cloned()).unwrap_or_else(|| "none".into()),
        "quantization": c.quantization.clone().unwrap_or_else(|| serde_json::json!({"mode": "none"})),
        "symbol": c.symbol,
        "inputs": p.inputs.iter().map(|d| serde_json::json!({"name": d.name, "dtype": d.ty.name(), "shape": d.dims})).collect::<Vec<_>>(),
        "outputs": p.outputs.iter().map(|d| serde_json::json!({"name": d.name, "dtype": d.ty.name(), "shape": d.dims})).collect::<Vec<_>>(),
    })
}

/// A fresh private directory under the system temp dir.
pub fn tempdir(what: &str) -> Result<PathBuf, Error> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "edgec-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d)
        .map_err(|e| Error::Internal(format!("cannot create {}: {e}", d.display())))?;
    Ok(d)
}

/// Links the compiled model with the generic harness and runs it on `inputs` (natively or under
/// emulation); returns the outputs and the harness's standard output.
pub fn execute(c: &Compiled, inputs: &[Tensor]) -> Result<(Vec<Tensor>, String), Error> {
    let p = &c.program;
    if inputs.len() != p.inputs.len() {
        return Err(Error::Usage(format!(
            "the model takes {} inputs, {} given",
            p.inputs.len(),
            inputs.len()
        )));
    }
    let dir = tempdir("run")?;
    let res = (|| {
        let obj = dir.join("model.o");
        std::fs::write(&obj, &c.object).map_err(|e| Error::Internal(e.to_string()))?;
        let io_bytes: u64 = p.inputs.iter().chain(&p.outputs).map(|d| d.bytes().div_ceil(64) * 64).sum();
        let exe = dir.join("model.elf");
        toolchain::link_harness(
            c.kind,
            &obj,
            &format!("{}_model", c.symbol),
            p.arena.arena_bytes.max(1),
            io_bytes.max(64),
            &exe,
        )
        .map_err(tool_err)?;
        for (i, (t, d)) in inputs.iter().zip(&p.inputs).enumerate() {
            if t.shape() != d.dims.as_slice() || t.scalar_type() != d.ty {
                return Err(Error::Usage(format!(
                    "input {:?}: expected {} {:?}, got {} {:?}",
                    d.name,
                    d.ty.name(),
                    d.dims,
                    t.scalar_type().name(),
                    t.shape()
                )));
            }
            std::fs::write(dir.join(format!("in_{i}.bin")), t.to_le_bytes())
                .map_err(|e| Error::Internal(e.to_string()))?;
        }
        let out = toolchain::run_harness(c.kind, &exe, &dir).map_err(tool_err)?;
        if !out.success() {
            return Err(Error::Internal(format!(
                "the compiled model failed on {} (status {:?}): {}{}",
                c.kind.name(),
                out.status,
                out.stdout.trim(),
                out.stderr.trim()
            )));
        }
        let mut outs = Vec::new();
        for (i, d) in p.outputs.iter().enumerate() {
            let bytes = std::fs::read(dir.join(format!("out_{i}.bin")))
                .map_err(|e| Error::Internal(format!("output {i}: {e}")))?;
            outs.push(Tensor::from_le_bytes(d.ty, &d.dims, &bytes).map_err(Error::Internal)?);
        }
        Ok((outs, out.stdout))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    res
}

/// Times the compiled model in-process on the host: loads it as a shared object, runs once to
/// warm up, then `runs` times; returns the per-run milliseconds.
pub fn bench_host(c: &Compiled, inputs: &[Tensor], runs: usize) -> Result<Vec<f64>, Error> {
    if c.kind != TargetKind::X86_64Linux || c.spec.triple != MachineSpec::host().triple {
        return Err(Error::Usage("bench times compiled code in-process; use --target host".into()));
    }
    let dir = tempdir("bench")?;
    let res = (|| {
        let obj = dir.join("model.o");
        std::fs::write(&obj, &c.object).map_err(|e| Error::Internal(e.to_string()))?;
        let rt = toolchain::build_runtime(c.kind, &dir.join("rt")).map_err(tool_err)?;
        let so = dir.join("model.so");
        toolchain::link_shared_host(&obj, &rt, &so).map_err(tool_err)?;
        // SAFETY: the shared object was just generated by this compiler for this host.
        let mut m = unsafe { edgec_runtime::HostModel::load(&so, &format!("{}_model", c.symbol)) }
            .map_err(|e| Error::Internal(e.to_string()))?;
        let ins: Vec<Vec<u8>> = inputs.iter().map(|t| t.to_le_bytes()).collect();
        let in_refs: Vec<&[u8]> = ins.iter().map(|v| v.as_slice()).collect();
        let mut outs: Vec<Vec<u8>> = m.outputs().iter().map(|d| vec![0u8; d.bytes as usize]).collect();
        let mut run = |outs: &mut Vec<Vec<u8>>| -> Result<f64, Error> {
            let mut out_refs: Vec<&mut [u8]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
            let t = Instant::now();
            m.run(&in_refs, &mut out_refs).map_err(|e| Error::Usage(e.to_string()))?;
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

/// How `execute` runs code for this target, for messages.
pub fn how_it_ran(c: &Compiled) -> String {
    match c.kind.qemu_machine() {
        Some(board) => format!("under qemu-system-arm on the {board} board (semihosting)"),
        None => {
            let (prog, _) = toolchain::run_command(c.kind, Path::new("model.elf"));
            if prog.contains("qemu") {
                format!("under {prog}")
            } else {
                "natively".to_string()
            }
        }
    }
}
