//! How compile time grows with graph size: synthetic graphs at several sizes, optimized for the
//! host's backend and lowered, with the seconds per 1k ops of every pass and of lowering. Compile
//! time should grow linearly, so each column should stay flat down the rows.
//!
//! `cargo run --release -p edgec-testsuite --bin scale-bench -- [chain] [SIZES...]`
//! (default: a chain of alternating relu and sigmoid on an 8-element tensor, at 1000 2000 4000
//! 8000 ops).

use edgec::{Session, Target};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Instant;

/// A chain of `n` elementwise ops, alternating relu and sigmoid, on `tensor<8xf32>`.
fn chain(n: usize) -> String {
    let mut s = String::from("func @main(%x: tensor<8xf32>) -> (\"y\": tensor<8xf32>) {\n");
    let mut prev = "%x".to_string();
    for i in 0..n {
        let op = if i % 2 == 0 { "math.relu" } else { "math.sigmoid" };
        writeln!(s, "  %{i} = {op} {prev} : tensor<8xf32> loc(\"n{i}\")").unwrap();
        prev = format!("%{i}");
    }
    writeln!(s, "  func.return {prev} loc(unknown)\n}}").unwrap();
    s
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let shape = if args.first().is_some_and(|a| a == "chain") { args.remove(0) } else { "chain".into() };
    let sizes: Vec<usize> = if args.is_empty() {
        vec![1000, 2000, 4000, 8000]
    } else {
        args.iter().map(|a| a.parse().expect("sizes are integers")).collect()
    };
    let host = Target::parse("host").expect("host parses");
    let backend = edgec::target::lookup(&host).expect("this build has the host backend");
    let mut rows: Vec<(usize, BTreeMap<String, f64>)> = Vec::new();
    for &n in &sizes {
        let module = edgec_ir::parser::parse_module(&chain(n)).expect("the synthetic graph parses");
        let mut session = Session::from_module(module).expect("the synthetic graph verifies");
        session.set_target(host.clone());
        let opt = session.optimize_for(backend.as_ref()).expect("the pipeline runs");
        let mut per_pass: BTreeMap<String, f64> = BTreeMap::new();
        for t in &opt.timings {
            *per_pass.entry(t.pass.to_string()).or_default() += t.duration.as_secs_f64();
        }
        let start = Instant::now();
        let f = opt.module.main().expect("a main function");
        let program = edgec_backends::lower::lower(f, &edgec_backends::lower::LowerOptions::default())
            .expect("the chain lowers");
        per_pass.insert("(lower)".into(), start.elapsed().as_secs_f64());
        eprintln!("{shape} {n}: {} kernel calls", program.calls.len());
        rows.push((n, per_pass));
    }
    let columns: Vec<String> = rows[0].1.keys().cloned().collect();
    print!("{:>8}", "ops");
    for c in &columns {
        print!(" {c:>15}");
    }
    println!("   (seconds per 1k ops, {shape})");
    for (n, per_pass) in &rows {
        print!("{n:>8}");
        for c in &columns {
            print!(" {:>15.4}", per_pass.get(c).copied().unwrap_or(0.0) * 1000.0 / *n as f64);
        }
        println!();
    }
}
