//! Times every zoo model compiled by edgec for the host against ONNX Runtime on one thread, side by
//! side, and measures the f32 GEMM micro-kernel.
//!
//! `cargo run --release -p edgec-testsuite --bin zoo-bench [-- OPTIONS]`
//!
//! Options:
//! - `--runs N`       timed runs per model and engine (default 30), after one warm-up run;
//! - `--models a,b`   only these zoo models (names as in `testsuite/zoo/manifest.json`);
//! - `--json PATH`    also write the results as JSON (`-` for standard output);
//! - `--python PY`    the Python interpreter with onnxruntime + numpy (default `$PYTHON` or `python3`);
//! - `--no-gemm`      skip the 512×512×512 GEMM measurement.
//!
//! edgec: `Session::compile` for the host target, then `Session::bench_host` (the shared object
//! loaded in-process, one warm-up run, `N` timed runs). ONNX Runtime: `testsuite/scripts/ort_bench.py`
//! (intra/inter-op threads 1, ORT_SEQUENTIAL, ORT_ENABLE_ALL; one warm-up, `N` timed runs). Both
//! report the median. Models in `testsuite/zoo/large/*/` (with `model.onnx` + `inputs.npz`) are
//! benchmarked too when present.

use edgec::{CompileOptions, Session, Target};
use edgec_backends::llvm::gemm_bench::bench_sgemm_host;
use edgec_backends::profile::median;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

const GEMM_PEAK: f64 = 105.0;

struct Args {
    runs: usize,
    models: Option<Vec<String>>,
    json: Option<String>,
    python: String,
    gemm: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        runs: 30,
        models: None,
        json: None,
        python: std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
        gemm: true,
    };
    let mut it = std::env::args().skip(1);
    let usage = || -> ! {
        eprintln!("usage: zoo-bench [--runs N] [--models a,b] [--json PATH|-] [--python PY] [--no-gemm]");
        std::process::exit(2)
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => {
                a.runs = it.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or_else(|| usage())
            }
            "--models" => {
                a.models = Some(it.next().unwrap_or_else(|| usage()).split(',').map(str::to_string).collect())
            }
            "--json" => a.json = Some(it.next().unwrap_or_else(|| usage())),
            "--python" => a.python = it.next().unwrap_or_else(|| usage()),
            "--no-gemm" => a.gemm = false,
            _ => usage(),
        }
    }
    a
}

fn zoo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo")
}

/// (name, model dir) for every manifest entry, then `zoo/large/*`.
fn models() -> Vec<(String, PathBuf)> {
    let zoo = zoo_dir();
    let text = std::fs::read_to_string(zoo.join("manifest.json")).expect("testsuite/zoo/manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest.json is JSON");
    let mut out: Vec<(String, PathBuf)> = manifest["models"]
        .as_array()
        .expect("manifest.models")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .map(|n| (n.to_string(), zoo.join(n)))
        .collect();
    if let Ok(rd) = std::fs::read_dir(zoo.join("large")) {
        let mut large: Vec<_> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.join("model.onnx").is_file() && p.join("inputs.npz").is_file())
            .collect();
        large.sort();
        for p in large {
            out.push((format!("large/{}", p.file_name().unwrap().to_string_lossy()), p));
        }
    }
    out
}

/// What one model's edgec compile and run measured.
struct EdgecRun {
    median_ms: f64,
    kernels: usize,
    compile_seconds: f64,
}

fn bench_edgec(dir: &Path, runs: usize) -> Result<EdgecRun, String> {
    let target = Target::parse("host").map_err(|e| e.to_string())?;
    let opts = CompileOptions { target: target.clone(), ..Default::default() };
    let session = Session::import(dir.join("model.onnx"), &opts).map_err(|e| e.to_string())?;
    let inputs = session.read_inputs(dir.join("inputs.npz")).map_err(|e| e.to_string())?;
    let compiled = session.compile(&target, "model", false).map_err(|e| e.to_string())?;
    let times = session.bench_host(&compiled, &inputs, runs).map_err(|e| e.to_string())?;
    Ok(EdgecRun {
        median_ms: median(times),
        kernels: compiled.program.as_ref().map_or(0, |p| p.calls.len()),
        compile_seconds: compiled.seconds,
    })
}

/// What ort_bench.py reports: median ms, its optimized graph's node count, its version.
struct OrtRun {
    median_ms: f64,
    nodes: u64,
    version: String,
}

