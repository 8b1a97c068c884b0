//! Post-training static int8 quantization.
//!
//! 1. **Layers.** Every `nn.conv`, `nn.conv_transpose` (group 1), `nn.matmul` with a constant 2-D
//!    right operand and `nn.gemm` with a constant B (no transposed A, alpha = beta = 1) is a
//!    candidate, together with the bias `math.add` of a constant along its output channels and a
//!    `nn.relu` that follow it as their producer's only use.
//! 2. **Calibration.** The float function runs in the reference interpreter on every sample; the
//!    range of each layer's input and output is observed ([`Observer`]).
//! 3. **Parameters.** Activations: per-tensor asymmetric int8 over the observed range (always
//!    containing 0). Weights: per-output-channel symmetric int8 in [−127, 127],
//!    `scale = max|w| / 127`. Bias: int32 at `scale_x · scale_w[c]`. A fused ReLU becomes the
//!    output clamp. Scales are rounded to f32, as a TFLite file stores them.
//! 4. **Per-layer error.** A second calibration run feeds each layer's observed float input
//!    through quantize → integer op → dequantize and compares with the layer's float output: the
//!    SQNR `10·log10(Σ ref² / Σ (out − ref)²)` over all samples. Layers below
//!    [`Int8Options::min_sqnr_db`] stay in float (mixed precision).
//! 5. **Rewrite.** Each int8 layer becomes `q.quantize → q.conv | q.conv_transpose |
//!    q.fully_connected → q.dequantize`; a `q.dequantize` feeding a `q.quantize` of the same
//!    parameters cancels (a `q.requantize` when they differ), so consecutive int8 layers stay in
//!    int8. The replaced float ops are removed.
//! 6. **Lookup tables.** Float elementwise functions between two int8 layers ([`Chain`]) become one
//!    `q.lookup` when the table's SQNR (measured in step 4's run) passes the threshold.
//! 7. **Float consumers.** A fully connected layer read only by float ops writes f32: without
//!    output quantization (`f32(acc) · scale_x · scale_w[c]`) unless a ReLU is fused.

use super::observer::{Observer, Stats};
use crate::canon::{const_data, defining_op, use_counts};
use edgec_ir::entity::SecondaryMap;
use edgec_ir::interp::run_function_observed;
use edgec_ir::ops::qint8::{dequantize_value, i8_type, per_tensor_i8, quantize_value};
use edgec_ir::ops::EvalCtx;
use edgec_ir::{
    Attr, Attrs, Builder, ConstTensor, ElemType, Function, Loc, Op, OpKind, QuantParams, QuantType,
    ScalarType, Tensor, TensorType, Value,
};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

/// Settings of `--quantize int8`.
#[derive(Clone, Debug)]
pub struct Int8Options {
    pub observer: Observer,
    /// Layers whose int8 SQNR (dB) on the calibration data is below this stay in float.
    pub min_sqnr_db: f64,
}

impl Default for Int8Options {
    fn default() -> Self {
        Int8Options { observer: Observer::MinMax, min_sqnr_db: DEFAULT_MIN_SQNR_DB }
    }
}

/// The default mixed-precision threshold: a layer with less than this SQNR stays float.
pub const DEFAULT_MIN_SQNR_DB: f64 = 20.0;

/// One candidate layer's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerReport {
    /// The layer's location (its ONNX node names).
    pub name: String,
    /// The float op (`nn.conv`, ...), with `+bias` / `+relu` when those were fused.
    pub op: String,
    /// SQNR of the int8 layer against the float layer on the calibration data, in dB (capped at
    /// 200 for exact layers).
    pub sqnr_db: f64,
    /// Whether it became an int8 kernel (false: stayed float).
    pub int8: bool,
}

/// What quantization did.
#[derive(Clone, Debug, Default)]
pub struct QuantReport {
    pub samples: usize,
    pub observer: String,
    pub min_sqnr_db: f64,
    pub layers: Vec<LayerReport>,
}

/// A candidate layer.
struct Layer {
    /// The ops it replaces, in order (anchor, then optional bias add and relu).
    members: Vec<Op>,
    kind: OpKind,
    x: Value,
    /// The value the layer's int8 output replaces (after the bias and relu).
    out: Value,
    /// Weights in the integer op's layout (`q.fully_connected`: `[N, K]`), as f32.
    w: ArrayD<f32>,
    /// The weight axis of the output channels.
    w_axis: usize,
    bias: Option<Vec<f64>>,
    relu: bool,
    /// The integer op's geometry attributes (conv attributes; none for fully connected).
    attrs: Attrs,
    loc: Loc,
    label: String,
}

impl Layer {
    fn channels(&self) -> usize {
        self.w.shape()[self.w_axis]
    }

    fn qkind(&self) -> OpKind {
        match self.kind {
            OpKind::Conv => OpKind::QConv,
            OpKind::ConvTranspose => OpKind::QConvTranspose,
            _ => OpKind::QFullyConnected,
        }
    }
}

/// The integer form of a layer, ready to evaluate or to insert.
struct QLayer {
    x_params: (f32, i32),
    attrs: Attrs,
    w: Tensor,
    w_ty: TensorType,
    bias: Option<Tensor>,
}

