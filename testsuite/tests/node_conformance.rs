//! ONNX backend node tests through the reference interpreter.
//!
//! Fails when a non-excluded test fails without an allow-list entry, or when an allow-list
//! entry no longer matches any failing test (so the list stays honest).

use edgec_testsuite::node::{allowlist_path, cache_dir, discover, run_all, AllowList, Class, Outcome, Tally};

#[test]
fn node_conformance_interpreter() {
    let tests = discover(&cache_dir()).unwrap_or_else(|e| panic!("{e}"));
    let tests: Vec<_> = tests.into_iter().filter(|t| t.class != Class::Excluded).collect();
    assert!(tests.len() > 1000, "only {} node tests found; regenerate the cache", tests.len());
    let allow = AllowList::load(&allowlist_path()).unwrap_or_else(|e| panic!("{e}"));
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let outcomes = run_all(&tests, threads);

    let mut unexpected = Vec::new();
    let mut allowed = 0;
    for (t, o) in tests.iter().zip(&outcomes) {
        if let Outcome::Fail(m) = o {
            if allow.matches(&t.name).is_some() {
                allowed += 1;
            } else {
                let m: String = m.chars().take(300).collect();
                unexpected.push(format!("{} [{}]: {m}", t.name, t.ops.join(",")));
            }
        }
    }
    let stale: Vec<&str> = allow
        .entries
        .iter()
        .filter(|(pattern, _)| {
            let matching: Vec<_> = tests
                .iter()
                .zip(&outcomes)
                .filter(|(t, _)| match pattern.strip_suffix('*') {
                    Some(p) => t.name.starts_with(p),
                    None => &t.name == pattern,
                })
                .collect();
            matching.is_empty() || matching.iter().all(|(_, o)| matches!(o, Outcome::Pass))
        })
        .map(|(p, _)| p.as_str())
        .collect();

    let tally = Tally::of(&tests, &outcomes);
    println!("{}", tally.summary());
    println!("allow-listed failures: {allowed}");
    let failed = outcomes.iter().filter(|o| matches!(o, Outcome::Fail(_))).count();
    println!("node-tests: {} passed, {} failed", tests.len() - failed, failed);
    for u in &unexpected {
        println!("UNEXPECTED FAIL {u}");
    }
    for s in &stale {
        println!("STALE allow-list entry (passes now or matches nothing): {s}");
    }
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{} unexpected failures, {} stale allow-list entries (see output above)",
        unexpected.len(),
        stale.len()
    );
}

/// The same node tests compiled for the host by the LLVM backend: every test the interpreter
/// passes and the backend compiles must pass too. Tests whose ops or types the backend does not
/// compile are counted (and listed with `node-tests --host`), not failed.
#[test]
fn node_conformance_host_backend_matches_interpreter() {
    backend_matches_interpreter(edgec_testsuite::node::Backend::Host, "host backend");
}

/// The same for `fpga-hls`: each test's HLS project built with g++ and run as its C simulation
/// (`node-tests --hls` lists them).
#[test]
fn node_conformance_hls_backend_matches_interpreter() {
    backend_matches_interpreter(edgec_testsuite::node::Backend::Hls, "fpga-hls backend");
}

fn backend_matches_interpreter(backend: edgec_testsuite::node::Backend, what: &str) {
    use edgec_testsuite::node::{run_all_on, Backend};
    let tests = discover(&cache_dir()).unwrap_or_else(|e| panic!("{e}"));
    let tests: Vec<_> = tests.into_iter().filter(|t| t.class != Class::Excluded).collect();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let interp = run_all_on(&tests, threads, Backend::Interp);
    let host = run_all_on(&tests, threads, backend);
    let (mut compiled, mut passed, mut skipped) = (0, 0, 0);
    let mut regressions = Vec::new();
    for ((t, i), h) in tests.iter().zip(&interp).zip(&host) {
        match h {
            Outcome::Skip(_) => skipped += 1,
            Outcome::Pass => {
                compiled += 1;
                passed += 1;
            }
            Outcome::Fail(m) => {
                compiled += 1;
                if matches!(i, Outcome::Pass) {
                    let m: String = m.chars().take(300).collect();
                    regressions.push(format!("{} [{}]: {m}", t.name, t.ops.join(",")));
                }
            }
        }
    }
    let interp_pass_compiled = tests
        .iter()
        .zip(&interp)
        .zip(&host)
        .filter(|((_, i), h)| matches!(i, Outcome::Pass) && !matches!(h, Outcome::Skip(_)))
        .count();
    println!(
        "{what}: {compiled} of {} tests compiled, {passed} pass; the interpreter passes {interp_pass_compiled} of the compiled ones; {skipped} not compiled",
        tests.len()
    );
    for r in &regressions {
        println!("{what} FAIL (interpreter passes) {r}");
    }
    assert!(
        regressions.is_empty(),
        "{} tests pass in the interpreter but fail on the {what}",
        regressions.len()
    );
}

/// The differential check of the pass pipeline: every node test the interpreter passes on the
/// imported module must pass on the module after edgec's default pipeline (canonicalization,
/// e-graph rewriting, fusion), interpreted the same way.
#[test]
fn node_conformance_pipeline_matches_interpreter() {
    use edgec_testsuite::node::{run_all_on, Backend};
    let tests = discover(&cache_dir()).unwrap_or_else(|e| panic!("{e}"));
    let tests: Vec<_> = tests.into_iter().filter(|t| t.class != Class::Excluded).collect();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let before = run_all_on(&tests, threads, Backend::Interp);
    let after = run_all_on(&tests, threads, Backend::Optimized);
    let mut regressions = Vec::new();
    let mut passed = 0;
    for ((t, b), a) in tests.iter().zip(&before).zip(&after) {
        match (b, a) {
            (_, Outcome::Pass) => passed += 1,
            (Outcome::Pass, Outcome::Fail(m) | Outcome::Skip(m)) => {
                let m: String = m.chars().take(300).collect();
                regressions.push(format!("{} [{}]: {m}", t.name, t.ops.join(",")));
            }
            _ => {}
        }
    }
    let before_passed = before.iter().filter(|o| matches!(o, Outcome::Pass)).count();
    println!("after the default pipeline: {passed} of {} pass (before: {before_passed})", tests.len());
    for r in &regressions {
        println!("PIPELINE FAIL (passes before) {r}");
    }
    assert!(regressions.is_empty(), "{} tests pass before the pipeline but fail after it", regressions.len());
}
