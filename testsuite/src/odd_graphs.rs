//! Differential checks of the random "valid but odd" ONNX graphs of
//! `testsuite/scripts/gen_odd_graphs.py`: each graph directory holds `model.onnx`, `inputs.npz`
//! and `ref.npz` (ONNX Runtime's outputs). [`check_graph`] runs it through `edgec run` for a
//! target and compares every output with the zoo's bound (max abs error ≤ 1e-4 × max |ref|), or
//! an absolute error ≤ [`ABS_FLOOR`] for outputs that are all nearly zero.
//! Exit code 2 with a one-line message (an op or case edgec does not support) is allowed and
//! counted, not failed. Used by `tests/odd_graphs.rs` (the committed set in
//! `testsuite/odd-graphs/`) and the `odd-graphs` bin (any generated directory).

use crate::cli::edgec;
use crate::compare::max_rel_error;
use crate::zoo::ZOO_REL_TOL;
use std::path::{Path, PathBuf};

/// Outputs whose largest magnitude is tiny (a sigmoid of -16 is 9.3e-8) are compared with this
/// absolute bound instead: ONNX Runtime's own f32 approximations are off by more than 1e-4 of such
/// a value (it gives 1.19e-7 for the sigmoid of -16.19, whose true value edgec computes).
pub const ABS_FLOOR: f64 = 1e-6;

/// What one graph did on one target.
#[derive(Debug)]
pub enum Outcome {
    /// Every output within the bound; the worst relative error.
    Match(f64),
    /// Exit 2 with this one-line message.
    Unsupported(String),
    /// A contract break or a wrong result.
    Fail(String),
}

/// The graph directories under `dir` (those holding a `model.onnx`), sorted by name.
pub fn graph_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("model.onnx").is_file()).collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs `edgec run GRAPH/model.onnx --inputs GRAPH/inputs.npz --target TARGET` and compares with
/// `GRAPH/ref.npz`. `scratch` is a directory for the output file.
pub fn check_graph(graph: &Path, target: &str, scratch: &Path) -> Outcome {
    let out = scratch
        .join(format!("{}-{target}.npz", graph.file_name().and_then(|n| n.to_str()).unwrap_or("graph")));
    let _ = std::fs::remove_file(&out);
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_string();
    let model = s(&graph.join("model.onnx"));
    let inputs = s(&graph.join("inputs.npz"));
    let o = s(&out);
    let r = edgec(&["run", &model, "--inputs", &inputs, "-o", &o, "--target", target]);
    let stderr = String::from_utf8_lossy(&r.stderr).trim_end().to_string();
    match r.status.code() {
        Some(0) => {}
        Some(2) if !stderr.is_empty() && !stderr.contains('\n') => return Outcome::Unsupported(stderr),
        code => return Outcome::Fail(format!("exit {code:?}: {stderr}")),
    }
    let reference = match edgec::io::read_npz(&graph.join("ref.npz")) {
        Ok(r) => r,
        Err(e) => return Outcome::Fail(format!("reading the reference: {e}")),
    };
    let got = match edgec::io::read_npz(&out) {
        Ok(g) => g,
        Err(e) => return Outcome::Fail(format!("reading edgec's outputs: {e}")),
    };
    let mut worst = 0.0f64;
    for (name, want) in &reference {
        let Some((_, have)) = got.iter().find(|(n, _)| n == name) else {
            return Outcome::Fail(format!("no output {name:?}"));
        };
        if have.scalar_type() != want.scalar_type() {
            return Outcome::Fail(format!(
                "output {name:?}: {} but ONNX Runtime gives {}",
                have.scalar_type(),
                want.scalar_type()
            ));
        }
        match max_rel_error(want, have) {
            Ok(e) if e <= ZOO_REL_TOL => worst = worst.max(e),
            Ok(e) if max_abs_error(want, have) <= ABS_FLOOR => worst = worst.max(e),
            Ok(e) => return Outcome::Fail(format!("output {name:?}: max err / max |ref| = {e:.3e}")),
            Err(e) => return Outcome::Fail(format!("output {name:?}: {e}")),
        }
    }
    Outcome::Match(worst)
}

fn max_abs_error(want: &edgec_ir::Tensor, have: &edgec_ir::Tensor) -> f64 {
    let (w, h) = (want.to_f64_vec(), have.to_f64_vec());
    w.iter()
        .zip(&h)
        .fold(0.0f64, |m, (x, y)| if (x - y).is_nan() { f64::INFINITY } else { m.max((x - y).abs()) })
}