/// Per-tensor int8 parameters covering `[lo, hi]` (which contains 0): `scale = (hi − lo)/255`
/// rounded to f32, and the zero point that maps `lo` to −128, rounded and clamped.
pub fn activation_params(lo: f32, hi: f32) -> (f32, i32) {
    let (lo, hi) = (lo.min(0.0) as f64, hi.max(0.0) as f64);
    let range = hi - lo;
    // Also catches NaN (no comparison holds).
    if range.is_nan() || range <= 1e-30 || !range.is_finite() {
        return (1.0, 0);
    }
    let scale = (range / 255.0) as f32;
    let zp = (-128.0 - lo / scale as f64).round().clamp(-128.0, 127.0) as i32;
    (scale, zp)
}

/// The `quantize-int8` pass: [`quantize_int8`] on the module's entry function with the
/// calibration samples the driver gave; what it did is in [`QuantizeInt8::report`] afterwards.
pub struct QuantizeInt8 {
    calibration: std::sync::Arc<Vec<Vec<Tensor>>>,
    options: Int8Options,
    /// Told about every calibration sample run (the runs are most of the pass's time).
    progress: Option<crate::pass::StepProgress>,
    /// What the last run quantized.
    pub report: Option<QuantReport>,
}

impl QuantizeInt8 {
    pub fn new(calibration: std::sync::Arc<Vec<Vec<Tensor>>>, options: Int8Options) -> QuantizeInt8 {
        QuantizeInt8 { calibration, options, progress: None, report: None }
    }

    pub fn with_progress(mut self, progress: Option<crate::pass::StepProgress>) -> QuantizeInt8 {
        self.progress = progress;
        self
    }
}

