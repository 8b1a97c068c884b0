//! `nn.*` reductions, arg-reductions, cumulative sums/products and top-k. The softmax family
//! and the normalizations live in `reduce_norm.rs` and are re-exported here, so the op table
//! names every op of the family as `reduce::NAME`.
//!
//! ## How values are reduced
//! A reduction is computed "by rows": the input is viewed with the reduced axes moved last
//! (kept axes first, both in their original order) and brought into standard layout. That view
//! is a plain borrow when the reduced axes already are the trailing ones, which is the common
//! case (last-axis softmax, layer norm, `ReduceMean` over the hidden dim), and one copy
//! otherwise. Each output element then reduces one contiguous row of `R` elements, so kernels
//! are simple slice loops with no per-element allocation.
//!
//! Floating-point values are accumulated in f64: f16/bf16 are widened and rounded once on
//! output, and f32 sums lose less than numpy's own f32 pairwise sums. Integers are accumulated
//! in i128 with wrapping arithmetic and truncated to the element type, which gives the same bits
//! as numpy's wrapping integer arithmetic.

use super::util::{input, norm_axis, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::{AttrKind, Attrs};
use crate::tensor::Tensor;
use crate::types::{Dim, ElemType, ScalarType, TensorType};
use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, Axis, CowArray, Ix1, Ix2, Ix3, Ix4, IxDyn};
use std::cmp::Ordering;

pub use super::reduce_norm::{
    BATCH_NORM, GROUP_NORM, HARDMAX, INSTANCE_NORM, LAYER_NORM, LOG_SOFTMAX, LP_NORM, MEAN_VARIANCE_NORM,
    RMS_NORM, SOFTMAX,
};

// ---------------------------------------------------------------------------------------------
// Element access shared by the family

/// What the kernels need from an element type: conversions to the f64 and i128 accumulators
/// and back, the extreme values (identities of max/min), and the [`Tensor`] variant holding it.
pub(crate) trait Elem: Copy + PartialOrd + 'static {
    /// Whether arithmetic on this type is floating point (accumulated in f64, else in i128).
    const FLOAT: bool;
    fn to_f64(self) -> f64;
    /// Rounds (floats) or saturates (integers, Rust `as` semantics) a value into this type.
    fn from_f64(v: f64) -> Self;
    fn to_i128(self) -> i128;
    /// Truncates to this type's bits (wrapping), like numpy's integer overflow.
    fn from_i128(v: i128) -> Self;
    /// `-inf` for floats, the minimum for integers, `false` for bool.
    fn lowest() -> Self;
    /// `+inf` for floats, the maximum for integers, `true` for bool.
    fn highest() -> Self;
    fn wrap(a: ArrayD<Self>) -> Tensor;
    #[allow(clippy::eq_op)]
    fn is_nan(self) -> bool {
        self != self
    }
}

macro_rules! int_elem {
    ($t:ty, $variant:ident) => {
        impl Elem for $t {
            const FLOAT: bool = false;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_i128(self) -> i128 {
                self as i128
            }
            fn from_i128(v: i128) -> Self {
                v as $t
            }
            fn lowest() -> Self {
                <$t>::MIN
            }
            fn highest() -> Self {
                <$t>::MAX
            }
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$variant(a)
            }
        }
    };
}
int_elem!(i64, I64);
int_elem!(i32, I32);
int_elem!(i16, I16);
int_elem!(i8, I8);
int_elem!(u64, U64);
int_elem!(u32, U32);
int_elem!(u16, U16);
int_elem!(u8, U8);

macro_rules! float_elem {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        impl Elem for $t {
            const FLOAT: bool = true;
            fn to_f64(self) -> f64 {
                $to(self)
            }
            fn from_f64(v: f64) -> Self {
                $from(v)
            }
            fn to_i128(self) -> i128 {
                self.to_f64() as i128
            }
            fn from_i128(v: i128) -> Self {
                Self::from_f64(v as f64)
            }
            fn lowest() -> Self {
                <$t>::NEG_INFINITY
            }
            fn highest() -> Self {
                <$t>::INFINITY
            }
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$variant(a)
            }
        }
    };
}
float_elem!(f32, F32, |v: f32| v as f64, |v: f64| v as f32);
float_elem!(f64, F64, |v: f64| v, |v: f64| v);
float_elem!(f16, F16, |v: f16| v.to_f64(), f16::from_f64);
float_elem!(bf16, BF16, |v: bf16| v.to_f64(), bf16::from_f64);

impl Elem for bool {
    const FLOAT: bool = false;
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i128(self) -> i128 {
        self as i128
    }
    fn from_i128(v: i128) -> Self {
        v != 0
    }
    fn lowest() -> Self {
        false
    }
    fn highest() -> Self {
        true
    }
    fn wrap(a: ArrayD<Self>) -> Tensor {
        Tensor::Bool(a)
    }
}

pub(crate) fn unsupported(op: &str, ty: impl std::fmt::Display) -> String {
    format!("{op} does not support element type {ty}")
}

/// Runs `$body` with `$a` bound to the array of any numeric (non-bool, non-4-bit) tensor;
/// returns an error naming `$op` for the other element types.
macro_rules! numeric {
    ($t:expr, $op:expr, $a:ident => $body:expr) => {
        match $t {
            Tensor::F32($a) => $body,
            Tensor::F16($a) => $body,
            Tensor::BF16($a) => $body,
            Tensor::F64($a) => $body,
            Tensor::I64($a) => $body,
            Tensor::I32($a) => $body,
            Tensor::I16($a) => $body,
            Tensor::I8($a) => $body,
            Tensor::U64($a) => $body,
            Tensor::U32($a) => $body,
            Tensor::U16($a) => $body,
            Tensor::U8($a) => $body,
            other => return Err(unsupported($op, other.scalar_type())),
        }
    };
}

/// Whether reductions, arg-reductions, cumulative ops and top-k accept this element type.
fn is_numeric(t: ScalarType) -> bool {
    !matches!(t, ScalarType::Bool | ScalarType::I4 | ScalarType::U4)
}

