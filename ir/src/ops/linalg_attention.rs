//! `nn.attention` (scaled dot-product attention with KV cache, GQA, masks, soft cap and
//! sliding windows) and `nn.rotary_embedding`.
//!
//! Attention works on `[batch, heads, seq, head_size]` arrays (3-D operands are split into
//! heads first and merged back at the end). For each batch and query head it computes one
//! `[q_seq, total_seq]` score matrix with a GEMM, adds the bias (the mask plus the causal,
//! window and padding constraints, computed on the fly rather than materialized), applies a
//! softmax whose fully-masked rows are zero, and multiplies by V with a second GEMM.
//! f16/bf16 operands compute in f32 but round at the points where ONNX rounds (scaled Q and
//! K, the scores, the probabilities), so results match a runtime computing in the narrow type.

use super::linalg::{dim_times, float_attr, float_scalar, int_attr, same_elem, unify_dims, Scalar, Work};
use super::util::{input, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::{AttrKind, Attrs};
use crate::tensor::Tensor;
use crate::types::{Dim, ScalarType, TensorType};
use half::{bf16, f16};
use ndarray::{ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, IxDyn};

/// The float kernel types (f32, f64).
trait Real: Scalar + num_traits::Float {}
impl Real for f32 {}
impl Real for f64 {}

/// Rounds `v` to the precision of `ty` when that is narrower than the kernel type.
fn round_to<F: Real>(v: F, ty: ScalarType) -> F {
    match ty {
        ScalarType::F16 => F::from_f64(f16::from_f64(v.to_f64()).to_f64()),
        ScalarType::BF16 => F::from_f64(bf16::from_f64(v.to_f64()).to_f64()),
        ScalarType::F32 => F::from_f64(v.to_f64() as f32 as f64),
        _ => v,
    }
}

fn round_all<F: Real>(xs: &mut [F], ty: ScalarType) {
    if matches!(ty, ScalarType::F16 | ScalarType::BF16) {
        xs.iter_mut().for_each(|v| *v = round_to(*v, ty));
    }
}

/// Sum of two dims.
fn dim_add(a: &Dim, b: &Dim) -> Dim {
    match (a, b) {
        (Dim::Static(x), Dim::Static(y)) => Dim::Static(x + y),
        (Dim::Static(0), d) | (d, Dim::Static(0)) => d.clone(),
        _ => Dim::Unknown,
    }
}

/// A dim divided by `k`, checking divisibility when static.
fn dim_div(d: &Dim, k: usize, what: &str) -> OpResult<Dim> {
    match d {
        Dim::Static(n) if *n as usize % k != 0 => Err(format!("{what} ({n}) is not divisible by {k}")),
        Dim::Static(n) => Ok(Dim::Static(n / k as u64)),
        _ if k == 1 => Ok(d.clone()),
        _ => Ok(Dim::Unknown),
    }
}

fn positive_attr(attrs: &Attrs, name: &str) -> OpResult<Option<usize>> {
    match attrs.int(name) {
        None => Ok(None),
        Some(v) if v > 0 => Ok(Some(v as usize)),
        Some(v) => Err(format!("{name} must be positive, found {v}")),
    }
}

// ---------------------------------------------------------------------------------------------
// nn.attention
// ---------------------------------------------------------------------------------------------

pub static ATTENTION: OpDef = OpDef {
    name: "nn.attention",
    summary: "Scaled dot-product attention `softmax(Q K^T * scale + bias) V` with optional KV \
              cache, grouped-query heads, boolean or additive mask, causal and sliding-window \
              masking and soft cap (ONNX Attention).",
    operands: &["Q", "K", "V", "attn_mask?", "past_key?", "past_value?", "nonpad_kv_seqlen?"],
    results: &["Y", "present_key?", "present_value?", "qk_matmul_output?"],
    attrs: &[
        AttrDef::opt("is_causal", AttrKind::Int, "0"),
        AttrDef::opt("kv_num_heads", AttrKind::Int, "K's dim 1 (required for 3-D inputs)"),
        AttrDef::opt("left_window_size", AttrKind::Int, "-1"),
        AttrDef::opt("q_num_heads", AttrKind::Int, "Q's dim 1 (required for 3-D inputs)"),
        AttrDef::opt("qk_matmul_output_mode", AttrKind::Int, "0"),
        AttrDef::opt("right_window_size", AttrKind::Int, "-1"),
        AttrDef::opt("scale", AttrKind::Float, "1/sqrt(head_size)"),
        AttrDef::opt("softcap", AttrKind::Float, "0.0"),
        AttrDef::opt("softmax_precision", AttrKind::Type, "the type of Q"),
    ],
    traits: Traits::PURE,
    infer: infer_attention,
    eval: eval_attention,
};

/// Head counts for 3-D operands (both attributes are required there).
fn heads_3d(attrs: &Attrs) -> OpResult<(usize, usize)> {
    let q = positive_attr(attrs, "q_num_heads")?.ok_or("3-D Q, K, V need the q_num_heads attribute")?;
    let kv = positive_attr(attrs, "kv_num_heads")?.ok_or("3-D Q, K, V need the kv_num_heads attribute")?;
    Ok((q, kv))
}

fn infer_attention(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let (q, k, v) = (operand(ctx, 0)?, operand(ctx, 1)?, operand(ctx, 2)?);
    float_scalar(q, "Q")?;
    same_elem(q, k, "Q and K")?;
    same_elem(q, v, "Q and V")?;
    if q.rank() != k.rank() || q.rank() != v.rank() || !(q.rank() == 3 || q.rank() == 4) {
        return Err(format!(
            "Q, K and V must all be 3-D or all 4-D, found ranks {}, {}, {}",
            q.rank(),
            k.rank(),
            v.rank()
        ));
    }
    let mode = int_attr(ctx.attrs, "qk_matmul_output_mode", 0);
    if !(0..=3).contains(&mode) {
        return Err(format!("qk_matmul_output_mode must be 0..3, found {mode}"));
    }
    for w in ["left_window_size", "right_window_size"] {
        if int_attr(ctx.attrs, w, -1) < -1 {
            return Err(format!("{w} must be -1 or non-negative"));
        }
    }
    let b = unify_dims(&q.dims[0], &k.dims[0], "batch of Q and K")?;
    let b = unify_dims(&b, &v.dims[0], "batch of Q and V")?;
    // [B, H, S, D] views of the dims.
    let (hq, sq, d, hkv, skv, dv) = if q.rank() == 4 {
        if ctx.attrs.int("q_num_heads").is_some() || ctx.attrs.int("kv_num_heads").is_some() {
            return Err("q_num_heads and kv_num_heads are only for 3-D inputs".into());
        }
        let hkv = unify_dims(&k.dims[1], &v.dims[1], "heads of K and V")?;
        let skv = unify_dims(&k.dims[2], &v.dims[2], "sequence length of K and V")?;
        unify_dims(&q.dims[3], &k.dims[3], "head size of Q and K")?;
        (q.dims[1].clone(), q.dims[2].clone(), k.dims[3].clone(), hkv, skv, v.dims[3].clone())
    } else {
        let (hq, hkv) = heads_3d(ctx.attrs)?;
        let d = dim_div(&q.dims[2], hq, "Q hidden size")?;
        let dk = dim_div(&k.dims[2], hkv, "K hidden size")?;
        unify_dims(&d, &dk, "head size of Q and K")?;
        let dv = dim_div(&v.dims[2], hkv, "V hidden size")?;
        let skv = unify_dims(&k.dims[1], &v.dims[1], "sequence length of K and V")?;
        (Dim::Static(hq as u64), q.dims[1].clone(), dk, Dim::Static(hkv as u64), skv, dv)
    };
    if let (Dim::Static(a), Dim::Static(c)) = (&hq, &hkv) {
        if *c == 0 || a % c != 0 {
            return Err(format!("q_num_heads ({a}) must be a multiple of kv_num_heads ({c})"));
        }
    }
    let past = ctx.has_operand(4);
    if past != ctx.has_operand(5) {
        return Err("past_key and past_value must be given together".into());
    }
    let mut total = skv.clone();
    if past {
        let (pk, pv) = (operand(ctx, 4)?, operand(ctx, 5)?);
        same_elem(q, pk, "Q and past_key")?;
        same_elem(q, pv, "Q and past_value")?;
        if pk.rank() != 4 || pv.rank() != 4 {
            return Err("past_key and past_value must be 4-D".into());
        }
        unify_dims(&pk.dims[1], &hkv, "heads of past_key")?;
        unify_dims(&pk.dims[3], &d, "head size of past_key")?;
        unify_dims(&pv.dims[3], &dv, "head size of past_value")?;
        let p = unify_dims(&pk.dims[2], &pv.dims[2], "past sequence lengths")?;
        total = dim_add(&p, &skv);
    }
    if ctx.has_operand(6) {
        if past {
            return Err("nonpad_kv_seqlen cannot be combined with past_key/past_value".into());
        }
        let n = operand(ctx, 6)?;
        if n.rank() != 1 || n.elem != ScalarType::I64.into() {
            return Err(format!("nonpad_kv_seqlen must be a 1-D i64 tensor, found {n}"));
        }
    }
    if ctx.has_operand(3) {
        let m = operand(ctx, 3)?;
        let ms = super::linalg::plain_scalar(m, "attn_mask")?;
        if !(ms == ScalarType::Bool || ms.is_float()) {
            return Err(format!("attn_mask must be bool or float, found {ms}"));
        }
        if m.rank() == 0 || m.rank() > 4 {
            return Err(format!("attn_mask must have rank 1 to 4, found {}", m.rank()));
        }
        if ms.is_float() {
            same_elem(q, m, "Q and a float attn_mask")?;
        }
        // Right-aligned against [batch, q_heads, q_seq, total]; the last dim may be shorter.
        let target = [&b, &hq, &sq];
        let lead = &m.dims[..m.rank() - 1];
        for (md, td) in lead.iter().rev().zip(target.iter().rev()) {
            if let (Dim::Static(x), Dim::Static(y)) = (md, td) {
                if *x != 1 && x != y {
                    return Err(format!(
                        "attn_mask of type {m} does not broadcast to [{b}, {hq}, {sq}, {total}]"
                    ));
                }
            }
        }
        if let (Some(Dim::Static(x)), Dim::Static(y)) = (m.dims.last(), &total) {
            if x > y {
                return Err(format!("attn_mask's last dim {x} exceeds the total sequence length {y}"));
            }
        }
    }
    let elem = q.elem.clone();
    let y = if q.rank() == 4 {
        vec![b.clone(), hq.clone(), sq.clone(), dv.clone()]
    } else {
        let hq_n = hq.as_static().unwrap_or(1);
        vec![b.clone(), sq.clone(), dim_times(&dv, hq_n)]
    };
    let mut out = vec![TensorType::new(y, elem.clone())];
    if ctx.num_results > 1 {
        out.push(TensorType::new(vec![b.clone(), hkv.clone(), total.clone(), d], elem.clone()));
    }
    if ctx.num_results > 2 {
        out.push(TensorType::new(vec![b.clone(), hkv, total.clone(), dv], elem.clone()));
    }
    if ctx.num_results > 3 {
        out.push(TensorType::new(vec![b, hq, sq, total], elem));
    }
    if ctx.num_results > 4 {
        return Err(format!("Attention has at most 4 results, found {}", ctx.num_results));
    }
    Ok(out)
}

/// Attribute values of one attention op.
struct AttnParams {
    is_causal: bool,
    heads_3d: Option<(usize, usize)>,
    mode: i64,
    scale: Option<f64>,
    softcap: f64,
    softmax_precision: Option<ScalarType>,
    left: i64,
    right: i64,
    /// The operands' element type (for rounding emulation).
    ty: ScalarType,
}

/// The additive mask, broadcast right-aligned to `[B, Hq, Sq, *]`.
struct Mask {
    shape: [usize; 4],
    values: Vec<f64>,
}

impl Mask {
    fn new(t: &Tensor) -> OpResult<Mask> {
        let s = t.shape();
        if s.is_empty() || s.len() > 4 {
            return Err(format!("attn_mask must have rank 1 to 4, found shape {s:?}"));
        }
        let mut shape = [1usize; 4];
        shape[4 - s.len()..].copy_from_slice(s);
        let values = match t {
            Tensor::Bool(a) => a.iter().map(|&b| if b { 0.0 } else { f64::NEG_INFINITY }).collect(),
            t if t.scalar_type().is_float() => t.to_f64_vec(),
            t => return Err(format!("attn_mask must be bool or float, found {}", t.scalar_type())),
        };
        Ok(Mask { shape, values })
    }

    /// Value at `(b, h, i, j)`; positions past the mask's last dim are padding (`-inf`).
    fn at(&self, b: usize, h: usize, i: usize, j: usize) -> f64 {
        let [mb, mh, mi, mj] = self.shape;
        if j >= mj {
            return f64::NEG_INFINITY;
        }
        let b = if mb == 1 { 0 } else { b };
        let h = if mh == 1 { 0 } else { h };
        let i = if mi == 1 { 0 } else { i };
        self.values[((b * mh + h) * mi + i) * mj + j]
    }
}

fn eval_attention(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let q = input(ctx, 0)?;
    let ty = q.scalar_type();
    let attrs = ctx.attrs;
    let softmax_precision = match attrs.get("softmax_precision") {
        None => None,
        Some(crate::attr::Attr::Type(t)) => Some(*t),
        Some(crate::attr::Attr::Int(i)) => Some(onnx_float_type(*i)?),
        Some(a) => return Err(format!("softmax_precision must be a type, found {a:?}")),
    };
    let p = AttnParams {
        is_causal: int_attr(attrs, "is_causal", 0) != 0,
        heads_3d: if q.shape().len() == 3 { Some(heads_3d(attrs)?) } else { None },
        mode: int_attr(attrs, "qk_matmul_output_mode", 0),
        scale: attrs.float("scale"),
        softcap: float_attr(attrs, "softcap", 0.0),
        softmax_precision,
        left: int_attr(attrs, "left_window_size", -1),
        right: int_attr(attrs, "right_window_size", -1),
        ty,
    };
    let mask = ctx.opt_input(3).map(Mask::new).transpose()?;
    let nonpad = match ctx.opt_input(6) {
        Some(t) => Some(t.to_i64_vec().ok_or("nonpad_kv_seqlen must be an integer tensor")?),
        None => None,
    };
    let tensors = [Some(q), Some(input(ctx, 1)?), Some(input(ctx, 2)?), ctx.opt_input(4), ctx.opt_input(5)];
    if let Some(t) = tensors.iter().flatten().find(|t| t.scalar_type() != ty) {
        return Err(format!(
            "Q, K, V and the past tensors must share one type, found {ty} and {}",
            t.scalar_type()
        ));
    }
    let works: Vec<Option<Work>> =
        tensors.iter().map(|t| t.map(Work::float).transpose()).collect::<OpResult<_>>()?;
    macro_rules! run {
        ($v:ident, $t:ty) => {{
            let views: Vec<Option<ArrayViewD<$t>>> = works
                .iter()
                .map(|w| match w {
                    Some(Work::$v(a)) => Ok(Some(a.view())),
                    None => Ok(None),
                    Some(_) => Err("internal: operand kinds differ".to_string()),
                })
                .collect::<OpResult<_>>()?;
            let outs = attention::<$t>(&p, &views, mask.as_ref(), nonpad.as_deref())?;
            outs.into_iter()
                .take(ctx.result_types.len().max(1))
                .map(|a| <$t as Scalar>::into_tensor(a, ty))
                .collect::<OpResult<Vec<_>>>()
        }};
    }
    match works[0].as_ref() {
        Some(Work::F32(_)) => run!(F32, f32),
        Some(Work::F64(_)) => run!(F64, f64),
        _ => Err("Q must be a floating-point tensor".into()),
    }
}

/// An ONNX `TensorProto.DataType` code of a float type (for an integer `softmax_precision`).
fn onnx_float_type(code: i64) -> OpResult<ScalarType> {
    match code {
        1 => Ok(ScalarType::F32),
        10 => Ok(ScalarType::F16),
        11 => Ok(ScalarType::F64),
        16 => Ok(ScalarType::BF16),
        _ => Err(format!("softmax_precision must be a float type code (1, 10, 11, 16), found {code}")),
    }
}

/// `[B, S, H*D]` -> `[B, H, S, D]` (row-major copy); 4-D arrays are copied as they are.
fn split_heads<F: Real>(x: &ArrayViewD<F>, heads: Option<usize>, what: &str) -> OpResult<ArrayD<F>> {
    match heads {
        None => Ok(x.as_standard_layout().into_owned()),
        Some(h) => {
            let s = x.shape();
            if s[2] % h != 0 {
                return Err(format!("{what} hidden size {} is not divisible by {h} heads", s[2]));
            }
            let std = x.as_standard_layout();
            let v = std
                .view()
                .into_shape_with_order(IxDyn(&[s[0], s[1], h, s[2] / h]))
                .map_err(|e| e.to_string())?;
            Ok(v.permuted_axes(IxDyn(&[0, 2, 1, 3])).as_standard_layout().into_owned())
        }
    }
}

/// Returns `[Y, present_key, present_value, qk_matmul_output]`.
fn attention<F: Real>(
    p: &AttnParams,
    ins: &[Option<ArrayViewD<F>>],
    mask: Option<&Mask>,
    nonpad: Option<&[i64]>,
) -> OpResult<Vec<ArrayD<F>>> {
    let [Some(q), Some(k), Some(v), pk, pv] = ins else {
        return Err("Attention takes Q, K, V".into());
    };
    let rank = q.ndim();
    if !(rank == 3 || rank == 4) || k.ndim() != rank || v.ndim() != rank {
        return Err(format!(
            "Q, K, V must all be 3-D or 4-D, found shapes {:?}, {:?}, {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        ));
    }
    let (hq3, hkv3) = match p.heads_3d {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let q4 = split_heads(q, hq3, "Q")?;
    let mut k4 = split_heads(k, hkv3, "K")?;
    let mut v4 = split_heads(v, hkv3, "V")?;
    let (b, hq, sq, d) = (q4.shape()[0], q4.shape()[1], q4.shape()[2], q4.shape()[3]);
    let (hkv, skv) = (k4.shape()[1], k4.shape()[2]);
    let dv = v4.shape()[3];
    if k4.shape() != [b, hkv, skv, d] || v4.shape()[..3] != [b, hkv, skv] {
        return Err(format!(
            "Q, K, V shapes do not agree: {:?}, {:?}, {:?}",
            q.shape(),
            k.shape(),
            v.shape()
        ));
    }
    if hkv == 0 || hq % hkv != 0 {
        return Err(format!("the {hq} query heads are not a multiple of the {hkv} key/value heads"));
    }
    let past_len = match (pk, pv) {
        (Some(pk), Some(pv)) => {
            let pl = pk.shape().get(2).copied().unwrap_or(0);
            if pk.shape() != [b, hkv, pl, d] || pv.shape() != [b, hkv, pl, dv] {
                return Err(format!(
                    "past_key {:?} / past_value {:?} do not match [batch, kv_heads, past, head_size]",
                    pk.shape(),
                    pv.shape()
                ));
            }
            k4 = ndarray::concatenate(Axis(2), &[pk.view(), k4.view()]).map_err(|e| e.to_string())?;
            v4 = ndarray::concatenate(Axis(2), &[pv.view(), v4.view()]).map_err(|e| e.to_string())?;
            k4 = k4.as_standard_layout().into_owned();
            v4 = v4.as_standard_layout().into_owned();
            Some(pl)
        }
        (None, None) => None,
        _ => return Err("past_key and past_value must be given together".into()),
    };
    let total = k4.shape()[2];
    if let Some(n) = nonpad {
        if past_len.is_some() {
            return Err("nonpad_kv_seqlen cannot be combined with past_key/past_value".into());
        }
        if n.len() != b {
            return Err(format!("nonpad_kv_seqlen has {} entries for batch {b}", n.len()));
        }
    }
    if let Some(m) = mask {
        let [mb, mh, mi, mj] = m.shape;
        if !(mb == 1 || mb == b) || !(mh == 1 || mh == hq) || !(mi == 1 || mi == sq) || mj > total {
            return Err(format!(
                "attn_mask of shape {:?} does not broadcast to [{b}, {hq}, {sq}, {total}]",
                &m.shape
            ));
        }
    }
    // Q and K are each scaled by sqrt(scale), in the operands' precision.
    let scale = p.scale.unwrap_or(1.0 / (d as f64).sqrt());
    let ss = round_to(F::from_f64(scale.sqrt()), p.ty);
    let mut qs = q4.mapv(|x| x * ss);
    let mut ks = k4.mapv(|x| x * ss);
    round_all(qs.as_slice_mut().ok_or("internal: layout")?, p.ty);
    round_all(ks.as_slice_mut().ok_or("internal: layout")?, p.ty);
    let qs = qs.as_slice().ok_or("internal: layout")?;
    let ks = ks.as_slice().ok_or("internal: layout")?;
    let vs = v4.as_slice().ok_or("internal: layout")?;

    let mut y = vec![F::ZERO; b * hq * sq * dv];
    let mut qk_out = vec![F::ZERO; if p.mode >= 0 { b * hq * sq * total } else { 0 }];
    let mut scores = vec![F::ZERO; sq * total];
    let mut row_masked = vec![false; sq];
    let group = hq / hkv;
    let sm_ty = p.softmax_precision.unwrap_or(p.ty);
    for bi in 0..b {
        // Keys before the query block (causal/window alignment).
        let offset: i64 = match (past_len, nonpad) {
            (Some(pl), _) => pl as i64,
            (None, Some(n)) => n[bi] - sq as i64,
            (None, None) => 0,
        };
        for h in 0..hq {
            let kvh = h / group;
            let qv = ArrayView2::from_shape((sq, d), &qs[(bi * hq + h) * sq * d..][..sq * d])
                .map_err(|e| e.to_string())?;
            let kv = ArrayView2::from_shape((total, d), &ks[(bi * hkv + kvh) * total * d..][..total * d])
                .map_err(|e| e.to_string())?;
            let vv = ArrayView2::from_shape((total, dv), &vs[(bi * hkv + kvh) * total * dv..][..total * dv])
                .map_err(|e| e.to_string())?;
            {
                let mut sv =
                    ArrayViewMut2::from_shape((sq, total), &mut scores[..]).map_err(|e| e.to_string())?;
                F::gemm(F::ONE, &qv, &kv.t(), F::ZERO, &mut sv);
            }
            round_all(&mut scores, p.ty);
            let qk_slot = &mut qk_out[(bi * hq + h) * sq * total..][..sq * total];
            if p.mode == 0 {
                qk_slot.copy_from_slice(&scores);
            }
            if p.softcap > 0.0 {
                let c = F::from_f64(p.softcap);
                scores.iter_mut().for_each(|s| *s = c * (*s / c).tanh());
                round_all(&mut scores, p.ty);
            }
            if p.mode == 1 {
                qk_slot.copy_from_slice(&scores);
            }
            // Bias: the structural constraints (causal, window, padding) allow one interval
            // of keys per query; the mask adds to the scores inside it.
            for i in 0..sq {
                let pos = i as i64 + offset;
                let mut lo = 0i64;
                let mut hi = total as i64;
                if p.is_causal {
                    hi = hi.min(pos + 1);
                }
                if p.left >= 0 {
                    lo = lo.max(pos - p.left);
                }
                if p.right >= 0 {
                    hi = hi.min(pos + p.right + 1);
                }
                if let Some(n) = nonpad {
                    hi = hi.min(n[bi]);
                }
                let (lo, hi) = (lo.clamp(0, total as i64) as usize, hi.clamp(0, total as i64) as usize);
                let row = &mut scores[i * total..(i + 1) * total];
                let mut all_masked = true;
                for (j, s) in row.iter_mut().enumerate() {
                    let mut bv = if j >= lo && j < hi { 0.0 } else { f64::NEG_INFINITY };
                    if let Some(m) = mask {
                        bv += m.at(bi, h, i, j);
                    }
                    if bv != f64::NEG_INFINITY {
                        all_masked = false;
                    }
                    if bv != 0.0 {
                        *s = *s + F::from_f64(bv);
                    }
                }
                row_masked[i] = all_masked;
            }
            round_all(&mut scores, p.ty);
            if p.mode == 2 {
                qk_slot.copy_from_slice(&scores);
            }
            for i in 0..sq {
                let row = &mut scores[i * total..(i + 1) * total];
                softmax_row(row, sm_ty, row_masked[i]);
                round_all(row, p.ty);
            }
            if p.mode == 3 {
                qk_slot.copy_from_slice(&scores);
            }
            let sv = ArrayView2::from_shape((sq, total), &scores[..]).map_err(|e| e.to_string())?;
            let mut yv = ArrayViewMut2::from_shape((sq, dv), &mut y[(bi * hq + h) * sq * dv..][..sq * dv])
                .map_err(|e| e.to_string())?;
            F::gemm(F::ONE, &sv, &vv, F::ZERO, &mut yv);
        }
    }
    let y = ArrayD::from_shape_vec(IxDyn(&[b, hq, sq, dv]), y).map_err(|e| e.to_string())?;
    let y = if rank == 3 {
        let t = y.permuted_axes(IxDyn(&[0, 2, 1, 3]));
        super::linalg::reshape_owned(t, &[b, sq, hq * dv])?
    } else {
        y
    };
    let qk = ArrayD::from_shape_vec(IxDyn(&[b, hq, sq, total]), qk_out).map_err(|e| e.to_string())?;
    Ok(vec![y, k4, v4, qk])
}

/// Softmax of one score row in precision `ty`; a row with no attendable key is all zeros.
fn softmax_row<F: Real>(row: &mut [F], ty: ScalarType, fully_masked: bool) {
    if fully_masked {
        row.iter_mut().for_each(|v| *v = F::ZERO);
        return;
    }
    if (ty == ScalarType::F32 && std::mem::size_of::<F>() == 4) || ty == ScalarType::F64 {
        // The kernel type is the softmax precision (or finer): compute natively.
        let max = row.iter().copied().fold(F::neg_infinity(), |m, v| if v > m || v.is_nan() { v } else { m });
        if max == F::neg_infinity() {
            row.iter_mut().for_each(|v| *v = F::ZERO);
            return;
        }
        let mut sum = 0f64;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += Scalar::to_f64(*v);
        }
        let inv = F::from_f64(1.0 / sum);
        row.iter_mut().for_each(|v| *v = *v * inv);
        return;
    }
    // Each step rounds to the softmax precision, as a runtime computing in it does; a bf16
    // sum rounds after every addition, an f16 sum accumulates in f32.
    let r = |v: f64| round_to(F::from_f64(v), ty).to_f64();
    let max = row.iter().map(|v| r(Scalar::to_f64(*v))).fold(f64::NEG_INFINITY, |m, v| {
        if v > m || v.is_nan() {
            v
        } else {
            m
        }
    });
    if max == f64::NEG_INFINITY {
        row.iter_mut().for_each(|v| *v = F::ZERO);
        return;
    }
    let mut sum = 0.0;
    for v in row.iter_mut() {
        let e = r(r(r(Scalar::to_f64(*v)) - max).exp());
        sum = if ty == ScalarType::BF16 { r(sum + e) } else { sum + e };
        *v = F::from_f64(e);
    }
    let sum = r(sum);
    for v in row.iter_mut() {
        *v = round_to(F::from_f64(Scalar::to_f64(*v) / sum), ty);
    }
}

// ---------------------------------------------------------------------------------------------
// nn.rotary_embedding
// ---------------------------------------------------------------------------------------------

pub static ROTARY_EMBEDDING: OpDef = OpDef {
    name: "nn.rotary_embedding",
    summary: "Rotary position embedding: rotates pairs of each head's first \
              `rotary_embedding_dim` features by angles from cos/sin caches (ONNX RotaryEmbedding).",
    operands: &["X", "cos_cache", "sin_cache", "position_ids?"],
    results: &["Y"],
    attrs: &[
        AttrDef::opt("interleaved", AttrKind::Int, "0"),
        AttrDef::opt("num_heads", AttrKind::Int, "X's dim 1 (required for 3-D X)"),
        AttrDef::opt("rotary_embedding_dim", AttrKind::Int, "0 (the head size)"),
    ],
    traits: Traits::PURE,
    infer: infer_rotary,
    eval: eval_rotary,
};

fn infer_rotary(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    let (c, s) = (operand(ctx, 1)?, operand(ctx, 2)?);
    float_scalar(x, "X")?;
    same_elem(x, c, "X and cos_cache")?;
    same_elem(x, s, "X and sin_cache")?;
    if !(x.rank() == 3 || x.rank() == 4) {
        return Err(format!("X must be 3-D or 4-D, found rank {}", x.rank()));
    }
    if x.rank() == 3 {
        positive_attr(ctx.attrs, "num_heads")?.ok_or("3-D X needs the num_heads attribute")?;
    }
    let want = if ctx.has_operand(3) { 2 } else { 3 };
    if c.rank() != want || s.rank() != want {
        return Err(format!(
            "cos_cache and sin_cache must be {want}-D {}, found ranks {} and {}",
            if want == 2 { "with position_ids" } else { "without position_ids" },
            c.rank(),
            s.rank()
        ));
    }
    if ctx.has_operand(3) {
        let p = operand(ctx, 3)?;
        if p.rank() != 2 {
            return Err(format!("position_ids must be 2-D [batch, seq], found rank {}", p.rank()));
        }
    }
    Ok(vec![x.clone()])
}

fn eval_rotary(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let ty = x.scalar_type();
    let (c, s) = (input(ctx, 1)?, input(ctx, 2)?);
    if c.scalar_type() != ty || s.scalar_type() != ty {
        return Err("X, cos_cache and sin_cache must share one type".into());
    }
    let pos = match ctx.opt_input(3) {
        Some(t) => Some((t.shape().to_vec(), t.to_i64_vec().ok_or("position_ids must be integers")?)),
        None => None,
    };
    let rp = RotaryParams {
        interleaved: int_attr(ctx.attrs, "interleaved", 0) != 0,
        num_heads: positive_attr(ctx.attrs, "num_heads")?,
        rot_dim: int_attr(ctx.attrs, "rotary_embedding_dim", 0),
    };
    let out = match (Work::float(x)?, Work::float(c)?, Work::float(s)?) {
        (Work::F32(x), Work::F32(c), Work::F32(s)) => {
            f32::into_tensor(rotary(&rp, &x.view(), &c.view(), &s.view(), pos.as_ref())?, ty)?
        }
        (Work::F64(x), Work::F64(c), Work::F64(s)) => {
            f64::into_tensor(rotary(&rp, &x.view(), &c.view(), &s.view(), pos.as_ref())?, ty)?
        }
        _ => return Err("internal: operand kinds differ".into()),
    };
    Ok(vec![out])
}

struct RotaryParams {
    interleaved: bool,
    num_heads: Option<usize>,
    rot_dim: i64,
}

fn rotary<F: Real>(
    p: &RotaryParams,
    x: &ArrayViewD<F>,
    cos: &ArrayViewD<F>,
    sin: &ArrayViewD<F>,
    pos: Option<&(Vec<usize>, Vec<i64>)>,
) -> OpResult<ArrayD<F>> {
    let shape = x.shape().to_vec();
    // (batch, heads, seq, head_size) and the element strides of X for each.
    let (b, h, s, hs, strides) = match shape.len() {
        4 => {
            let (b, h, s, d) = (shape[0], shape[1], shape[2], shape[3]);
            (b, h, s, d, [h * s * d, s * d, d])
        }
        3 => {
            let heads = p.num_heads.ok_or("3-D X needs the num_heads attribute")?;
            let (b, s, hidden) = (shape[0], shape[1], shape[2]);
            if hidden % heads != 0 {
                return Err(format!("hidden size {hidden} is not divisible by num_heads {heads}"));
            }
            let d = hidden / heads;
            (b, heads, s, d, [s * hidden, d, hidden])
        }
        r => return Err(format!("X must be 3-D or 4-D, found rank {r}")),
    };
    let rd = if p.rot_dim == 0 { hs } else { p.rot_dim as usize };
    if p.rot_dim < 0 || rd > hs || rd % 2 != 0 {
        return Err(format!("rotary_embedding_dim {rd} must be even and at most the head size {hs}"));
    }
    let half = rd / 2;
    let cs = cos.as_standard_layout();
    let sn = sin.as_standard_layout();
    if cs.shape() != sn.shape() {
        return Err(format!("cos_cache {:?} and sin_cache {:?} differ in shape", cs.shape(), sn.shape()));
    }
    let (cs, sn) = (cs.as_slice().ok_or("internal: layout")?, sn.as_slice().ok_or("internal: layout")?);
    let cshape = cos.shape();
    if cshape.last() != Some(&half) {
        return Err(format!(
            "the caches' last dim must be rotary_embedding_dim / 2 = {half}, found {cshape:?}"
        ));
    }
    // Row of the caches for (batch, seq).
    let row_of = |bi: usize, si: usize| -> OpResult<usize> {
        match pos {
            Some((pshape, ids)) => {
                if pshape != &[b, s] {
                    return Err(format!("position_ids has shape {pshape:?}, expected [{b}, {s}]"));
                }
                let id = ids[bi * s + si];
                if cshape.len() != 2 || id < 0 || id as usize >= cshape[0] {
                    return Err(format!("position id {id} is outside the caches of shape {cshape:?}"));
                }
                Ok(id as usize)
            }
            None => {
                if cshape.len() != 3 || cshape[0] != b || cshape[1] != s {
                    return Err(format!(
                        "without position_ids the caches must be [{b}, {s}, {half}], found {cshape:?}"
                    ));
                }
                Ok(bi * s + si)
            }
        }
    };
    let xs = x.as_standard_layout();
    let xs = xs.as_slice().ok_or("internal: layout")?;
    let mut out = xs.to_vec();
    for bi in 0..b {
        for si in 0..s {
            let r = row_of(bi, si)?;
            let (c, sv) = (&cs[r * half..(r + 1) * half], &sn[r * half..(r + 1) * half]);
            for hi in 0..h {
                let base = bi * strides[0] + hi * strides[1] + si * strides[2];
                let xr = &xs[base..base + hs];
                let o = &mut out[base..base + hs];
                for i in 0..half {
                    let (i1, i2) = if p.interleaved { (2 * i, 2 * i + 1) } else { (i, i + half) };
                    let (x1, x2) = (xr[i1], xr[i2]);
                    o[i1] = c[i] * x1 - sv[i] * x2;
                    o[i2] = sv[i] * x1 + c[i] * x2;
                }
            }
        }
    }
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
}