impl crate::Pass for QuantizeInt8 {
    fn name(&self) -> &'static str {
        "quantize-int8"
    }
    fn run(&mut self, module: &mut edgec_ir::Module) -> Result<(), crate::PassError> {
        let f = module.main_mut().ok_or_else(|| crate::PassError::Failed {
            pass: self.name().into(),
            message: "the module has no entry function".into(),
        })?;
        let r = quantize_int8_with(f, &self.calibration, &self.options, self.progress.as_ref())
            .map_err(|message| crate::PassError::Input { pass: "quantization".into(), message })?;
        self.report = Some(r);
        Ok(())
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

/// Quantizes the float function `f` of `module` to int8 where the calibration allows.
/// `calibration` holds one input list per sample (in parameter order).
pub fn quantize_int8(
    f: &mut Function,
    calibration: &[Vec<Tensor>],
    opts: &Int8Options,
) -> Result<QuantReport, String> {
    quantize_int8_with(f, calibration, opts, None)
}

/// [`quantize_int8`], reporting each calibration run to `progress` (two runs per sample: the
/// ranges, then the layers' SQNR).
pub fn quantize_int8_with(
    f: &mut Function,
    calibration: &[Vec<Tensor>],
    opts: &Int8Options,
    progress: Option<&crate::pass::StepProgress>,
) -> Result<QuantReport, String> {
    let total = 2 * calibration.len();
    let step = |done: usize| {
        if let Some(p) = progress {
            p.report("calibration runs", done, total);
        }
    };
    if calibration.is_empty() {
        return Err("calibration data has no samples".into());
    }
    let layers = find_layers(f);
    let mut report = QuantReport {
        samples: calibration.len(),
        observer: opts.observer.to_string(),
        min_sqnr_db: opts.min_sqnr_db,
        layers: Vec::new(),
    };
    if layers.is_empty() {
        quantize_gathers(f, opts, &mut report)?;
        return Ok(report);
    }

    // Pass 1: ranges of every layer input and output.
    let mut slot: SecondaryMap<Value, Option<usize>> = SecondaryMap::with_default(None);
    let mut stats: Vec<Stats> = Vec::new();
    for l in &layers {
        for v in [l.x, l.out] {
            if slot.get(v).is_none() {
                slot.set(v, Some(stats.len()));
                stats.push(Stats::default());
            }
        }
    }
    let keep = opts.observer != Observer::MinMax;
    let observe = |stats: &mut Vec<Stats>, v: Value, t: &Tensor| {
        if let (Some(i), Tensor::F32(a)) = (*slot.get(v), t) {
            match a.as_slice() {
                Some(s) => stats[i].add(s, keep),
                None => stats[i].add(&a.iter().copied().collect::<Vec<_>>(), keep),
            }
        }
    };
    for (i, sample) in calibration.iter().enumerate() {
        step(i);
        // The interpreter reports op results; the function's inputs are observed here.
        for (&p, t) in f.params().iter().zip(sample) {
            observe(&mut stats, p, t);
        }
        run_function_observed(f, sample.clone(), &mut |v, t| observe(&mut stats, v, t))
            .map_err(|e| format!("calibration run failed: {e}"))?;
    }
    let params_of = |v: Value| {
        let (lo, hi) = stats[slot.get(v).unwrap()].range(opts.observer);
        activation_params(lo, hi)
    };

    // The integer form of every layer.
    let qlayers: Vec<QLayer> =
        layers.iter().map(|l| quantize_layer(l, params_of(l.x), params_of(l.out))).collect();

    // Elementwise functions between two layers, as tables from the one's int8 output to the
    // other's int8 input.
    let chains = find_chains(f, &layers);
    let mut tables = Vec::with_capacity(chains.len());
    for c in &chains {
        let wide = |(s, z): (f32, i32)| (s as f64, z as i64);
        tables.push(super::lookup::table(f, &c.funcs, wide(params_of(c.from)), wide(params_of(c.to)))?);
    }
    let mut chain_of: SecondaryMap<Value, Option<usize>> = SecondaryMap::with_default(None);
    for (i, c) in chains.iter().enumerate() {
        chain_of.set(c.from, Some(i));
        chain_of.set(c.to, Some(i));
    }
    let mut chain_in: Vec<Option<Tensor>> = vec![None; chains.len()];
    let mut chain_sn = vec![(0f64, 0f64); chains.len()];

    // Pass 2: per-layer SQNR, each layer fed its own float input.
    let mut by_out: SecondaryMap<Value, Vec<usize>> = SecondaryMap::with_default(Vec::new());
    let mut is_x: SecondaryMap<Value, bool> = SecondaryMap::with_default(false);
    for (i, l) in layers.iter().enumerate() {
        let mut v = by_out.get(l.out).clone();
        v.push(i);
        by_out.set(l.out, v);
        is_x.set(l.x, true);
    }
    let mut signal = vec![0f64; layers.len()];
    let mut noise = vec![0f64; layers.len()];
    let mut failure: Option<String> = None;
    for (i, sample) in calibration.iter().enumerate() {
        step(calibration.len() + i);
        let mut inputs: SecondaryMap<Value, Option<Tensor>> = SecondaryMap::with_default(None);
        for (&p, t) in f.params().iter().zip(sample) {
            if *is_x.get(p) {
                inputs.set(p, Some(t.clone()));
            }
        }
        run_function_observed(f, sample.clone(), &mut |v, t| {
            if let Some(i) = *chain_of.get(v) {
                if v == chains[i].from {
                    chain_in[i] = Some(t.clone());
                } else if let Some(x) = chain_in[i].take() {
                    let out = lookup_f32(&tables[i], &x, params_of(chains[i].from), params_of(v));
                    let (s, n) = signal_noise(t, &out);
                    chain_sn[i].0 += s;
                    chain_sn[i].1 += n;
                }
            }
            if *is_x.get(v) {
                inputs.set(v, Some(t.clone()));
            }
            for &i in by_out.get(v) {
                let Some(x) = inputs.get(layers[i].x).as_ref() else { continue };
                match run_int8_layer(&layers[i], &qlayers[i], params_of(layers[i].out), x) {
                    Ok(out) => {
                        let (s, n) = signal_noise(t, &out);
                        signal[i] += s;
                        noise[i] += n;
                    }
                    Err(e) => failure = Some(format!("{}: {e}", layers[i].label)),
                }
            }
        })
        .map_err(|e| format!("calibration run failed: {e}"))?;
        if let Some(e) = failure.take() {
            return Err(format!("int8 evaluation of layer {e}"));
        }
    }

    // Decide and rewrite.
    let mut chosen = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let sqnr = sqnr_db(signal[i], noise[i]);
        let int8 = sqnr >= opts.min_sqnr_db;
        report.layers.push(LayerReport { name: l.label.clone(), op: describe(l), sqnr_db: sqnr, int8 });
        if int8 {
            chosen.push(i);
        }
    }
    // A table replaces its functions when both layers are int8 and its own error is small.
    let int8_out: Vec<Value> = chosen.iter().map(|&i| layers[i].out).collect();
    let int8_x: Vec<Value> = chosen.iter().map(|&i| layers[i].x).collect();
    let mut lookups = Vec::new();
    for (i, c) in chains.iter().enumerate() {
        if !(int8_out.contains(&c.from) && int8_x.contains(&c.to)) {
            continue;
        }
        let sqnr = sqnr_db(chain_sn[i].0, chain_sn[i].1);
        let int8 = sqnr >= opts.min_sqnr_db;
        let d = &f.ops[c.funcs[0]];
        let name = loc_label(&d.loc, d.kind.name());
        let op = c.funcs.iter().map(|&o| f.ops[o].kind.name()).collect::<Vec<_>>().join("+");
        report.layers.push(LayerReport { name, op: format!("q.lookup({op})"), sqnr_db: sqnr, int8 });
        if int8 {
            lookups.push(c.to);
        }
    }
    rewrite(f, &layers, &qlayers, &chosen, &params_of)?;
    // The rewrite leaves each chain between a dequantize and a quantize of these parameters.
    super::lookup::form_lookups(f, &|to| lookups.contains(&to))?;
    crate::dce::eliminate_dead_ops(f);
    quantize_gathers(f, opts, &mut report)?;
    fold_dequantize_into_layers(f);
    drop_output_quantization(f);
    Ok(report)
}

