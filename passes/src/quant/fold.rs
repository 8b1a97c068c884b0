//! `fold-quantized`: pre-quantized ONNX (QDQ and QOperator formats) into edgec's integer kernels.
//!
//! An ONNX model quantized by its producer states its integer computation as
//! `DequantizeLinear → float op → QuantizeLinear` groups (QDQ) or as `QLinearConv` /
//! `QLinearMatMul` (QOperator). Evaluated literally, the float ops run in float; this pass turns
//! the groups whose arithmetic the `q.*` kernels of `edgec_ir::ops::qint8` represent into those
//! kernels, so the backends emit the int8 GEMM:
//!
//! - `DQ(x) , DQ(w const) [, DQ(bias const) | f32 bias] → Conv | ConvTranspose | MatMul | Gemm
//!   [→ Relu | Clip] → Q(y)` ⇒ `q.conv` / `q.conv_transpose` (group 1) / `q.fully_connected` with
//!   y's parameters;
//! - `DQ(a), DQ(b) → Add [→ Relu] → Q` ⇒ `q.add`;
//! - `QLinearConv` ⇒ `q.conv`; `QLinearMatMul` with a constant B ⇒ `q.fully_connected`;
//! - `DQ(w const int4/uint4, block_size B, axis 0) → MatMul` ⇒ `q.matmul_nbits` (ONNX Runtime's
//!   4-bit QDQ weight format: w `[K, N]`, scales `[K/B, N]`);
//! - every other per-tensor `QuantizeLinear` ⇒ `q.quantize` (or `q.requantize` / nothing after a
//!   `q.dequantize`), every `DequantizeLinear` of such a value ⇒ `q.dequantize`.
//!
//! Why it is exact (or within TFLite's one LSB): activations must be per tensor with constant
//! scale and zero point (`!q.uniform` types hold compile-time parameters). A `u8` tensor with
//! zero point z is the `i8` tensor `q − 128` with zero point `z − 128` — the same real values —
//! so internal tensors are always int8. Weights must be constant; `w − w_zp` is taken exactly
//! and must fit in int8 (a `u8` weight with a zero point far from 128 does not, and stays as the
//! ONNX op). Per-axis weight parameters must run along the op's output channels. Biases are
//! re-expressed at `scale_x · scale_w[c]` (what ONNX's QLinearConv defines; ORT's QDQ biases use
//! that scale already, so this is the identity up to f32 rounding of the product). What changes
//! is only the requantization: ONNX rounds `acc · M` in floating point half to even, the `q.*`
//! kernels use TFLite's fixed-point multiplier (half away from zero), and `q.quantize` rounds
//! half away from zero — each at most one LSB apart on ties.
//!
//! Values that must stay in their ONNX form (a quantized tensor read by an op this pass does not
//! fold, e.g. `MatMulInteger`, or returned by the graph) are converted back exactly by
//! `QuantizeLinear(q.dequantize(t))`. Everything else — dynamic quantization
//! (`DynamicQuantizeLinear`, `MatMulInteger`, `ConvInteger`), runtime scales, asymmetric int4
//! blocks, other integer widths — is left as it is; the backends compile those ops directly.

use crate::canon::{const_data, create_constant_typed, defining_op, has_operand, use_counts, Replacements};
use crate::pass::{Pass, PassError};
use edgec_ir::entity::SecondaryMap;
use edgec_ir::ops::qint8::i8_type;
use edgec_ir::{
    Attr, Attrs, Builder, ElemType, Function, Loc, Module, Op, OpKind, QuantParams, QuantType, ScalarType,
    Tensor, TensorType, Value,
};
use ndarray::{ArrayD, IxDyn};

pub struct FoldQuantized;

impl Pass for FoldQuantized {
    fn name(&self) -> &'static str {
        "fold-quantized"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        for f in &mut module.functions {
            fold_function(f);
            // Float functions between a dequantize and a quantize (ONNX Runtime's QDQ around an
            // activation) become tables.
            if super::lookup::form_lookups(f, &|_| true)
                .map_err(|e| PassError::Failed { pass: self.name().into(), message: e })?
                > 0
            {
                crate::dce::eliminate_dead_ops(f);
            }
            // As after edgec's own quantization: a layer whose only consumer dequantizes writes f32.
            super::int8::fold_dequantize_into_layers(f);
        }
        Ok(())
    }
}

/// Whether `f` holds ONNX quantization ops (the session adds this pass to the pipeline then).
pub fn has_onnx_quant_ops(f: &Function) -> bool {
    f.body_ops().iter().any(|&op| {
        matches!(
            f.ops[op].kind,
            OpKind::QuantizeLinear
                | OpKind::DequantizeLinear
                | OpKind::QLinearConv
                | OpKind::QLinearMatMul
                | OpKind::MatMulInteger
                | OpKind::ConvInteger
                | OpKind::DynamicQuantizeLinear
        )
    })
}