/// The scalar element type of operand `i`, checked with `ok`. Quantized element types are
/// rejected: these ops are defined on plain values (dequantize first).
pub(crate) fn elem_of(
    ctx: &InferCtx,
    i: usize,
    op: &str,
    ok: fn(ScalarType) -> bool,
) -> OpResult<ScalarType> {
    let t = operand(ctx, i)?;
    match &t.elem {
        ElemType::Scalar(s) if ok(*s) => Ok(*s),
        e => Err(unsupported(op, e)),
    }
}

/// An integer attribute, or `default` when absent.
pub(crate) fn int_attr(attrs: &Attrs, name: &str, default: i64) -> i64 {
    attrs.int(name).unwrap_or(default)
}

/// A 0/1 flag attribute; ONNX treats any non-zero value as set.
pub(crate) fn flag(attrs: &Attrs, name: &str, default: bool) -> bool {
    attrs.int(name).map_or(default, |v| v != 0)
}

pub(crate) fn float_attr(attrs: &Attrs, name: &str, default: f64) -> f64 {
    attrs.float(name).unwrap_or(default)
}

/// Axis order that moves the `reduced` axes last, keeping the relative order of both groups.
pub(crate) fn rows_perm(reduced: &[bool]) -> Vec<usize> {
    let kept = (0..reduced.len()).filter(|&i| !reduced[i]);
    kept.chain((0..reduced.len()).filter(|&i| reduced[i])).collect()
}

/// The inverse of a permutation.
pub(crate) fn inverse_perm(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| i == p)
}

/// Merges the runs of axes that stay adjacent and in order under `perm`: they can be walked as
/// one axis of a standard-layout array. Returns the merged shape (in source order) and the
/// permutation of the merged axes. E.g. moving axis 1 of a 4-D array last (`perm = [0, 2, 3, 1]`)
/// becomes a 3-D problem with `perm = [0, 2, 1]`.
fn collapse(shape: &[usize], perm: &[usize]) -> (Vec<usize>, Vec<usize>) {
    // Runs of consecutive source axes, in permuted order.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &p in perm {
        match runs.last_mut() {
            Some((_, end)) if *end == p => *end = p + 1,
            _ => runs.push((p, p + 1)),
        }
    }
    let mut by_source: Vec<usize> = (0..runs.len()).collect();
    by_source.sort_by_key(|&i| runs[i].0);
    let merged_shape = by_source.iter().map(|&i| shape[runs[i].0..runs[i].1].iter().product()).collect();
    let merged_perm = inverse_perm(&by_source);
    (merged_shape, merged_perm)
}

/// The elements of `v` mapped by `f`, in row-major order of its axes permuted by `perm`.
/// Standard-layout inputs are walked as a view of at most 4 merged axes when possible, which
/// ndarray iterates much faster than a general dynamic-rank view.
pub(crate) fn gather_permuted<T, U>(v: ArrayViewD<T>, perm: &[usize], mut f: impl FnMut(&T) -> U) -> Vec<U> {
    if is_identity(perm) {
        if let Some(s) = v.as_slice() {
            return s.iter().map(f).collect();
        }
    }
    if v.is_standard_layout() {
        let (shape, p) = collapse(v.shape(), perm);
        if let Ok(m) = v.view().into_shape_with_order(IxDyn(&shape)) {
            let m = m.permuted_axes(p);
            let done = match m.ndim() {
                1 => m.view().into_dimensionality::<Ix1>().ok().map(|m| m.iter().map(&mut f).collect()),
                2 => m.view().into_dimensionality::<Ix2>().ok().map(|m| m.iter().map(&mut f).collect()),
                3 => m.view().into_dimensionality::<Ix3>().ok().map(|m| m.iter().map(&mut f).collect()),
                4 => m.view().into_dimensionality::<Ix4>().ok().map(|m| m.iter().map(&mut f).collect()),
                _ => None,
            };
            if let Some(d) = done {
                return d;
            }
        }
    }
    v.permuted_axes(perm.to_vec()).iter().map(f).collect()
}

/// `a` with its axes permuted by `perm`, in standard layout: borrowed when that is already the
/// memory order, copied otherwise. Its elements form consecutive rows over the trailing axes.
pub(crate) fn rows_of<'a, T: Clone>(a: &'a ArrayD<T>, perm: &[usize]) -> OpResult<CowArray<'a, T, IxDyn>> {
    let v = a.view().permuted_axes(perm.to_vec());
    if v.is_standard_layout() {
        return Ok(CowArray::from(v));
    }
    let shape: Vec<usize> = perm.iter().map(|&p| a.shape()[p]).collect();
    Ok(CowArray::from(array(&shape, gather_permuted(a.view(), perm, T::clone))?))
}

/// The contiguous elements of a standard-layout array.
pub(crate) fn slice_of<'a, T>(a: &'a CowArray<'_, T, IxDyn>) -> OpResult<&'a [T]> {
    a.as_slice().ok_or_else(|| "internal error: rows are not contiguous".to_string())
}

/// Builds an array of `shape` from row-major data computed in the axis order `perm`, returning
/// it in the original axis order and standard layout.
pub(crate) fn unpermute<T: Clone>(
    perm: &[usize],
    permuted_shape: &[usize],
    data: Vec<T>,
) -> OpResult<ArrayD<T>> {
    let a = array(permuted_shape, data)?;
    if is_identity(perm) {
        return Ok(a);
    }
    let inv = inverse_perm(perm);
    let shape: Vec<usize> = inv.iter().map(|&p| permuted_shape[p]).collect();
    array(&shape, gather_permuted(a.view(), &inv, T::clone))
}

fn array<T>(shape: &[usize], data: Vec<T>) -> OpResult<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| e.to_string())
}

/// Reads an integer operand (axes, axis, k) as i64 values.
pub(crate) fn int_values(t: &Tensor, what: &str) -> OpResult<Vec<i64>> {
    t.to_i64_vec()
        .ok_or_else(|| format!("`{what}` must have an integer element type, found {}", t.scalar_type()))
}