/// `q.fully_connected {dequantize = 1}` without a fused activation → `q.fully_connected` without
/// output parameters (f32 `acc · scale_x · scale_w[c]`): when only float ops read a layer, the
/// int8 rounding of its result is an error nothing asked for, and its integer requantization
/// costs about as much as the products at small K (the small GPT-2's layers, K = 64). Only for
/// this pass's own layers: a pre-quantized model's explicit Q → DQ keeps its rounding.
fn drop_output_quantization(f: &mut Function) {
    for &op in &f.blocks[f.body].ops {
        let d = &mut f.ops[op];
        let a = &mut d.attrs;
        if d.kind == OpKind::QFullyConnected
            && a.int("dequantize") == Some(1)
            && a.int("act_min").unwrap_or(-128) == -128
            && a.int("act_max").unwrap_or(127) == 127
        {
            for name in ["scale", "zero_point", "dequantize", "act_min", "act_max"] {
                a.remove(name);
            }
        }
    }
}

/// `q.dequantize(q.fully_connected(..))` → `q.fully_connected {dequantize = 1}` when the layer's
/// int8 result has no other use: the GEMM's epilogue then writes f32 directly, which saves a
/// kernel and an int8 buffer per float consumer, and lets `fuse` attach the float epilogue that
/// follows (bias-free activations, residual adds) to the layer as it does for f32 products.
/// Exact: the op computes the same int8 value and dequantizes it with the same arithmetic.
pub fn fold_dequantize_into_layers(f: &mut Function) {
    let body = f.body;
    let ops = f.blocks[body].ops.clone();
    let mut uses: HashMap<Value, usize> = HashMap::new();
    for &op in &ops {
        for &o in &f.ops[op].operands {
            *uses.entry(o).or_default() += 1;
        }
    }
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let d = &f.ops[op];
        if d.kind == OpKind::QDequantize {
            let src = defining_op(f, d.operands[0]).filter(|&p| {
                let l = &f.ops[p];
                l.kind == OpKind::QFullyConnected
                    && l.attrs.int("dequantize").unwrap_or(0) == 0
                    && uses.get(&l.results[0]) == Some(&1)
                    && l.attrs.float("scale").is_some_and(|s| s as f32 as f64 == s)
            });
            if let Some(layer) = src {
                let (r, y) = (d.results[0], f.ops[layer].results[0]);
                f.values[y].ty = f.values[r].ty.clone();
                f.ops[layer].attrs.set("dequantize", Attr::Int(1));
                f.replace_all_uses(r, y);
                continue;
            }
        }
        out.push(op);
    }
    f.blocks[body].ops = out;
}

/// A run of float elementwise functions (and reshapes) from one layer's output to another
/// layer's input, every value in it used once: after the rewrite it lies between a dequantize and
/// a quantize, which `lookup::form_lookups` turns into a table.
struct Chain {
    /// The producing layer's output and the consuming layer's input.
    from: Value,
    to: Value,
    /// The functions in order (the reshapes between them do not change elements).
    funcs: Vec<Op>,
}

fn find_chains(f: &Function, layers: &[Layer]) -> Vec<Chain> {
    let uses = use_counts(f);
    let outs: Vec<Value> = layers.iter().map(|l| l.out).collect();
    let mut chains: Vec<Chain> = Vec::new();
    for l in layers {
        let to = l.x;
        if *uses.get(to) != 1 || chains.iter().any(|c| c.to == to) {
            continue;
        }
        let mut cur = to;
        let mut funcs = Vec::new();
        let found = loop {
            if outs.contains(&cur) {
                break true;
            }
            let Some(op) = defining_op(f, cur) else { break false };
            let d = &f.ops[op];
            if super::lookup::is_float_function(f, op) {
                funcs.push(op);
            } else if d.kind != OpKind::Reshape {
                break false;
            }
            cur = d.operands[0];
            if *uses.get(cur) != 1 {
                break false;
            }
        };
        if found && !funcs.is_empty() {
            funcs.reverse();
            chains.push(Chain { from: cur, to, funcs });
        }
    }
    chains
}

/// A table applied to float values (quantized with `pin`), dequantized with `pout`.
fn lookup_f32(table: &[i8], x: &Tensor, pin: (f32, i32), pout: (f32, i32)) -> Tensor {
    let vals: Vec<f32> = x
        .to_f64_vec()
        .iter()
        .map(|&v| {
            let q = quantize_value(v as f32, pin.0, pin.1, -128, 127);
            dequantize_value(table[(q + 128) as usize] as i32, pout.0 as f64, pout.1)
        })
        .collect();
    Tensor::F32(ArrayD::from_shape_vec(IxDyn(x.shape()), vals).expect("same length"))
}

fn sqnr_db(signal: f64, noise: f64) -> f64 {
    if noise <= 0.0 {
        return 200.0;
    }
    if signal <= 0.0 {
        return f64::NEG_INFINITY.max(-200.0);
    }
    (10.0 * (signal / noise).log10()).clamp(-200.0, 200.0)
}

fn signal_noise(reference: &Tensor, out: &Tensor) -> (f64, f64) {
    let (r, o) = (reference.to_f64_vec(), out.to_f64_vec());
    let mut s = 0.0;
    let mut n = 0.0;
    for (a, b) in r.iter().zip(&o) {
        s += a * a;
        n += (a - b) * (a - b);
    }
    (s, n)
}

