//! Runs every filetest under `testsuite/filetests/` (see `edgec_testsuite::filetest` and
//! `docs/ir.md`) as one test that lists every failing file, and keeps `docs/ops.md` in sync with
//! the op registry. `EDGEC_BLESS=1` rewrites expected output; `EDGEC_FILETEST=substring` runs
//! only the matching files.

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