/// Marks the axes listed in `axes` (possibly negative) among `rank` axes; repeats are errors.
pub(crate) fn reduced_flags(axes: &[i64], rank: usize) -> OpResult<Vec<bool>> {
    let mut flags = vec![false; rank];
    for &a in axes {
        let a = norm_axis(a, rank)?;
        if rank == 0 {
            continue;
        }
        if flags[a] {
            return Err(format!("axis {a} is listed twice in `axes`"));
        }
        flags[a] = true;
    }
    Ok(flags)
}

/// Dims after reducing the flagged axes.
fn reduced_dims(dims: &[Dim], reduced: &[bool], keepdims: bool) -> Vec<Dim> {
    dims.iter()
        .zip(reduced)
        .filter_map(|(d, &r)| match (r, keepdims) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Static(1)),
            (true, false) => None,
        })
        .collect()
}

fn reduced_shape(shape: &[usize], reduced: &[bool], keepdims: bool) -> Vec<usize> {
    shape
        .iter()
        .zip(reduced)
        .filter_map(|(&d, &r)| match (r, keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// ReduceX

/// The reduction an `nn.reduce_*` op applies to each row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSum,
    LogSumExp,
}

impl Reduction {
    fn name(self) -> &'static str {
        match self {
            Reduction::Sum => "reduce_sum",
            Reduction::Mean => "reduce_mean",
            Reduction::Max => "reduce_max",
            Reduction::Min => "reduce_min",
            Reduction::Prod => "reduce_prod",
            Reduction::L1 => "reduce_l1",
            Reduction::L2 => "reduce_l2",
            Reduction::SumSquare => "reduce_sum_square",
            Reduction::LogSum => "reduce_log_sum",
            Reduction::LogSumExp => "reduce_log_sum_exp",
        }
    }

    /// Max and min also order booleans (ONNX opset 20).
    fn allows_bool(self) -> bool {
        matches!(self, Reduction::Max | Reduction::Min)
    }

    /// The result of reducing an empty row, as ONNX defines it: the identity of the underlying
    /// operation (`-inf`/`+inf` or the type's limits for max/min, 1 for prod, `log(0) = -inf`
    /// for the log reductions, NaN for a float mean and 0 for an integer one).
    fn empty<T: Elem>(self) -> T {
        match self {
            Reduction::Sum | Reduction::L1 | Reduction::L2 | Reduction::SumSquare => T::from_f64(0.0),
            Reduction::Prod => T::from_f64(1.0),
            Reduction::Max => T::lowest(),
            Reduction::Min => T::highest(),
            Reduction::Mean => T::from_f64(if T::FLOAT { f64::NAN } else { 0.0 }),
            Reduction::LogSum | Reduction::LogSumExp => T::from_f64(f64::NEG_INFINITY),
        }
    }

    /// Reduces one non-empty row.
    fn row<T: Elem>(self, row: &[T]) -> T {
        match self {
            Reduction::Max | Reduction::Min => {
                let max = self == Reduction::Max;
                let mut best = row[0];
                for &v in row {
                    // NaN propagates, as in numpy.
                    if v.is_nan() {
                        return v;
                    }
                    if (max && v > best) || (!max && v < best) {
                        best = v;
                    }
                }
                best
            }
            _ if T::FLOAT => T::from_f64(self.row_f64(row)),
            Reduction::L2 | Reduction::LogSum | Reduction::LogSumExp => T::from_f64(self.row_f64(row)),
            _ => T::from_i128(self.row_int(row)),
        }
    }

    fn row_f64<T: Elem>(self, row: &[T]) -> f64 {
        let it = row.iter().map(|v| v.to_f64());
        match self {
            Reduction::Sum => it.sum(),
            Reduction::Mean => it.sum::<f64>() / row.len() as f64,
            Reduction::Prod => it.product(),
            Reduction::L1 => it.map(f64::abs).sum(),
            Reduction::L2 => it.map(|v| v * v).sum::<f64>().sqrt(),
            Reduction::SumSquare => it.map(|v| v * v).sum(),
            Reduction::LogSum => it.sum::<f64>().ln(),
            Reduction::LogSumExp => {
                // Shift by the maximum so that large inputs do not overflow exp().
                let m = it.clone().fold(f64::NEG_INFINITY, f64::max);
                if !m.is_finite() {
                    // All -inf gives -inf, any +inf gives +inf, unless a NaN is present
                    // (f64::max skips NaN, so look for it explicitly).
                    return if it.clone().any(f64::is_nan) { f64::NAN } else { m };
                }
                m + it.map(|v| (v - m).exp()).sum::<f64>().ln()
            }
            Reduction::Max | Reduction::Min => unreachable!("handled on the element type"),
        }
    }

    fn row_int<T: Elem>(self, row: &[T]) -> i128 {
        let it = row.iter().map(|v| v.to_i128());
        match self {
            Reduction::Sum => it.fold(0i128, i128::wrapping_add),
            // Truncates toward zero like numpy's mean cast back to the integer type.
            Reduction::Mean => it.fold(0i128, i128::wrapping_add) / row.len() as i128,
            Reduction::Prod => it.fold(1i128, i128::wrapping_mul),
            Reduction::L1 => it.fold(0i128, |a, v| a.wrapping_add(v.wrapping_abs())),
            Reduction::SumSquare => it.fold(0i128, |a, v| a.wrapping_add(v.wrapping_mul(v))),
            _ => unreachable!("computed in f64"),
        }
    }
}

fn reduce_array<T: Elem>(
    a: &ArrayD<T>,
    reduced: &[bool],
    keepdims: bool,
    kind: Reduction,
) -> OpResult<Tensor> {
    let perm = rows_perm(reduced);
    let rows = rows_of(a, &perm)?;
    let data = slice_of(&rows)?;
    let r: usize = a.shape().iter().zip(reduced).filter(|(_, &f)| f).map(|(&d, _)| d).product();
    let k: usize = a.shape().iter().zip(reduced).filter(|(_, &f)| !f).map(|(&d, _)| d).product();
    let out: Vec<T> = if r == 0 {
        vec![kind.empty::<T>(); k]
    } else {
        data.chunks_exact(r).map(|row| kind.row(row)).collect()
    };
    Ok(T::wrap(array(&reduced_shape(a.shape(), reduced, keepdims), out)?))
}

fn infer_reduce(ctx: &InferCtx, kind: Reduction) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let ok: fn(ScalarType) -> bool =
        if kind.allows_bool() { |t| !matches!(t, ScalarType::I4 | ScalarType::U4) } else { is_numeric };
    elem_of(ctx, 0, kind.name(), ok)?;
    let keepdims = flag(ctx.attrs, "keepdims", true);
    let noop = flag(ctx.attrs, "noop_with_empty_axes", false);
    let rank = data.rank();
    if ctx.has_operand(1) {
        elem_of(ctx, 1, kind.name(), |t| t.is_int())?;
    }
    let dims = if !ctx.has_operand(1) {
        if noop {
            data.dims.clone()
        } else if keepdims {
            vec![Dim::Static(1); rank]
        } else {
            vec![]
        }
    } else if let Some(axes) = ctx.opt_const(1) {
        let reduced = reduced_flags(&int_values(axes, "axes")?, rank)?;
        reduced_dims(&data.dims, &reduced, keepdims)
    } else {
        // Axes known only at run time: the rank still follows from keepdims, or from the
        // static length of the axes operand.
        let axes = operand(ctx, 1)?;
        let len = match axes.dims.as_slice() {
            [] => Dim::Static(1),
            [d] => d.clone(),
            _ => return Err(format!("`axes` must be 1-D, found {axes}")),
        };
        if keepdims {
            data.dims.iter().map(|d| if *d == Dim::Static(1) { d.clone() } else { Dim::Unknown }).collect()
        } else {
            match len {
                Dim::Static(n) if n as usize <= rank => vec![Dim::Unknown; rank - n as usize],
                Dim::Static(n) => return Err(format!("{n} axes given for a rank-{rank} input")),
                _ => {
                    return Err("with keepdims=0, `axes` must be a constant or have a static length \
                                (the result rank depends on it)"
                        .into())
                }
            }
        }
    };
    Ok(vec![TensorType::new(dims, data.elem.clone())])
}

