//! `nn.*` softmax family and normalizations (layer, batch, instance, group, RMS, Lp,
//! mean-variance), re-exported by `reduce.rs`.
//!
//! These ops are defined on floating-point tensors only. Each kernel reads its input once into
//! an f64 buffer laid out as rows (the normalized axes last, see `reduce.rs`), normalizes the
//! rows in place, and writes the buffer back in the result's element type: f16/bf16 inputs are
//! thus computed in higher precision and rounded once, and the per-row loops are plain slices.
//! Per-channel parameters (scale, bias, running statistics) are read into small f64 vectors.

use super::reduce::{float_attr, gather_permuted, int_attr, inverse_perm, rows_perm, unsupported, Elem};
use super::util::{input, norm_axis, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::AttrKind;
use crate::tensor::Tensor;
use crate::types::{Dim, ScalarType, TensorType};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

// ---------------------------------------------------------------------------------------------
// f64 row buffers

fn is_float(t: ScalarType) -> bool {
    t.is_float()
}

/// Operand `i`'s element type, which must be a (non-quantized) float type.
fn float_operand(ctx: &InferCtx, i: usize, op: &str) -> OpResult<ScalarType> {
    super::reduce::elem_of(ctx, i, op, is_float)
}

fn read_rows<T: Elem>(a: &ArrayD<T>, perm: &[usize]) -> Vec<f64> {
    gather_permuted(a.view(), perm, |x| x.to_f64())
}

/// The elements of a float tensor as f64, in row-major order of its axes permuted by `perm`.
fn read_f64(t: &Tensor, perm: &[usize], op: &str) -> OpResult<Vec<f64>> {
    Ok(match t {
        Tensor::F32(a) => read_rows(a, perm),
        Tensor::F16(a) => read_rows(a, perm),
        Tensor::BF16(a) => read_rows(a, perm),
        Tensor::F64(a) => read_rows(a, perm),
        other => return Err(unsupported(op, other.scalar_type())),
    })
}

/// `data`, row-major in the axis order `perm` with `permuted_shape`, converted to `T` and
/// returned in the original axis order.
fn convert<T: Elem>(perm: &[usize], permuted_shape: &[usize], data: &[f64]) -> OpResult<ArrayD<T>> {
    let v = ArrayViewD::from_shape(IxDyn(permuted_shape), data).map_err(|e| e.to_string())?;
    let inv = inverse_perm(perm);
    let shape: Vec<usize> = inv.iter().map(|&p| permuted_shape[p]).collect();
    let out = gather_permuted(v, &inv, |&x| T::from_f64(x));
    ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
}

/// A tensor of element type `ty` from f64 data that is row-major in the axis order `perm`
/// (with `permuted_shape`), returned in the original axis order.
fn write_f64(ty: ScalarType, perm: &[usize], permuted_shape: &[usize], data: Vec<f64>) -> OpResult<Tensor> {
    let identity = perm.iter().enumerate().all(|(i, &p)| i == p);
    if identity && ty == ScalarType::F64 {
        return Ok(Tensor::F64(
            ArrayD::from_shape_vec(IxDyn(permuted_shape), data).map_err(|e| e.to_string())?,
        ));
    }
    Ok(match ty {
        ScalarType::F32 => Tensor::F32(convert(perm, permuted_shape, &data)?),
        ScalarType::F16 => Tensor::F16(convert(perm, permuted_shape, &data)?),
        ScalarType::BF16 => Tensor::BF16(convert(perm, permuted_shape, &data)?),
        ScalarType::F64 => Tensor::F64(convert(perm, permuted_shape, &data)?),
        other => return Err(format!("internal error: {other} is not a float type")),
    })
}

fn identity(rank: usize) -> Vec<usize> {
    (0..rank).collect()
}

/// Mean and population variance of a non-empty row (two passes, so the variance is never
/// negative from cancellation).
fn mean_var(row: &[f64]) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().sum::<f64>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var)
}

/// Calls `f(index, row)` for each consecutive row of `len` elements (nothing when `len` is 0,
/// where the buffer is empty too).
fn for_rows(data: &mut [f64], len: usize, mut f: impl FnMut(usize, &mut [f64])) {
    if len > 0 {
        for (i, row) in data.chunks_exact_mut(len).enumerate() {
            f(i, row);
        }
    }
}

