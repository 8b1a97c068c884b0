//! Every committed zoo model through the reference interpreter against ONNX Runtime's
//! reference outputs (max abs error ≤ 1e-4 × max |reference|), plus an insta snapshot of each
//! model's imported IR (weights elided). `EDGEC_BLESS=1` (or `INSTA_UPDATE=always`) rewrites
//! the snapshots.

use edgec::{CompileOptions, Session};
use edgec_ir::printer::{print_module_with, PrintOptions};
use edgec_testsuite::zoo::{check_model, discover, discover_with_large, zoo_dir, ZOO_REL_TOL};

fn models() -> Vec<edgec_testsuite::zoo::ZooModel> {
    let models = discover(&zoo_dir());
    assert!(models.len() >= 7, "only {} zoo models found in {}", models.len(), zoo_dir().display());
    models
}

#[test]
fn zoo_models_match_onnx_runtime() {
    let mut failures = Vec::new();
    models();
    for m in discover_with_large(&zoo_dir()) {
        match check_model(&m) {
            Ok(r) => {
                let worst = r.errors.iter().map(|(_, e)| *e).fold(0.0, f64::max);
                let ok = worst <= ZOO_REL_TOL;
                println!(
                    "{} {:<22} import {:>8.1} ms  run {:>9.1} ms  max err/max|ref| {worst:.2e}",
                    if ok { "ok  " } else { "FAIL" },
                    m.name,
                    r.import_time.as_secs_f64() * 1e3,
                    r.run_time.as_secs_f64() * 1e3
                );
                if !ok {
                    failures.push(format!("{}: {:?}", m.name, r.errors));
                }
            }
            Err(e) => {
                println!("FAIL {:<22} {e}", m.name);
                failures.push(format!("{}: {e}", m.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn zoo_imported_ir_snapshots() {
    if std::env::var("EDGEC_BLESS").is_ok_and(|v| v == "1") {
        // SAFETY: set before any snapshot assertion and no other thread reads the environment.
        std::env::set_var("INSTA_UPDATE", "always");
    }
    for m in models() {
        let session = Session::import(m.model(), &CompileOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let text = print_module_with(session.module(), PrintOptions { elide_constants_over: Some(64) });
        insta::assert_snapshot!(format!("import_{}", m.name), text);
    }
}