fn describe(l: &Layer) -> String {
    let mut s = l.kind.name().to_string();
    if l.bias.is_some() {
        s.push_str("+bias");
    }
    if l.relu {
        s.push_str("+relu");
    }
    s
}

fn loc_label(loc: &Loc, fallback: &str) -> String {
    match loc {
        Loc::Unknown => fallback.to_string(),
        Loc::Name(n) => n.clone(),
        Loc::Fused(ns) => ns.join("+"),
    }
}

// ---------------------------------------------------------------------------------------------
// Finding layers
// ---------------------------------------------------------------------------------------------

fn is_f32(f: &Function, v: Value) -> bool {
    f.values[v].ty.elem == ElemType::Scalar(ScalarType::F32)
}

fn f32_const(f: &Function, v: Value) -> Option<ArrayD<f32>> {
    let c = const_data(f, v)?;
    match c.to_tensor().ok()? {
        Tensor::F32(a) => Some(a),
        _ => None,
    }
}

fn find_layers(f: &Function) -> Vec<Layer> {
    let uses = use_counts(f);
    // The single user of each value with exactly one use.
    let mut user: SecondaryMap<Value, Option<Op>> = SecondaryMap::with_default(None);
    for &op in f.body_ops() {
        for &o in &f.ops[op].operands {
            user.set(o, Some(op));
        }
    }
    let mut layers = Vec::new();
    for (n, &op) in f.body_ops().iter().enumerate() {
        let d = &f.ops[op];
        let Some(mut l) = anchor(f, op) else { continue };
        // Epilogue: a constant bias along the output channels, then a ReLU, each the only use.
        let out_rank = f.values[d.results[0]].ty.rank();
        let channel_dim =
            if l.kind == OpKind::Conv || l.kind == OpKind::ConvTranspose { 1 } else { out_rank - 1 };
        if *uses.get(l.out) == 1 {
            if let Some(add) = *user.get(l.out) {
                let a = &f.ops[add];
                if a.kind == OpKind::Add && f.values[a.results[0]].ty == f.values[l.out].ty {
                    let other = if a.operands[0] == l.out { a.operands[1] } else { a.operands[0] };
                    if let Some(b) = channel_vector(f, other, out_rank, channel_dim, l.channels()) {
                        let merged = match &l.bias {
                            Some(old) => old.iter().zip(&b).map(|(x, y)| x + y).collect(),
                            None => b,
                        };
                        l.bias = Some(merged);
                        l.members.push(add);
                        l.out = a.results[0];
                    }
                }
            }
        }
        if *uses.get(l.out) == 1 {
            if let Some(r) = *user.get(l.out) {
                if f.ops[r].kind == OpKind::Relu {
                    l.relu = true;
                    l.members.push(r);
                    l.out = f.ops[r].results[0];
                }
            }
        }
        l.label = loc_label(&f.ops[op].loc, &format!("{}#{n}", d.kind.name()));
        layers.push(l);
    }
    layers
}

/// A constant holding one value per output channel, broadcast along `channel_dim` of a result of
/// rank `rank`.
fn channel_vector(
    f: &Function,
    v: Value,
    rank: usize,
    channel_dim: usize,
    channels: usize,
) -> Option<Vec<f64>> {
    let a = f32_const(f, v)?;
    let s = a.shape();
    if s.len() > rank || a.len() != channels {
        return None;
    }
    // Right-aligned broadcasting: the channel dim must be the one of extent `channels`.
    let offset = rank - s.len();
    for (i, &e) in s.iter().enumerate() {
        let want = if i + offset == channel_dim { channels } else { 1 };
        if e != want && !(channels == 1 && e == 1) {
            return None;
        }
    }
    if channel_dim < offset && channels != 1 {
        return None;
    }
    Some(a.iter().map(|&x| x as f64).collect())
}

