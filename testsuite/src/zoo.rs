//! The model zoo: real generative architectures exported from torch with random weights
//! (`testsuite/scripts/gen_zoo.py`), each a directory with `model.onnx` (plus external data
//! for the dynamo exporter), `inputs.npz` and `ref.npz` (ONNX Runtime's outputs).

use crate::compare::max_rel_error;
use edgec::{CompileOptions, Session};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The zoo's acceptance bound: max abs error ≤ 1e-4 × max |reference|.
pub const ZOO_REL_TOL: f64 = 1e-4;

#[derive(Clone, Debug)]
pub struct ZooModel {
    pub name: String,
    pub dir: PathBuf,
}

impl ZooModel {
    pub fn model(&self) -> PathBuf {
        self.dir.join("model.onnx")
    }
    pub fn inputs(&self) -> PathBuf {
        self.dir.join("inputs.npz")
    }
    pub fn reference(&self) -> PathBuf {
        self.dir.join("ref.npz")
    }
}

pub fn zoo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo")
}

/// Every committed zoo model (directories holding model.onnx, inputs.npz and ref.npz), sorted.
pub fn discover(dir: &Path) -> Vec<ZooModel> {
    let mut out: Vec<ZooModel> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.join("model.onnx").is_file()
                        && p.join("inputs.npz").is_file()
                        && p.join("ref.npz").is_file()
                })
                .map(|p| ZooModel {
                    name: p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    dir: p,
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The committed models plus any generated on demand into `zoo/large/` (`gen_zoo.py --large`).
pub fn discover_with_large(dir: &Path) -> Vec<ZooModel> {
    let mut out = discover(dir);
    out.extend(discover(&dir.join("large")));
    out
}

/// Result of checking one zoo model through the interpreter.
#[derive(Debug)]
pub struct ZooResult {
    pub import_time: Duration,
    pub run_time: Duration,
    /// `(output name, max abs error / max |ref|)`.
    pub errors: Vec<(String, f64)>,
}

pub fn check_model(m: &ZooModel) -> Result<ZooResult, String> {
    let t0 = Instant::now();
    let session =
        Session::import(m.model(), &CompileOptions::default()).map_err(|e| format!("import: {e}"))?;
    let import_time = t0.elapsed();
    let inputs = session.read_inputs(m.inputs()).map_err(|e| format!("inputs: {e}"))?;
    let t1 = Instant::now();
    let outputs = session.run(inputs).map_err(|e| format!("run: {e}"))?;
    let run_time = t1.elapsed();
    let refs = edgec::io::read_npz(&m.reference()).map_err(|e| format!("reference: {e}"))?;
    let names = session.output_names();
    let mut errors = Vec::new();
    for (name, out) in names.iter().zip(&outputs) {
        let (_, r) =
            refs.iter().find(|(n, _)| n == name).ok_or_else(|| format!("ref.npz has no output {name:?}"))?;
        let err = max_rel_error(r, out).map_err(|e| format!("output {name:?}: {e}"))?;
        errors.push((name.clone(), err));
    }
    Ok(ZooResult { import_time, run_time, errors })
}

/// Runs `check(model, target)` for every pair on a few threads, printing one line each, and
/// returns the failures (`"<model> on <target>: <error>"`).
pub fn run_on_targets(
    models: &[ZooModel],
    targets: &[&str],
    check: impl Fn(&ZooModel, &str) -> Result<String, String> + Sync,
) -> Vec<String> {
    use std::sync::Mutex;
    let jobs: Mutex<Vec<(usize, &str)>> =
        Mutex::new((0..models.len()).flat_map(|i| targets.iter().map(move |&t| (i, t))).rev().collect());
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
    failures.into_inner().unwrap()
}
