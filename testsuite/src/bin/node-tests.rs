//! Runs ONNX node tests through the interpreter and prints one line per test.
//!
//! `cargo run --release -p edgec-testsuite --bin node-tests -- [SUBSTRING...] [--all] [--failures] [--host] [--hls] [--optimized]`
//! Without substrings every test runs; `--host` compiles each test for the host with the LLVM
//! backend (after the default pass pipeline) instead of interpreting it (tests whose ops it does
//! not compile are SKIPped); `--hls` does the same for `fpga-hls` and runs the C simulation; `--optimized` interprets the module after the default pipeline. Exit
//! status 0 iff every selected (non-excluded, non-skipped) test passes.

use edgec_testsuite::node::{cache_dir, discover, run_all_on, Backend, Class, Outcome, Tally};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only_failures = args.iter().any(|a| a == "--failures");
    let include_excluded = args.iter().any(|a| a == "--all");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let tests = match discover(&cache_dir()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let selected: Vec<_> = tests
        .into_iter()
        .filter(|t| filters.is_empty() || filters.iter().any(|f| t.name.contains(f.as_str())))
        .filter(|t| include_excluded || t.class != Class::Excluded)
        .collect();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let backend = if args.iter().any(|a| a == "--host") {
        Backend::Host
    } else if args.iter().any(|a| a == "--hls") {
        Backend::Hls
    } else if args.iter().any(|a| a == "--optimized") {
        Backend::Optimized
    } else {
        Backend::Interp
    };
    let outcomes = run_all_on(&selected, threads, backend);
    let mut failed = 0;
    let mut skipped = 0;
    for (t, o) in selected.iter().zip(&outcomes) {
        match o {
            Outcome::Pass if !only_failures => println!("PASS {}", t.name),
            Outcome::Pass => {}
            Outcome::Skip(m) => {
                skipped += 1;
                if !only_failures {
                    let m: String = m.chars().take(200).collect();
                    println!("SKIP {}: {m}", t.name);
                }
            }
            Outcome::Fail(m) => {
                failed += 1;
                let m: String = m.chars().take(400).collect();
                println!("FAIL {} [{}]: {m}", t.name, t.ops.join(","));
            }
        }
    }
    let what = match backend {
        Backend::Host => "host backend",
        Backend::Hls => "fpga-hls C simulation",
        Backend::Optimized => "interpreter after the default pipeline",
        Backend::Interp => "interpreter",
    };
    println!("{}", Tally::of(&selected, &outcomes).summary_for(what));
    println!("{} passed, {} failed, {} skipped", selected.len() - failed - skipped, failed, skipped);
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