/// The layer an op anchors, without its epilogue.
fn anchor(f: &Function, op: Op) -> Option<Layer> {
    let d = &f.ops[op];
    if d.results.len() != 1 || !is_f32(f, d.results[0]) || d.operands.is_empty() || !is_f32(f, d.operands[0])
    {
        return None;
    }
    let x = d.operands[0];
    let out = d.results[0];
    let present =
        |i: usize| d.operands.get(i).filter(|&&v| f.values[v].ty.num_elements() != Some(0)).copied();
    let conv_attrs = |names: &[&str]| {
        let mut a = Attrs::new();
        for &n in names {
            if let Some(v) = d.attrs.get(n) {
                a.set(n, v.clone());
            }
        }
        a
    };
    let base = |kind, w: ArrayD<f32>, w_axis, bias: Option<Vec<f64>>, attrs| Layer {
        members: vec![op],
        kind,
        x,
        out,
        w,
        w_axis,
        bias,
        relu: false,
        attrs,
        loc: d.loc.clone(),
        label: String::new(),
    };
    let bias_of = |i: usize, n: usize| -> Option<Option<Vec<f64>>> {
        match present(i) {
            None => Some(None),
            Some(b) => {
                let a = f32_const(f, b)?;
                (a.len() == n).then(|| Some(a.iter().map(|&v| v as f64).collect()))
            }
        }
    };
    const CONV: &[&str] = &["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"];
    match d.kind {
        OpKind::Conv => {
            let w = f32_const(f, d.operands[1])?;
            let m = w.shape()[0];
            Some(base(OpKind::Conv, w, 0, bias_of(2, m)?, conv_attrs(CONV)))
        }
        OpKind::ConvTranspose => {
            if d.attrs.int("group").unwrap_or(1) != 1 {
                return None;
            }
            let w = f32_const(f, d.operands[1])?;
            let m = *w.shape().get(1)?;
            let names = [CONV, &["output_padding", "output_shape"]].concat();
            Some(base(OpKind::ConvTranspose, w, 1, bias_of(2, m)?, conv_attrs(&names)))
        }
        OpKind::MatMul => {
            let b = f32_const(f, d.operands[1])?;
            let xr = f.values[x].ty.rank();
            if b.ndim() != 2 || xr < 2 || f.values[out].ty.rank() != xr {
                return None;
            }
            let w = b.t().as_standard_layout().into_owned();
            Some(base(OpKind::MatMul, w, 0, None, Attrs::new()))
        }
        OpKind::Gemm => {
            let a = &d.attrs;
            if a.int("transA").unwrap_or(0) != 0
                || a.float("alpha").unwrap_or(1.0) != 1.0
                || a.float("beta").unwrap_or(1.0) != 1.0
            {
                return None;
            }
            let b = f32_const(f, d.operands[1])?;
            if b.ndim() != 2 {
                return None;
            }
            let w =
                if a.int("transB").unwrap_or(0) != 0 { b } else { b.t().as_standard_layout().into_owned() };
            let n = w.shape()[0];
            let bias = match present(2) {
                None => None,
                Some(c) => {
                    let t = f32_const(f, c)?;
                    if t.len() != n || t.shape().iter().rev().skip(1).any(|&e| e != 1) {
                        return None;
                    }
                    Some(t.iter().map(|&v| v as f64).collect())
                }
            };
            Some(base(OpKind::Gemm, w, 0, bias, Attrs::new()))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Quantizing one layer
// ---------------------------------------------------------------------------------------------

/// Symmetric int8 weights quantized per index of `axis`: `scale = max|w| / 127` (rounded to
/// f32; 1 for an all-zero slice), values rounded and clamped to [−127, 127].
fn quantize_weights(w: &ArrayD<f32>, axis: usize) -> (Tensor, TensorType, Vec<f32>) {
    let shape = w.shape().to_vec();
    let channels = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let channel_of = |i: usize| (i / inner.max(1)) % channels;
    let mut amax = vec![0f32; channels];
    for (i, &v) in w.iter().enumerate() {
        let c = channel_of(i);
        amax[c] = amax[c].max(v.abs());
    }
    let scales: Vec<f32> =
        amax.iter().map(|&m| if m > 0.0 && m.is_finite() { m / 127.0 } else { 1.0 }).collect();
    let q: Vec<i8> = w
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = scales[channel_of(i)];
            (v / s).round().clamp(-127.0, 127.0) as i8
        })
        .collect();
    let t = Tensor::I8(ArrayD::from_shape_vec(IxDyn(&shape), q).expect("same shape"));
    let ty = TensorType::of(
        &shape,
        ElemType::Quant(Box::new(QuantType {
            storage: ScalarType::I8,
            expressed: ScalarType::F32,
            params: QuantParams::PerAxis {
                axis,
                scales: scales.iter().map(|&s| s as f64).collect(),
                zero_points: vec![0; channels],
            },
        })),
    );
    (t, ty, scales)
}

fn quantize_layer(l: &Layer, x_params: (f32, i32), y_params: (f32, i32)) -> QLayer {
    let channels = l.channels();
    let (w, w_ty, scales) = quantize_weights(&l.w, l.w_axis);
    let bias = l.bias.as_ref().map(|b| {
        let q: Vec<i32> = b
            .iter()
            .zip(&scales)
            .map(|(&v, &sw)| {
                (v / (x_params.0 as f64 * sw as f64)).round().clamp(i32::MIN as f64, i32::MAX as f64) as i32
            })
            .collect();
        Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[channels]), q).expect("1-D"))
    });
    let mut attrs = l.attrs.clone();
    attrs.set("scale", Attr::Float(y_params.0 as f64));
    attrs.set("zero_point", Attr::Int(y_params.1 as i64));
    if l.relu {
        attrs.set("act_min", Attr::Int(y_params.1 as i64));
    }
    QLayer { x_params, attrs, w, w_ty, bias }
}

/// Evaluates one op's reference semantics on tensors.
fn eval(
    kind: OpKind,
    attrs: &Attrs,
    inputs: Vec<Tensor>,
    types: Vec<TensorType>,
    out: TensorType,
) -> Result<Tensor, String> {
    let ctx =
        EvalCtx { attrs, inputs: &inputs, operand_types: &types, result_types: std::slice::from_ref(&out) };
    let mut r = (kind.def().eval)(&ctx)?;
    Ok(r.remove(0))
}