/// A per-channel parameter vector of exactly `n` elements.
fn channel_param(t: &Tensor, n: usize, what: &str) -> OpResult<Vec<f64>> {
    if !t.scalar_type().is_float() {
        return Err(format!("`{what}` must be a float tensor, found {}", t.scalar_type()));
    }
    if t.len() != n || t.shape().len() > 1 && t.shape().iter().filter(|&&d| d != 1).count() > 1 {
        return Err(format!(
            "`{what}` must have {n} elements (one per channel), found shape {:?}",
            t.shape()
        ));
    }
    Ok(t.to_f64_vec())
}

/// Checks at compile time that a per-channel parameter has `channels` elements when both are
/// known.
fn check_channel_param(ctx: &InferCtx, i: usize, channels: &Dim, op: &str, what: &str) -> OpResult<()> {
    float_operand(ctx, i, op)?;
    let t = operand(ctx, i)?;
    if t.rank() != 1 {
        return Err(format!("`{what}` must be 1-D (one value per channel), found {t}"));
    }
    if let (Dim::Static(c), Dim::Static(n)) = (channels, &t.dims[0]) {
        if c != n {
            return Err(format!("`{what}` has {n} elements but the input has {c} channels"));
        }
    }
    Ok(())
}

/// An elementwise parameter (scale or bias) of layer/RMS normalization, broadcast against the
/// normalized trailing dims (the usual case: one value per position in a row) or, when it has
/// more dims than that, against the whole input.
struct RowParam {
    data: Vec<f64>,
    per_row: bool,
    row_len: usize,
}

impl RowParam {
    fn new(t: &Tensor, shape: &[usize], axis: usize, what: &str) -> OpResult<RowParam> {
        if !t.scalar_type().is_float() {
            return Err(format!("`{what}` must be a float tensor, found {}", t.scalar_type()));
        }
        let tail = &shape[axis..];
        let per_row = t.shape().len() > tail.len();
        let target = if per_row { shape } else { tail };
        let a = ArrayD::from_shape_vec(IxDyn(t.shape()), t.to_f64_vec()).map_err(|e| e.to_string())?;
        let b = a.broadcast(IxDyn(target)).ok_or_else(|| {
            format!("`{what}` of shape {:?} does not broadcast to the normalized shape {target:?}", t.shape())
        })?;
        Ok(RowParam { data: b.iter().copied().collect(), per_row, row_len: tail.iter().product() })
    }

    /// The value for element `j` of row `i`.
    fn at(&self, i: usize, j: usize) -> f64 {
        if self.per_row {
            self.data[i * self.row_len + j]
        } else {
            self.data[j]
        }
    }
}

/// Checks at compile time that a layer/RMS parameter broadcasts to the input.
fn check_row_param(ctx: &InferCtx, i: usize, x: &TensorType, op: &str, what: &str) -> OpResult<()> {
    float_operand(ctx, i, op)?;
    let p = operand(ctx, i)?;
    let b = super::util::broadcast_dims(&x.dims, &p.dims).map_err(|e| format!("`{what}`: {e}"))?;
    if b.len() != x.rank() {
        return Err(format!("`{what}` {p} has more dims than the input {x}"));
    }
    Ok(())
}

/// The element type an ONNX `stash_type` code names (the precision of saved statistics).
fn stash_type(code: i64) -> OpResult<ScalarType> {
    Ok(match code {
        1 => ScalarType::F32,
        10 => ScalarType::F16,
        11 => ScalarType::F64,
        16 => ScalarType::BF16,
        _ => return Err(format!("stash_type {code} is not a float type code")),
    })
}

// ---------------------------------------------------------------------------------------------
// Softmax, LogSoftmax, Hardmax

const AXIS_LAST: &[AttrDef] = &[AttrDef::opt("axis", AttrKind::Int, "-1")];

pub static SOFTMAX: OpDef = OpDef {
    name: "nn.softmax",
    summary: "exp(x - max) / sum(exp(x - max)) along `axis` (opset-13 semantics).",
    operands: &["input"],
    results: &["output"],
    attrs: AXIS_LAST,
    traits: Traits::PURE,
    infer: |ctx| infer_same_float(ctx, "softmax"),
    eval: |ctx| {
        // Half-precision inputs round at every step, as a runtime computing in that precision
        // does (and ONNX's reference with it): the result then agrees to the last ulp.
        let row: fn(&mut [f64]) = match input(ctx, 0)?.scalar_type() {
            ScalarType::F16 => softmax_row_f16,
            ScalarType::BF16 => softmax_row_bf16,
            _ => softmax_row,
        };
        eval_along_axis(ctx, "softmax", row)
    },
};

