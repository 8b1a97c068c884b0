//! Pre-quantized ONNX models, quantized by ONNX Runtime itself
//! (`testsuite/scripts/gen_prequantized.py`: `quantize_static` QDQ with int8 and uint8
//! activations, QOperator, `quantize_dynamic`, and the 4-bit blocked QDQ weight quantizer, on
//! small hand-built graphs and zoo models), compiled by edgec and compared with ONNX Runtime's
//! output of the *same quantized model*:
//!
//! - the `fold-quantized` pass must fold every quantized layer: each float Conv / MatMul / Gemm
//!   (and ConvTranspose) with a dequantized constant weight and each QLinearConv / QLinearMatMul with a constant
//!   weight becomes a `q.conv` / `q.conv_transpose` / `q.fully_connected`, each blocked int4 weight a
//!   `q.matmul_nbits` — no float layer is left reading a dequantized weight (asserted on the
//!   optimized IR);
//! - interpreter, host and Cortex-M7 (qemu) outputs: one-op fixtures within one LSB of the int8
//!   output (TFLite's fixed-point requantization against ONNX's float rounding), whole models
//!   cosine ≥ 0.99.
//!
//! The fixtures are generated on first use into `testsuite/cache/prequantized/` (again whenever
//! the script is newer than the cache's `index.json`).

use edgec::{CompileOptions, Session, Target};
use edgec_ir::{Function, Module, OpKind, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const TARGETS: &[&str] = &["interp", "host", "cortex-m7"];
const MIN_COS: f64 = 0.99;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/gen_prequantized.py")
}

/// The fixture directory, generated if missing or older than the script.
fn fixtures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cache/prequantized");
    let index = dir.join("index.json");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (mtime(&index), mtime(&script())) {
        (Some(i), Some(s)) => s > i,
        _ => true,
    };
    if stale {
        let out =
            std::process::Command::new("python3").arg(script()).arg(&dir).output().expect("run python3");
        assert!(
            out.status.success() && index.is_file(),
            "gen_prequantized.py failed (run testsuite/scripts/setup.sh for onnxruntime):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    dir
}

struct Fixture {
    name: String,
    dir: PathBuf,
    kind: String,
    mode: String,
    lsb: Option<f64>,
}

fn discover() -> Vec<Fixture> {
    let dir = fixtures();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    index["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let name = n.as_str().unwrap().to_string();
            let d = dir.join(&name);
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(d.join("meta.json")).unwrap()).unwrap();
            Fixture {
                name,
                dir: d,
                kind: meta["kind"].as_str().unwrap().into(),
                mode: meta["mode"].as_str().unwrap().into(),
                lsb: meta["lsb"].as_f64(),
            }
        })
        .collect()
}

fn main_fn(m: &Module) -> &Function {
    m.main().unwrap()
}

/// Ops by name, counting the members of fused kernels too (a layer that writes f32 can anchor a
/// fused float epilogue).
fn count(f: &Function) -> BTreeMap<&'static str, usize> {
    let mut c = BTreeMap::new();
    let mut ops: Vec<edgec_ir::Op> = f.body_ops().to_vec();
    while let Some(op) = ops.pop() {
        *c.entry(f.ops[op].kind.name()).or_insert(0) += 1;
        for r in &f.ops[op].regions {
            for &b in &r.blocks {
                ops.extend(&f.blocks[b].ops);
            }
        }
    }
    c
}

/// Quantized layers of the imported model: float Conv / MatMul / Gemm reading a dequantized
/// constant weight (int8: `q.conv` / `q.fully_connected` expected; blocked: `q.matmul_nbits`),
/// and QLinear ops with a constant weight.
fn quantized_layers(f: &Function) -> (usize, usize) {
    let is_const = |v| matches!(f.values[v].def, edgec_ir::module::ValueDef::Result { op, .. } if f.ops[op].kind == OpKind::Constant);
    let dq_of_const = |v| match f.values[v].def {
        edgec_ir::module::ValueDef::Result { op, .. } if f.ops[op].kind == OpKind::DequantizeLinear => {
            is_const(f.ops[op].operands[0]).then(|| f.ops[op].attrs.int("block_size").unwrap_or(0) > 0)
        }
        _ => None,
    };
    let (mut int8, mut blocked) = (0, 0);
    for &op in f.body_ops() {
        let d = &f.ops[op];
        match d.kind {
            OpKind::Conv | OpKind::MatMul | OpKind::Gemm | OpKind::ConvTranspose => {
                match dq_of_const(d.operands[1]) {
                    Some(false) => int8 += 1,
                    Some(true) => blocked += 1,
                    None => {}
                }
            }
            OpKind::QLinearConv | OpKind::QLinearMatMul if is_const(d.operands[3]) => int8 += 1,
            _ => {}
        }
    }
    (int8, blocked)
}