/// Per-tensor parameters as the `q.*` ops hold them: `(scale, zero point of the i8 form)`.
type Params = (f64, i64);

struct Cx<'a> {
    f: &'a mut Function,
    /// New ops to place before each original op.
    before: SecondaryMap<Op, Vec<Op>>,
    /// For an ONNX `u8`/`i8` value, its `!q.uniform<i8>` equivalent.
    qv: SecondaryMap<Value, Option<Value>>,
    /// ONNX values produced by a folded op (their producer is dead once every use is moved).
    folded: Vec<Value>,
    reps: Replacements,
}

/// A constant's interpreter value.
fn konst(f: &Function, v: Value) -> Option<Tensor> {
    const_data(f, v)?.to_tensor().ok()
}

/// The i8 zero point of a stored zero point: u8 values are shifted by 128.
fn centred_zp(storage: ScalarType, z: i64) -> Option<i64> {
    match storage {
        ScalarType::I8 => Some(z),
        ScalarType::U8 => Some(z - 128),
        _ => None,
    }
}

/// Constant per-tensor `(scale, zero point)` operands (`s` at `si`, optional zero point at
/// `si + 1`), for values stored as `storage`. `None` unless the scale is one positive finite
/// f32 and the zero point (if any) one integer.
fn per_tensor(f: &Function, op: Op, si: usize, zi: Option<usize>, storage: ScalarType) -> Option<Params> {
    let d = &f.ops[op];
    let s = konst(f, *d.operands.get(si)?)?;
    if s.scalar_type() != ScalarType::F32 || s.len() != 1 {
        return None;
    }
    let scale = s.to_f64_vec()[0];
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let z = match zi {
        Some(zi) if has_operand(f, op, zi) => {
            let z = konst(f, d.operands[zi])?;
            if z.len() != 1 {
                return None;
            }
            z.to_i64_vec()?[0]
        }
        _ => 0,
    };
    Some((scale, centred_zp(storage, z)?))
}

/// An i8 tensor type with per-tensor parameters.
fn q_type(shape: &TensorType, p: Params) -> TensorType {
    TensorType::new(shape.dims.clone(), i8_type(p.0, p.1))
}

fn fold_function(f: &mut Function) {
    if !has_onnx_quant_ops(f) {
        return;
    }
    let ops = f.body_ops().to_vec();
    let mut cx = Cx {
        f,
        before: SecondaryMap::with_default(Vec::new()),
        qv: SecondaryMap::with_default(None),
        folded: Vec::new(),
        reps: Replacements::new(),
    };
    let mut folded_any = false;
    for &op in &ops {
        cx.reps.rewrite_op(cx.f, op);
        let kind = cx.f.ops[op].kind;
        let done = match kind {
            OpKind::Conv | OpKind::ConvTranspose | OpKind::MatMul | OpKind::Gemm => {
                cx.linear(op) || cx.matmul_nbits(op)
            }
            OpKind::Add => cx.add(op),
            OpKind::QLinearConv | OpKind::QLinearMatMul => cx.qlinear(op),
            OpKind::QuantizeLinear => cx.quantize(op),
            OpKind::DequantizeLinear => cx.dequantize(op),
            _ => false,
        };
        if done {
            folded_any = true;
        }
    }
    if !folded_any {
        return;
    }
    cx.reps.apply(cx.f);
    let Cx { f, before, folded, qv, .. } = cx;
    place(f, &ops, &before);
    crate::dce::eliminate_dead_ops(f);
    // Folded values still read in their ONNX form get an exact conversion back, so that their
    // float producers die.
    let uses = use_counts(f);
    let mut back: SecondaryMap<Op, Vec<Op>> = SecondaryMap::with_default(Vec::new());
    let mut any = false;
    for v in folded {
        if *uses.get(v) == 0 {
            continue;
        }
        let Some(q) = *qv.get(v) else { continue };
        if let Some(ops) = convert_back(f, v, q) {
            // Right after the q value's definition: at its producer's position.
            let at = defining_op(f, q).expect("a folded value is an op result");
            let mut list = back.get(at).clone();
            list.extend(ops);
            back.set(at, list);
            any = true;
        }
    }
    if any {
        let body = f.body;
        let old = f.blocks[body].ops.clone();
        let mut out = Vec::with_capacity(old.len());
        for op in old {
            out.push(op);
            out.extend(back.get(op).iter().copied());
        }
        f.blocks[body].ops = out;
        crate::dce::eliminate_dead_ops(f);
    }
}

