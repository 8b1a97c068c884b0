//! Every pass, declared once: name, summary, constructor. `docs/passes.md` lists them.

use crate::pass::{Pass, PassArgs, PassError};
use edgec_ir::Module;

pub struct PassInfo {
    pub name: &'static str,
    pub summary: &'static str,
    /// The options the pass takes (`name{opt=value opt=value}` in a pipeline): name and help.
    pub options: &'static [(&'static str, &'static str)],
    /// Builds the pass for a target and its options (most passes ignore both; see
    /// [`crate::TargetInfo`]). `Err` says what is wrong with an option.
    pub create: fn(&PassArgs) -> Result<Box<dyn Pass>, String>,
}

pub static PASSES: &[PassInfo] = &[
    PassInfo {
        name: "verify",
        summary:
            "Checks every IR invariant (see `edgec_ir::verify`); fails the pipeline on the first violation.",
        options: &[],
        create: |_| Ok(Box::new(Verify)),
    },
    PassInfo {
        name: "print",
        summary: "Prints the IR to standard error at this point of the pipeline.",
        options: &[],
        create: |_| Ok(Box::new(Print)),
    },
    PassInfo {
        name: "dce",
        summary: "Removes pure ops whose results are never used, and unused constants.",
        options: &[],
        create: |_| Ok(Box::new(crate::dce::Dce)),
    },
    PassInfo {
        name: "fold-constants",
        summary: "Evaluates pure ops whose operands are all constants (and `shape.shape`/`shape.size` of \
                  statically shaped values) with the op's reference semantics and replaces their results \
                  by constants, keeping the op's location. A result folds only if it has at most 65536 \
                  elements or no more than the largest operand; ops whose evaluation fails are left.",
        options: &[],
        create: |_| Ok(Box::new(crate::canon::fold_constants::FoldConstants)),
    },
    PassInfo {
        name: "cse",
        summary: "Common subexpression elimination within each block: a pure, region-free op with the same \
                  kind, operands (either order for commutative ops), bit-identical attributes and result \
                  types as an earlier op is replaced by it; constants with equal types and bytes are merged. \
                  The first occurrence is kept.",
        options: &[],
        create: |_| Ok(Box::new(crate::canon::cse::Cse)),
    },
    PassInfo {
        name: "simplify",
        summary: "Algebraic identities and data-movement chains, to a fixed point, only where the result \
                  type is unchanged (so broadcasting is kept) and results stay bit-exact: x+(-0.0), x-(+0.0), \
                  x*1, 1*x, x/1, x^1, same-type cast, neg(neg x), identity transpose, transpose of transpose \
                  (composed), reshape/flatten/squeeze/unsqueeze chains (one reshape), reshape or expand to the \
                  operand's own type, a slice selecting everything, inference dropout.",
        options: &[],
        create: |_| Ok(Box::new(crate::canon::simplify::Simplify)),
    },
    PassInfo {
        name: "fold-batchnorm",
        summary: "Folds an inference `nn.batch_norm` with constant parameters into the single-use `nn.conv`, \
                  `nn.conv_transpose`, `nn.gemm` or 2-D `nn.matmul` producing its input, when that layer's f32 \
                  weight is constant and its output channel is the batch norm's axis: w' = w * s, \
                  b' = (b - mean) * s + beta with s = gamma / sqrt(var + eps), computed in f64 (a missing \
                  conv bias is added; matmul gets a `math.add`).",
        options: &[],
        create: |_| Ok(Box::new(crate::canon::fold_batchnorm::FoldBatchNorm)),
    },
    PassInfo {
        name: "egraph",
        summary: "Equality saturation (egg) over the kernel-level ops, extracted with the target's \
                  memory-traffic, FLOP and per-kernel cost model, to recover fused ops from decomposed \
                  graphs. Rule \
                  groups: `algebra` (commutativity, x*1, x+0, x/c, 1/y, identity casts), `activation` \
                  (GELU erf and tanh forms, x*sigmoid(x) as swish), `normalization` (LayerNorm and \
                  RMSNorm over the last axis, with their scale and bias) and `attention` (4-D \
                  softmax(q @ k^T * s + mask) @ v as `nn.attention`, with k^T any transpose, the \
                  scale multiplied, divided or split over q and k, the additive mask optional). \
                  `EDGEC_LOG_EGRAPH=1` prints \
                  the runner's stop reason and what was recognized.",
        options: &[],
        create: |a| Ok(Box::new(crate::egraph::EgraphPass::for_target(a.target))),
    },
    PassInfo {
        name: "egraph-kernels",
        summary: "Kernel formation by equality saturation: the growth steps `elementwise` (a chain of \
                  elementwise ops becomes one loop nest) and `epilogue` (an anchor, i.e. conv, \
                  conv_transpose, matmul or gemm with an f32 result, takes the elementwise ops after \
                  it as its epilogue: bias, activation, residual) add `fused` e-nodes, and extraction \
                  with the target's cost model (one launch, the external operands read once, one \
                  write, the members' FLOPs) decides; chosen ones become `fused.kernel`. A value joins \
                  a kernel only if it has the result's type, all its uses are members, the anchor \
                  does not use it and it is not half precision (as for `fuse`). Runs after `egraph` \
                  and `dce`, when uses are exact. `EDGEC_LOG_EGRAPH=1` prints the runner's stop \
                  reason and the kernels formed.",
        options: &[],
        create: |a| Ok(Box::new(crate::egraph::EgraphPass::kernels_for_target(a.target))),
    },
    PassInfo {
        name: "fuse",
        summary: "Forms kernels greedily: an anchor (conv, conv_transpose, matmul, gemm, int8 fully connected with an f32 result) with the \
                  elementwise epilogue after it (bias, activation, residual), or a chain of elementwise \
                  ops, becomes one `fused.kernel` when no intermediate escapes and every member has the \
                  result's type (each element computed once, nothing broadcast or recomputed). In the \
                  default pipeline it only cleans up after `egraph-kernels`: the ops that pass does not \
                  model (quantized element types).",
        options: &[],
        create: |_| Ok(Box::new(crate::fuse::Fuse)),
    },
    PassInfo {
        name: "choose-layout",
        summary: "Chooses data layouts for the target's kernels and makes them explicit: the constant \
                  f32 B operand of `nn.matmul` (`[K, N]`) and `nn.gemm` (a `transB` weight is \
                  transposed and `transB` cleared), at the top level or anchoring a `fused.kernel`, \
                  becomes a constant in the backend GEMM micro-kernel's panel layout (`[ceil(N/nr), K, \
                  nr]`, nr from the target's vector registers and N) read through \
                  `layout.from_panels`, so the backend binds it without packing. Does nothing without \
                  a target that has a GEMM backend. Run it last: `fold-constants` would fold the \
                  layout back.",
        options: &[],
        create: |a| Ok(Box::new(crate::layout::ChooseLayout { target: a.target.clone() })),
    },
    PassInfo {
        name: "quantize-int4-weights",
        summary: "Group-wise int4 weight-only quantization (`--quantize int4-weights`): `nn.matmul`/`nn.gemm` \
                  whose weight is a 2-D f32 constant (or a `[1, 0]` transpose of one) with an even reduction \
                  dim K >= the group size become `q.matmul_nbits` with an i4 `[N, K]` weight and one f32 scale \
                  per group of consecutive K elements (symmetric round to nearest, scale = max|w| / 7, \
                  clamped to [-8, 7]); a gemm's constant bias (times beta) becomes the op's bias and alpha \
                  goes into the scales. `shape.gather` of a 2-D f32 constant table with run-time indices \
                  becomes `q.gather_nbits`, sharing the int4 table of a product that uses the same constant \
                  or its exact transpose (tied embeddings are stored once). Run `dce` after it.",
        options: &[("group-size", "consecutive K elements that share a scale: a power of two >= 2 (default 64; `--group-size`)")],
        create: |a| {
            let group_size = match a.option("group-size") {
                None => crate::quant::DEFAULT_GROUP_SIZE,
                Some(g) => g
                    .parse::<usize>()
                    .ok()
                    .filter(|g| (2..=1 << 16).contains(g) && g.is_power_of_two())
                    .ok_or_else(|| format!("group-size={g}: expected a power of two between 2 and 65536"))?,
            };
            Ok(Box::new(crate::quant::QuantizeInt4Weights { group_size }))
        },
    },
    PassInfo {
        name: "quantize-int8",
        summary: "Post-training static int8 quantization (`--quantize int8 --calibrate DATA.npz`; the compiler \
                  runs it after the shared graph passes and before the backend's): runs the calibration \
                  samples through the interpreter, picks per-tensor activation and per-channel weight \
                  parameters, and turns conv, conv_transpose, matmul and gemm layers with constant weights \
                  into `q.*` int8 kernels where the layer's SQNR on the calibration data is at least \
                  `min-sqnr` dB (the rest stays float); elementwise functions between int8 layers become \
                  `q.lookup` tables. Needs calibration samples from the driver (`edgec opt` has none). \
                  See `docs/quantization.md`.",
        options: &[
            ("observer", "how activation ranges are picked: minmax (default), percentile[:P] or mse (`--observer`)"),
            ("min-sqnr", "layers below this many dB of SQNR stay float (default 20; `--quant-min-sqnr`)"),
        ],
        create: |a| {
            let observer = a.option("observer").unwrap_or("minmax").parse().map_err(|e| format!("observer: {e}"))?;
            let min_sqnr_db = match a.option("min-sqnr") {
                None => crate::quant::int8::DEFAULT_MIN_SQNR_DB,
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("min-sqnr={v}: expected a finite number of dB"))?,
            };
            let calibration = a.calibration.clone().ok_or("needs calibration samples (`--calibrate DATA.npz`)")?;
            let options = crate::quant::Int8Options { observer, min_sqnr_db };
            Ok(Box::new(crate::quant::QuantizeInt8::new(calibration, options).with_progress(a.progress.clone())))
        },
    },
    PassInfo {
        name: "fold-quantized",
        summary: "Pre-quantized ONNX into integer kernels (the session runs it first when a model holds \
                  ONNX quantization ops): `DequantizeLinear` → `nn.conv`/`nn.conv_transpose`/`nn.matmul`/`nn.gemm` (constant \
                  int8 weights per tensor or per output channel, optional constant or dequantized bias, \
                  optional ReLU/Clip) → `QuantizeLinear` becomes `q.conv`/`q.conv_transpose`/`q.fully_connected`; \
                  DQ, DQ → `math.add` → Q becomes `q.add`; `QLinearConv` and `QLinearMatMul` with a \
                  constant B become `q.conv`/`q.fully_connected`; a blocked int4 `DequantizeLinear` \
                  (axis 0) of a constant feeding `nn.matmul` becomes `q.matmul_nbits`; other per-tensor \
                  `QuantizeLinear`/`DequantizeLinear` become `q.quantize`/`q.dequantize` (a DQ → Q pair \
                  cancels or becomes `q.requantize`); DQ → one-operand float elementwise ops → Q \
                  becomes a 256-entry `q.lookup`. u8 tensors become i8 with zero point z − 128. \
                  Only per-tensor activations with constant parameters and weights whose `w − zp` fits \
                  in int8 fold; the rest stays as ONNX ops. Requantization follows TFLite's fixed-point \
                  rule (within one LSB of ONNX's float rounding).",
        options: &[],
        create: |_| Ok(Box::new(crate::quant::FoldQuantized)),
    },
];

