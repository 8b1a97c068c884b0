//! The ONNX backend node-test conformance harness.
//!
//! `testsuite/scripts/gen_node_tests.py` writes the tests from the `onnx` wheel into
//! `testsuite/cache/node/` with an `index.json` (ops and I/O element types per test). Each test
//! is imported, run through the reference interpreter on every data set, and compared with the
//! expected outputs at ONNX's default tolerance (rtol 1e-3, atol 1e-7).
//!
//! Classification, as the foundation issue measures it:
//! - *excluded*: a graph input or output has an element type `.npz` cannot carry (float8,
//!   float4, int4/uint4, int2/uint2, bfloat16, string) or is not a tensor;
//! - *in-list*: every op is in [`IN_LIST_OPS`] (the op list);
//! - the rest count only towards the all-tests total.
//!
//! Every failure must be listed in `testsuite/node-allowlist.txt` with a reason.

use crate::compare::allclose;
use edgec::onnx::{import_model, ImportOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub const RTOL: f64 = 1e-3;
pub const ATOL: f64 = 1e-7;

/// The ops the foundation issue requires (ONNX op types, default domain).
pub const IN_LIST_OPS: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Neg",
    "Abs",
    "Exp",
    "Log",
    "Erf",
    "Tanh",
    "Sigmoid",
    "Relu",
    "LeakyRelu",
    "Elu",
    "Selu",
    "Gelu",
    "HardSigmoid",
    "HardSwish",
    "Softplus",
    "Mish",
    "Sin",
    "Cos",
    "Floor",
    "Ceil",
    "Round",
    "Clip",
    "Min",
    "Max",
    "Sum",
    "Mean",
    "Where",
    "Equal",
    "Less",
    "LessOrEqual",
    "Greater",
    "GreaterOrEqual",
    "Not",
    "And",
    "Or",
    "Xor",
    "IsNaN",
    "IsInf",
    "Sign",
    "Mod",
    "BitShift",
    "ReduceMean",
    "ReduceSum",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL2",
    "ReduceSumSquare",
    "ArgMax",
    "ArgMin",
    "Softmax",
    "LogSoftmax",
    "LayerNormalization",
    "BatchNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "RMSNormalization",
    "MatMul",
    "Gemm",
    "Conv",
    "ConvTranspose",
    "Einsum",
    "Attention",
    "RotaryEmbedding",
    "Reshape",
    "Transpose",
    "Concat",
    "Split",
    "Slice",
    "Gather",
    "GatherElements",
    "GatherND",
    "ScatterND",
    "ScatterElements",
    "Expand",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Tile",
    "Pad",
    "Resize",
    "DepthToSpace",
    "SpaceToDepth",
    "Shape",
    "Size",
    "ConstantOfShape",
    "Range",
    "Cast",
    "CastLike",
    "Identity",
    "Constant",
    "Dropout",
    "Trilu",
    "CumSum",
    "TopK",
    "OneHot",
    "NonZero",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
    "QLinearMatMul",
    "QLinearConv",
];

/// I/O element types `.npz` can carry.
const NPZ_TYPES: &[&str] = &[
    "FLOAT", "DOUBLE", "FLOAT16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
    "BOOL",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    Excluded,
    InList,
    Other,
}

#[derive(Clone, Debug)]
pub struct NodeTest {
    pub name: String,
    pub dir: PathBuf,
    pub ops: Vec<String>,
    pub class: Class,
}

#[derive(Clone, Debug)]
pub enum Outcome {
    Pass,
    Fail(String),
    /// The backend does not compile the test's ops or types (the message says which).
    Skip(String),
}

/// Where a node test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The reference interpreter.
    Interp,
    /// The reference interpreter on the module after edgec's default pass pipeline (the
    /// differential check of every pass against the IR before it).
    Optimized,
    /// Compiled for the host by the LLVM backend, linked with the runtime's harness and run.
    Host,
    /// Compiled for `fpga-hls` and run as the project's C simulation (g++).
    Hls,
}