pub static LOG_SOFTMAX: OpDef = OpDef {
    name: "nn.log_softmax",
    summary: "x - max - log(sum(exp(x - max))) along `axis` (opset-13 semantics).",
    operands: &["input"],
    results: &["output"],
    attrs: AXIS_LAST,
    traits: Traits::PURE,
    infer: |ctx| infer_same_float(ctx, "log_softmax"),
    eval: |ctx| eval_along_axis(ctx, "log_softmax", log_softmax_row),
};

pub static HARDMAX: OpDef = OpDef {
    name: "nn.hardmax",
    summary: "1 at the first maximum along `axis`, 0 elsewhere.",
    operands: &["input"],
    results: &["output"],
    attrs: AXIS_LAST,
    traits: Traits::PURE,
    infer: |ctx| infer_same_float(ctx, "hardmax"),
    eval: |ctx| eval_along_axis(ctx, "hardmax", hardmax_row),
};

/// Shape rule of the ops whose result has the input's type, after checking `axis`.
fn infer_same_float(ctx: &InferCtx, op: &str) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    float_operand(ctx, 0, op)?;
    norm_axis(int_attr(ctx.attrs, "axis", -1), x.rank())?;
    Ok(vec![x.clone()])
}

fn softmax_row(row: &mut [f64]) {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - m).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Softmax with each intermediate rounded through `round`: `x - max`, `exp`, the sum (kept in
/// f32, as numpy and most runtimes accumulate half-precision sums) and the quotient.
fn softmax_row_rounded(row: &mut [f64], round: fn(f64) -> f64) {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0f32;
    for v in row.iter_mut() {
        *v = round(round(*v - m).exp());
        sum += *v as f32;
    }
    let sum = round(sum as f64);
    for v in row.iter_mut() {
        *v = round(*v / sum);
    }
}

fn softmax_row_f16(row: &mut [f64]) {
    softmax_row_rounded(row, |v| half::f16::from_f64(v).to_f64())
}

fn softmax_row_bf16(row: &mut [f64]) {
    softmax_row_rounded(row, |v| half::bf16::from_f64(v).to_f64())
}

fn log_softmax_row(row: &mut [f64]) {
    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() + m;
    for v in row.iter_mut() {
        *v -= lse;
    }
}

fn hardmax_row(row: &mut [f64]) {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    for (i, v) in row.iter_mut().enumerate() {
        *v = if i == best { 1.0 } else { 0.0 };
    }
}

/// Applies `f` to every 1-D lane along the `axis` attribute (default -1).
fn eval_along_axis(ctx: &EvalCtx, op: &str, f: fn(&mut [f64])) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let shape = x.shape();
    let axis = norm_axis(int_attr(ctx.attrs, "axis", -1), shape.len())?;
    let mut flags = vec![false; shape.len()];
    flags[axis] = true;
    eval_rows(x, &flags, op, |_, row| f(row))
}

/// Reads `x` as rows over the `flags` axes, applies `f(row index, row)` and writes the result
/// back in `x`'s element type and shape.
fn eval_rows(
    x: &Tensor,
    flags: &[bool],
    op: &str,
    mut f: impl FnMut(usize, &mut [f64]),
) -> OpResult<Vec<Tensor>> {
    let shape = x.shape();
    let perm = rows_perm(flags);
    let pshape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let len: usize = shape.iter().zip(flags).filter(|(_, &r)| r).map(|(&d, _)| d).product();
    let mut data = read_f64(x, &perm, op)?;
    for_rows(&mut data, len, &mut f);
    Ok(vec![write_f64(x.scalar_type(), &perm, &pshape, data)?])
}

// ---------------------------------------------------------------------------------------------
// LpNormalization, MeanVarianceNormalization

pub static LP_NORM: OpDef = OpDef {
    name: "nn.lp_norm",
    summary: "x / ||x||_p along `axis` (p = 1 or 2); a zero norm gives 0.",
    operands: &["input"],
    results: &["output"],
    attrs: &[AttrDef::opt("axis", AttrKind::Int, "-1"), AttrDef::opt("p", AttrKind::Int, "2")],
    traits: Traits::PURE,
    infer: |ctx| {
        lp_p(ctx.attrs.int("p"))?;
        infer_same_float(ctx, "lp_norm")
    },
    eval: eval_lp_norm,
};