pub fn pass_info(name: &str) -> Option<&'static PassInfo> {
    PASSES.iter().find(|p| p.name == name)
}

struct Verify;

impl Pass for Verify {
    fn name(&self) -> &'static str {
        "verify"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        edgec_ir::verify::verify_module(module)
            .map_err(|error| PassError::Verify { pass: "verify".into(), error })
    }
}

struct Print;

impl Pass for Print {
    fn name(&self) -> &'static str {
        "print"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        eprint!("{}", edgec_ir::printer::print_module(module));
        Ok(())
    }
}

/// The pass reference in markdown (`docs/passes.md` is this text; a test keeps them equal).
pub fn passes_markdown() -> String {
    let mut out = String::from(
        "# Passes\n\nGenerated from `passes/src/registry.rs` (`EDGEC_BLESS=1 cargo test -p edgec-passes` \
         rewrites it). Run them with `edgec opt FILE.eir --passes=a,b,c`; a pass with options takes them \
         as `name{opt=value opt=value}`.\n\n| pass | what it does |\n|---|---|\n",
    );
    for p in PASSES {
        let options: Vec<String> = p.options.iter().map(|(n, h)| format!("`{n}`: {h}")).collect();
        let options =
            if options.is_empty() { String::new() } else { format!(" Options: {}.", options.join("; ")) };
        out.push_str(&format!("| `{}` | {}{options} |\n", p.name, p.summary));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_passes_md_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/passes.md");
        let want = super::passes_markdown();
        if std::env::var("EDGEC_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &want).expect("write docs/passes.md");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(have, want, "docs/passes.md is stale; rerun with EDGEC_BLESS=1");
    }
}