/// quantize → integer op → dequantize on a float input, with the interpreter's semantics.
fn run_int8_layer(l: &Layer, q: &QLayer, y_params: (f32, i32), x: &Tensor) -> Result<Tensor, String> {
    let xs = x.shape().to_vec();
    let xq_ty = TensorType::of(&xs, i8_type(q.x_params.0 as f64, q.x_params.1 as i64));
    let qa = Attrs::new()
        .with("scale", Attr::Float(q.x_params.0 as f64))
        .with("zero_point", Attr::Int(q.x_params.1 as i64));
    let xq = eval(
        OpKind::QQuantize,
        &qa,
        vec![x.clone()],
        vec![TensorType::of(&xs, ScalarType::F32)],
        xq_ty.clone(),
    )?;
    let mut inputs = vec![xq, q.w.clone()];
    let mut types = vec![xq_ty, q.w_ty.clone()];
    if let Some(b) = &q.bias {
        inputs.push(b.clone());
        types.push(b.ty());
    }
    // The result type only matters for its element type here.
    let y_ty = TensorType::new(vec![], i8_type(y_params.0 as f64, y_params.1 as i64));
    let y = eval(l.qkind(), &q.attrs, inputs, types, y_ty)?;
    let ys = y.shape().to_vec();
    let yq_ty = TensorType::of(&ys, i8_type(y_params.0 as f64, y_params.1 as i64));
    eval(OpKind::QDequantize, &Attrs::new(), vec![y], vec![yq_ty], TensorType::of(&ys, ScalarType::F32))
}

// ---------------------------------------------------------------------------------------------
// Rewriting
// ---------------------------------------------------------------------------------------------

/// Creates an op (unplaced) with inferred result types.
fn new_op(
    f: &mut Function,
    kind: OpKind,
    operands: Vec<Value>,
    attrs: Attrs,
    loc: Loc,
) -> Result<Op, String> {
    let types =
        Builder::new(f).infer(kind, &operands, &attrs, 1).map_err(|e| format!("{}: {e}", kind.name()))?;
    Ok(f.create_op(kind, operands, types, attrs, loc))
}

fn new_const(f: &mut Function, t: &Tensor, ty: TensorType, loc: Loc) -> Op {
    let c = ConstTensor::from_tensor(t).with_type(ty.clone());
    f.create_op(OpKind::Constant, vec![], vec![ty], Attrs::new().with("value", Attr::Tensor(c)), loc)
}

fn rewrite(
    f: &mut Function,
    layers: &[Layer],
    qlayers: &[QLayer],
    chosen: &[usize],
    params_of: &dyn Fn(Value) -> (f32, i32),
) -> Result<(), String> {
    if chosen.is_empty() {
        return Ok(());
    }
    // New ops go just before each layer's last member (where its output was defined).
    let mut at: SecondaryMap<Op, Vec<Op>> = SecondaryMap::with_default(Vec::new());
    let mut quantized: SecondaryMap<Value, Option<Value>> = SecondaryMap::with_default(None);
    let mut replace: Vec<(Value, Value)> = Vec::new();
    for &i in chosen {
        let (l, q) = (&layers[i], &qlayers[i]);
        let last = *l.members.last().unwrap();
        let mut new = Vec::new();
        let xq = match *quantized.get(l.x) {
            Some(v) => v,
            None => {
                let a = Attrs::new()
                    .with("scale", Attr::Float(q.x_params.0 as f64))
                    .with("zero_point", Attr::Int(q.x_params.1 as i64));
                let op = new_op(f, OpKind::QQuantize, vec![l.x], a, l.loc.clone())?;
                new.push(op);
                let v = f.ops[op].results[0];
                quantized.set(l.x, Some(v));
                v
            }
        };
        let wc = new_const(f, &q.w, q.w_ty.clone(), l.loc.clone());
        new.push(wc);
        let mut operands = vec![xq, f.ops[wc].results[0]];
        if let Some(b) = &q.bias {
            let bc = new_const(f, b, b.ty(), l.loc.clone());
            new.push(bc);
            operands.push(f.ops[bc].results[0]);
        }
        let qop = new_op(f, l.qkind(), operands, q.attrs.clone(), l.loc.clone())?;
        new.push(qop);
        let dq = new_op(f, OpKind::QDequantize, vec![f.ops[qop].results[0]], Attrs::new(), l.loc.clone())?;
        new.push(dq);
        debug_assert_eq!(params_of(l.out), {
            let (s, z) = per_tensor_i8(&f.values[f.ops[qop].results[0]].ty, "y").unwrap();
            (s as f32, z as i32)
        });
        replace.push((l.out, f.ops[dq].results[0]));
        let mut v = at.get(last).clone();
        v.extend(new);
        at.set(last, v);
    }
    let body = f.body;
    let old = f.blocks[body].ops.clone();
    let mut ops = Vec::with_capacity(old.len() + chosen.len() * 5);
    for op in old {
        ops.extend(at.get(op).iter().copied());
        ops.push(op);
    }
    f.blocks[body].ops = ops;
    for (from, to) in replace {
        // The dequantize itself uses the integer op's result, never `from`.
        f.replace_all_uses(from, to);
    }
    cancel_dequantize_quantize(f)?;
    crate::dce::eliminate_dead_ops(f);
    Ok(())
}

