//! Runs every filetest under `testsuite/filetests/` (see `edgec_testsuite::filetest` and
//! `docs/ir.md`) as one test that lists every failing file, checks that the text form of every
//! imported node-test and zoo model round-trips, and keeps `docs/ops.md` in sync with the op
//! registry. `EDGEC_BLESS=1` rewrites expected output; `EDGEC_FILETEST=substring` runs only the
//! matching files.

use edgec_testsuite::filetest::{bless_requested, diff, run_dir};
use std::path::Path;

#[test]
fn filetests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("filetests");
    let filter = std::env::var("EDGEC_FILETEST").ok();
    let summary = run_dir(&root, filter.as_deref(), bless_requested()).unwrap_or_else(|e| panic!("{e}"));
    for path in &summary.blessed {
        println!("blessed {}", path.display());
    }
    for (path, why) in &summary.failed {
        println!("FAIL {}\n{}\n", path.display(), why.trim_end());
    }
    println!("{} passed, {} failed filetests", summary.passed, summary.failed.len());
    assert!(
        summary.failed.is_empty(),
        "{} filetest(s) failed: {}",
        summary.failed.len(),
        summary.failed.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    assert!(summary.passed > 0 || filter.is_some(), "no filetests found under {}", root.display());
}

/// `docs/ops.md` is generated from the op registry; this test fails when they drift apart
/// (and rewrites the file under `EDGEC_BLESS=1`).
#[test]
fn op_reference_doc_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ops.md");
    let generated = edgec_ir::printer::op_reference_markdown();
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == generated {
        return;
    }
    if bless_requested() {
        std::fs::write(&path, &generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("blessed {}", path.display());
        return;
    }
    panic!(
        "{} is out of date with the op registry (run with EDGEC_BLESS=1 to regenerate):\n{}",
        path.display(),
        diff(&current, &generated)
    );
}

/// Print → parse → print is the identity, and the parsed module verifies, for every model the
/// frontend imports: the ONNX node tests (every attribute kind and dtype ONNX uses) and the zoo
/// (real weights, large hex constants, symbolic dims). Models the frontend rejects are counted
/// but are the business of the conformance tests, not of this one.
#[test]
fn imported_models_round_trip() {
    let mut paths: Vec<(String, std::path::PathBuf)> = Vec::new();
    match edgec_testsuite::node::discover(&edgec_testsuite::node::cache_dir()) {
        Ok(tests) => paths.extend(tests.into_iter().map(|t| (t.name, t.dir.join("model.onnx")))),
        Err(e) => println!("node tests skipped: {e}"),
    }
    paths.extend(
        edgec_testsuite::zoo::discover(&edgec_testsuite::zoo::zoo_dir())
            .into_iter()
            .map(|m| (format!("zoo/{}", m.name), m.model())),
    );
    let (mut checked, mut not_imported, mut failures) = (0, 0, Vec::new());
    for (name, path) in &paths {
        let Ok(module) = edgec::onnx::import_model(path, &edgec::onnx::ImportOptions::default()) else {
            not_imported += 1;
            continue;
        };
        checked += 1;
        let text = edgec_ir::printer::print_module(&module);
        match edgec_ir::parser::parse_module(&text) {
            Err(e) => failures.push(format!("{name}: the printed module does not parse: {e}")),
            Ok(parsed) => {
                let again = edgec_ir::printer::print_module(&parsed);
                if again != text {
                    failures.push(format!("{name}: print → parse → print differs:\n{}", diff(&text, &again)));
                } else if let Err(e) = edgec_ir::verify::verify_module(&parsed) {
                    failures.push(format!("{name}: the parsed module does not verify: {e}"));
                }
            }
        }
    }
    for f in &failures {
        println!("FAIL {f}\n");
    }
    println!(
        "text round trip: {checked} imported models checked, {} failed; {not_imported} did not import",
        failures.len()
    );
    assert!(checked > 0, "no model imported (of {})", paths.len());
    assert!(failures.is_empty(), "{} imported models do not round-trip", failures.len());
}