fn eval_reduce(ctx: &EvalCtx, kind: Reduction) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let keepdims = flag(ctx.attrs, "keepdims", true);
    let noop = flag(ctx.attrs, "noop_with_empty_axes", false);
    let rank = data.shape().len();
    let reduced = match ctx.opt_input(1) {
        Some(axes) => reduced_flags(&int_values(axes, "axes")?, rank)?,
        None if noop => return Ok(vec![data.clone()]),
        None => vec![true; rank],
    };
    let out = match data {
        Tensor::Bool(a) if kind.allows_bool() => reduce_array(a, &reduced, keepdims, kind)?,
        _ => numeric!(data, kind.name(), a => reduce_array(a, &reduced, keepdims, kind)?),
    };
    Ok(vec![out])
}

const REDUCE_ATTRS: &[AttrDef] =
    &[AttrDef::opt("keepdims", AttrKind::Int, "1"), AttrDef::opt("noop_with_empty_axes", AttrKind::Int, "0")];

macro_rules! reduce_op {
    ($id:ident, $name:literal, $kind:expr, $summary:literal) => {
        pub static $id: OpDef = OpDef {
            name: $name,
            summary: $summary,
            operands: &["data", "axes?"],
            results: &["reduced"],
            attrs: REDUCE_ATTRS,
            traits: Traits::PURE,
            infer: |ctx| infer_reduce(ctx, $kind),
            eval: |ctx| eval_reduce(ctx, $kind),
        };
    };
}

reduce_op!(REDUCE_MEAN, "nn.reduce_mean", Reduction::Mean, "Mean over `axes` (all axes when absent).");
reduce_op!(REDUCE_SUM, "nn.reduce_sum", Reduction::Sum, "Sum over `axes` (all axes when absent).");
reduce_op!(
    REDUCE_MAX,
    "nn.reduce_max",
    Reduction::Max,
    "Maximum over `axes`; an empty set gives -inf or the type's minimum."
);
reduce_op!(
    REDUCE_MIN,
    "nn.reduce_min",
    Reduction::Min,
    "Minimum over `axes`; an empty set gives +inf or the type's maximum."
);
reduce_op!(REDUCE_PROD, "nn.reduce_prod", Reduction::Prod, "Product over `axes`; an empty set gives 1.");
reduce_op!(REDUCE_L1, "nn.reduce_l1", Reduction::L1, "Sum of absolute values over `axes`.");
reduce_op!(REDUCE_L2, "nn.reduce_l2", Reduction::L2, "Euclidean norm over `axes`.");
reduce_op!(REDUCE_SUM_SQUARE, "nn.reduce_sum_square", Reduction::SumSquare, "Sum of squares over `axes`.");
reduce_op!(REDUCE_LOG_SUM, "nn.reduce_log_sum", Reduction::LogSum, "Natural log of the sum over `axes`.");
reduce_op!(
    REDUCE_LOG_SUM_EXP,
    "nn.reduce_log_sum_exp",
    Reduction::LogSumExp,
    "log(sum(exp(x))) over `axes`, computed stably (shifted by the maximum)."
);

// ---------------------------------------------------------------------------------------------
// ArgMax / ArgMin

const ARG_ATTRS: &[AttrDef] = &[
    AttrDef::opt("axis", AttrKind::Int, "0"),
    AttrDef::opt("keepdims", AttrKind::Int, "1"),
    AttrDef::opt("select_last_index", AttrKind::Int, "0"),
];

pub static ARG_MAX: OpDef = OpDef {
    name: "nn.arg_max",
    summary: "Index (i64) of the largest element along `axis`; ties give the first index \
              (the last with `select_last_index`).",
    operands: &["data"],
    results: &["reduced"],
    attrs: ARG_ATTRS,
    traits: Traits::PURE,
    infer: |ctx| infer_arg(ctx, "arg_max"),
    eval: |ctx| eval_arg(ctx, true),
};