fn cosine(r: &[f64], o: &[f64]) -> f64 {
    let dot: f64 = r.iter().zip(o).map(|(a, b)| a * b).sum();
    let nr: f64 = r.iter().map(|a| a * a).sum();
    let no: f64 = o.iter().map(|a| a * a).sum();
    if nr == 0.0 && no == 0.0 {
        1.0
    } else {
        dot / (nr.sqrt() * no.sqrt())
    }
}

/// Checks the fold on the optimized IR; returns a summary.
fn check_fold(fx: &Fixture, session: &Session) -> Result<String, String> {
    let (int8, blocked) = quantized_layers(main_fn(session.module()));
    let (opt, _) = session.optimized().map_err(|e| format!("optimize: {e}"))?;
    let c = count(main_fn(&opt));
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    if fx.mode == "raw" {
        // ONNX integer ops in forms with no q.* equivalent stay and compile as they are.
        let onnx_int: usize = ["q.qlinear_conv", "q.qlinear_matmul", "q.matmul_integer", "q.conv_integer"]
            .iter()
            .map(|k| get(k))
            .sum();
        if onnx_int == 0 {
            return Err(format!("the ONNX integer op was rewritten: {c:?}"));
        }
        return Ok(format!("kept as ONNX ops: {c:?}"));
    }
    let folded = get("q.conv") + get("q.conv_transpose") + get("q.fully_connected");
    if folded != int8 {
        return Err(format!("{int8} int8 layers, {folded} folded: {c:?}"));
    }
    if get("q.matmul_nbits") != blocked {
        return Err(format!(
            "{blocked} blocked int4 layers, {} q.matmul_nbits: {c:?}",
            get("q.matmul_nbits")
        ));
    }
    if fx.mode.starts_with("qdq") || fx.mode == "qop_u8" {
        // No float layer reads a dequantized weight, and no QLinear op is left.
        let (left, _) = quantized_layers(main_fn(&opt));
        if left != 0 || get("q.qlinear_conv") + get("q.qlinear_matmul") != 0 {
            return Err(format!("{left} quantized layers left unfolded: {c:?}"));
        }
    }
    let onnx_q: usize = ["q.quantize_linear", "q.dequantize_linear", "q.qlinear_conv", "q.qlinear_matmul"]
        .iter()
        .map(|k| get(k))
        .sum();
    Ok(format!(
        "folded conv {} convT {} fc {} add {} nbits {} | q/dq {}/{} | onnx quant ops left {onnx_q} (int {})",
        get("q.conv"),
        get("q.conv_transpose"),
        get("q.fully_connected"),
        get("q.add"),
        get("q.matmul_nbits"),
        get("q.quantize") + get("q.requantize"),
        get("q.dequantize"),
        get("q.matmul_integer") + get("q.conv_integer"),
    ))
}

