//! Replays the committed fuzz corpus through the fuzz harnesses (`edgec_testsuite::fuzz`): the
//! seeds in `testsuite/fuzz/corpus/<target>/` and every crasher the fuzzer found, minimized, in
//! `testsuite/fuzz/regressions/<target>/`. A file fails when edgec panics on it, reports an error
//! that is not the input's fault or is more than one line, accepts it inconsistently (IR that does
//! not verify or print back), or makes an allocation above the harness's cap (which aborts the
//! test binary with a message). See docs/testing.md, "Fuzzing".

use edgec_testsuite::fuzz::{CappedAlloc, TARGETS};
use std::path::Path;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn fuzz_corpus_and_regressions_replay_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut failures = Vec::new();
    for (target, harness) in TARGETS {
        let seeds = files(&root.join("corpus").join(target));
        let crashers = files(&root.join("regressions").join(target));
        // The corpus is the point of the test: an emptied directory must not pass silently.
        assert!(
            seeds.len() >= 10,
            "{target}: only {} seed files in testsuite/fuzz/corpus/{target}",
            seeds.len()
        );
        for f in seeds.iter().chain(&crashers) {
            let data = std::fs::read(f).unwrap();
            eprintln!("{target}: {}", f.display());
            if let Err(e) = std::panic::catch_unwind(|| harness(&data)) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{target} {}: {}", f.display(), msg.lines().next().unwrap_or("")));
            }
        }
        println!("{target}: {} seeds, {} regressions replayed", seeds.len(), crashers.len());
    }
    assert!(
        failures.is_empty(),
        "{} corpus files break the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The harness's error check must reject what the contract forbids, or the replay above proves
/// nothing.
#[test]
fn fuzz_error_check_rejects_internal_and_multi_line_errors() {
    use edgec_testsuite::fuzz::check_error;
    let rejects = |e: edgec::Error| std::panic::catch_unwind(|| check_error("t", &e)).is_err();
    assert!(rejects(edgec::Error::Internal("boom".into())));
    assert!(rejects(edgec::Error::Usage("two\nlines".into())));
    assert!(!rejects(edgec::Error::Usage("one line".into())));
}