pub static ARG_MIN: OpDef = OpDef {
    name: "nn.arg_min",
    summary: "Index (i64) of the smallest element along `axis`; ties give the first index \
              (the last with `select_last_index`).",
    operands: &["data"],
    results: &["reduced"],
    attrs: ARG_ATTRS,
    traits: Traits::PURE,
    infer: |ctx| infer_arg(ctx, "arg_min"),
    eval: |ctx| eval_arg(ctx, false),
};

fn infer_arg(ctx: &InferCtx, op: &str) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    elem_of(ctx, 0, op, is_numeric)?;
    let axis = norm_axis(int_attr(ctx.attrs, "axis", 0), data.rank())?;
    let mut reduced = vec![false; data.rank()];
    if data.rank() > 0 {
        reduced[axis] = true;
    }
    let dims = reduced_dims(&data.dims, &reduced, flag(ctx.attrs, "keepdims", true));
    Ok(vec![TensorType::new(dims, ScalarType::I64)])
}

fn eval_arg(ctx: &EvalCtx, max: bool) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let op = if max { "arg_max" } else { "arg_min" };
    let out = numeric!(data, op, a => arg_array(a, ctx.attrs, max)?);
    Ok(vec![Tensor::I64(out)])
}

fn arg_array<T: Elem>(a: &ArrayD<T>, attrs: &Attrs, max: bool) -> OpResult<ArrayD<i64>> {
    let rank = a.ndim();
    let axis = norm_axis(int_attr(attrs, "axis", 0), rank)?;
    let last = flag(attrs, "select_last_index", false);
    let mut reduced = vec![false; rank];
    if rank > 0 {
        reduced[axis] = true;
    }
    let r = if rank > 0 { a.shape()[axis] } else { 1 };
    if r == 0 {
        return Err(format!(
            "cannot take the arg {} over empty axis {axis}",
            if max { "max" } else { "min" }
        ));
    }
    let perm = rows_perm(&reduced);
    let rows = rows_of(a, &perm)?;
    let out: Vec<i64> = slice_of(&rows)?
        .chunks_exact(r)
        .map(|row| {
            let mut bi = 0;
            for (i, &v) in row.iter().enumerate().skip(1) {
                let b = row[bi];
                // NaN wins (first NaN, or last with select_last_index), as numpy's argmax.
                let better = if b.is_nan() {
                    last && v.is_nan()
                } else if v.is_nan() {
                    true
                } else if max {
                    v > b || (last && v == b)
                } else {
                    v < b || (last && v == b)
                };
                if better {
                    bi = i;
                }
            }
            bi as i64
        })
        .collect();
    array(&reduced_shape(a.shape(), &reduced, flag(attrs, "keepdims", true)), out)
}

// ---------------------------------------------------------------------------------------------
// CumSum / CumProd

const CUM_ATTRS: &[AttrDef] =
    &[AttrDef::opt("exclusive", AttrKind::Int, "0"), AttrDef::opt("reverse", AttrKind::Int, "0")];

pub static CUM_SUM: OpDef = OpDef {
    name: "nn.cumsum",
    summary: "Running sum along the scalar `axis` operand (`exclusive` omits the current element, \
              `reverse` runs from the end).",
    operands: &["x", "axis"],
    results: &["y"],
    attrs: CUM_ATTRS,
    traits: Traits::PURE,
    infer: |ctx| infer_cum(ctx, "cumsum"),
    eval: |ctx| eval_cum(ctx, false),
};

pub static CUM_PROD: OpDef = OpDef {
    name: "nn.cumprod",
    summary: "Running product along the scalar `axis` operand (`exclusive` omits the current \
              element, `reverse` runs from the end).",
    operands: &["x", "axis"],
    results: &["y"],
    attrs: CUM_ATTRS,
    traits: Traits::PURE,
    infer: |ctx| infer_cum(ctx, "cumprod"),
    eval: |ctx| eval_cum(ctx, true),
};

/// The single axis held by a scalar (or one-element) integer operand.
fn scalar_axis(t: &Tensor, rank: usize) -> OpResult<usize> {
    match int_values(t, "axis")?.as_slice() {
        [a] => norm_axis(*a, rank),
        v => Err(format!("`axis` must hold a single value, found {} values", v.len())),
    }
}

fn infer_cum(ctx: &InferCtx, op: &str) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    elem_of(ctx, 0, op, is_numeric)?;
    elem_of(ctx, 1, op, |t| t.is_int())?;
    if let Some(axis) = ctx.opt_const(1) {
        scalar_axis(axis, x.rank())?;
    }
    Ok(vec![x.clone()])
}

fn eval_cum(ctx: &EvalCtx, prod: bool) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let axis = scalar_axis(input(ctx, 1)?, x.shape().len())?;
    let exclusive = flag(ctx.attrs, "exclusive", false);
    let reverse = flag(ctx.attrs, "reverse", false);
    let op = if prod { "cumprod" } else { "cumsum" };
    Ok(vec![numeric!(x, op, a => T_wrap(cum_array(a, axis, exclusive, reverse, prod)))])
}

/// `Elem::wrap` spelled as a function so that a macro body can call it without naming `T`.
#[allow(non_snake_case)]
fn T_wrap<T: Elem>(a: ArrayD<T>) -> Tensor {
    T::wrap(a)
}

fn cum_array<T: Elem>(a: &ArrayD<T>, axis: usize, exclusive: bool, reverse: bool, prod: bool) -> ArrayD<T> {
    let mut out = a.as_standard_layout().into_owned();
    if out.ndim() == 0 {
        // A scalar is its own running sum; exclusive gives the identity.
        if exclusive {
            out.fill(T::from_f64(if prod { 1.0 } else { 0.0 }));
        }
        return out;
    }
    for mut lane in out.lanes_mut(Axis(axis)) {
        if reverse {
            scan(lane.iter_mut().rev(), exclusive, prod);
        } else {
            scan(lane.iter_mut(), exclusive, prod);
        }
    }
    out
}

