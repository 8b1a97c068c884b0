//! The command-line contract scripts rely on: exit codes, one-line errors, `.npz` outputs
//! named after graph outputs, no half-written outputs, `bench --json`.

use edgec_testsuite::cli::edgec;
use edgec_testsuite::zoo::{discover, zoo_dir};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgec-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn stderr_line(out: &std::process::Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(s.lines().count(), 1, "expected one line on stderr, got: {s}");
    s
}

fn dcgan() -> edgec_testsuite::zoo::ZooModel {
    discover(&zoo_dir()).into_iter().find(|m| m.name == "dcgan").expect("zoo model dcgan")
}

#[test]
fn bad_flags_exit_2() {
    assert_eq!(edgec(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(edgec(&["run", "x.onnx"]).status.code(), Some(2), "missing required flags");
    let m = dcgan();
    let model = m.model();
    let model = model.to_str().unwrap();
    let inputs = m.inputs();
    let inputs = inputs.to_str().unwrap();
    let out = tmp("never.npz");
    let out_s = out.to_str().unwrap();
    for args in [
        vec!["run", model, "--inputs", inputs, "-o", out_s, "--target", "no-such-target"],
        vec!["run", model, "--inputs", inputs, "-o", out_s, "--dim", "seq"],
        vec!["run", model, "--inputs", inputs, "-o", out_s, "--dim", "seq=-1"],
        vec!["run", model, "--inputs", inputs, "-o", out_s, "--quantize", "int3"],
        vec!["compile", model, "--target", "interp", "-o", out_s],
    ] {
        let o = edgec(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(stderr_line(&o).starts_with("edgec: error: "));
        assert!(!out.exists(), "{args:?} left an output behind");
    }
}

#[test]
fn missing_files_and_mismatched_inputs_exit_2() {
    let out = tmp("x.npz");
    let o = edgec(&["import", "/nonexistent/model.onnx"]);
    assert_eq!(o.status.code(), Some(2));
    stderr_line(&o);
    // gpt2's inputs fed to dcgan: names do not match the model's inputs.
    let models = discover(&zoo_dir());
    let d = models.iter().find(|m| m.name == "dcgan").unwrap();
    let g = models.iter().find(|m| m.name == "gpt2").unwrap();
    let o = edgec(&[
        "run",
        d.model().to_str().unwrap(),
        "--inputs",
        g.inputs().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--target",
        "interp",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stderr_line(&o).contains("input"));
    assert!(!out.exists());
}

#[test]
fn run_writes_outputs_named_after_graph_outputs() {
    let m = dcgan();
    let out = tmp("dcgan.npz");
    let o = edgec(&[
        "run",
        m.model().to_str().unwrap(),
        "--inputs",
        m.inputs().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--target",
        "interp",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let got = edgec::io::read_npz(&out).expect("output npz");
    let want = edgec::io::read_npz(&m.reference()).expect("ref npz");
    let got_names: Vec<_> = got.iter().map(|(n, _)| n.clone()).collect();
    let want_names: Vec<_> = want.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(got_names, want_names);
}

#[test]
fn import_then_opt_round_trips_and_bench_prints_json() {
    let m = dcgan();
    let eir = tmp("dcgan.eir");
    let o = edgec(&["import", m.model().to_str().unwrap(), "-o", eir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&eir).unwrap();
    let o = edgec(&["opt", eir.to_str().unwrap(), "--passes=verify,dce,verify", "--time-passes"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), text, "an imported model has nothing dead to remove");
    assert!(String::from_utf8_lossy(&o.stderr).contains("dce"));
    let o = edgec(&["opt", eir.to_str().unwrap(), "--passes=nope"]);
    assert_eq!(o.status.code(), Some(2));
    // `--target` builds the passes for a machine: attention over a short sequence with wide
    // heads stays decomposed under the Cortex-M7 cost model and is recognized for x86-64.
    let cost = concat!(env!("CARGO_MANIFEST_DIR"), "/filetests/passes/egraph_cost_cortex_m7.eir");
    let attention = |target: &str| {
        let o = edgec(&["opt", cost, "--passes=egraph,dce", "--target", target]);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).matches("nn.attention").count()
    };
    assert_eq!((attention("cortex-m7"), attention("x86_64-unknown-linux-gnu")), (1, 2));
    let o = edgec(&["opt", cost, "--passes=egraph", "--target", "nonsense-target"]);
    assert_eq!(o.status.code(), Some(2));
    // The IR text file runs like the ONNX model.
    let o = edgec(&[
        "bench",
        eir.to_str().unwrap(),
        "--inputs",
        m.inputs().to_str().unwrap(),
        "--target",
        "interp",
        "--runs",
        "3",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let line = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON line");
    assert!(v["median_ms"].as_f64().unwrap() > 0.0);
    assert!(v["min_ms"].as_f64().unwrap() <= v["median_ms"].as_f64().unwrap());
    assert_eq!(v["runs"], 3);
}

#[test]
fn compile_writes_object_header_runtime_and_report() {
    let m = dcgan();
    let dir = tmp("dcgan-host");
    let _ = std::fs::remove_dir_all(&dir);
    let o = edgec(&[
        "compile",
        m.model().to_str().unwrap(),
        "--target",
        "host",
        "-o",
        dir.to_str().unwrap(),
        "--name",
        "dcgan",
        "--memory-plot",
        "--emit-kir",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "model.o",
        "model.h",
        "report.json",
        "edgec_runtime.h",
        "edgec_runtime.c",
        "edgec_runtime.o",
        "memory.svg",
        "memory.png",
        "model.kir",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    // The plot's legend says what the boxes and the dashed line are; the PNG twin is the same
    // picture (an 8-bit RGB PNG of the SVG's size).
    let svg = std::fs::read_to_string(dir.join("memory.svg")).unwrap();
    assert!(svg.contains("scratch of one kernel call") && svg.contains("live at once"), "no legend");
    let size = |attr: &str| -> u32 {
        let at = svg.find(&format!("{attr}=\"")).unwrap() + attr.len() + 2;
        svg[at..].split('"').next().unwrap().parse::<f64>().unwrap() as u32
    };
    let png = std::fs::read(dir.join("memory.png")).unwrap();
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!((&png[1..4], be(16), be(20), png[25]), (&b"PNG"[..], size("width"), size("height"), 2));
    // The kernel IR lists every kernel call the report counts.
    let kir = std::fs::read_to_string(dir.join("model.kir")).unwrap();
    assert!(kir.starts_with("program @"), "{kir}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    for key in [
        "target",
        "onnx_nodes",
        "kernels",
        "weights_bytes",
        "arena_bytes",
        "arena_lower_bound_bytes",
        "code_bytes",
        "compile_seconds",
    ] {
        assert!(report.get(key).is_some(), "report.json lacks {key}: {report}");
    }
    assert!(report["arena_bytes"].as_u64().unwrap() >= report["arena_lower_bound_bytes"].as_u64().unwrap());
    assert!(report["code_bytes_runtime"].as_u64().unwrap() > 0);
    let header = std::fs::read_to_string(dir.join("model.h")).unwrap();
    assert!(header.contains(&format!("#define DCGAN_ARENA_BYTES {}u", report["arena_bytes"])), "{header}");

    // An integrator's C program against the header, linked with the runtime, runs the model.
    let main_c = dir.join("main.c");
    std::fs::write(
        &main_c,
        r#"#include "model.h"
#include <stdio.h>
static unsigned char arena[DCGAN_ARENA_BYTES] __attribute__((aligned(64)));
static float z[DCGAN_INPUT0_BYTES / 4], image[DCGAN_OUTPUT0_BYTES / 4];
int main(void) {
    edgec_ctx ctx;
    if (dcgan_init(&ctx, arena, sizeof arena) != EDGEC_OK) return 3;
    if (dcgan_init(&ctx, arena, sizeof arena - 1) != EDGEC_ERR_ARENA_SIZE) return 4;
    if (dcgan_init(&ctx, arena, sizeof arena) != EDGEC_OK) return 3;
    const void *in[] = {z};
    void *out[] = {image};
    if (dcgan_run(&ctx, in, out) != EDGEC_OK) return 5;
    printf("%d\n", image[0] != 0.0f);
    return 0;
}
"#,
    )
    .unwrap();
    let exe = dir.join("main");
    let cc = std::process::Command::new("cc")
        .args(["-std=c99", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&main_c)
        .arg(dir.join("model.o"))
        .arg(dir.join("edgec_runtime.o"))
        .arg("-I")
        .arg(&dir)
        .output()
        .expect("cc");
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let run = std::process::Command::new(&exe).output().expect("run");
    assert!(run.status.success(), "status {:?}", run.status);
}

#[test]
fn compile_errors_exit_2_without_output() {
    let m = dcgan();
    let model = m.model();
    let model = model.to_str().unwrap();
    let dir = tmp("never-dir");
    let d = dir.to_str().unwrap();
    let nonzero = edgec_testsuite::node::cache_dir().join("test_nonzero_example").join("model.onnx");
    let nonzero = nonzero.to_str().unwrap();
    for args in [
        vec!["compile", model, "--target", "mips64-unknown-linux-gnu", "-o", d],
        vec!["compile", model, "--target", "not-a-triple", "-o", d],
        vec!["compile", model, "--target", "cortex-m7", "--cpu", "cortex-a55", "-o", d],
        vec!["compile", model, "--target", "host", "--name", "9lives", "-o", d],
        vec!["compile", model, "--target", "host", "--passes", "fuse,frobnicate", "-o", d],
        // NonZero's result shape depends on the data: not compilable ahead of time.
        vec!["compile", nonzero, "--target", "host", "-o", d],
    ] {
        let o = edgec(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let line = stderr_line(&o);
        assert!(line.starts_with("edgec: error: "), "{line}");
        assert!(!dir.exists(), "{args:?} left an output directory behind");
    }
}

#[test]
fn bench_host_prints_json() {
    let m = dcgan();
    let o = edgec(&[
        "bench",
        m.model().to_str().unwrap(),
        "--inputs",
        m.inputs().to_str().unwrap(),
        "--target",
        "host",
        "--runs",
        "5",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(v["runs"], 5);
    assert!(
        v["median_ms"].as_f64().unwrap() > 0.0
            && v["min_ms"].as_f64().unwrap() <= v["median_ms"].as_f64().unwrap()
    );
}

/// `compile` shows the pipeline's stages and timings on request, and fusion shows in the report:
/// dcgan's 11 ONNX nodes (conv_transpose, batch_norm, relu, tanh) become 4 kernels.
#[test]
fn compile_prints_passes_and_reports_kernels() {
    let m = dcgan();
    let dir = tmp("dcgan-passes");
    let _ = std::fs::remove_dir_all(&dir);
    let o = edgec(&[
        "compile",
        m.model().to_str().unwrap(),
        "--target",
        "host",
        "-o",
        dir.to_str().unwrap(),
        "--print-after-all",
        "--time-passes",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    // The shared passes, then the LLVM backend's own.
    let llvm = edgec::target::lookup(&edgec::Target::parse("host").unwrap()).unwrap();
    for pass in edgec::SHARED_PASSES.split(',').chain(llvm.pipeline().split(',')) {
        assert!(err.contains(&format!("// ----- IR after {pass} -----")), "no IR after {pass}: {err}");
        assert!(err.lines().any(|l| l.trim_end().ends_with(&format!("ms  {pass}"))), "no timing for {pass}");
    }
    assert!(err.contains("fused.kernel"), "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["onnx_nodes"], 11, "{report}");
    assert_eq!(report["kernels"], 4, "{report}");

    // One stage only, and an explicit pipeline without fusion: one kernel per compute op.
    let dir2 = tmp("dcgan-nofuse");
    let _ = std::fs::remove_dir_all(&dir2);
    let o = edgec(&[
        "compile",
        m.model().to_str().unwrap(),
        "--target",
        "host",
        "-o",
        dir2.to_str().unwrap(),
        "--passes",
        "dce",
        "--print-after",
        "dce",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("// ----- IR after").count(), 1, "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir2.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["kernels"], 11, "{report}");
}

/// A hand-written `fused.kernel` the backend cannot honour (its anchor's type differs from the
/// kernel's result, so the epilogue could not rewrite the anchor's output in place) is the
/// input's fault: exit 2, one line naming the op, nothing written.
#[test]
fn malformed_fused_kernel_exits_2() {
    let src = tmp("bad_fused.eir");
    std::fs::write(
        &src,
        r#"func @f(%x: tensor<2x4xf32>, %w: tensor<4x4xf32>) -> ("y": tensor<2x4xf64>) {
  %0 = fused.kernel %x, %w {pattern = "matmul+cast"} ({
  ^bb(%1: tensor<2x4xf32>, %2: tensor<4x4xf32>):
    %3 = nn.matmul %1, %2 : tensor<2x4xf32> loc("mm")
    %4 = math.cast %3 {to = f64} : tensor<2x4xf64> loc("c")
    builtin.yield %4 loc(unknown)
  }) : tensor<2x4xf64> loc(unknown)
  func.return %0 loc(unknown)
}
"#,
    )
    .unwrap();
    let dir = tmp("bad-fused-out");
    let o = edgec(&[
        "compile",
        src.to_str().unwrap(),
        "--target",
        "host",
        "--passes",
        "dce",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stderr_line(&o).contains("fused.kernel"));
    assert!(!dir.exists());
}

/// `edgec targets` lists every target of every backend with its cargo feature and whether this
/// build has it; each listed name is a `--target` that parses.
#[test]
fn targets_lists_every_backend() {
    let o = edgec(&["targets"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    let help = edgec(&["compile", "m.onnx", "--target", "help", "-o", "x"]);
    assert_eq!((help.status.code(), String::from_utf8_lossy(&help.stdout)), (Some(0), text.clone()));
    for b in edgec::target::BACKENDS {
        for (name, _) in b.targets {
            let row = text.lines().find(|l| l.split_whitespace().next() == Some(*name));
            let row = row.unwrap_or_else(|| panic!("no row for {name}: {text}"));
            let cols: Vec<&str> = row.split_whitespace().collect();
            assert_eq!(cols[1], b.name, "{row}");
            assert_eq!(cols[2], b.feature.unwrap_or("-"), "{row}");
            assert_eq!(cols[3], if b.available() { "yes" } else { "no" }, "{row}");
            assert!(edgec::Target::parse(name).is_ok(), "{name}");
        }
    }
}

/// Pass options: a pass given an option it does not take, or a malformed pipeline, is the
/// input's fault (exit 2, one line), before any work.
#[test]
fn bad_pass_options_exit_2() {
    let m = dcgan();
    let out = tmp("never-passes");
    for passes in ["dce{x=1}", "quantize-int4-weights{group-size=3}", "dce,{", "egraph{"] {
        let o = edgec(&[
            "compile",
            m.model().to_str().unwrap(),
            "--target",
            "host",
            "-o",
            out.to_str().unwrap(),
            "--passes",
            passes,
        ]);
        assert_eq!(o.status.code(), Some(2), "{passes}: {}", String::from_utf8_lossy(&o.stderr));
        stderr_line(&o);
        assert!(!out.exists(), "{passes}");
    }
}

/// Sizes never wrap: a tensor whose byte count exceeds what the target can address (2^70 bytes
/// on the host; 2^31 + 4 on a 32-bit Cortex-M7) is exit 2 naming the tensor with its exact size,
/// a Cortex-M7 model whose arena and inputs and outputs exceed the board's 8 MiB of RAM is exit
/// 2 with the byte counts (the same graph compiles for the host), and a graph without outputs is
/// exit 2 instead of a model that computes nothing.
#[test]
fn oversized_tensors_and_empty_graphs_exit_2() {
    let relu = |ty: &str| {
        format!(
            "func @main(%x: {ty}) -> (\"y\": {ty}) {{\n  %0 = math.relu %x : {ty} loc(\"relu0\")\n  func.return %0 loc(unknown)\n}}\n"
        )
    };
    let cases = [
        (relu("tensor<1099511627776x1073741824xf32>"), "host", "needs 4722366482869645213696 bytes"),
        (relu("tensor<536870913xf32>"), "cortex-m7", "needs 2147483652 bytes"),
        (
            relu("tensor<1x1024x1025xf32>"),
            "cortex-m7",
            "needs 8396800 bytes of RAM (arena 0 + inputs and outputs 8396800), more than the mps2-an500 board's 8388608 bytes",
        ),
        (
            "func @main(%x: tensor<4xf32>) -> () {\n  func.return loc(unknown)\n}\n".to_string(),
            "host",
            "has no outputs",
        ),
    ];
    for (i, (src, target, want)) in cases.iter().enumerate() {
        let eir = tmp(&format!("sizes{i}.eir"));
        std::fs::write(&eir, src).unwrap();
        let out = tmp(&format!("sizes{i}-out"));
        let o = edgec(&["compile", eir.to_str().unwrap(), "--target", target, "-o", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{target}: {}", String::from_utf8_lossy(&o.stderr));
        let line = stderr_line(&o);
        assert!(line.contains(want), "{line}");
        assert!(!out.exists(), "{target}: output written");
    }
    // A board of the user's: --ram-bytes / --flash-bytes apply on any machine target.
    let model = format!("{}/zoo/vae_mlp/model.onnx", env!("CARGO_MANIFEST_DIR"));
    for (flags, want) in [
        (&["--ram-bytes", "1000"][..], "more than --ram-bytes 1000 bytes"),
        (&["--flash-bytes", "1000"][..], "more than --flash-bytes 1000 bytes of flash"),
        (&["--ram-bytes", "0"][..], "--ram-bytes must be at least 1"),
    ] {
        let out = tmp("board-out");
        let mut args = vec!["compile", &model[..], "--target", "host", "-o", out.to_str().unwrap()];
        args.extend_from_slice(flags);
        let o = edgec(&args);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", String::from_utf8_lossy(&o.stderr));
        let line = stderr_line(&o);
        assert!(line.contains(want), "{line}");
        assert!(!out.exists(), "{flags:?}: output written");
    }
    // Just under the board's RAM, and the RAM-bound graph on the host: both compile.
    for (i, (ty, target)) in
        [("tensor<1x1024x1024xf32>", "cortex-m7"), ("tensor<1x1024x1025xf32>", "host")].iter().enumerate()
    {
        let eir = tmp(&format!("fits{i}.eir"));
        std::fs::write(&eir, relu(ty)).unwrap();
        let out = tmp(&format!("fits{i}-out"));
        let o = edgec(&["compile", eir.to_str().unwrap(), "--target", target, "-o", out.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{target}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

fn zoo_model(name: &str) -> edgec_testsuite::zoo::ZooModel {
    discover(&zoo_dir()).into_iter().find(|m| m.name == name).expect("zoo model")
}

/// `run --save-media`: the DCGAN's [2, 3, 32, 32] tanh output becomes two 32×32 RGB PNGs, the
/// vocoder's [1, 1, 512] waveform one mono WAV of 512 samples at the asked rate, and GPT-2's
/// logits nothing but a warning saying why.
#[test]
fn run_saves_pictures_and_sounds() {
    let dir = tmp("media");
    let _ = std::fs::remove_dir_all(&dir);
    let run = |m: &edgec_testsuite::zoo::ZooModel, target: &str, extra: &[&str]| {
        let out = tmp(&format!("{}-media.npz", m.name));
        let (model, inputs) = (m.model(), m.inputs());
        let mut args = vec![
            "run",
            model.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--target",
            target,
            "--save-media",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = edgec(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        o
    };
    let o = run(&dcgan(), "host", &[]);
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    for i in 0..2 {
        let png = std::fs::read(dir.join(format!("image_{i}.png"))).expect("PNG written");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        assert_eq!((be(16), be(20), png[24], png[25]), (32, 32, 8, 2), "32×32, 8-bit RGB");
    }
    assert!(String::from_utf8_lossy(&o.stdout).contains("[-1, 1] (tanh)"));

    run(&zoo_model("vocoder"), "interp", &["--sample-rate", "16000"]);
    let wav = std::fs::read(dir.join("waveform_0.wav")).expect("WAV written");
    let le16 = |at: usize| u16::from_le_bytes(wav[at..at + 2].try_into().unwrap());
    let le32 = |at: usize| u32::from_le_bytes(wav[at..at + 4].try_into().unwrap());
    assert_eq!((&wav[..4], &wav[8..16]), (&b"RIFF"[..], &b"WAVEfmt "[..]));
    assert_eq!((le16(22), le32(24), le16(34)), (1, 16000, 16), "mono, 16 kHz, 16-bit");
    assert_eq!(&wav[36..40], b"data");
    assert_eq!(le32(40), 512 * 2, "512 samples of 2 bytes");

    let o = run(&zoo_model("gpt2"), "interp", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("edgec: warning: --save-media: output \"logits\"") && err.contains("16 channels"),
        "{err}"
    );
    assert!(!dir.join("logits_0.wav").exists());
}

#[test]
fn save_media_errors_exit_2() {
    let m = dcgan();
    let out = tmp("media-err.npz");
    let (model, inputs) = (m.model(), m.inputs());
    let base =
        ["run", model.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "-o", out.to_str().unwrap()];
    let o = edgec(&[&base[..], &["--save-media", "/proc/no-such-dir/media"]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stderr_line(&o).starts_with("edgec: error: --save-media"));
    let o = edgec(&[&base[..], &["--sample-rate", "8000"]].concat());
    assert_eq!(o.status.code(), Some(2), "--sample-rate needs --save-media");
    let o = edgec(&[&base[..], &["--save-media", "/tmp", "--sample-rate", "0"]].concat());
    assert_eq!(o.status.code(), Some(2));
    stderr_line(&o);
}

/// `--version` names the LLVM and the backends; `-v` prints stage times and pass timings, `-q`
/// silences warnings; neither prints progress bars when standard error is not a terminal.
#[test]
fn version_and_verbosity() {
    let o = edgec(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(v.starts_with("edgec ") && v.contains("\nLLVM 22.") && v.contains("MLIR"), "{v}");
    for b in edgec_backends::registry::BACKENDS {
        assert!(v.contains(&format!("{} (enabled)", b.name)) == b.available(), "{} in {v}", b.name);
    }
    let m = dcgan();
    let dir = tmp("dcgan-verbose");
    let model = m.model();
    let o =
        edgec(&["-v", "compile", model.to_str().unwrap(), "--target", "host", "-o", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("edgec: importing: ") && err.contains("pass timings:"), "{err}");
    assert!(err.contains("edgec: generating code: "), "{err}");
    let o = edgec(&["compile", model.to_str().unwrap(), "--target", "host", "-o", dir.to_str().unwrap()]);
    assert!(o.stderr.is_empty(), "no bars off a terminal: {}", String::from_utf8_lossy(&o.stderr));

    let g = zoo_model("gpt2");
    let (model, inputs_g) = (g.model(), g.inputs());
    let out = tmp("gpt2-quiet.npz");
    let media = tmp("gpt2-quiet-media");
    let o = edgec(&[
        "-q",
        "run",
        model.to_str().unwrap(),
        "--inputs",
        inputs_g.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--save-media",
        media.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert!(o.stderr.is_empty(), "-q keeps the warning back: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(edgec(&["-q", "-v", "targets"]).status.code(), Some(2));
}
