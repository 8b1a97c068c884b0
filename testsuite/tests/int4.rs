//! `--quantize int4-weights`: the compiled int4 kernels against the interpreter's reference
//! semantics of the same quantized module on every machine target, accuracy of the int4 LMs of
//! the zoo against their fp32 references, and the command line.

use edgec::{CompileOptions, Quantize, Session, Target};
use edgec_testsuite::cli::edgec;
use edgec_testsuite::compare::max_rel_error;
use edgec_testsuite::zoo::{discover, zoo_dir, ZooModel, ZOO_REL_TOL};

const INT4: Quantize = Quantize::Int4Weights { group_size: 64 };

fn model(name: &str) -> ZooModel {
    discover(&zoo_dir()).into_iter().find(|m| m.name == name).unwrap_or_else(|| panic!("zoo model {name}"))
}

fn session(m: &ZooModel) -> Session {
    let opts = CompileOptions { quantize: INT4, ..CompileOptions::default() };
    Session::import(m.model(), &opts).expect("import")
}

/// The compiled model (host, AArch64 and RISC-V under qemu-user, Cortex-M7 under qemu-system)
/// computes what the interpreter computes for the quantized module.
#[test]
fn int4_models_match_the_interpreter_on_every_target() {
    let mut failures = Vec::new();
    for name in ["gpt2", "llama"] {
        let m = model(name);
        let s = session(&m);
        let inputs = s.read_inputs(m.inputs()).expect("inputs");
        let want = s.run(inputs.clone()).expect("interpreter");
        for target in ["host", "aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu", "cortex-m7"] {
            let t = Target::parse(target).unwrap();
            let c = s.compile(&t, "model", false).expect("compile");
            assert_eq!(c.report["quantization"]["mode"], "int4-weights");
            let (have, _) = s.execute(&c, &inputs).unwrap_or_else(|e| panic!("{name} on {target}: {e}"));
            let err = max_rel_error(&want[0], &have[0]).unwrap();
            println!("{name:<8} {target:<30} max err/max|ref| {err:.2e}");
            if err > ZOO_REL_TOL {
                failures.push(format!("{name} on {target}: {err:.2e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Cosine similarity, SNR (dB) and top-1 agreement of the last axis, against a reference.
fn accuracy(want: &[f32], have: &[f32], classes: usize) -> (f64, f64, f64) {
    let (mut dot, mut ww, mut hh, mut ee) = (0f64, 0f64, 0f64, 0f64);
    for (&a, &b) in want.iter().zip(have) {
        let (a, b) = (a as f64, b as f64);
        dot += a * b;
        ww += a * a;
        hh += b * b;
        ee += (a - b) * (a - b);
    }
    let argmax = |v: &[f32]| (0..v.len()).max_by(|&i, &j| v[i].total_cmp(&v[j])).unwrap();
    let rows = want.len() / classes;
    let same = (0..rows)
        .filter(|r| argmax(&want[r * classes..][..classes]) == argmax(&have[r * classes..][..classes]))
        .count();
    (dot / (ww.sqrt() * hh.sqrt()), 10.0 * (ww / ee).log10(), same as f64 / rows as f64)
}

/// The int4 LMs against the fp32 ONNX Runtime references (random-weight models: the logits are
/// nearly flat, so top-1 agreement is a weak signal; cosine and SNR are the measure).
#[test]
fn int4_language_models_stay_close_to_fp32() {
    for (name, min_cos) in [("gpt2", 0.95), ("gpt2_dynamo", 0.95), ("llama", 0.9), ("llama_dynamo", 0.9)] {
        let m = model(name);
        let s = session(&m);
        let have = s.run(s.read_inputs(m.inputs()).unwrap()).unwrap();
        let reference = edgec::io::read_npz(&m.reference()).unwrap();
        let to_f32 = |t: &edgec_ir::Tensor| t.to_f64_vec().into_iter().map(|v| v as f32).collect::<Vec<_>>();
        let (want, have) = (to_f32(&reference[0].1), to_f32(&have[0]));
        let classes = *reference[0].1.shape().last().unwrap();
        let (cos, snr, top1) = accuracy(&want, &have, classes);
        println!("{name:<14} cosine {cos:.4} SNR {snr:.2} dB top-1 {:.1}%", top1 * 100.0);
        assert!(cos >= min_cos && snr > 5.0, "{name}: cosine {cos:.4}, SNR {snr:.2} dB");
    }
}

#[test]
fn cli_int4_weights_compile_reports_and_validates_flags() {
    let m = model("gpt2");
    let dir = std::env::temp_dir().join(format!("edgec-int4-{}", std::process::id()));
    let (model, out) = (m.model(), dir.join("q"));
    let args = |extra: &[&str]| {
        let mut a = vec!["compile", model.to_str().unwrap(), "--target", "host", "-o", out.to_str().unwrap()];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| edgec(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(args(&["--quantize", "int4-weights"]));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["quantize"], "int4-weights");
    // The fp32 compile has weights_bytes 665,112 (the exporter stored the tied table twice).
    let weights = report["weights_bytes"].as_u64().unwrap();
    assert!(weights < 665_112 * 15 / 100, "weights_bytes {weights}");
    for bad in [
        &["--quantize", "int4-weights", "--group-size", "0"][..],
        &["--quantize", "int4-weights", "--group-size", "48"],
        &["--quantize", "int4-weights", "--group-size=-4"],
        &["--group-size", "32"],
    ] {
        let o = run(args(bad));
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1, "{bad:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