fn lp_p(p: Option<i64>) -> OpResult<i64> {
    match p.unwrap_or(2) {
        p @ (1 | 2) => Ok(p),
        p => Err(format!("p must be 1 or 2, found {p}")),
    }
}

fn eval_lp_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let p = lp_p(ctx.attrs.int("p"))?;
    let rank = x.shape().len();
    let axis = norm_axis(int_attr(ctx.attrs, "axis", -1), rank)?;
    let mut flags = vec![false; rank];
    flags[axis] = true;
    eval_rows(x, &flags, "lp_norm", |_, row| {
        let norm = if p == 1 {
            row.iter().map(|v| v.abs()).sum::<f64>()
        } else {
            row.iter().map(|v| v * v).sum::<f64>().sqrt()
        };
        for v in row.iter_mut() {
            *v = if norm == 0.0 { 0.0 } else { *v / norm };
        }
    })
}

pub static MEAN_VARIANCE_NORM: OpDef = OpDef {
    name: "nn.mean_variance_norm",
    summary: "(x - mean) / (stddev + 1e-9) over `axes` (population statistics).",
    operands: &["X"],
    results: &["Y"],
    attrs: &[AttrDef::opt("axes", AttrKind::Ints, "[0, 2, 3]")],
    traits: Traits::PURE,
    infer: infer_mvn,
    eval: eval_mvn,
};

fn mvn_axes(ctx_attrs: &crate::attr::Attrs) -> Vec<i64> {
    ctx_attrs.ints("axes").map_or_else(|| vec![0, 2, 3], |a| a.to_vec())
}

fn infer_mvn(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    float_operand(ctx, 0, "mean_variance_norm")?;
    super::reduce::reduced_flags(&mvn_axes(ctx.attrs), x.rank())?;
    Ok(vec![x.clone()])
}

fn eval_mvn(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let flags = super::reduce::reduced_flags(&mvn_axes(ctx.attrs), x.shape().len())?;
    eval_rows(x, &flags, "mean_variance_norm", |_, row| {
        let (mean, var) = mean_var(row);
        // ONNX adds its epsilon to the standard deviation, not to the variance.
        let d = var.sqrt() + 1e-9;
        for v in row.iter_mut() {
            *v = (*v - mean) / d;
        }
    })
}

// ---------------------------------------------------------------------------------------------
// LayerNormalization, RMSNormalization

pub static LAYER_NORM: OpDef = OpDef {
    name: "nn.layer_norm",
    summary: "Normalizes over the dims from `axis` on: (x - mean) / sqrt(var + epsilon) * Scale \
              + B; optionally returns Mean and InvStdDev (of the `stash_type` element type).",
    operands: &["X", "Scale", "B?"],
    results: &["Y", "Mean?", "InvStdDev?"],
    attrs: &[
        AttrDef::opt("axis", AttrKind::Int, "-1"),
        AttrDef::opt("epsilon", AttrKind::Float, "1e-5"),
        AttrDef::opt("stash_type", AttrKind::Int, "1"),
    ],
    traits: Traits::PURE,
    infer: infer_layer_norm,
    eval: eval_layer_norm,
};

fn infer_layer_norm(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    float_operand(ctx, 0, "layer_norm")?;
    let rank = x.rank();
    let axis = norm_axis(int_attr(ctx.attrs, "axis", -1), rank)?;
    check_row_param(ctx, 1, x, "layer_norm", "Scale")?;
    if ctx.has_operand(2) {
        check_row_param(ctx, 2, x, "layer_norm", "B")?;
    }
    let stash = stash_type(int_attr(ctx.attrs, "stash_type", 1))?;
    if !(1..=3).contains(&ctx.num_results) {
        return Err(format!("layer_norm has 1 to 3 results, {} given", ctx.num_results));
    }
    let mut stat_dims = x.dims[..axis].to_vec();
    stat_dims.resize(rank, Dim::Static(1));
    let mut out = vec![x.clone()];
    out.resize(ctx.num_results, TensorType::new(stat_dims, stash));
    Ok(out)
}

