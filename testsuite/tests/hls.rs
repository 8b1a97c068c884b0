//! The FPGA HLS backend (`--target fpga-hls`): every zoo model's project built as its C
//! simulation (g++) and run against the reference interpreter (max abs error ≤ 1e-4 ×
//! max |reference|; int8-quantized models bit-exact), a lint of every emitted project for what
//! Vitis HLS cannot synthesize, an insta snapshot of a tiny model's firmware (`EDGEC_BLESS=1` or
//! `INSTA_UPDATE=always` rewrites it), and the refusal of what the emitter cannot emit yet.

use edgec::{Calibration, CodegenOptions, CompileOptions, Compiled, Quantize, Session, Target};
use edgec_testsuite::compare::max_rel_error;
use edgec_testsuite::zoo::{discover, run_on_targets, zoo_dir, ZooModel, ZOO_REL_TOL};
use std::time::Instant;

/// What the firmware must never contain: heap allocation and STL containers (Vitis HLS
/// synthesizes neither). Recursion cannot appear: every kernel is a loop nest and the top
/// function only calls kernels.
const FORBIDDEN: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "free(",
    "new ",
    "delete ",
    "std::vector",
    "std::map",
    "std::string",
    "std::list",
    "std::unique_ptr",
    "std::shared_ptr",
    "alloca",
];

/// Lints the synthesizable part of a project (`firmware/`): the forbidden uses above, one
/// top function with its interfaces, and every `for` bound a literal.
fn lint(c: &Compiled) -> Result<(), String> {
    let top = format!("firmware/{}.cpp", c.symbol);
    let mut saw_top = false;
    for (name, bytes) in &c.files {
        if !name.starts_with("firmware/") {
            continue;
        }
        let text = std::str::from_utf8(bytes).map_err(|e| format!("{name}: {e}"))?;
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if let Some(f) = FORBIDDEN.iter().find(|f| code.contains(**f)) {
                return Err(format!("{name}:{}: `{f}` in {line:?}", n + 1));
            }
            if let Some(rest) = code.trim_start().strip_prefix("for (") {
                // `for (v = 0; v < BOUND; v++)`: the bound is an integer literal, possibly cast.
                let bound = rest.split(';').nth(1).and_then(|c| c.split('<').nth(1)).unwrap_or("").trim();
                let digits = bound.trim_start_matches(|ch: char| {
                    ch == '(' || ch.is_ascii_alphanumeric() && !ch.is_ascii_digit() || ch == '_' || ch == ')'
                });
                let bound_ok = bound.chars().all(|ch| ch.is_ascii_alphanumeric() || "()_".contains(ch))
                    && digits.trim_end_matches("ULL").chars().all(|ch| ch.is_ascii_digit())
                    && !digits.is_empty();
                if !bound_ok {
                    return Err(format!("{name}:{}: loop bound {bound:?} is not a constant", n + 1));
                }
            }
        }
        if *name == top {
            saw_top = true;
            for pragma in
                ["#pragma HLS INTERFACE m_axi port=arena", "#pragma HLS INTERFACE s_axilite port=return"]
            {
                if !text.contains(pragma) {
                    return Err(format!("{name}: no `{pragma}`"));
                }
            }
            if text.matches(&format!("\nvoid {}(", c.symbol)).count() != 1 {
                return Err(format!("{name}: not exactly one top function"));
            }
        }
    }
    if saw_top {
        Ok(())
    } else {
        Err(format!("no {top}"))
    }
}

#[test]
fn the_lint_catches_heap_and_stl_uses() {
    let session = Session::from_module(tiny()).unwrap();
    let c = session.compile(&Target::parse("fpga-hls").unwrap(), "tiny", false).unwrap();
    lint(&c).unwrap();
    for bad in [
        "  float *x = (float *)malloc(4);",
        "  std::vector<float> v;",
        "  int *p = new int[3];",
        "  for (i = 0; i < n; i++) {",
    ] {
        let mut c = c.clone();
        let f = c.files.iter_mut().find(|(n, _)| n == "firmware/tiny.cpp").unwrap();
        f.1.extend_from_slice(format!("\n{bad}\n").as_bytes());
        assert!(lint(&c).is_err(), "{bad}");
    }
}