/// `QuantizeLinear(q.dequantize(q), s, z)` of `v`'s ONNX type: exact, since the dequantized
/// value is within f32 rounding of a grid point. Replaces every use of `v`.
fn convert_back(f: &mut Function, v: Value, q: Value) -> Option<Vec<Op>> {
    let ty = f.values[v].ty.clone();
    let (scale, zp) = match &f.values[q].ty.elem {
        ElemType::Quant(qt) => match qt.params {
            QuantParams::PerTensor { scale, zero_point } => (scale, zero_point),
            _ => return None,
        },
        _ => return None,
    };
    let storage = ty.scalar();
    let z = match storage {
        ScalarType::I8 => zp,
        ScalarType::U8 => zp + 128,
        _ => return None,
    };
    let loc = f.ops[defining_op(f, q)?].loc.clone();
    let dq = new_op(f, OpKind::QDequantize, vec![q], Attrs::new(), loc.clone())?;
    let s = create_constant_typed(
        f,
        &Tensor::from_f64(ScalarType::F32, &[], &[scale]).ok()?,
        scalar_ty(ScalarType::F32),
        loc.clone(),
    );
    let zc = create_constant_typed(
        f,
        &Tensor::from_f64(storage, &[], &[z as f64]).ok()?,
        scalar_ty(storage),
        loc.clone(),
    );
    let operands = vec![f.ops[dq].results[0], f.ops[s].results[0], f.ops[zc].results[0]];
    let ql = new_op(f, OpKind::QuantizeLinear, operands, Attrs::new(), loc)?;
    let r = f.ops[ql].results[0];
    if f.values[r].ty != ty {
        return None;
    }
    f.replace_all_uses(v, r);
    // The conversion itself reads `q`, never `v`.
    Some(vec![s, zc, dq, ql])
}

fn scalar_ty(t: ScalarType) -> TensorType {
    TensorType::of(&[], t)
}

/// Creates an op (unplaced) with inferred result types; `None` if the op refuses its operands.
fn new_op(f: &mut Function, kind: OpKind, operands: Vec<Value>, attrs: Attrs, loc: Loc) -> Option<Op> {
    let types = Builder::new(f).infer(kind, &operands, &attrs, 1).ok()?;
    Some(f.create_op(kind, operands, types, attrs, loc))
}

/// Inserts the new ops before the op they were made for.
fn place(f: &mut Function, ops: &[Op], before: &SecondaryMap<Op, Vec<Op>>) {
    let mut out = Vec::with_capacity(ops.len());
    for &op in ops {
        out.extend(before.get(op).iter().copied());
        out.push(op);
    }
    let body = f.body;
    f.blocks[body].ops = out;
}

/// A quantized weight in the integer op's layout, with one scale per output channel.
struct Weights {
    /// `w − w_zp`, row-major, in the integer op's layout.
    values: Vec<i8>,
    shape: Vec<usize>,
    /// The output-channel axis of `shape` (0, or 1 for a transposed convolution).
    axis: usize,
    scales: Vec<f64>,
}

impl Weights {
    fn tensor(&self) -> (Tensor, TensorType) {
        let t = Tensor::I8(ArrayD::from_shape_vec(IxDyn(&self.shape), self.values.clone()).expect("shape"));
        let ty = TensorType::of(
            &self.shape,
            ElemType::Quant(Box::new(QuantType {
                storage: ScalarType::I8,
                expressed: ScalarType::F32,
                params: QuantParams::PerAxis {
                    axis: self.axis,
                    scales: self.scales.clone(),
                    zero_points: vec![0; self.scales.len()],
                },
            })),
        );
        (t, ty)
    }
}

/// `w − zp` of a constant u8/i8 weight with constant scales and zero points, per tensor or per
/// index of `axis` (which must be `ch_axis`, the output channels), re-laid out so that the
/// output channel comes first (`transpose`: the weight is `[K, N]` and becomes `[N, K]`).
fn weights(
    f: &Function,
    w: Value,
    scale: Value,
    zp: Option<Value>,
    axis: usize,
    ch_axis: usize,
    transpose: bool,
) -> Option<Weights> {
    let wt = konst(f, w)?;
    if !matches!(wt.scalar_type(), ScalarType::I8 | ScalarType::U8) {
        return None;
    }
    let shape = wt.shape().to_vec();
    let channels = *shape.get(ch_axis)?;
    let s = konst(f, scale)?;
    if s.scalar_type() != ScalarType::F32 {
        return None;
    }
    let sv = s.to_f64_vec();
    let zv = match zp {
        Some(z) => konst(f, z)?.to_i64_vec()?,
        None => vec![0],
    };
    let per_tensor = sv.len() == 1 && zv.len() == 1;
    if !per_tensor && (axis != ch_axis || sv.len() != channels || !(zv.len() == 1 || zv.len() == channels)) {
        return None;
    }
    if sv.iter().any(|&x| !(x.is_finite() && x > 0.0)) {
        return None;
    }
    let inner: usize = shape[ch_axis + 1..].iter().product();
    let raw = wt.to_i64_vec()?;
    let mut centred = Vec::with_capacity(raw.len());
    for (i, &q) in raw.iter().enumerate() {
        let c = (i / inner.max(1)) % channels;
        let z = if zv.len() == 1 { zv[0] } else { zv[c] };
        let v = q - z;
        if !(-128..=127).contains(&v) {
            return None;
        }
        centred.push(v as i8);
    }
    let (values, shape, out_axis) = if transpose {
        let (k, n) = (shape[0], shape[1]);
        let mut t = vec![0i8; k * n];
        for r in 0..k {
            for c in 0..n {
                t[c * k + r] = centred[r * n + c];
            }
        }
        (t, vec![n, k], 0)
    } else {
        (centred, shape, ch_axis)
    };
    let scales = if sv.len() == 1 { vec![sv[0]; channels] } else { sv };
    Some(Weights { values, shape, axis: out_axis, scales })
}

