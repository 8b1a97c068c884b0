//! The graph optimization pipeline on whole models:
//! - differential: every zoo model gives the same outputs in the reference interpreter before
//!   and after edgec's default pipeline (the node tests get the same check in
//!   `node_conformance.rs`);
//! - fusion: the pipeline leaves at most as many kernels as the graph had compute ops;
//! - determinism: compiling a model twice gives byte-identical optimized IR and object code.

use edgec::{CompileOptions, Session, Target};
use edgec_testsuite::compare::same_outputs;
use edgec_testsuite::zoo::{discover, zoo_dir};
use std::time::Instant;

/// fold-batchnorm rounds folded weights once, and recognized ops (gelu, layer_norm...) round
/// differently from their decompositions; both stay far below the zoo's 1e-4 acceptance bound.
const PIPELINE_REL_TOL: f64 = 1e-5;

#[test]
fn zoo_models_match_before_and_after_the_pipeline() {
    let models = discover(&zoo_dir());
    assert!(models.len() >= 7, "only {} zoo models", models.len());
    let mut failures = Vec::new();
    for m in &models {
        let session = Session::import(m.model(), &CompileOptions::default())
            .unwrap_or_else(|e| panic!("{}: import: {e}", m.name));
        let inputs = session.read_inputs(m.inputs()).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let t = Instant::now();
        let (optimized, _) = session.optimized().unwrap_or_else(|e| panic!("{}: pipeline: {e}", m.name));
        let pipeline_ms = t.elapsed().as_secs_f64() * 1e3;
        let before_f = session.module().main().unwrap();
        let after_f = optimized.main().unwrap();
        let before = edgec_ir::interp::run_function(before_f, inputs.clone()).unwrap();
        let after = match edgec_ir::interp::run_function(after_f, inputs) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{}: the optimized module does not run: {e}", m.name));
                continue;
            }
        };
        let verdict = same_outputs(&before, &after, PIPELINE_REL_TOL);
        println!(
            "{} {:<22} ops {:>4} -> {:>4}   pipeline {pipeline_ms:>6.1} ms",
            if verdict.is_ok() { "ok  " } else { "FAIL" },
            m.name,
            before_f.compute_op_count(),
            after_f.compute_op_count(),
        );
        if after_f.compute_op_count() > before_f.compute_op_count() {
            failures.push(format!("{}: the pipeline added ops", m.name));
        }
        if let Err(e) = verdict {
            failures.push(format!("{}: {e}", m.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn compiles_are_deterministic() {
    let target = Target::parse("host").unwrap();
    for m in
        discover(&zoo_dir()).iter().filter(|m| ["dcgan", "llama", "vae_decoder"].contains(&m.name.as_str()))
    {
        let session = Session::import(m.model(), &CompileOptions::default()).unwrap();
        let ir = |s: &Session| edgec_ir::printer::print_module(&s.optimized().unwrap().0);
        assert_eq!(ir(&session), ir(&session), "{}: optimized IR differs between runs", m.name);
        let a = session.compile(&target, "model", false).unwrap();
        let b = session.compile(&target, "model", false).unwrap();
        assert!(
            a.file("model.o") == b.file("model.o"),
            "{}: object code differs between two compiles",
            m.name
        );
        assert_eq!(a.file("model.h"), b.file("model.h"), "{}: header differs", m.name);
    }
}