fn eval_layer_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let shape = x.shape().to_vec();
    let rank = shape.len();
    let axis = norm_axis(int_attr(ctx.attrs, "axis", -1), rank)?;
    let eps = float_attr(ctx.attrs, "epsilon", 1e-5);
    let stash = stash_type(int_attr(ctx.attrs, "stash_type", 1))?;
    let scale = RowParam::new(input(ctx, 1)?, &shape, axis, "Scale")?;
    let bias = ctx.opt_input(2).map(|b| RowParam::new(b, &shape, axis, "B")).transpose()?;
    let rows: usize = shape[..axis].iter().product();
    let len: usize = shape[axis..].iter().product();
    let mut data = read_f64(x, &identity(rank), "layer_norm")?;
    // Statistics of an empty row are NaN, like numpy's mean of nothing.
    let mut means = vec![f64::NAN; rows];
    let mut inv_stds = vec![f64::NAN; rows];
    for_rows(&mut data, len, |i, row| {
        let (mean, var) = mean_var(row);
        let inv = 1.0 / (var + eps).sqrt();
        for (j, v) in row.iter_mut().enumerate() {
            let b = bias.as_ref().map_or(0.0, |b| b.at(i, j));
            *v = (*v - mean) * inv * scale.at(i, j) + b;
        }
        means[i] = mean;
        inv_stds[i] = inv;
    });
    let mut stat_shape = shape[..axis].to_vec();
    stat_shape.resize(rank, 1);
    let id = identity(rank);
    let mut out = vec![write_f64(x.scalar_type(), &id, &shape, data)?];
    for stat in [means, inv_stds].into_iter().take(ctx.result_types.len().saturating_sub(1)) {
        out.push(write_f64(stash, &id, &stat_shape, stat)?);
    }
    Ok(out)
}

pub static RMS_NORM: OpDef = OpDef {
    name: "nn.rms_norm",
    summary: "x / sqrt(mean(x^2) + epsilon) * scale, over the dims from `axis` on.",
    operands: &["X", "scale"],
    results: &["Y"],
    attrs: &[
        AttrDef::opt("axis", AttrKind::Int, "-1"),
        AttrDef::opt("epsilon", AttrKind::Float, "1e-5"),
        AttrDef::opt("stash_type", AttrKind::Int, "1"),
    ],
    traits: Traits::PURE,
    infer: infer_rms_norm,
    eval: eval_rms_norm,
};

fn infer_rms_norm(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    float_operand(ctx, 0, "rms_norm")?;
    norm_axis(int_attr(ctx.attrs, "axis", -1), x.rank())?;
    check_row_param(ctx, 1, x, "rms_norm", "scale")?;
    stash_type(int_attr(ctx.attrs, "stash_type", 1))?;
    // ONNX's type inference gives Y the element type of X (the schema's separate scale type
    // only matters for the computation, which is done in f64 here).
    Ok(vec![x.clone()])
}

fn eval_rms_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let shape = x.shape().to_vec();
    let rank = shape.len();
    let axis = norm_axis(int_attr(ctx.attrs, "axis", -1), rank)?;
    let eps = float_attr(ctx.attrs, "epsilon", 1e-5);
    let scale = RowParam::new(input(ctx, 1)?, &shape, axis, "scale")?;
    let len: usize = shape[axis..].iter().product();
    let mut data = read_f64(x, &identity(rank), "rms_norm")?;
    for_rows(&mut data, len, |i, row| {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for (j, v) in row.iter_mut().enumerate() {
            *v *= inv * scale.at(i, j);
        }
    });
    Ok(vec![write_f64(x.scalar_type(), &identity(rank), &shape, data)?])
}

// ---------------------------------------------------------------------------------------------
// BatchNormalization, InstanceNormalization, GroupNormalization

/// `(N, C, spatial size)` of an `N x C x D1 x ... x Dn` input; a 1-D input has one channel.
fn nchw(shape: &[usize]) -> OpResult<(usize, usize, usize)> {
    match shape {
        [] => Err("the input must have at least 1 dim (N x C x ...)".into()),
        [n] => Ok((*n, 1, 1)),
        [n, c, rest @ ..] => Ok((*n, *c, rest.iter().product())),
    }
}

fn channels(x: &TensorType) -> Dim {
    x.dims.get(1).cloned().unwrap_or(Dim::Static(1))
}

pub static BATCH_NORM: OpDef = OpDef {
    name: "nn.batch_norm",
    summary: "Per-channel (x - mean) / sqrt(var + epsilon) * scale + B with the given running \
              statistics; with `training_mode` uses batch statistics and also returns the \
              updated running mean and variance.",
    operands: &["X", "scale", "B", "input_mean", "input_var"],
    results: &["Y", "running_mean?", "running_var?"],
    attrs: &[
        AttrDef::opt("epsilon", AttrKind::Float, "1e-5"),
        AttrDef::opt("momentum", AttrKind::Float, "0.9"),
        AttrDef::opt("training_mode", AttrKind::Int, "0"),
    ],
    traits: Traits::PURE,
    infer: infer_batch_norm,
    eval: eval_batch_norm,
};

