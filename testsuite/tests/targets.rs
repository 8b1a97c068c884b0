//! Every zoo model compiled for every machine target and executed (natively on the host, under
//! qemu-user for AArch64 and RISC-V 64, under qemu-system-arm on a Cortex-M7 board), against the
//! reference interpreter: max abs error ≤ 1e-4 × max |reference| per output.
//!
//! A model skips Cortex-M7 only when its weights cannot fit the board's 4 MiB code memory (the
//! skip is printed with the size).

use edgec::{CompileOptions, Session, Target};
use edgec_testsuite::compare::max_rel_error;
use edgec_testsuite::zoo::{discover_with_large, zoo_dir, ZooModel, ZOO_REL_TOL};
use std::sync::Mutex;

const TARGETS: &[&str] = &["host", "aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu", "cortex-m7"];
/// Code memory of the mps2-an500 board.
const M7_FLASH: u64 = 4 << 20;

fn check(m: &ZooModel, target: &str) -> Result<String, String> {
    let session =
        Session::import(m.model(), &CompileOptions::default()).map_err(|e| format!("import: {e}"))?;
    let inputs = session.read_inputs(m.inputs()).map_err(|e| format!("inputs: {e}"))?;
    let expected = session.run(inputs.clone()).map_err(|e| format!("interpreter: {e}"))?;
    let t = Target::parse(target).map_err(|e| e.to_string())?;
    let compiled = session.compile(&t, "model", false).map_err(|e| format!("compile: {e}"))?;
    let weights = compiled.program.weights_bytes();
    if target == "cortex-m7" && weights + compiled.object.len() as u64 / 4 > M7_FLASH {
        return Ok(format!("skip (weights {weights} bytes exceed the board's {M7_FLASH}-byte flash)"));
    }
    let (outputs, _) = session.execute(&compiled, &inputs).map_err(|e| format!("execute: {e}"))?;
    let mut worst = 0.0f64;
    for ((name, e), a) in session.output_names().iter().zip(&expected).zip(&outputs) {
        let err = max_rel_error(e, a).map_err(|x| format!("output {name:?}: {x}"))?;
        if err > ZOO_REL_TOL {
            return Err(format!("output {name:?}: max err/max|ref| {err:.2e}"));
        }
        worst = worst.max(err);
    }
    Ok(format!("max err/max|ref| {worst:.2e}"))
}

#[test]
fn zoo_models_match_the_interpreter_on_every_target() {
    let models = discover_with_large(&zoo_dir());
    assert!(models.len() >= 7, "only {} zoo models", models.len());
    let jobs: Mutex<Vec<(usize, &str)>> =
        Mutex::new((0..models.len()).flat_map(|i| TARGETS.iter().map(move |&t| (i, t))).rev().collect());
    let failures = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let Some((i, t)) = jobs.lock().unwrap().pop() else { break };
                let m = &models[i];
                match check(m, t) {
                    Ok(msg) => println!("ok   {:<22} {t:<30} {msg}", m.name),
                    Err(e) => {
                        println!("FAIL {:<22} {t:<30} {e}", m.name);
                        failures.lock().unwrap().push(format!("{} on {t}: {e}", m.name));
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
