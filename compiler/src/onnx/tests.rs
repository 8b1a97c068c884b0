//! Frontend tests: small models built with the prost structs, encoded, and imported.

use super::*;

/// Imports every ONNX backend node-test model and tallies the failures by kind. Run with
/// `cargo test -p edgec --lib onnx::tests::node_test_models -- --ignored --nocapture`.
#[test]
#[ignore]
fn node_test_models() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/cache/node");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("node tests generated")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    let mut ok = 0;
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let verbose = std::env::var("VERBOSE").is_ok();
    for d in &dirs {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        match import_model(&d.join("model.onnx"), &ImportOptions::default()) {
            Ok(_) => ok += 1,
            Err(e) => {
                let msg = e.to_string();
                let key = match &e {
                    ImportError::Shape { message, .. } if message.contains("not implemented") => "shape: stub".to_string(),
                    ImportError::BadAttribute { message, .. } if message.contains("(not implemented") || message.contains("edgec op") => "bad-attribute: not declared".to_string(),
                    ImportError::UnsupportedOp { op_type, domain, .. } => format!("unsupported-op {domain}:{op_type}"),
                    _ => e.kind().to_string(),
                };
                if verbose {
                    println!("{name}: {msg}");
                }
                by_kind.entry(key).or_default().push(format!("{name}: {msg}"));
            }
        }
    }
    println!("imported {ok} of {} models", dirs.len());
    let mut kinds: Vec<_> = by_kind.iter().collect();
    kinds.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    for (k, v) in kinds {
        println!("{:5}  {k}   e.g. {}", v.len(), v[0]);
    }
}
