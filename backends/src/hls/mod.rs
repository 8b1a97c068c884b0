//! The FPGA HLS backend (`--target fpga-hls`): a Vitis HLS C++ project per model, emitted from
//! the kernel IR of the portable lowering (plain loop nests, no packed GEMMs), and run here by
//! building its C-simulation testbench with g++ (what Vitis does before synthesis).
//!
//! `emit` turns kernels into C++; `project` lays out the project's files.

pub mod emit;
pub mod project;

use crate::backend::{
    check_inputs, io_error, scratch_dir, Backend, BackendError, CodegenOptions, Compiled, Execution, Package,
    UnsupportedOp,
};
use crate::lower::{lower, LowerOptions, Program};
use crate::target::Target;
use edgec_ir::{Function, Loc, ScalarType, Tensor};
use edgec_passes::TargetInfo;
use project::HlsConfig;
use std::path::Path;
use std::time::Instant;

/// The passes after the shared prefix: kernel formation and fusion, but no `choose-layout`
/// (it stores weights in the CPU GEMM's panel layout, which these loop nests do not read).
pub const PIPELINE: &str = "egraph-kernels,fuse";

/// A Zynq UltraScale+ (ZCU102's part), the default of hls4ml-style projects.
pub const DEFAULT_PART: &str = "xczu9eg-ffvb1156-2-e";
/// 200 MHz.
pub const DEFAULT_CLOCK_NS: f64 = 5.0;

/// The HLS backend for one part and clock.
pub struct Hls {
    target: Target,
    config: HlsConfig,
}

/// The registry's constructor.
pub fn create(target: &Target) -> Result<Box<dyn Backend>, BackendError> {
    Ok(Box::new(Hls {
        target: target.clone(),
        config: HlsConfig { part: DEFAULT_PART.into(), clock_ns: DEFAULT_CLOCK_NS },
    }))
}

impl Hls {
    fn program<'a>(&self, c: &'a Compiled) -> Result<&'a Program, BackendError> {
        c.program.as_ref().ok_or_else(|| BackendError::internal(Some("hls"), "a compile without its program"))
    }
}