fn check(fx: &Fixture, target: &str) -> Result<String, String> {
    let model = fx.dir.join("model.onnx");
    let session = Session::import(&model, &CompileOptions::default()).map_err(|e| format!("import: {e}"))?;
    if fx.kind == "error" {
        // Parameters the backends cannot index: a user error (exit code 2) naming the node, on
        // one line; the interpreter still runs the model.
        if target == "interp" {
            let inputs =
                session.read_inputs(fx.dir.join("inputs.npz")).map_err(|e| format!("inputs: {e}"))?;
            session.run(inputs).map_err(|e| format!("interpreter: {e}"))?;
            return Ok("runs in the interpreter".into());
        }
        let t = Target::parse(target).map_err(|e| e.to_string())?;
        return match session.compile(&t, "model", false) {
            Ok(_) => Err("compiled, expected an error".into()),
            Err(e) => {
                let m = e.to_string();
                if e.exit_code() != 2 || m.contains('\n') || !m.contains("qmm_batched_rows") {
                    return Err(format!("exit code {}: {m:?}", e.exit_code()));
                }
                Ok(format!("refused: {m}"))
            }
        };
    }
    let inputs = session.read_inputs(fx.dir.join("inputs.npz")).map_err(|e| format!("inputs: {e}"))?;
    let reference = edgec::io::read_npz(&fx.dir.join("ref.npz")).map_err(|e| format!("reference: {e}"))?;
    let mut note = String::new();
    let outputs: Vec<Tensor> = if target == "interp" {
        note = check_fold(fx, &session)?;
        let (opt, _) = session.optimized().map_err(|e| format!("optimize: {e}"))?;
        edgec_ir::interp::run_function(main_fn(&opt), inputs).map_err(|e| format!("interpreter: {e}"))?
    } else {
        let t = Target::parse(target).map_err(|e| e.to_string())?;
        let c = session.compile(&t, "model", false).map_err(|e| format!("compile: {e}"))?;
        // quantize_dynamic's MatMulInteger / ConvInteger layers (constant weights) run on the
        // int8 GEMM.
        let gemms = c
            .program
            .as_ref()
            .ok_or("no kernel program")?
            .kernels
            .iter()
            .filter(|k| k.name.starts_with("matmul_integer_gemm") || k.name.starts_with("conv_integer_gemm"))
            .count();
        let (opt, _) = session.optimized().map_err(|e| format!("optimize: {e}"))?;
        let f = main_fn(&opt);
        let const_b = f
            .body_ops()
            .iter()
            .filter(|&&op| {
                let d = &f.ops[op];
                (d.kind == OpKind::ConvInteger
                    || d.kind == OpKind::MatMulInteger
                        && f.values[d.operands[1]].ty.rank() == 2
                        && f.values[d.operands[0]].ty.rank() >= 2)
                    && matches!(f.values[d.operands[1]].def,
                        edgec_ir::module::ValueDef::Result { op, .. } if f.ops[op].kind == OpKind::Constant)
            })
            .count();
        if gemms < const_b.min(1) {
            return Err(format!(
                "{const_b} integer layers with constant weights but {gemms} int8 GEMM kernels"
            ));
        }
        if const_b > 0 {
            note = format!("{gemms} of {const_b} MatMulInteger/ConvInteger on the int8 GEMM");
        }
        session.execute(&c, &inputs).map_err(|e| format!("execute: {e}"))?.0
    };
    let mut msg = Vec::new();
    for (name, out) in session.output_names().iter().zip(&outputs) {
        let r = &reference.iter().find(|(n, _)| n == name).ok_or(format!("no reference for {name:?}"))?.1;
        let (rv, ov) = (r.to_f64_vec(), out.to_f64_vec());
        if rv.len() != ov.len() {
            return Err(format!("output {name:?}: {} elements, reference {}", ov.len(), rv.len()));
        }
        let cos = cosine(&rv, &ov);
        let max_err = rv.iter().zip(&ov).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        match (fx.kind.as_str(), fx.lsb) {
            ("op", Some(lsb)) => {
                let lsbs = max_err / lsb;
                let off = rv.iter().zip(&ov).filter(|(a, b)| (*a - *b).abs() > lsb * 1e-3).count();
                if lsbs > 1.0 + 1e-3 {
                    return Err(format!("output {name:?}: {lsbs:.2} LSB off (max |err| {max_err:.3e})"));
                }
                msg.push(format!("{name}: max {lsbs:.2} LSB, {off}/{} elements off by 1", rv.len()));
            }
            _ => {
                if cos.is_nan() || cos < MIN_COS {
                    return Err(format!("output {name:?}: cos {cos:.5}"));
                }
                let amax = rv.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                msg.push(format!("{name}: cos {cos:.5}, max err/max|ref| {:.2e}", max_err / amax.max(1e-30)));
            }
        }
    }
    Ok(format!("{} {note}", msg.join(", ")))
}

#[test]
fn prequantized_models_fold_and_match_onnxruntime() {
    let fixtures = discover();
    assert!(fixtures.len() >= 30, "only {} fixtures", fixtures.len());
    let jobs: std::sync::Mutex<Vec<(usize, &str)>> = std::sync::Mutex::new(
        (0..fixtures.len()).flat_map(|i| TARGETS.iter().map(move |&t| (i, t))).rev().collect(),
    );
    let failures = std::sync::Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some((i, t)) = jobs.lock().unwrap().pop() else { break };
                let fx = &fixtures[i];
                match check(fx, t) {
                    Ok(m) => println!("ok   {:<22} {t:<10} {m}", fx.name),
                    Err(e) => {
                        println!("FAIL {:<22} {t:<10} {e}", fx.name);
                        failures.lock().unwrap().push(format!("{} on {t}: {e}", fx.name));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