fn infer_batch_norm(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    float_operand(ctx, 0, "batch_norm")?;
    if x.rank() == 0 {
        return Err("batch_norm needs an input of rank at least 1".into());
    }
    let c = channels(x);
    for (i, what) in [(1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")] {
        check_channel_param(ctx, i, &c, "batch_norm", what)?;
    }
    let training = int_attr(ctx.attrs, "training_mode", 0) != 0;
    if !training && ctx.num_results > 1 {
        return Err("running_mean and running_var are only produced when training_mode=1".into());
    }
    let mut out = vec![x.clone()];
    for i in 1..ctx.num_results.min(3) {
        // running_mean has input_mean's type, running_var input_var's.
        let t = operand(ctx, i + 2)?;
        out.push(TensorType::new(vec![c.clone()], t.elem.clone()));
    }
    if ctx.num_results > 3 {
        return Err(format!("batch_norm has at most 3 results, {} given", ctx.num_results));
    }
    Ok(out)
}

fn eval_batch_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let shape = x.shape().to_vec();
    let (n, c, s) = nchw(&shape)?;
    let eps = float_attr(ctx.attrs, "epsilon", 1e-5);
    let momentum = float_attr(ctx.attrs, "momentum", 0.9);
    let training = int_attr(ctx.attrs, "training_mode", 0) != 0;
    let scale = channel_param(input(ctx, 1)?, c, "scale")?;
    let bias = channel_param(input(ctx, 2)?, c, "B")?;
    let in_mean = channel_param(input(ctx, 3)?, c, "input_mean")?;
    let in_var = channel_param(input(ctx, 4)?, c, "input_var")?;
    let mut data = read_f64(x, &identity(shape.len()), "batch_norm")?;
    let (mean, var) = if training {
        // Batch statistics per channel over N and the spatial dims (population variance).
        let count = (n * s) as f64;
        let mut sum = vec![0.0; c];
        for_rows(&mut data, s, |i, row| sum[i % c] += row.iter().sum::<f64>());
        let mean: Vec<f64> = sum.iter().map(|v| v / count).collect();
        let mut sq = vec![0.0; c];
        for_rows(&mut data, s, |i, row| {
            sq[i % c] += row.iter().map(|v| (v - mean[i % c]).powi(2)).sum::<f64>()
        });
        (mean, sq.iter().map(|v| v / count).collect())
    } else {
        (in_mean.clone(), in_var.clone())
    };
    // y = x * a + b with a = scale / sqrt(var + eps) and b = B - mean * a.
    let a: Vec<f64> = (0..c).map(|k| scale[k] / (var[k] + eps).sqrt()).collect();
    let b: Vec<f64> = (0..c).map(|k| bias[k] - mean[k] * a[k]).collect();
    for_rows(&mut data, s, |i, row| {
        let k = i % c;
        for v in row.iter_mut() {
            *v = *v * a[k] + b[k];
        }
    });
    let mut out = vec![write_f64(x.scalar_type(), &identity(shape.len()), &shape, data)?];
    let running = [
        (3, in_mean.iter().zip(&mean).map(|(r, m)| r * momentum + m * (1.0 - momentum)).collect::<Vec<_>>()),
        (4, in_var.iter().zip(&var).map(|(r, v)| r * momentum + v * (1.0 - momentum)).collect()),
    ];
    for (i, stat) in running.into_iter().take(ctx.result_types.len().saturating_sub(1)) {
        out.push(write_f64(input(ctx, i)?.scalar_type(), &[0], &[c], stat)?);
    }
    Ok(out)
}

pub static INSTANCE_NORM: OpDef = OpDef {
    name: "nn.instance_norm",
    summary: "Normalizes each (sample, channel) over the spatial dims, then scale * y + B per \
              channel.",
    operands: &["input", "scale", "B"],
    results: &["output"],
    attrs: &[AttrDef::opt("epsilon", AttrKind::Float, "1e-5")],
    traits: Traits::PURE,
    infer: infer_instance_norm,
    eval: eval_instance_norm,
};