impl Backend for Hls {
    fn name(&self) -> &'static str {
        "hls"
    }

    fn target(&self) -> &Target {
        &self.target
    }

    /// The generic cost model for now: an FPGA cost model (DSPs, BRAM ports, initiation
    /// intervals) for the e-graph is future work.
    fn pass_target(&self) -> TargetInfo {
        TargetInfo::generic()
    }

    fn pipeline(&self) -> &'static str {
        PIPELINE
    }

    /// What lowering covers, less half-precision tensors (no C++ type for them without the
    /// vendor's `hls_half.h`, not emitted yet).
    fn supports(&self, f: &Function, op: edgec_ir::Op) -> Result<(), String> {
        crate::lower::supports(f, op)?;
        let d = &f.ops[op];
        for &v in d.operands.iter().chain(&d.results) {
            let s = f.values[v].ty.scalar();
            if matches!(s, ScalarType::F16 | ScalarType::BF16) {
                return Err(format!("{} tensors are not emitted as HLS C++ yet", s.name()));
            }
        }
        Ok(())
    }

    fn compile(&self, f: &Function, options: &CodegenOptions) -> Result<Compiled, BackendError> {
        let start = Instant::now();
        let program = lower(f, &LowerOptions::default())?;
        let sym = &options.symbol;
        if !sym.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || sym.starts_with(|c: char| c.is_ascii_digit())
            || sym == "main"
        {
            return Err(BackendError::Usage(format!(
                "`{sym}` cannot name the HLS top function (a C identifier other than main)"
            )));
        }
        let files = project::files(&program, sym, &self.config).map_err(|r| BackendError::Unsupported {
            backend: "hls",
            ops: vec![UnsupportedOp { op: "kernel", loc: Loc::Name(r.label), reason: r.reason }],
        })?;
        let mut report = serde_json::Map::new();
        report.insert(
            "hls".into(),
            serde_json::json!({"part": self.config.part, "clock_ns": self.config.clock_ns, "top": sym}),
        );
        Ok(Compiled {
            target: self.target.clone(),
            backend: "hls",
            symbol: sym.clone(),
            files,
            inputs: program.inputs.clone(),
            outputs: program.outputs.clone(),
            program: Some(program),
            seconds: start.elapsed().as_secs_f64(),
            report,
        })
    }

    /// The project is complete as compiled (no runtime beside it); the report's sizes.
    fn package(&self, c: &Compiled) -> Result<Package, BackendError> {
        let p = self.program(c)?;
        let report = serde_json::json!({
            "target": self.target.to_string(),
            "kernels": p.calls.len(),
            "distinct_kernels": p.kernels.len(),
            "weights_bytes": p.weights_bytes(),
            "arena_bytes": p.arena.arena_bytes,
            "hls": {"part": self.config.part, "clock_ns": self.config.clock_ns, "top": c.symbol},
        });
        let serde_json::Value::Object(report) = report else { unreachable!("a JSON object literal") };
        Ok(Package { files: Vec::new(), report })
    }

    /// C simulation: builds the project's testbench with g++ in a temp dir and runs it on
    /// `inputs`.
    fn execute(&self, c: &Compiled, inputs: &[Tensor]) -> Result<Execution, BackendError> {
        let p = self.program(c)?;
        check_inputs(&p.inputs, inputs)?;
        let dir = scratch_dir("hls-csim")?;
        let res = csim(c, p, inputs, &dir);
        if std::env::var_os("EDGEC_KEEP_HLS_DIR").is_some_and(|v| v == "1") {
            eprintln!("kept {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        res
    }
}

/// Writes the project and inputs under `dir`, builds the testbench, runs it, reads outputs.
fn csim(c: &Compiled, p: &Program, inputs: &[Tensor], dir: &Path) -> Result<Execution, BackendError> {
    for (name, bytes) in &c.files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
        }
        std::fs::write(&path, bytes).map_err(|e| io_error(&path, e))?;
    }
    let data = dir.join("tb_data");
    std::fs::create_dir_all(&data).map_err(|e| io_error(&data, e))?;
    for (i, t) in inputs.iter().enumerate() {
        let path = data.join(format!("in_{i}.bin"));
        std::fs::write(&path, t.to_le_bytes()).map_err(|e| io_error(&path, e))?;
    }
    let sym = &c.symbol;
    let t0 = Instant::now();
    let build = std::process::Command::new("g++")
        .current_dir(dir)
        .args(["-std=c++14", "-O2", "-fno-strict-aliasing", "-I."])
        .arg(format!("tb/{sym}_test.cpp"))
        .arg(format!("firmware/{sym}.cpp"))
        .args(["-o", "csim"])
        .output()
        .map_err(|e| BackendError::Environment(format!("cannot run g++: {e}")))?;
    let build_s = t0.elapsed().as_secs_f64();
    if !build.status.success() {
        return Err(BackendError::internal(
            Some("hls"),
            format!("the C-simulation build failed: {}", String::from_utf8_lossy(&build.stderr).trim()),
        ));
    }
    let t1 = Instant::now();
    let run = std::process::Command::new(dir.join("csim"))
        .current_dir(dir)
        .arg("tb_data")
        .output()
        .map_err(|e| BackendError::Environment(format!("cannot run the C simulation: {e}")))?;
    let run_s = t1.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    if !run.status.success() {
        return Err(BackendError::internal(
            Some("hls"),
            format!(
                "the C simulation failed (status {:?}): {}{}",
                run.status,
                stdout.trim(),
                String::from_utf8_lossy(&run.stderr).trim()
            ),
        ));
    }
    let mut outputs = Vec::new();
    for (i, d) in p.outputs.iter().enumerate() {
        let path = data.join(format!("out_{i}.bin"));
        let bytes = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
        outputs.push(
            Tensor::from_le_bytes(d.ty, &d.dims, &bytes)
                .map_err(|m| BackendError::internal(Some("hls"), m))?,
        );
    }
    let log = format!("{stdout}csim build {build_s:.2} s (g++ -O2), run {run_s:.2} s\n");
    Ok(Execution { outputs, log, how: "in C simulation (g++)".into() })
}