/// The weights read by a DequantizeLinear of a constant (axis normalized).
fn dq_weights(f: &Function, v: Value, ch_axis: usize, transpose: bool) -> Option<Weights> {
    let dq = defining_op(f, v)?;
    let d = &f.ops[dq];
    if d.kind != OpKind::DequantizeLinear || d.attrs.int("block_size").unwrap_or(0) != 0 {
        return None;
    }
    if f.values[d.results[0]].ty.scalar() != ScalarType::F32 {
        return None;
    }
    let rank = f.values[d.operands[0]].ty.rank() as i64;
    let a = d.attrs.int("axis").unwrap_or(1);
    let axis = if a < 0 { a + rank } else { a };
    if axis < 0 {
        return None;
    }
    let zp = has_operand(f, dq, 2).then(|| d.operands[2]);
    weights(f, d.operands[0], d.operands[1], zp, axis as usize, ch_axis, transpose)
}

/// Per-channel bias values (real numbers) of a constant f32 bias or a DequantizeLinear of a
/// constant i32 bias, with `channels` elements.
fn real_bias(f: &Function, v: Value, channels: usize) -> Option<Vec<f64>> {
    if let Some(t) = konst(f, v) {
        return (t.scalar_type() == ScalarType::F32 && t.len() == channels).then(|| t.to_f64_vec());
    }
    let dq = defining_op(f, v)?;
    let d = &f.ops[dq];
    if d.kind != OpKind::DequantizeLinear || d.attrs.int("block_size").unwrap_or(0) != 0 {
        return None;
    }
    let b = konst(f, d.operands[0])?;
    let s = konst(f, d.operands[1])?.to_f64_vec();
    let z = if has_operand(f, dq, 2) { konst(f, d.operands[2])?.to_i64_vec()? } else { vec![0] };
    if b.len() != channels || !(s.len() == 1 || s.len() == channels) || !(z.len() == 1 || z.len() == channels)
    {
        return None;
    }
    let bv = b.to_i64_vec()?;
    // ONNX dequantizes in f32; the real value is that f32.
    Some(
        (0..channels)
            .map(|c| {
                let s = if s.len() == 1 { s[0] } else { s[c] };
                let z = if z.len() == 1 { z[0] } else { z[c] };
                ((bv[c] - z) as f32 * s as f32) as f64
            })
            .collect(),
    )
}

/// An int32 bias at `scale_x · scale_w[c]`, rounded half to even (as ONNX quantizes biases).
fn quantize_bias(real: &[f64], s_x: f64, scales: &[f64]) -> Tensor {
    let q: Vec<i32> = real
        .iter()
        .zip(scales)
        .map(|(&b, &sw)| (b / (s_x * sw)).round_ties_even().clamp(i32::MIN as f64, i32::MAX as f64) as i32)
        .collect();
    Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[q.len()]), q).expect("1-D"))
}

/// What follows a float anchor: an optional ReLU / Clip, then a per-tensor QuantizeLinear.
struct Epilogue {
    /// The QuantizeLinear's (ONNX) result.
    out: Value,
    params: Params,
    act: (i64, i64),
}