fn infer_instance_norm(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    float_operand(ctx, 0, "instance_norm")?;
    if x.rank() < 2 {
        return Err(format!("instance_norm needs an N x C x ... input, found {x}"));
    }
    let c = channels(x);
    check_channel_param(ctx, 1, &c, "instance_norm", "scale")?;
    check_channel_param(ctx, 2, &c, "instance_norm", "B")?;
    Ok(vec![x.clone()])
}

fn eval_instance_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let shape = x.shape().to_vec();
    if shape.len() < 2 {
        return Err(format!("instance_norm needs an N x C x ... input, found shape {shape:?}"));
    }
    let (_, c, s) = nchw(&shape)?;
    let eps = float_attr(ctx.attrs, "epsilon", 1e-5);
    let scale = channel_param(input(ctx, 1)?, c, "scale")?;
    let bias = channel_param(input(ctx, 2)?, c, "B")?;
    let mut data = read_f64(x, &identity(shape.len()), "instance_norm")?;
    for_rows(&mut data, s, |i, row| {
        let (mean, var) = mean_var(row);
        let k = i % c;
        let a = scale[k] / (var + eps).sqrt();
        for v in row.iter_mut() {
            *v = (*v - mean) * a + bias[k];
        }
    });
    Ok(vec![write_f64(x.scalar_type(), &identity(shape.len()), &shape, data)?])
}

pub static GROUP_NORM: OpDef = OpDef {
    name: "nn.group_norm",
    summary: "Normalizes each sample over groups of `C / num_groups` channels (and the spatial \
              dims), then scale * y + bias per channel (opset 21).",
    operands: &["X", "scale", "bias"],
    results: &["Y"],
    attrs: &[
        AttrDef::opt("epsilon", AttrKind::Float, "1e-5"),
        AttrDef::req("num_groups", AttrKind::Int),
        AttrDef::opt("stash_type", AttrKind::Int, "1"),
    ],
    traits: Traits::PURE,
    infer: infer_group_norm,
    eval: eval_group_norm,
};

fn num_groups(attrs: &crate::attr::Attrs, c: Option<u64>) -> OpResult<usize> {
    let g = attrs.int("num_groups").ok_or("missing `num_groups`")?;
    if g <= 0 {
        return Err(format!("num_groups must be positive, found {g}"));
    }
    if let Some(c) = c {
        if c % g as u64 != 0 {
            return Err(format!("{c} channels cannot be split into {g} groups"));
        }
    }
    Ok(g as usize)
}

fn infer_group_norm(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    float_operand(ctx, 0, "group_norm")?;
    if x.rank() < 2 {
        return Err(format!("group_norm needs an N x C x ... input, found {x}"));
    }
    let c = channels(x);
    num_groups(ctx.attrs, c.as_static())?;
    stash_type(int_attr(ctx.attrs, "stash_type", 1))?;
    check_channel_param(ctx, 1, &c, "group_norm", "scale")?;
    check_channel_param(ctx, 2, &c, "group_norm", "bias")?;
    Ok(vec![x.clone()])
}

fn eval_group_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let shape = x.shape().to_vec();
    if shape.len() < 2 {
        return Err(format!("group_norm needs an N x C x ... input, found shape {shape:?}"));
    }
    let (_, c, s) = nchw(&shape)?;
    let g = num_groups(ctx.attrs, Some(c as u64))?;
    let eps = float_attr(ctx.attrs, "epsilon", 1e-5);
    let scale = channel_param(input(ctx, 1)?, c, "scale")?;
    let bias = channel_param(input(ctx, 2)?, c, "bias")?;
    let per_group = c / g;
    let mut data = read_f64(x, &identity(shape.len()), "group_norm")?;
    // In row-major order each (sample, group) is one contiguous row of per_group * s values.
    for_rows(&mut data, per_group * s, |i, row| {
        let (mean, var) = mean_var(row);
        let inv = 1.0 / (var + eps).sqrt();
        let first = (i % g) * per_group;
        for (j, v) in row.iter_mut().enumerate() {
            let k = first + j / s;
            *v = (*v - mean) * inv * scale[k] + bias[k];
        }
    });
    Ok(vec![write_f64(x.scalar_type(), &identity(shape.len()), &shape, data)?])
}

#[cfg(test)]
mod tests {
    use super::super::reduce::tests::{close, f32t, run};
    use super::*;
    use crate::attr::Attr;

