//! Reproducible builds: two compiles of the same model with the same flags give byte-identical
//! files (`model.o`, `model.h`, the runtime, every backend's emitted files) and the same
//! `report.json` but for `compile_seconds`. The two compiles of each pair run at the same time,
//! in directories of different names, so they also differ in CPU contention and path; the large
//! synthetic graph is compiled while other threads keep every core busy. Nothing a pass produces
//! may depend on time, threads, paths or hash-map order.

use edgec_testsuite::cli::edgec_bin;
use edgec_testsuite::zoo::{discover, zoo_dir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Every target a backend of the default build compiles files for.
const TARGETS: &[&str] = &[
    "host",
    "aarch64-unknown-linux-gnu",
    "riscv64gc-unknown-linux-gnu",
    "cortex-m7",
    "cortex-m4",
    "fpga-hls",
];

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgec-repro-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// Every file under `dir` by relative path; `report.json` without `compile_seconds`.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read output dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(dir).expect("under dir").to_string_lossy().into_owned();
            let mut bytes = std::fs::read(&p).expect("read output file");
            if rel == "report.json" {
                let mut v: serde_json::Value = serde_json::from_slice(&bytes).expect("report.json parses");
                v.as_object_mut().expect("a JSON object").remove("compile_seconds");
                bytes = serde_json::to_vec_pretty(&v).expect("serialize");
            }
            out.insert(rel, bytes);
        }
    }
    out
}

/// Compiles `model` for `target` twice at once (`a-…` and `bb-…` directories) and returns the
/// files that differ.
fn compile_twice(model: &Path, target: &str, key: &str) -> Vec<String> {
    let run = |dir: PathBuf| {
        let model = model.to_path_buf();
        let target = target.to_string();
        std::thread::spawn(move || {
            let _ = std::fs::remove_dir_all(&dir);
            let o = Command::new(edgec_bin())
                .args(["compile", model.to_str().unwrap(), "--target", &target, "-o", dir.to_str().unwrap()])
                .output()
                .expect("spawn edgec");
            assert!(o.status.success(), "{target}: {}", String::from_utf8_lossy(&o.stderr));
            dir
        })
    };
    let (a, b) = (run(tmp(&format!("a-{key}"))), run(tmp(&format!("bb-{key}-second"))));
    let (a, b) = (a.join().expect("first compile"), b.join().expect("second compile"));
    let (sa, sb) = (snapshot(&a), snapshot(&b));
    assert!(!sa.is_empty() && sa.contains_key("report.json"), "{key}: nothing written");
    let mut differ: Vec<String> =
        sa.keys().chain(sb.keys()).filter(|k| sa.get(*k) != sb.get(*k)).cloned().collect();
    differ.dedup();
    let _ = (std::fs::remove_dir_all(&a), std::fs::remove_dir_all(&b));
    differ
}

#[test]
fn every_zoo_model_builds_byte_identically_on_every_target() {
    let models = discover(&zoo_dir());
    assert!(models.len() >= 10, "the zoo is missing");
    let mut failures = Vec::new();
    for m in &models {
        for t in TARGETS {
            let differ = compile_twice(&m.model(), t, &format!("{}-{t}", m.name));
            if !differ.is_empty() {
                failures.push(format!("{} on {t}: {differ:?}", m.name));
            }
        }
    }
    assert!(failures.is_empty(), "not reproducible:\n{}", failures.join("\n"));
}

/// A 4,000-op chain (kernel formation hits its node budget) compiled twice while two more
/// threads spin: the budget counts work, never time, so load cannot change the result.
#[test]
fn a_large_graph_builds_byte_identically_under_contention() {
    let mut src = String::from("func @main(%x: tensor<8xf32>) -> (\"y\": tensor<8xf32>) {\n");
    let mut prev = "%x".to_string();
    for i in 0..4000 {
        let op = if i % 2 == 0 { "math.relu" } else { "math.sigmoid" };
        src.push_str(&format!("  %{i} = {op} {prev} : tensor<8xf32> loc(\"n{i}\")\n"));
        prev = format!("%{i}");
    }
    src.push_str(&format!("  func.return {prev} loc(unknown)\n}}\n"));
    let model = tmp("chain.eir");
    std::fs::write(&model, src).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let differ = compile_twice(&model, "host", "chain");
    stop.store(true, Ordering::Relaxed);
    spinners.into_iter().for_each(|s| s.join().unwrap());
    assert!(differ.is_empty(), "not reproducible: {differ:?}");
}