/// Where the node tests live (`EDGEC_NODE_TESTS` overrides).
pub fn cache_dir() -> PathBuf {
    if let Ok(p) = std::env::var("EDGEC_NODE_TESTS") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cache").join("node")
}

/// Lists the node tests from the cache's index.
pub fn discover(dir: &Path) -> Result<Vec<NodeTest>, String> {
    let index_path = dir.join("index.json");
    let text = std::fs::read_to_string(&index_path).map_err(|e| {
        format!(
            "{}: {e}; generate the node tests with `python3 testsuite/scripts/gen_node_tests.py`",
            index_path.display()
        )
    })?;
    let index: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", index_path.display()))?;
    let in_list: BTreeSet<&str> = IN_LIST_OPS.iter().copied().collect();
    let mut out = Vec::new();
    for (name, meta) in index {
        let strs = |k: &str| -> Vec<String> {
            meta[k]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                .unwrap_or_default()
        };
        let ops = strs("ops");
        let io_types = strs("io_types");
        let class = if io_types.iter().any(|t| !NPZ_TYPES.contains(&t.as_str())) {
            Class::Excluded
        } else if ops.iter().all(|o| in_list.contains(o.as_str())) {
            Class::InList
        } else {
            Class::Other
        };
        out.push(NodeTest { dir: dir.join(&name), name, ops, class });
    }
    Ok(out)
}

/// Runs one node test through the interpreter.
pub fn run_test(t: &NodeTest) -> Outcome {
    run_test_on(t, Backend::Interp)
}

/// Runs one node test on a backend.
pub fn run_test_on(t: &NodeTest, backend: Backend) -> Outcome {
    match run_test_inner(t, backend) {
        Ok(()) => Outcome::Pass,
        Err(e) if e.starts_with("SKIP ") => Outcome::Skip(e[5..].to_string()),
        Err(e) => Outcome::Fail(e),
    }
}

fn run_test_inner(t: &NodeTest, backend: Backend) -> Result<(), String> {
    let module = import_model(&t.dir.join("model.onnx"), &ImportOptions::default())
        .map_err(|e| format!("import: {e}"))?;
    // The optimized module, for the backends that see what `edgec compile` sees.
    let module = match backend {
        Backend::Interp => module,
        Backend::Optimized | Backend::Host | Backend::Hls => {
            let session = edgec::Session::from_module(module).map_err(|e| format!("import: {e}"))?;
            session.optimized().map_err(|e| format!("pipeline: {e}"))?.0
        }
    };
    let func = module.main().ok_or("import: no function")?;
    let mut sets: Vec<PathBuf> = std::fs::read_dir(&t.dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_")))
        .collect();
    sets.sort();
    if sets.is_empty() {
        return Err("no test_data_set_* directory".into());
    }
    let compiled = match backend {
        Backend::Interp | Backend::Optimized => None,
        Backend::Host | Backend::Hls => {
            let name = if backend == Backend::Host { "host" } else { "fpga-hls" };
            let target = edgec::Target::parse(name).map_err(|e| e.to_string())?;
            let host = edgec::target::lookup(&target).map_err(|e| format!("host: {e}"))?;
            let compiled = edgec_backends::backend::check_supported(host.as_ref(), func)
                .and_then(|()| host.compile(func, &edgec::CodegenOptions::new("model")));
            match compiled {
                Ok(c) => Some((host, c)),
                // The input's fault for the backend: an op or element type it does not compile.
                Err(e) if e.is_user_error() => return Err(format!("SKIP {e}")),
                Err(e) => return Err(format!("compile: {e}")),
            }
        }
    };
    for set in sets {
        let inputs = edgec::io::read_inputs(&set, func).map_err(|e| format!("inputs: {e}"))?;
        let expected = edgec::io::read_pb_dir(&set, "output").map_err(|e| format!("outputs: {e}"))?;
        let actual = match &compiled {
            None => edgec_ir::interp::run_function(func, inputs).map_err(|e| format!("run: {e}"))?,
            Some((host, c)) => host.execute(c, &inputs).map_err(|e| format!("host: {e}"))?.outputs,
        };
        if actual.len() != expected.len() {
            return Err(format!("{} outputs, expected {}", actual.len(), expected.len()));
        }
        for (i, ((name, e), a)) in expected.iter().zip(&actual).enumerate() {
            allclose(e, a, RTOL, ATOL).map_err(|m| format!("output #{i} {name:?}: {m}"))?;
        }
    }
    Ok(())
}

/// Runs tests on `threads` threads, returning outcomes in input order.
pub fn run_all(tests: &[NodeTest], threads: usize) -> Vec<Outcome> {
    run_all_on(tests, threads, Backend::Interp)
}

/// Runs tests on a backend on `threads` threads, returning outcomes in input order.
pub fn run_all_on(tests: &[NodeTest], threads: usize, backend: Backend) -> Vec<Outcome> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Outcome>>> =
        tests.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= tests.len() {
                    break;
                }
                // A panic in one op must not take the whole run down: record it as a failure.
                let outcome =
                    std::panic::catch_unwind(|| run_test_on(&tests[i], backend)).unwrap_or_else(|p| {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Outcome::Fail(format!("PANIC: {msg}"))
                    });
                *results[i].lock().expect("no poisoning: panics are caught") = Some(outcome);
            });
        }
    });
    results.into_iter().map(|m| m.into_inner().expect("not poisoned").expect("every test ran")).collect()
}

