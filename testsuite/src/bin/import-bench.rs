//! Imports a model (ONNX decode, IR construction, shape folding, verification) without printing
//! or running it, and reports what was built. Used to measure import time and peak memory:
//! `cargo run --release -p edgec-testsuite --bin import-bench -- MODEL.onnx`.

use edgec::{CompileOptions, Session};
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: import-bench MODEL.onnx");
        std::process::exit(2);
    };
    let start = Instant::now();
    let session = match Session::import(&path, &CompileOptions::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
    };
    let elapsed = start.elapsed();
    let f = session.module().main().expect("verified module has a main function");
    println!(
        "imported {path}: {} ops ({} compute), {} constant bytes, in {:.1} ms",
        f.body_ops().len(),
        f.compute_op_count(),
        f.constant_bytes(),
        elapsed.as_secs_f64() * 1e3
    );
}