/// Embedding lookups (`shape.gather` along axis 0 of a constant f32 table of at least
/// [`MIN_TABLE_ELEMENTS`] with run-time indices) read an int8 table quantized per row and
/// dequantize the rows they gather (`q.gather`): weight-only, so the error is the table's own,
/// reported as the layer's SQNR. A table equal to a quantized layer's weights (an LM head tied to
/// the token embedding) uses the very same constant, so it is stored once.
fn quantize_gathers(f: &mut Function, opts: &Int8Options, report: &mut QuantReport) -> Result<(), String> {
    let body = f.body;
    let ops = f.blocks[body].ops.clone();
    let mut out = Vec::with_capacity(ops.len());
    let mut moved: Vec<Op> = Vec::new();
    for (n, &op) in ops.iter().enumerate() {
        if moved.contains(&op) {
            continue;
        }
        let d = &f.ops[op];
        let table =
            (d.kind == OpKind::Gather && d.attrs.int("axis").unwrap_or(0) == 0 && d.operands.len() == 2)
                .then(|| f32_const(f, d.operands[0]))
                .flatten()
                .filter(|t| {
                    t.ndim() >= 2 && t.len() >= MIN_TABLE_ELEMENTS && const_data(f, d.operands[1]).is_none()
                });
        let Some(table) = table else {
            out.push(op);
            continue;
        };
        let (q, ty, scales) = quantize_weights(&table, 0);
        let row: usize = table.shape()[1..].iter().product();
        let (mut sig, mut noise) = (0f64, 0f64);
        for (i, (&w, &qv)) in table.iter().zip(q.to_f64_vec().iter()).enumerate() {
            let deq = edgec_ir::ops::qint8::dequantize_value(qv as i32, scales[i / row.max(1)] as f64, 0);
            sig += (w as f64).powi(2);
            noise += ((w - deq) as f64).powi(2);
        }
        let sqnr = sqnr_db(sig, noise);
        let int8 = sqnr >= opts.min_sqnr_db;
        let name = loc_label(&d.loc, &format!("shape.gather#{n}"));
        report.layers.push(LayerReport { name, op: "shape.gather".into(), sqnr_db: sqnr, int8 });
        if !int8 {
            out.push(op);
            continue;
        }
        let (loc, indices, result) = (d.loc.clone(), d.operands[1], d.results[0]);
        // Reuse an identical constant (a tied head's weights), moving it here if it is defined
        // later (a head comes after the lookup).
        let c = ConstTensor::from_tensor(&q).with_type(ty.clone());
        let existing = ops.iter().copied().find(|&o| {
            f.ops[o].kind == OpKind::Constant && f.ops[o].attrs.tensor("value").is_some_and(|t| *t == c)
        });
        let tv = match existing {
            Some(o) => {
                if !out.contains(&o) {
                    out.push(o);
                    moved.push(o);
                }
                f.ops[o].results[0]
            }
            None => {
                let co = new_const(f, &q, ty, loc.clone());
                out.push(co);
                f.ops[co].results[0]
            }
        };
        let g = new_op(f, OpKind::QGather, vec![tv, indices], Attrs::new(), loc)?;
        out.push(g);
        let r = f.ops[g].results[0];
        f.replace_all_uses(result, r);
    }
    f.blocks[body].ops = out;
    crate::dce::eliminate_dead_ops(f);
    Ok(())
}

/// Smaller tables (e.g. a handful of class embeddings) are left in float.
pub const MIN_TABLE_ELEMENTS: usize = 4096;

/// `q.quantize(q.dequantize(t))` → `t` when the parameters agree, else `q.requantize(t)`.
fn cancel_dequantize_quantize(f: &mut Function) -> Result<(), String> {
    let body = f.body;
    let ops = f.blocks[body].ops.clone();
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let d = &f.ops[op];
        if d.kind == OpKind::QQuantize {
            if let Some(src) = defining_op(f, d.operands[0]).filter(|&p| f.ops[p].kind == OpKind::QDequantize)
            {
                let t = f.ops[src].operands[0];
                let r = d.results[0];
                if let Ok(tp) = per_tensor_i8(&f.values[t].ty, "t") {
                    let want = per_tensor_i8(&f.values[r].ty, "r")?;
                    if tp == want {
                        f.replace_all_uses(r, t);
                        continue;
                    }
                    let attrs = d.attrs.clone();
                    let loc = d.loc.clone();
                    let rq = new_op(f, OpKind::QRequantize, vec![t], attrs, loc)?;
                    f.replace_all_uses(r, f.ops[rq].results[0]);
                    out.push(rq);
                    continue;
                }
            }
        }
        out.push(op);
    }
    f.blocks[body].ops = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_params_cover_the_range() {
        let (s, z) = activation_params(-1.0, 3.0);
        assert!((s - 4.0 / 255.0).abs() < 1e-7);
        assert_eq!(z, -128 + 64);
        assert_eq!(activation_params(0.0, 0.0), (1.0, 0));
        let (_, z) = activation_params(0.0, 5.0);
        assert_eq!(z, -128);
    }
}
