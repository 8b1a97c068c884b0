//! `edgec bench --profile` (docs/profiling.md): per-kernel times that add up to the run, JSON and
//! Chrome trace output, hooks compiled in only for profiling, and its one-line errors.

use edgec_testsuite::cli::edgec;
use edgec_testsuite::zoo::{discover, zoo_dir, ZooModel};
use serde_json::Value;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgec-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn zoo(name: &str) -> ZooModel {
    discover(&zoo_dir()).into_iter().find(|m| m.name == name).expect("zoo model")
}

fn profile_json(m: &ZooModel, extra: &[&str]) -> Value {
    let (model, inputs) = (m.model(), m.inputs());
    let mut args =
        vec!["bench", model.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--profile", "--json"];
    args.extend_from_slice(extra);
    let o = edgec(&args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).expect("one JSON object")
}

/// The kernels: sorted by time, each with its ONNX nodes, shares summing to 1; returns their sum.
fn check_kernels(v: &Value, calls: usize) -> f64 {
    let kernels = v["kernels"].as_array().expect("kernels");
    assert_eq!(kernels.len(), calls, "one entry per kernel call");
    let times: Vec<f64> = kernels.iter().map(|k| k["time"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "not sorted by time: {times:?}");
    for k in kernels {
        let nodes = k["nodes"].as_array().unwrap();
        assert!(!nodes.is_empty() && nodes.iter().all(|n| !n.as_str().unwrap().is_empty()), "{k}");
        assert!(k["kernel"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    }
    let share: f64 = kernels.iter().map(|k| k["share"].as_f64().unwrap()).sum();
    assert!((share - 1.0).abs() < 1e-6, "shares sum to {share}");
    let sum: f64 = times.iter().sum();
    assert!((sum - v["kernels_total"].as_f64().unwrap()).abs() <= 1e-6 * sum);
    sum
}

/// The Trace Event Format as chrome://tracing and Perfetto read it: a `traceEvents` array of
/// objects with a name, a phase, pid and tid; complete events ("X") with microsecond `ts`/`dur`;
/// the kernels inside the run, back to back.
fn check_trace(path: &std::path::Path, calls: usize) {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("trace written")).expect("JSON");
    let events = v["traceEvents"].as_array().expect("traceEvents array");
    let mut run = None;
    let mut kernels = Vec::new();
    for e in events {
        assert!(e["name"].is_string() && e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
        match e["ph"].as_str() {
            Some("M") => assert!(e["args"]["name"].is_string(), "{e}"),
            Some("X") => {
                let (ts, dur) = (e["ts"].as_f64().expect("ts"), e["dur"].as_f64().expect("dur"));
                assert!(ts >= 0.0 && dur >= 0.0 && e["args"].is_object(), "{e}");
                match e["cat"].as_str() {
                    Some("model") => run = Some((ts, dur)),
                    Some("kernel") => kernels.push((ts, dur)),
                    other => panic!("unexpected category {other:?}"),
                }
            }
            other => panic!("unexpected phase {other:?} in {e}"),
        }
    }
    let (rts, rdur) = run.expect("a run event");
    assert_eq!(kernels.len(), calls);
    let end = kernels.iter().fold(rts, |at, &(ts, dur)| {
        assert!((ts - at).abs() < 1e-6 * (1.0 + at), "kernel at {ts}, previous ended at {at}");
        ts + dur
    });
    assert!(end <= rts + rdur * (1.0 + 1e-9), "kernels end at {end}, after the run ({rdur})");
}

/// GPT-2 on the host: the kernels' median times add up to the run's, instrumented or not (loosely:
/// the machine is shared), and the trace is well formed.
#[test]
fn host_profile_adds_up_and_writes_a_chrome_trace() {
    let m = zoo("gpt2");
    let trace = tmp("gpt2-trace.json");
    let t = trace.to_str().unwrap();
    let v = profile_json(&m, &["--runs", "10", "--trace", t, "--peak-gflops", "100", "--peak-gbps", "20"]);
    assert_eq!(v["unit"], "ns");
    let calls = 34;
    let sum = check_kernels(&v, calls);
    let whole = v["whole"].as_f64().unwrap();
    assert!(sum <= whole * 1.02 && sum >= whole * 0.75, "kernels {sum} ns, run {whole} ns");
    let plain = v["uninstrumented_median_ms"].as_f64().unwrap() * 1e6;
    assert!(sum >= plain * 0.6 && sum <= plain * 1.6, "kernels {sum} ns, run without hooks {plain} ns");
    assert_eq!(v["peak"]["gflops_source"], "--peak-gflops");
    assert!(v["kernels"][0]["gops_per_s"].as_f64().unwrap() > 0.0);
    assert!(["compute", "memory"].contains(&v["kernels"][0]["bound"].as_str().unwrap()));
    check_trace(&trace, calls);
}

/// On Cortex-M7 under qemu-system-arm the counts are instructions (deterministic with -icount),
/// and the hooks around 34 calls cost a few hundred of the run's millions.
#[test]
fn cortex_m7_profile_counts_instructions() {
    let m = zoo("gpt2");
    let v = profile_json(&m, &["--target", "cortex-m7", "--runs", "1"]);
    assert_eq!(v["unit"], "instructions");
    let sum = check_kernels(&v, 34);
    let whole = v["whole"].as_f64().unwrap();
    assert!(sum <= whole && sum >= whole * 0.99, "kernels {sum}, run {whole} instructions");
    assert!(v["kernels"][0].get("gops_per_s").is_none(), "no rates without a real clock");
}

/// Hooks exist only in a profiling build: the code `compile` emits calls the kernels alone.
#[test]
fn compiled_code_has_no_hooks() {
    let m = zoo("gpt2");
    let dir = tmp("gpt2-plain");
    let o = edgec(&[
        "compile",
        m.model().to_str().unwrap(),
        "--target",
        "host",
        "-o",
        dir.to_str().unwrap(),
        "--emit-llvm",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let ll = std::fs::read_to_string(dir.join("model.ll")).unwrap();
    assert!(ll.contains("define") && !ll.contains("edgec_rt_kernel_hook"));
}

#[test]
fn profile_errors_are_one_line_and_exit_2() {
    let m = zoo("gpt2");
    let (model, inputs) = (m.model(), m.inputs());
    let (model, inputs) = (model.to_str().unwrap(), inputs.to_str().unwrap());
    for args in [
        vec!["bench", model, "--inputs", inputs, "--profile", "--trace", "/nonexistent/dir/t.json"],
        vec!["bench", model, "--inputs", inputs, "--trace", "t.json"],
        vec!["bench", model, "--inputs", inputs, "--profile", "--target", "interp"],
        vec!["bench", model, "--inputs", inputs, "--profile", "--peak-gflops", "0"],
    ] {
        let o = edgec(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        let err = String::from_utf8_lossy(&o.stderr);
        // clap's own usage errors span a few lines; ours are one line.
        if !args.contains(&"t.json") {
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}