    #[test]
    fn softmax_axis0_and_log_softmax() {
        let x = f32t(&[2, 2], &[1., 2., 3., 5.]);
        let out = run(&SOFTMAX, &[("axis", Attr::Int(0))], vec![x.clone()], 1);
        close(&out[0], &[0.11920292, 0.04742587, 0.88079708, 0.95257413]);
        let out = run(&LOG_SOFTMAX, &[], vec![x.clone()], 1);
        close(&out[0], &[-1.31326169, -0.31326169, -2.12692801, -0.12692801]);
        let out = run(&HARDMAX, &[], vec![f32t(&[1, 3], &[2., 2., 1.])], 1);
        close(&out[0], &[1., 0., 0.]);
    }

    #[test]
    fn layer_norm_with_stats() {
        let x = f32t(&[2, 2], &[1., 3., 2., 2.]);
        let out = run(
            &LAYER_NORM,
            &[("epsilon", Attr::Float(0.0))],
            vec![x, f32t(&[2], &[1., 2.]), f32t(&[2], &[0., 1.])],
            3,
        );
        close(&out[0], &[-1., 3., f64::NAN, f64::NAN]);
        assert_eq!(out[1].shape(), &[2, 1]);
        close(&out[1], &[2., 2.]);
        close(&out[2], &[1., f64::INFINITY]);
    }

    #[test]
    fn layer_norm_scale_broadcast_over_rows() {
        // A Scale with more dims than the normalized part varies per row.
        let x = f32t(&[2, 2], &[1., 3., 1., 3.]);
        let scale = f32t(&[2, 1], &[1., 10.]);
        let out = run(&LAYER_NORM, &[("epsilon", Attr::Float(0.0))], vec![x, scale], 1);
        close(&out[0], &[-1., 1., -10., 10.]);
    }

    #[test]
    fn softmax_of_all_neg_inf_is_nan_like_numpy() {
        let x = f32t(&[2], &[f32::NEG_INFINITY, f32::NEG_INFINITY]);
        close(&run(&SOFTMAX, &[], vec![x], 1)[0], &[f64::NAN, f64::NAN]);
    }

    #[test]
    fn mvn_and_lp_norm() {
        let x = f32t(&[1, 1, 1, 2], &[1., 3.]);
        close(&run(&MEAN_VARIANCE_NORM, &[], vec![x.clone()], 1)[0], &[-1., 1.]);
        close(&run(&LP_NORM, &[("p", Attr::Int(1))], vec![f32t(&[2], &[-1., 3.])], 1)[0], &[-0.25, 0.75]);
        close(&run(&LP_NORM, &[], vec![f32t(&[2], &[0., 0.])], 1)[0], &[0., 0.]);
    }

    #[test]
    fn group_norm_two_groups() {
        // N=1, C=4, spatial 1; groups {0,1} and {2,3}.
        let x = f32t(&[1, 4, 1], &[1., 3., 10., 20.]);
        let one = f32t(&[4], &[1., 1., 2., 2.]);
        let zero = f32t(&[4], &[0., 0., 0., 1.]);
        let out = run(
            &GROUP_NORM,
            &[("num_groups", Attr::Int(2)), ("epsilon", Attr::Float(0.0))],
            vec![x, one, zero],
            1,
        );
        close(&out[0], &[-1., 1., -2., 3.]);
    }

    #[test]
    fn batch_norm_training_updates_running_stats() {
        let x = f32t(&[2, 1, 1], &[1., 3.]);
        let p = |v: f32| f32t(&[1], &[v]);
        let out = run(
            &BATCH_NORM,
            &[("training_mode", Attr::Int(1)), ("epsilon", Attr::Float(0.0))],
            vec![x, p(1.), p(0.), p(0.), p(1.)],
            3,
        );
        close(&out[0], &[-1., 1.]);
        close(&out[1], &[0.2]);
        close(&out[2], &[1.0]);
    }

    #[test]
    fn f16_rounds_at_each_step() {
        let x = Tensor::F16(
            ArrayD::from_shape_vec(IxDyn(&[3]), [1.0f32, 2.0, 3.0].map(half::f16::from_f32).to_vec())
                .unwrap(),
        );
        let out = run(&SOFTMAX, &[], vec![x], 1);
        assert!(matches!(out[0], Tensor::F16(_)));
        // numpy in f16: d = x - max, e = exp(d), s = f16(sum(e) in f32), y = e / s, each rounded.
        close(&out[0], &[0.090087890625, 0.2447509765625, 0.66552734375]);
    }
}