impl Cx<'_> {
    fn single_user(&self, v: Value) -> Option<Op> {
        let mut user = None;
        for &op in self.f.body_ops() {
            for &o in &self.f.ops[op].operands {
                if self.reps.resolve(o) == v {
                    if user.is_some() {
                        return None;
                    }
                    user = Some(op);
                }
            }
        }
        user
    }

    fn epilogue(&self, y: Value) -> Option<Epilogue> {
        let f = &*self.f;
        let mut v = y;
        let mut clip: Option<(Option<f64>, Option<f64>)> = None;
        let mut user = self.single_user(v)?;
        match f.ops[user].kind {
            OpKind::Relu => clip = Some((Some(0.0), None)),
            OpKind::Clip => {
                let d = &f.ops[user];
                let bound = |i: usize| -> Option<Option<f64>> {
                    if !has_operand(f, user, i) {
                        return Some(None);
                    }
                    let t = konst(f, d.operands[i])?;
                    (t.len() == 1).then(|| Some(t.to_f64_vec()[0]))
                };
                clip = Some((bound(1)?, bound(2)?));
            }
            _ => {}
        }
        if clip.is_some() {
            v = f.ops[user].results[0];
            user = self.single_user(v)?;
        }
        let d = &f.ops[user];
        if d.kind != OpKind::QuantizeLinear || d.operands[0] != v {
            return None;
        }
        let out = d.results[0];
        let params = per_tensor(f, user, 1, Some(2), f.values[out].ty.scalar())?;
        // Quantization saturates to i8 anyway; a clip bound maps onto the grid the way
        // QuantizeLinear maps every value (rounding is monotone, so clamping before or after
        // rounding agrees).
        let grid = |x: f64| ((x / params.0).round_ties_even() + params.1 as f64).clamp(-128.0, 127.0) as i64;
        let act = match clip {
            None => (-128, 127),
            Some((lo, hi)) => (lo.map_or(-128, grid), hi.map_or(127, grid)),
        };
        (act.0 <= act.1).then_some(Epilogue { out, params, act })
    }

    /// The `!q.uniform<i8>` value standing for the float operand `v` of a QDQ group: the
    /// quantized value behind a `q.dequantize`, or a boundary `q.quantize` of a per-tensor
    /// DequantizeLinear's (exact) output. New ops go to `pending`.
    fn q_operand(&mut self, v: Value, pending: &mut Vec<Op>) -> Option<Value> {
        let p = defining_op(self.f, v)?;
        match self.f.ops[p].kind {
            OpKind::QDequantize => {
                let t = self.f.ops[p].operands[0];
                matches!(&self.f.values[t].ty.elem, ElemType::Quant(q) if matches!(q.params, QuantParams::PerTensor { .. }))
                    .then_some(t)
            }
            OpKind::DequantizeLinear => {
                let x = self.f.ops[p].operands[0];
                let storage = self.f.values[x].ty.scalar();
                if self.f.ops[p].attrs.int("block_size").unwrap_or(0) != 0
                    || self.f.values[v].ty.scalar() != ScalarType::F32
                {
                    return None;
                }
                let params = per_tensor(self.f, p, 1, Some(2), storage)?;
                self.q_of(x, v, params, pending)
            }
            _ => None,
        }
    }

    /// The q value of the ONNX integer value `x` with `params`, whose dequantized float form is
    /// `dq` (`None`: make it with a new DequantizeLinear).
    fn q_of(&mut self, x: Value, dq: Value, params: Params, pending: &mut Vec<Op>) -> Option<Value> {
        let want = q_type(&self.f.values[x].ty, params);
        if let Some(q) = *self.qv.get(x) {
            if self.f.values[q].ty == want {
                return Some(q);
            }
        }
        let loc = self.f.ops[defining_op(self.f, dq)?].loc.clone();
        if let Some(t) = konst(self.f, x) {
            // A constant operand: its i8 form directly.
            let vals: Vec<i8> = t
                .to_i64_vec()?
                .iter()
                .map(|&q| (q - (t.scalar_type() == ScalarType::U8) as i64 * 128) as i8)
                .collect();
            let it = Tensor::I8(ArrayD::from_shape_vec(IxDyn(t.shape()), vals).ok()?);
            let c = create_constant_typed(self.f, &it, want, loc);
            pending.push(c);
            return Some(self.f.ops[c].results[0]);
        }
        let attrs = Attrs::new().with("scale", Attr::Float(params.0)).with("zero_point", Attr::Int(params.1));
        let q = new_op(self.f, OpKind::QQuantize, vec![dq], attrs, loc)?;
        pending.push(q);
        Some(self.f.ops[q].results[0])
    }

    /// The float value of an ONNX integer operand with per-tensor params: a new
    /// DequantizeLinear (for QLinear ops, whose inputs are integers).
    fn q_of_int(
        &mut self,
        op: Op,
        xi: usize,
        si: usize,
        zi: usize,
        pending: &mut Vec<Op>,
    ) -> Option<(Value, Params)> {
        let f = &*self.f;
        let d = &f.ops[op];
        let x = d.operands[xi];
        let storage = f.values[x].ty.scalar();
        let params = per_tensor(f, op, si, Some(zi), storage)?;
        if let Some(q) = *self.qv.get(x) {
            if self.f.values[q].ty == q_type(&self.f.values[x].ty, params) {
                return Some((q, params));
            }
        }
        let (s, z, loc) = (d.operands[si], d.operands[zi], d.loc.clone());
        let dq = new_op(self.f, OpKind::DequantizeLinear, vec![x, s, z], Attrs::new(), loc)?;
        pending.push(dq);
        let dv = self.f.ops[dq].results[0];
        Some((self.q_of(x, dv, params, pending)?, params))
    }

    /// Places `pending` before `at`, records `out`'s q value.
    fn commit(&mut self, at: Op, pending: Vec<Op>, out: Value, q: Value) {
        let mut list = self.before.get(at).clone();
        list.extend(pending);
        self.before.set(at, list);
        self.qv.set(out, Some(q));
        self.folded.push(out);
    }

    /// Conv / MatMul / Gemm in a QDQ group.
    fn linear(&mut self, op: Op) -> bool {
        self.try_linear(op).is_some()
    }

    fn try_linear(&mut self, op: Op) -> Option<()> {
        let f = &*self.f;
        let d = &f.ops[op];
        let kind = d.kind;
        let y = d.results[0];
        let (xv, wv) = (d.operands[0], *d.operands.get(1)?);
        let ep = self.epilogue(y)?;
        let xrank = f.values[xv].ty.rank();
        let (w, bias_v, attrs) = match kind {
            OpKind::Conv => {
                let mut a = Attrs::new();
                for n in ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"] {
                    if let Some(v) = d.attrs.get(n) {
                        a.set(n, v.clone());
                    }
                }
                (dq_weights(f, wv, 0, false)?, has_operand(f, op, 2).then(|| d.operands[2]), a)
            }
            OpKind::ConvTranspose => {
                // q.conv_transpose: group 1, weights [C, M, k...] per output channel (axis 1).
                if d.attrs.int("group").unwrap_or(1) != 1 {
                    return None;
                }
                let mut a = Attrs::new();
                for n in [
                    "auto_pad",
                    "dilations",
                    "group",
                    "kernel_shape",
                    "output_padding",
                    "output_shape",
                    "pads",
                    "strides",
                ] {
                    if let Some(v) = d.attrs.get(n) {
                        a.set(n, v.clone());
                    }
                }
                (dq_weights(f, wv, 1, false)?, has_operand(f, op, 2).then(|| d.operands[2]), a)
            }
            OpKind::MatMul => {
                if f.values[wv].ty.rank() != 2 || xrank < 1 || f.values[y].ty.rank() != xrank {
                    return None;
                }
                (dq_weights(f, wv, 1, true)?, None, Attrs::new())
            }
            _ => {
                let a = &d.attrs;
                if a.int("transA").unwrap_or(0) != 0
                    || a.float("alpha").unwrap_or(1.0) != 1.0
                    || a.float("beta").unwrap_or(1.0) != 1.0
                    || f.values[wv].ty.rank() != 2
                {
                    return None;
                }
                let w = if a.int("transB").unwrap_or(0) != 0 {
                    dq_weights(f, wv, 0, false)?
                } else {
                    dq_weights(f, wv, 1, true)?
                };
                (w, has_operand(f, op, 2).then(|| d.operands[2]), Attrs::new())
            }
        };
        let channels = w.shape[w.axis];
        let bias = match bias_v {
            Some(b) => Some(real_bias(f, b, channels)?),
            None => None,
        };
        let loc = d.loc.clone();
        let mut pending = Vec::new();
        let xq = self.q_operand(xv, &mut pending)?;
        let s_x = match &self.f.values[xq].ty.elem {
            ElemType::Quant(q) => match q.params {
                QuantParams::PerTensor { scale, .. } => scale,
                _ => return None,
            },
            _ => return None,
        };
        let (wt, wty) = w.tensor();
        let wc = create_constant_typed(self.f, &wt, wty, loc.clone());
        pending.push(wc);
        let mut operands = vec![xq, self.f.ops[wc].results[0]];
        if let Some(b) = &bias {
            let bt = quantize_bias(b, s_x, &w.scales);
            let ty = bt.ty();
            let bc = create_constant_typed(self.f, &bt, ty, loc.clone());
            pending.push(bc);
            operands.push(self.f.ops[bc].results[0]);
        }
        let mut attrs = attrs;
        attrs.set("scale", Attr::Float(ep.params.0));
        attrs.set("zero_point", Attr::Int(ep.params.1));
        attrs.set("act_min", Attr::Int(ep.act.0));
        attrs.set("act_max", Attr::Int(ep.act.1));
        let qk = match kind {
            OpKind::Conv => OpKind::QConv,
            OpKind::ConvTranspose => OpKind::QConvTranspose,
            _ => OpKind::QFullyConnected,
        };
        let qop = new_op(self.f, qk, operands, attrs, loc)?;
        let r = self.f.ops[qop].results[0];
        // The integer op must produce exactly the Q's shape.
        if self.f.values[r].ty.dims != self.f.values[ep.out].ty.dims {
            return None;
        }
        pending.push(qop);
        self.commit(op, pending, ep.out, r);
        Some(())
    }

    /// `DQ(a), DQ(b) → Add [→ Relu] → Q` as `q.add`.
    fn add(&mut self, op: Op) -> bool {
        (|| -> Option<()> {
            let d = &self.f.ops[op];
            let (a, b, y, loc) = (d.operands[0], d.operands[1], d.results[0], d.loc.clone());
            let ep = self.epilogue(y)?;
            let mut pending = Vec::new();
            let aq = self.q_operand(a, &mut pending)?;
            let bq = self.q_operand(b, &mut pending)?;
            let attrs = Attrs::new()
                .with("scale", Attr::Float(ep.params.0))
                .with("zero_point", Attr::Int(ep.params.1))
                .with("act_min", Attr::Int(ep.act.0))
                .with("act_max", Attr::Int(ep.act.1));
            let qop = new_op(self.f, OpKind::QAdd, vec![aq, bq], attrs, loc)?;
            let r = self.f.ops[qop].results[0];
            if self.f.values[r].ty.dims != self.f.values[ep.out].ty.dims {
                return None;
            }
            pending.push(qop);
            self.commit(op, pending, ep.out, r);
            Some(())
        })()
        .is_some()
    }

    /// QLinearConv ⇒ q.conv, QLinearMatMul with a constant 2-D B ⇒ q.fully_connected.
    fn qlinear(&mut self, op: Op) -> bool {
        (|| -> Option<()> {
            let f = &*self.f;
            let d = &f.ops[op];
            let kind = d.kind;
            let y = d.results[0];
            let ystore = f.values[y].ty.scalar();
            let yp = per_tensor(f, op, 6, Some(7), ystore)?;
            // Operands: x/a 0, scale 1, zp 2, w/b 3, scale 4, zp 5, y scale 6, y zp 7, bias 8.
            let w = if kind == OpKind::QLinearConv {
                weights(f, d.operands[3], d.operands[4], Some(d.operands[5]), 0, 0, false)?
            } else {
                if f.values[d.operands[3]].ty.rank() != 2 {
                    return None;
                }
                // b's scale is per column ([N] or [1, N]) or per tensor.
                weights(f, d.operands[3], d.operands[4], Some(d.operands[5]), 1, 1, true)?
            };
            let bias = if kind == OpKind::QLinearConv && has_operand(f, op, 8) {
                let b = konst(f, d.operands[8])?;
                (b.scalar_type() == ScalarType::I32 && b.len() == w.shape[0]).then_some(())?;
                Some(Tensor::I32(
                    ArrayD::from_shape_vec(
                        IxDyn(&[b.len()]),
                        b.to_i64_vec()?.iter().map(|&v| v as i32).collect(),
                    )
                    .ok()?,
                ))
            } else {
                None
            };
            let mut attrs = Attrs::new();
            if kind == OpKind::QLinearConv {
                for n in ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"] {
                    if let Some(v) = d.attrs.get(n) {
                        attrs.set(n, v.clone());
                    }
                }
            }
            let loc = d.loc.clone();
            let mut pending = Vec::new();
            let (xq, _) = self.q_of_int(op, 0, 1, 2, &mut pending)?;
            let (wt, wty) = w.tensor();
            let wc = create_constant_typed(self.f, &wt, wty, loc.clone());
            pending.push(wc);
            let mut operands = vec![xq, self.f.ops[wc].results[0]];
            if let Some(b) = bias {
                let ty = b.ty();
                let bc = create_constant_typed(self.f, &b, ty, loc.clone());
                pending.push(bc);
                operands.push(self.f.ops[bc].results[0]);
            }
            attrs.set("scale", Attr::Float(yp.0));
            attrs.set("zero_point", Attr::Int(yp.1));
            let qk = if kind == OpKind::QLinearConv { OpKind::QConv } else { OpKind::QFullyConnected };
            let qop = new_op(self.f, qk, operands, attrs, loc)?;
            let r = self.f.ops[qop].results[0];
            if self.f.values[r].ty.dims != self.f.values[y].ty.dims {
                return None;
            }
            pending.push(qop);
            self.commit(op, pending, y, r);
            Some(())
        })()
        .is_some()
    }

    /// A per-tensor QuantizeLinear of a float value: `q.quantize`, or after a `q.dequantize`
    /// the quantized value itself (same parameters) or its `q.requantize`.
    fn quantize(&mut self, op: Op) -> bool {
        (|| -> Option<()> {
            let f = &*self.f;
            let d = &f.ops[op];
            let (x, v) = (d.operands[0], d.results[0]);
            if self.qv.get(v).is_some() || f.values[x].ty.scalar() != ScalarType::F32 {
                return None;
            }
            let params = per_tensor(f, op, 1, Some(2), f.values[v].ty.scalar())?;
            let want = q_type(&f.values[v].ty, params);
            let loc = d.loc.clone();
            let attrs = Attrs::new().with("scale", Attr::Float(params.0)).with("zero_point", Attr::Int(params.1));
            let src = defining_op(f, x).filter(|&p| f.ops[p].kind == OpKind::QDequantize).map(|p| f.ops[p].operands[0]);
            let q = match src {
                Some(t) if f.values[t].ty == want => t,
                Some(t) if matches!(&f.values[t].ty.elem, ElemType::Quant(q) if matches!(q.params, QuantParams::PerTensor { .. })) => {
                    let rq = new_op(self.f, OpKind::QRequantize, vec![t], attrs, loc)?;
                    self.before.set(op, vec![rq]);
                    self.f.ops[rq].results[0]
                }
                _ => {
                    let qq = new_op(self.f, OpKind::QQuantize, vec![x], attrs, loc)?;
                    self.before.set(op, vec![qq]);
                    self.f.ops[qq].results[0]
                }
            };
            self.qv.set(v, Some(q));
            Some(())
        })()
        .is_some()
    }

    /// A per-tensor DequantizeLinear of a value with a q form ⇒ `q.dequantize` of that form.
    fn dequantize(&mut self, op: Op) -> bool {
        (|| -> Option<()> {
            let f = &*self.f;
            let d = &f.ops[op];
            let (x, v) = (d.operands[0], d.results[0]);
            let q = (*self.qv.get(x))?;
            if d.attrs.int("block_size").unwrap_or(0) != 0 || f.values[v].ty.scalar() != ScalarType::F32 {
                return None;
            }
            let params = per_tensor(f, op, 1, Some(2), f.values[x].ty.scalar())?;
            if f.values[q].ty != q_type(&f.values[x].ty, params) {
                return None;
            }
            let loc = d.loc.clone();
            let dq = new_op(self.f, OpKind::QDequantize, vec![q], Attrs::new(), loc)?;
            let mut list = self.before.get(op).clone();
            list.push(dq);
            self.before.set(op, list);
            let r = self.f.ops[dq].results[0];
            self.reps.replace(v, r);
            Some(())
        })()
        .is_some()
    }

    /// `MatMul(x, DQ(w int4/uint4 [K, N], scales [K/B, N], block_size B, axis 0))` ⇒
    /// `q.matmul_nbits` with w `[N, K]` i4 and scales `[N, K/B]`, when `w − zp` fits in i4.
    fn matmul_nbits(&mut self, op: Op) -> bool {
        (|| -> Option<()> {
            let f = &*self.f;
            let d = &f.ops[op];
            if d.kind != OpKind::MatMul {
                return None;
            }
            let (x, wv, y) = (d.operands[0], d.operands[1], d.results[0]);
            if f.values[x].ty.scalar() != ScalarType::F32 || f.values[x].ty.rank() < 1 {
                return None;
            }
            let dq = defining_op(f, wv)?;
            let dd = &f.ops[dq];
            if dd.kind != OpKind::DequantizeLinear {
                return None;
            }
            let block = dd.attrs.int("block_size").unwrap_or(0);
            let axis = dd.attrs.int("axis").unwrap_or(1);
            let w = konst(f, dd.operands[0])?;
            if dd.kind != OpKind::DequantizeLinear
                || block <= 0
                || !(axis == 0 || axis == -2)
                || w.shape().len() != 2
                || !matches!(w.scalar_type(), ScalarType::I4 | ScalarType::U4)
            {
                return None;
            }
            let s = konst(f, dd.operands[1])?;
            if s.scalar_type() != ScalarType::F32 {
                return None;
            }
            let (k, n) = (w.shape()[0], w.shape()[1]);
            let b = block as usize;
            let groups = k.div_ceil(b);
            if s.shape() != [groups, n] {
                return None;
            }
            let sv = s.to_f64_vec();
            let zv = if has_operand(f, dq, 2) { Some(konst(f, dd.operands[2])?.to_i64_vec()?) } else { None };
            let wv_ = w.to_i64_vec()?;
            let mut wt = vec![0i8; n * k];
            let mut st = vec![0f32; n * groups];
            for r in 0..k {
                for c in 0..n {
                    let z = zv.as_ref().map_or(0, |z| z[(r / b) * n + c]);
                    let v = wv_[r * n + c] - z;
                    if !(-8..=7).contains(&v) {
                        return None;
                    }
                    wt[c * k + r] = v as i8;
                }
            }
            for g in 0..groups {
                for c in 0..n {
                    st[c * groups + g] = sv[g * n + c] as f32;
                }
            }
            let loc = d.loc.clone();
            let wt = Tensor::I4(ArrayD::from_shape_vec(IxDyn(&[n, k]), wt).ok()?);
            let st = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[n, groups]), st).ok()?);
            let (wty, sty) = (wt.ty(), st.ty());
            let wc = create_constant_typed(self.f, &wt, wty, loc.clone());
            let sc = create_constant_typed(self.f, &st, sty, loc.clone());
            let operands = vec![x, self.f.ops[wc].results[0], self.f.ops[sc].results[0]];
            let attrs = Attrs::new().with("group_size", Attr::Int(block)).with("bits", Attr::Int(4));
            let m = new_op(self.f, OpKind::MatMulNBits, operands, attrs, loc)?;
            let r = self.f.ops[m].results[0];
            if self.f.values[r].ty != self.f.values[y].ty {
                return None;
            }
            self.before.set(op, vec![wc, sc, m]);
            self.reps.replace(y, r);
            Some(())
        })()
        .is_some()
    }
}