/// The allow-list: `test_name  # reason` per line; a trailing `*` matches a prefix.
#[derive(Debug, Default)]
pub struct AllowList {
    pub entries: Vec<(String, String)>,
}

impl AllowList {
    pub fn load(path: &Path) -> Result<AllowList, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, reason) = line
                .split_once('#')
                .ok_or_else(|| format!("{}:{}: entry `{line}` has no `# reason`", path.display(), i + 1))?;
            let reason = reason.trim();
            if reason.is_empty() {
                return Err(format!("{}:{}: empty reason", path.display(), i + 1));
            }
            entries.push((name.trim().to_string(), reason.to_string()));
        }
        Ok(AllowList { entries })
    }

    pub fn matches(&self, test: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(p, _)| match p.strip_suffix('*') {
                Some(prefix) => test.starts_with(prefix),
                None => p == test,
            })
            .map(|(_, r)| r.as_str())
    }
}

pub fn allowlist_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node-allowlist.txt")
}

/// Pass counts per class.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub in_list_pass: usize,
    pub in_list_total: usize,
    pub all_pass: usize,
    pub all_total: usize,
    pub excluded: usize,
}

impl Tally {
    pub fn of(tests: &[NodeTest], outcomes: &[Outcome]) -> Tally {
        let mut t = Tally::default();
        for (test, o) in tests.iter().zip(outcomes) {
            let pass = matches!(o, Outcome::Pass);
            match test.class {
                Class::Excluded => t.excluded += 1,
                Class::InList => {
                    t.in_list_total += 1;
                    t.all_total += 1;
                    t.in_list_pass += pass as usize;
                    t.all_pass += pass as usize;
                }
                Class::Other => {
                    t.all_total += 1;
                    t.all_pass += pass as usize;
                }
            }
        }
        t
    }

    pub fn summary(&self) -> String {
        self.summary_for("interpreter")
    }

    /// The summary line naming where the tests ran.
    pub fn summary_for(&self, backend: &str) -> String {
        let pct = |a: usize, b: usize| if b == 0 { 0.0 } else { 100.0 * a as f64 / b as f64 };
        format!(
            "node conformance ({backend}): in-list {}/{} ({:.1}%), all {}/{} ({:.1}%), excluded {} (I/O types .npz cannot carry)",
            self.in_list_pass,
            self.in_list_total,
            pct(self.in_list_pass, self.in_list_total),
            self.all_pass,
            self.all_total,
            pct(self.all_pass, self.all_total),
            self.excluded
        )
    }
}