fn compare(
    session: &Session,
    expected: &[edgec_ir::Tensor],
    outputs: &[edgec_ir::Tensor],
    tol: f64,
) -> Result<f64, String> {
    let mut worst = 0.0f64;
    for ((name, e), a) in session.output_names().iter().zip(expected).zip(outputs) {
        let err = max_rel_error(e, a).map_err(|x| format!("output {name:?}: {x}"))?;
        if err > tol {
            return Err(format!("output {name:?}: max err/max|ref| {err:.2e}"));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

/// Compiles, lints and C-simulates one model; the message has the accuracy and the times.
fn check(session: &Session, inputs: Vec<edgec_ir::Tensor>, tol: f64) -> Result<String, String> {
    let expected = session.run(inputs.clone()).map_err(|e| format!("interpreter: {e}"))?;
    let t = Target::parse("fpga-hls").map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let compiled = session.compile(&t, "model", false).map_err(|e| format!("compile: {e}"))?;
    let generate = t0.elapsed().as_secs_f64();
    lint(&compiled).map_err(|e| format!("lint: {e}"))?;
    let (outputs, log) = session.execute(&compiled, &inputs).map_err(|e| format!("execute: {e}"))?;
    if !log.contains("PASS") {
        return Err(format!("the testbench did not pass: {log}"));
    }
    let worst = compare(session, &expected, &outputs, tol)?;
    let build = log.lines().find(|l| l.starts_with("csim build")).unwrap_or("").to_string();
    let bytes: usize = compiled.files.iter().map(|(_, b)| b.len()).sum();
    Ok(format!("max err/max|ref| {worst:.2e}; project {generate:.2} s, {} kB; {build}", bytes / 1000))
}

#[test]
fn zoo_models_match_the_interpreter_in_c_simulation() {
    let models = discover(&zoo_dir());
    assert!(models.len() >= 7, "only {} zoo models", models.len());
    let failures = run_on_targets(&models, &["fpga-hls"], |m: &ZooModel, _| {
        let session =
            Session::import(m.model(), &CompileOptions::default()).map_err(|e| format!("import: {e}"))?;
        let inputs = session.read_inputs(m.inputs()).map_err(|e| format!("inputs: {e}"))?;
        check(&session, inputs, ZOO_REL_TOL)
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// int8-quantized models lower to plain integer loops here (no int8 GEMM routine), which the
/// C++ emits with the IR's wrapping and saturating semantics: bit-exact with the interpreter.
#[test]
fn int8_models_are_bit_exact_in_c_simulation() {
    let models: Vec<ZooModel> = discover(&zoo_dir())
        .into_iter()
        .filter(|m| ["vae_mlp", "dcgan"].contains(&m.name.as_str()))
        .collect();
    assert_eq!(models.len(), 2);
    let failures = run_on_targets(&models, &["fpga-hls int8"], |m: &ZooModel, _| {
        let mut session =
            Session::import(m.model(), &CompileOptions::default()).map_err(|e| format!("import: {e}"))?;
        let inputs = session.read_inputs(m.inputs()).map_err(|e| format!("inputs: {e}"))?;
        session.set_quantize(Quantize::Int8 {
            calibration: Calibration::Samples(vec![inputs.clone()]),
            options: Default::default(),
        });
        check(&session, inputs, 0.0)
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// matmul + bias + relu, written by hand.
const TINY: &str = r#"func @tiny(%x: tensor<2x3xf32>) -> ("y": tensor<2x4xf32>) {
  %w = builtin.constant {value = dense<[0.5, -1.0, 0.25, 2.0, 1.5, 0.0, -0.5, 1.0, -2.0, 0.75, 1.0, -0.25]> : tensor<3x4xf32>} : tensor<3x4xf32> loc(unknown)
  %b = builtin.constant {value = dense<[0.1, -0.2, 0.3, -0.4]> : tensor<4xf32>} : tensor<4xf32> loc(unknown)
  %0 = nn.matmul %x, %w : tensor<2x4xf32> loc("mm")
  %1 = math.add %0, %b : tensor<2x4xf32> loc("bias")
  %2 = math.relu %1 : tensor<2x4xf32> loc("relu")
  func.return %2 loc(unknown)
}"#;

fn tiny() -> edgec_ir::Module {
    edgec_ir::parser::parse_module(TINY).unwrap()
}

#[test]
fn firmware_of_a_tiny_model() {
    if std::env::var("EDGEC_BLESS").is_ok_and(|v| v == "1") {
        // SAFETY: set before any snapshot assertion and no other thread reads the environment.
        std::env::set_var("INSTA_UPDATE", "always");
    }
    let session = Session::from_module(tiny()).unwrap();
    let c = session.compile(&Target::parse("fpga-hls").unwrap(), "tiny", false).unwrap();
    let names: Vec<&str> = c.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "firmware/tiny.cpp",
            "firmware/tiny.h",
            "firmware/defines.h",
            "firmware/weights/tiny_c0.h",
            "firmware/weights/tiny_c1.h",
            "tb/tiny_test.cpp",
            "build_prj.tcl",
            "README.md"
        ]
    );
    let text = |n: &str| String::from_utf8(c.file(n).unwrap().to_vec()).unwrap();
    let firmware =
        ["firmware/tiny.h", "firmware/tiny.cpp", "firmware/weights/tiny_c0.h", "firmware/weights/tiny_c1.h"]
            .iter()
            .map(|n| format!("==> {n}\n{}", text(n)))
            .collect::<Vec<_>>()
            .join("\n");
    insta::assert_snapshot!("hls_tiny_firmware", firmware);
    insta::assert_snapshot!("hls_tiny_tcl", text("build_prj.tcl"));
    // And it runs: the C simulation matches the interpreter.
    let x =
        edgec_ir::Tensor::from_f64(edgec_ir::ScalarType::F32, &[2, 3], &[1.0, -2.0, 0.5, 0.25, 3.0, -1.0])
            .unwrap();
    check(&session, vec![x], ZOO_REL_TOL).unwrap();
}

#[test]
fn half_precision_is_refused_with_the_node() {
    let m = edgec_ir::parser::parse_module(
        r#"func @h(%x: tensor<4xf16>) -> ("y": tensor<4xf16>) {
  %0 = math.relu %x : tensor<4xf16> loc("relu16")
  func.return %0 loc(unknown)
}"#,
    )
    .unwrap();
    let session = Session::from_module(m).unwrap();
    let e = session.compile(&Target::parse("fpga-hls").unwrap(), "h", false).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("relu16") && msg.contains("f16"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn the_top_function_needs_a_c_name() {
    let session = Session::from_module(tiny()).unwrap();
    let t = Target::parse("fpga-hls").unwrap();
    for bad in ["main", "9lives", "a-b"] {
        let e = session.compile_with(&t, &CodegenOptions::new(bad)).unwrap_err();
        assert!(e.to_string().contains("top function"), "{e}");
    }
}