fn bench_ort(python: &str, dir: &Path, runs: usize) -> Result<OrtRun, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ort_bench.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(dir.join("model.onnx"))
        .arg(dir.join("inputs.npz"))
        .args(["--runs", &runs.to_string(), "--warmup", "1"])
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        return Err(format!("ort_bench.py failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("ort_bench.py output: {e}"))?;
    Ok(OrtRun {
        median_ms: v["median_ms"].as_f64().ok_or("ort_bench.py: no median_ms")?,
        nodes: v["ort_nodes"].as_u64().ok_or("ort_bench.py: no ort_nodes")?,
        version: v["ort_version"].as_str().unwrap_or("?").to_string(),
    })
}

fn main() {
    let args = parse_args();
    let mut rows = Vec::new();
    let mut ort_version = String::new();
    let mut failures = 0;
    println!(
        "{:<22} {:>11} {:>11} {:>9} {:>8} {:>9} {:>10}",
        "model", "edgec ms", "ORT ms", "edgec/ORT", "kernels", "ORT nodes", "compile s"
    );
    let mut over_kernels = 0;
    for (name, dir) in models() {
        if args.models.as_ref().is_some_and(|ms| !ms.contains(&name)) {
            continue;
        }
        let e = bench_edgec(&dir, args.runs);
        let o = bench_ort(&args.python, &dir, args.runs);
        match (&e, &o) {
            (Ok(e), Ok(o)) => {
                ort_version = o.version.clone();
                let r = e.median_ms / o.median_ms;
                over_kernels += usize::from(e.kernels as u64 > o.nodes);
                println!(
                    "{name:<22} {:>11.4} {:>11.4} {r:>9.2} {:>8} {:>9} {:>10.2}",
                    e.median_ms, o.median_ms, e.kernels, o.nodes, e.compile_seconds
                );
                rows.push(json!({"model": name, "edgec_ms": e.median_ms, "ort_ms": o.median_ms, "ratio": r,
                                 "kernels": e.kernels, "ort_nodes": o.nodes,
                                 "compile_seconds": e.compile_seconds}));
            }
            _ => {
                failures += 1;
                let msg = [e.err(), o.err()].into_iter().flatten().collect::<Vec<_>>().join("; ");
                println!("{name:<22} FAILED: {msg}");
                rows.push(json!({"model": name, "error": msg}));
            }
        }
    }
    let ratios: Vec<f64> = rows.iter().filter_map(|r| r["ratio"].as_f64()).collect();
    let geomean = if ratios.is_empty() {
        f64::NAN
    } else {
        (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp()
    };
    let (max_ratio, max_model) = rows
        .iter()
        .filter_map(|r| Some((r["ratio"].as_f64()?, r["model"].as_str()?.to_string())))
        .fold((f64::NAN, String::new()), |acc, x| if acc.0.is_nan() || x.0 > acc.0 { x } else { acc });
    println!(
        "geomean edgec/ORT {geomean:.3}; max {max_ratio:.3} ({max_model}); {} models, runs {}; \
         {over_kernels} with more kernels than ORT's optimized graph has nodes",
        ratios.len(),
        args.runs
    );

    let gemm = if args.gemm {
        match bench_sgemm_host(512, 512, 512, 2.0) {
            Ok(g) => {
                println!(
                    "GEMM 512x512x512 f32 (tile {}x{}): median {:.1} GFLOP/s (best {:.1}) = {:.1}% of {GEMM_PEAK} GFLOP/s",
                    g.mr,
                    g.nr,
                    g.median_gflops,
                    g.best_gflops,
                    100.0 * g.median_gflops / GEMM_PEAK
                );
                json!({"m": 512, "n": 512, "k": 512, "median_gflops": g.median_gflops, "best_gflops": g.best_gflops,
                       "peak_gflops": GEMM_PEAK, "percent_of_peak": 100.0 * g.median_gflops / GEMM_PEAK})
            }
            Err(e) => {
                failures += 1;
                println!("GEMM FAILED: {e}");
                json!({"error": e})
            }
        }
    } else {
        serde_json::Value::Null
    };

    if let Some(path) = &args.json {
        let doc = json!({
            "runs": args.runs,
            "ort_version": ort_version,
            "models": rows,
            "geomean_ratio": geomean,
            "max_ratio": max_ratio,
            "max_ratio_model": max_model,
            "gemm": gemm,
        });
        let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        if path == "-" {
            print!("{text}");
        } else if let Err(e) = std::fs::write(path, text) {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
    if failures > 0 {
        std::process::exit(1);
    }
}
