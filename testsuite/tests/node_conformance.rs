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