/// Replaces each element by the running sum/product of the elements seen so far (excluding
/// the element itself when `exclusive`).
fn scan<'a, T: Elem>(it: impl Iterator<Item = &'a mut T>, exclusive: bool, prod: bool) {
    if T::FLOAT {
        let mut acc = if prod { 1.0 } else { 0.0 };
        for v in it {
            let x = v.to_f64();
            let next = if prod { acc * x } else { acc + x };
            *v = T::from_f64(if exclusive { acc } else { next });
            acc = next;
        }
    } else {
        let mut acc: i128 = if prod { 1 } else { 0 };
        for v in it {
            let x = v.to_i128();
            let next = if prod { acc.wrapping_mul(x) } else { acc.wrapping_add(x) };
            *v = T::from_i128(if exclusive { acc } else { next });
            // Keep the accumulator within the element's range so that wrapping matches it.
            acc = T::from_i128(next).to_i128();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TopK

pub static TOP_K: OpDef = OpDef {
    name: "nn.top_k",
    summary: "The `K` largest (or smallest) elements along `axis` and their i64 indices; equal \
              values keep the lower index first.",
    operands: &["X", "K"],
    results: &["Values", "Indices"],
    attrs: &[
        AttrDef::opt("axis", AttrKind::Int, "-1"),
        AttrDef::opt("largest", AttrKind::Int, "1"),
        AttrDef::opt("sorted", AttrKind::Int, "1"),
    ],
    traits: Traits::PURE,
    infer: infer_top_k,
    eval: eval_top_k,
};

fn k_value(t: &Tensor) -> OpResult<usize> {
    match int_values(t, "K")?.as_slice() {
        [k] if *k >= 0 => Ok(*k as usize),
        [k] => Err(format!("K must not be negative, found {k}")),
        v => Err(format!("K must hold a single value, found {} values", v.len())),
    }
}

fn infer_top_k(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    elem_of(ctx, 0, "top_k", is_numeric)?;
    elem_of(ctx, 1, "top_k", |t| t.is_int())?;
    if ctx.num_results != 2 {
        return Err(format!("top_k has 2 results, {} given", ctx.num_results));
    }
    if x.rank() == 0 {
        return Err("top_k needs an input of rank at least 1".into());
    }
    let axis = norm_axis(int_attr(ctx.attrs, "axis", -1), x.rank())?;
    let mut dims = x.dims.clone();
    dims[axis] = match ctx.consts.get(1) {
        Some(Some(k)) => {
            let k = k_value(k)?;
            if let Dim::Static(n) = x.dims[axis] {
                if k as u64 > n {
                    return Err(format!("K = {k} exceeds the size {n} of axis {axis}"));
                }
            }
            Dim::Static(k as u64)
        }
        _ => Dim::Unknown,
    };
    Ok(vec![TensorType::new(dims.clone(), x.elem.clone()), TensorType::new(dims, ScalarType::I64)])
}

fn eval_top_k(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let k = k_value(input(ctx, 1)?)?;
    let rank = x.shape().len();
    if rank == 0 {
        return Err("top_k needs an input of rank at least 1".into());
    }
    let axis = norm_axis(int_attr(ctx.attrs, "axis", -1), rank)?;
    let largest = flag(ctx.attrs, "largest", true);
    let (values, indices) = numeric!(x, "top_k", a => top_k_array(a, axis, k, largest)?);
    Ok(vec![values, Tensor::I64(indices)])
}

/// Orders NaN above every number (numpy's sort order), so the comparison is total.
fn total_cmp<T: Elem>(a: T, b: T) -> Ordering {
    a.partial_cmp(&b).unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

fn top_k_array<T: Elem>(
    a: &ArrayD<T>,
    axis: usize,
    k: usize,
    largest: bool,
) -> OpResult<(Tensor, ArrayD<i64>)> {
    let n = a.shape()[axis];
    if k > n {
        return Err(format!("K = {k} exceeds the size {n} of axis {axis}"));
    }
    let mut reduced = vec![false; a.ndim()];
    reduced[axis] = true;
    let perm = rows_perm(&reduced);
    let rows = rows_of(a, &perm)?;
    let mut pshape: Vec<usize> = perm.iter().map(|&p| a.shape()[p]).collect();
    let outer: usize = pshape[..pshape.len() - 1].iter().product();
    if let Some(last) = pshape.last_mut() {
        *last = k;
    }
    let mut values = Vec::with_capacity(outer * k);
    let mut indices = Vec::with_capacity(outer * k);
    if n > 0 {
        let mut order: Vec<usize> = Vec::with_capacity(n);
        for row in slice_of(&rows)?.chunks_exact(n) {
            // Ties keep the lower index first, whichever direction is selected.
            let cmp = |&i: &usize, &j: &usize| {
                let c = if largest { total_cmp(row[j], row[i]) } else { total_cmp(row[i], row[j]) };
                c.then(i.cmp(&j))
            };
            order.clear();
            order.extend(0..n);
            if k > 0 && k < n {
                order.select_nth_unstable_by(k - 1, cmp);
            }
            order[..k].sort_unstable_by(cmp);
            values.extend(order[..k].iter().map(|&i| row[i]));
            indices.extend(order[..k].iter().map(|&i| i as i64));
        }
    }
    Ok((T::wrap(unpermute(&perm, &pshape, values)?), unpermute(&perm, &pshape, indices)?))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::attr::Attr;

    pub(crate) fn f32t(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap())
    }
    pub(crate) fn i64t(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::I64(ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap())
    }

    /// Infers with all operands constant, evaluates, checks the value against the inferred type.
    pub(crate) fn run(def: &OpDef, attrs: &[(&str, Attr)], inputs: Vec<Tensor>, nres: usize) -> Vec<Tensor> {
        let mut at = Attrs::new();
        for (n, v) in attrs {
            at.set(n, v.clone());
        }
        let types: Vec<TensorType> = inputs.iter().map(|t| t.ty()).collect();
        let consts: Vec<Option<Tensor>> = inputs.iter().cloned().map(Some).collect();
        let ictx = InferCtx { attrs: &at, operands: &types, consts: &consts, num_results: nres };
        let rtypes = (def.infer)(&ictx).unwrap();
        assert_eq!(rtypes.len(), nres);
        let ectx = EvalCtx { attrs: &at, inputs: &inputs, operand_types: &types, result_types: &rtypes };
        let out = (def.eval)(&ectx).unwrap();
        for (t, ty) in out.iter().zip(&rtypes) {
            crate::interp::check_value(ty, t).unwrap();
        }
        out
    }

    pub(crate) fn close(t: &Tensor, expect: &[f64]) {
        let v = t.to_f64_vec();
        assert_eq!(v.len(), expect.len(), "{v:?} vs {expect:?}");
        for (a, b) in v.iter().zip(expect) {
            assert!(
                a == b || (a - b).abs() <= 1e-5 + 1e-4 * b.abs() || (a.is_nan() && b.is_nan()),
                "{v:?} vs {expect:?}"
            );
        }
    }

    #[test]
    fn permuted_gathers_match_ndarray() {
        assert_eq!(collapse(&[2, 3, 4, 5], &[0, 2, 3, 1]), (vec![2, 3, 20], vec![0, 2, 1]));
        assert_eq!(collapse(&[2, 3, 4], &[1, 2, 0]), (vec![2, 12], vec![1, 0]));
        let shape = [2, 3, 1, 4, 2];
        let a = ArrayD::from_shape_vec(IxDyn(&shape), (0..48).collect::<Vec<i32>>()).unwrap();
        for perm in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [0, 2, 4, 1, 3], [1, 2, 3, 4, 0], [3, 0, 4, 2, 1]] {
            let want: Vec<i32> = a.view().permuted_axes(perm.to_vec()).iter().copied().collect();
            assert_eq!(gather_permuted(a.view(), &perm, |&x| x), want, "{perm:?}");
            // A non-standard-layout input takes the general path.
            let t = a.view().permuted_axes(vec![1, 0, 2, 3, 4]);
            let want: Vec<i32> = t.view().permuted_axes(perm.to_vec()).iter().copied().collect();
            assert_eq!(gather_permuted(t, &perm, |&x| x), want, "{perm:?} of a transposed view");
        }
    }

    #[test]
    fn reduce_middle_axis_and_keepdims() {
        let x = f32t(&[2, 3, 2], &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.]);
        let out = run(&REDUCE_SUM, &[("keepdims", Attr::Int(0))], vec![x.clone(), i64t(&[1], &[1])], 1);
        assert_eq!(out[0].shape(), &[2, 2]);
        close(&out[0], &[9., 12., 27., 30.]);
        let out = run(&REDUCE_MAX, &[], vec![x.clone(), i64t(&[2], &[-1, 0])], 1);
        assert_eq!(out[0].shape(), &[1, 3, 1]);
        close(&out[0], &[8., 10., 12.]);
        let out = run(&REDUCE_LOG_SUM_EXP, &[("keepdims", Attr::Int(0))], vec![x.clone()], 1);
        assert_eq!(out[0].shape(), &[] as &[usize]);
        close(&out[0], &[12.4586751]);
    }

    #[test]
    fn empty_sets_and_noop() {
        let x = f32t(&[2, 0, 3], &[]);
        let axes = i64t(&[1], &[1]);
        close(&run(&REDUCE_MAX, &[], vec![x.clone(), axes.clone()], 1)[0], &[f64::NEG_INFINITY; 6]);
        close(&run(&REDUCE_MIN, &[], vec![x.clone(), axes.clone()], 1)[0], &[f64::INFINITY; 6]);
        close(&run(&REDUCE_PROD, &[], vec![x.clone(), axes.clone()], 1)[0], &[1.0; 6]);
        close(&run(&REDUCE_L2, &[], vec![x.clone(), axes.clone()], 1)[0], &[0.0; 6]);
        let u8x = Tensor::U8(ArrayD::from_shape_vec(IxDyn(&[0, 2]), vec![]).unwrap());
        close(&run(&REDUCE_MAX, &[], vec![u8x, i64t(&[1], &[0])], 1)[0], &[0.0, 0.0]);
        let b =
            Tensor::Bool(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![true, false, false, false]).unwrap());
        close(&run(&REDUCE_MAX, &[], vec![b, i64t(&[1], &[1])], 1)[0], &[1.0, 0.0]);
        let y = f32t(&[2], &[1.0, 2.0]);
        let noop =
            run(&REDUCE_SUM, &[("noop_with_empty_axes", Attr::Int(1))], vec![y.clone(), i64t(&[0], &[])], 1);
        assert_eq!(noop[0], y);
    }

    #[test]
    fn integer_reductions_wrap_and_truncate() {
        let x = Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[3]), vec![100i8, 100, -1]).unwrap());
        assert_eq!(run(&REDUCE_SUM, &[], vec![x.clone()], 1)[0].to_f64_vec(), vec![-57.0]);
        let m = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![-3, 0]).unwrap());
        assert_eq!(run(&REDUCE_MEAN, &[], vec![m], 1)[0].to_f64_vec(), vec![-1.0]);
    }

    #[test]
    fn unknown_axes_keep_rank() {
        let at = Attrs::new().with("keepdims", Attr::Int(0));
        let types = vec![TensorType::of(&[2, 3, 4], ScalarType::F32), TensorType::of(&[2], ScalarType::I64)];
        let consts = vec![None, None];
        let ctx = InferCtx { attrs: &at, operands: &types, consts: &consts, num_results: 1 };
        assert_eq!(infer_reduce(&ctx, Reduction::Sum).unwrap()[0].dims, vec![Dim::Unknown]);
        let at = Attrs::new();
        let ctx = InferCtx { attrs: &at, operands: &types, consts: &consts, num_results: 1 };
        assert_eq!(infer_reduce(&ctx, Reduction::Sum).unwrap()[0].rank(), 3);
    }

    #[test]
    fn nan_propagates_and_sorts_high() {
        let x = f32t(&[4], &[1., f32::NAN, 3., 2.]);
        assert!(run(&REDUCE_MAX, &[], vec![x.clone()], 1)[0].to_f64_vec()[0].is_nan());
        assert!(run(&REDUCE_MIN, &[], vec![x.clone()], 1)[0].to_f64_vec()[0].is_nan());
        assert_eq!(run(&ARG_MAX, &[], vec![x.clone()], 1)[0].to_f64_vec(), vec![1.0]);
        let out = run(&TOP_K, &[], vec![x.clone(), i64t(&[1], &[2])], 2);
        assert_eq!(out[1].to_f64_vec(), vec![1.0, 2.0]);
        let out = run(&TOP_K, &[("largest", Attr::Int(0))], vec![x, i64t(&[1], &[4])], 2);
        assert_eq!(out[1].to_f64_vec(), vec![0.0, 3.0, 2.0, 1.0]);
        let inf = f32t(&[3], &[f32::NEG_INFINITY, 1.0, f32::INFINITY]);
        close(&run(&REDUCE_LOG_SUM_EXP, &[], vec![inf], 1)[0], &[f64::INFINITY]);
    }

    #[test]
    fn half_precision_sums_in_f32_or_better() {
        // 4096 ones: an f16 accumulator would stall at 2048.
        let x = Tensor::F16(ArrayD::from_elem(IxDyn(&[4096]), f16::ONE));
        let out = run(&REDUCE_SUM, &[], vec![x], 1);
        assert!(matches!(out[0], Tensor::F16(_)));
        assert_eq!(out[0].to_f64_vec(), vec![4096.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let x = f32t(&[2, 2], &[1., 2., 3., 4.]);
        let types = vec![x.ty(), TensorType::of(&[1], ScalarType::I64)];
        let consts = vec![None, Some(i64t(&[1], &[2]))];
        let at = Attrs::new();
        let ctx = InferCtx { attrs: &at, operands: &types, consts: &consts, num_results: 1 };
        assert!((REDUCE_SUM.infer)(&ctx).unwrap_err().contains("out of range"));
        let consts = vec![None, Some(i64t(&[2], &[1, -1]))];
        let types = vec![x.ty(), TensorType::of(&[2], ScalarType::I64)];
        let ctx = InferCtx { attrs: &at, operands: &types, consts: &consts, num_results: 1 };
        assert!((REDUCE_SUM.infer)(&ctx).unwrap_err().contains("twice"));
        let b = Tensor::Bool(ArrayD::from_elem(IxDyn(&[2]), true));
        let types = vec![b.ty()];
        let ctx = InferCtx { attrs: &at, operands: &types, consts: &[None], num_results: 1 };
        assert!((REDUCE_SUM.infer)(&ctx).is_err());
        let ectx = EvalCtx { attrs: &at, inputs: &[b], operand_types: &types, result_types: &types };
        assert!((REDUCE_SUM.eval)(&ectx).is_err());
        let types = vec![x.ty(), TensorType::of(&[1], ScalarType::I64)];
        let ins = [x, i64t(&[1], &[5])];
        let ectx = EvalCtx { attrs: &at, inputs: &ins, operand_types: &types, result_types: &types };
        assert!((TOP_K.eval)(&ectx).unwrap_err().contains("exceeds"));
    }

    #[test]
    fn arg_max_ties_and_last_index() {
        let x = f32t(&[2, 3], &[1., 5., 5., 7., 2., 7.]);
        let out = run(&ARG_MAX, &[("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))], vec![x.clone()], 1);
        assert_eq!(out[0].to_f64_vec(), vec![1.0, 0.0]);
        let out =
            run(&ARG_MAX, &[("axis", Attr::Int(1)), ("select_last_index", Attr::Int(1))], vec![x.clone()], 1);
        assert_eq!(out[0].shape(), &[2, 1]);
        assert_eq!(out[0].to_f64_vec(), vec![2.0, 2.0]);
        let out = run(&ARG_MIN, &[], vec![x], 1);
        assert_eq!(out[0].to_f64_vec(), vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn cumsum_variants() {
        let x = Tensor::F64(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1., 2., 3., 4., 5., 6.]).unwrap());
        let axis = Tensor::I32(ArrayD::from_elem(IxDyn(&[]), 0));
        close(&run(&CUM_SUM, &[], vec![x.clone(), axis.clone()], 1)[0], &[1., 2., 3., 5., 7., 9.]);
        let axis = Tensor::I32(ArrayD::from_elem(IxDyn(&[]), -1));
        let out = run(
            &CUM_SUM,
            &[("exclusive", Attr::Int(1)), ("reverse", Attr::Int(1))],
            vec![x.clone(), axis.clone()],
            1,
        );
        close(&out[0], &[5., 3., 0., 11., 6., 0.]);
        close(&run(&CUM_PROD, &[], vec![x, axis], 1)[0], &[1., 2., 6., 4., 20., 120.]);
    }

    #[test]
    fn top_k_ties_lower_index_first() {
        let x = i64t(&[2, 4], &[3, 1, 3, 2, 0, 0, 1, 0]);
        let out = run(&TOP_K, &[], vec![x.clone(), i64t(&[1], &[3])], 2);
        assert_eq!(out[0].to_f64_vec(), vec![3., 3., 2., 1., 0., 0.]);
        assert_eq!(out[1].to_f64_vec(), vec![0., 2., 3., 2., 0., 1.]);
        let out =
            run(&TOP_K, &[("largest", Attr::Int(0)), ("axis", Attr::Int(0))], vec![x, i64t(&[1], &[1])], 2);
        assert_eq!(out[0].to_f64_vec(), vec![0., 0., 1., 0.]);
        assert_eq!(out[1].to_f64_vec(), vec![1., 1., 1., 1.]);
    }
}
