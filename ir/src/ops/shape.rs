//! `shape.*`: data movement (reshape, transpose, gather, scatter, pad, resize...) and shape
//! computation (shape, size, range, constant_of_shape).
//!
//! Every op here follows the newest ONNX definition of its counterpart (operands, attribute
//! names and defaults). The ops are generic over the element type: evaluation dispatches with
//! [`map_tensor!`](crate::map_tensor) to generic functions bounded by [`Elem`], so each works for
//! all fifteen storage types, and a quantized element type passes through unchanged (its
//! per-axis parameters follow the axis when an op moves it).
//!
//! Shape rules are written for the frontend's constant folding of exporter shape chains
//! (`Shape -> Gather -> Concat -> Reshape`): whenever a shape-like operand (target shape, axes,
//! starts/ends, pads, repeats, sizes...) is a compile-time constant, the result dims are static
//! (or symbolic when they are copied from a symbolic input dim). When it is not, the rank is still
//! computed (from the static length of the shape-like operand) and the dims become
//! [`Dim::Unknown`].
//!
//! The family is split over files: this one holds the shared helpers and the reshaping ops,
//! `shape_index.rs` the index-driven ops (gather, scatter, one_hot, non_zero, trilu) and
//! `shape_resample.rs` pad and resize.

use super::util::{broadcast_dims, broadcast_shapes, input, norm_axis, operand, static_dims};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::{AttrKind, Attrs};
use crate::map_tensor;
use crate::tensor::Tensor;
use crate::types::{Dim, ElemType, QuantParams, ScalarType, TensorType};
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};

pub use super::shape_index::{
    GATHER, GATHER_ELEMENTS, GATHER_ND, NON_ZERO, ONE_HOT, SCATTER_ELEMENTS, SCATTER_ND, TRILU,
};
pub use super::shape_resample::{PAD, RESIZE};

const MOVE: Traits = Traits::PURE.union(Traits::DATA_MOVEMENT);

// ---------------------------------------------------------------------------------------------
// Element types
// ---------------------------------------------------------------------------------------------

/// The storage element types of [`Tensor`] with the few operations this family needs beyond
/// copying: a zero (trilu), arithmetic for scatter reductions, and conversion through `f64` for
/// interpolation (resize) and ranges.
pub(crate) trait Elem: Clone + PartialOrd + 'static {
    fn zero() -> Self;
    fn add(&self, o: &Self) -> Self;
    fn mul(&self, o: &Self) -> Self;
    fn to_f64(&self) -> f64;
    /// Rounds half to even and saturates for integers (as `numpy.round` + clip).
    fn from_f64(v: f64) -> Self;
    /// The array inside `t` if `t` holds this element type (`i8` matches `I8` and `I4`, `u8`
    /// matches `U8` and `U4`; callers compare scalar types first).
    fn array(t: &Tensor) -> Option<&ArrayD<Self>>;
}

macro_rules! int_elem {
    ($t:ty, $($v:ident)|+) => {
        impl Elem for $t {
            fn zero() -> Self { 0 }
            fn add(&self, o: &Self) -> Self { self.wrapping_add(*o) }
            fn mul(&self, o: &Self) -> Self { self.wrapping_mul(*o) }
            fn to_f64(&self) -> f64 { *self as f64 }
            // `as` from float saturates and maps NaN to 0.
            fn from_f64(v: f64) -> Self { v.round_ties_even() as $t }
            fn array(t: &Tensor) -> Option<&ArrayD<Self>> {
                match t { $(Tensor::$v(a))|+ => Some(a), _ => None }
            }
        }
    };
}
int_elem!(i64, I64);
int_elem!(i32, I32);
int_elem!(i16, I16);
int_elem!(i8, I8 | I4);
int_elem!(u64, U64);
int_elem!(u32, U32);
int_elem!(u16, U16);
int_elem!(u8, U8 | U4);

macro_rules! float_elem {
    ($t:ty, $v:ident, $to:expr, $from:expr) => {
        impl Elem for $t {
            fn zero() -> Self {
                $from(0.0)
            }
            fn add(&self, o: &Self) -> Self {
                $from($to(*self) + $to(*o))
            }
            fn mul(&self, o: &Self) -> Self {
                $from($to(*self) * $to(*o))
            }
            fn to_f64(&self) -> f64 {
                $to(*self)
            }
            fn from_f64(v: f64) -> Self {
                $from(v)
            }
            fn array(t: &Tensor) -> Option<&ArrayD<Self>> {
                match t {
                    Tensor::$v(a) => Some(a),
                    _ => None,
                }
            }
        }
    };
}
float_elem!(f32, F32, |x: f32| x as f64, |x: f64| x as f32);
float_elem!(f64, F64, |x: f64| x, |x: f64| x);
// Half types compute in f32 and round once, as ONNX runtimes do.
float_elem!(f16, F16, |x: f16| x.to_f64(), |x: f64| f16::from_f32(x as f32));
float_elem!(bf16, BF16, |x: bf16| x.to_f64(), |x: f64| bf16::from_f32(x as f32));

impl Elem for bool {
    fn zero() -> Self {
        false
    }
    fn add(&self, o: &Self) -> Self {
        *self || *o
    }
    fn mul(&self, o: &Self) -> Self {
        *self && *o
    }
    fn to_f64(&self) -> f64 {
        *self as u8 as f64
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn array(t: &Tensor) -> Option<&ArrayD<Self>> {
        match t {
            Tensor::Bool(a) => Some(a),
            _ => None,
        }
    }
}

/// The arrays of `others` as the element type of `first`, after checking that all hold the same
/// scalar type. `what` names the operands for the error message.
pub(crate) fn same_arrays<'a, T: Elem>(
    first: &Tensor,
    others: &[&'a Tensor],
    what: &str,
) -> OpResult<Vec<&'a ArrayD<T>>> {
    others
        .iter()
        .map(|t| {
            if t.scalar_type() != first.scalar_type() {
                return Err(format!(
                    "{what}: element type {} does not match {}",
                    t.scalar_type(),
                    first.scalar_type()
                ));
            }
            T::array(t).ok_or_else(|| format!("{what}: element type mismatch"))
        })
        .collect()
}

/// Keeps 4-bit values within their range after arithmetic done in their 8-bit storage.
pub(crate) fn clamp_nibbles(t: Tensor) -> Tensor {
    match t {
        Tensor::I4(a) => Tensor::I4(a.mapv(|v| v.clamp(-8, 7))),
        Tensor::U4(a) => Tensor::U4(a.mapv(|v| v.min(15))),
        t => t,
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers: operands, attributes, dims, element selection
// ---------------------------------------------------------------------------------------------

/// The integer contents of a shape-like tensor.
pub(crate) fn ints(t: &Tensor, what: &str) -> OpResult<Vec<i64>> {
    t.to_i64_vec().ok_or_else(|| format!("{what} must be an integer tensor, found {}", t.scalar_type()))
}

/// The constant integer value of a required shape-like operand: `Some` (possibly empty) when it
/// is a compile-time constant or statically has zero elements, `None` when it is not known.
pub(crate) fn const_ints(ctx: &InferCtx, i: usize, what: &str) -> OpResult<Option<Vec<i64>>> {
    match ctx.consts.get(i) {
        Some(Some(t)) => ints(t, what).map(Some),
        _ if matches!(ctx.operands.get(i).and_then(|t| t.num_elements()), Some(0)) => Ok(Some(vec![])),
        _ => Ok(None),
    }
}

/// The constant integer value of an optional operand (absent and zero-element give `None`).
pub(crate) fn opt_const_ints(ctx: &InferCtx, i: usize, what: &str) -> OpResult<Option<Vec<i64>>> {
    ctx.opt_const(i).map(|t| ints(t, what)).transpose()
}

/// The static length of a 1-D (or scalar, length 1) shape-like operand.
pub(crate) fn static_len(ty: &TensorType, what: &str) -> OpResult<Option<usize>> {
    match ty.rank() {
        0 => Ok(Some(1)),
        1 => Ok(ty.dims[0].as_static().map(|n| n as usize)),
        r => Err(format!("{what} must be 1-D, found rank {r}")),
    }
}

/// Checks that a shape-like operand has an integer element type.
pub(crate) fn check_int_operand(ty: &TensorType, what: &str) -> OpResult<()> {
    if ty.scalar().is_int() {
        Ok(())
    } else {
        Err(format!("{what} must have an integer element type, found {}", ty.elem))
    }
}

pub(crate) fn attr_int(a: &Attrs, name: &str, default: i64) -> i64 {
    a.int(name).unwrap_or(default)
}

pub(crate) fn attr_str<'a>(a: &'a Attrs, name: &str, default: &'a str) -> &'a str {
    a.str(name).unwrap_or(default)
}

/// Converts a non-negative `i64` dim to `usize`.
pub(crate) fn to_usize(v: i64, what: &str) -> OpResult<usize> {
    usize::try_from(v).map_err(|_| format!("{what} must be non-negative, found {v}"))
}

/// Normalizes a list of axes against `rank` and rejects duplicates.
pub(crate) fn norm_axes(axes: &[i64], rank: usize, what: &str) -> OpResult<Vec<usize>> {
    // (`norm_axis` accepts axis 0 of a scalar, for ops where that names the scalar itself.)
    if rank == 0 && !axes.is_empty() {
        return Err(format!("{what}: {axes:?} given for a scalar, which has no axes"));
    }
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = norm_axis(a, rank).map_err(|e| format!("{what}: {e}"))?;
        if out.contains(&n) {
            return Err(format!("{what}: axis {a} is repeated"));
        }
        out.push(n);
    }
    Ok(out)
}

/// Row-major strides of `shape`, in elements.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The elements of `a` in row-major order.
pub(crate) fn elems<T: Clone>(a: &ArrayD<T>) -> Vec<T> {
    a.iter().cloned().collect()
}

/// Builds an array from row-major elements.
pub(crate) fn from_vec<T>(shape: &[usize], v: Vec<T>) -> OpResult<ArrayD<T>> {
    ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| format!("internal shape error: {e}"))
}

/// Product of dims: static when all are, the single non-static dim when the others are static 1,
/// zero if any is static zero, unknown otherwise.
pub(crate) fn dim_product(ds: &[Dim]) -> Dim {
    let mut prod = 1u64;
    let mut other: Vec<&Dim> = vec![];
    for d in ds {
        match d {
            Dim::Static(0) => return Dim::Static(0),
            Dim::Static(n) => prod = prod.saturating_mul(*n),
            d => other.push(d),
        }
    }
    match other.as_slice() {
        [] => Dim::Static(prod),
        [d] if prod == 1 => (*d).clone(),
        _ => Dim::Unknown,
    }
}

/// `d * k`.
pub(crate) fn dim_scale(d: &Dim, k: u64) -> OpResult<Dim> {
    Ok(match d {
        Dim::Static(n) => Dim::Static(n.checked_mul(k).ok_or_else(|| format!("dim {n} x {k} overflows"))?),
        _ if k == 0 => Dim::Static(0),
        d if k == 1 => d.clone(),
        _ => Dim::Unknown,
    })
}

/// Two dims that must be equal: a static one wins over a symbolic one, which wins over unknown.
pub(crate) fn merge_dim(a: &Dim, b: &Dim, what: &str) -> OpResult<Dim> {
    Ok(match (a, b) {
        (Dim::Static(x), Dim::Static(y)) if x != y => {
            return Err(format!("{what}: dims {x} and {y} differ"));
        }
        (Dim::Static(x), _) | (_, Dim::Static(x)) => Dim::Static(*x),
        (Dim::Sym(x), _) | (_, Dim::Sym(x)) => Dim::Sym(x.clone()),
        _ => Dim::Unknown,
    })
}

/// The element type of a result that holds the operand's elements with its axes rearranged:
/// `axis_map(i)` is where operand axis `i` ends up, or `None` when it no longer exists as such.
/// Only per-axis quantization depends on this: its axis must survive.
pub(crate) fn moved_elem(
    elem: &ElemType,
    axis_map: impl Fn(usize) -> Option<usize>,
    op: &str,
) -> OpResult<ElemType> {
    if let ElemType::Quant(q) = elem {
        if let QuantParams::PerAxis { axis, scales, zero_points } = &q.params {
            let Some(new_axis) = axis_map(*axis) else {
                return Err(format!("{op} does not preserve the quantization axis {axis}"));
            };
            let mut q = q.clone();
            q.params = QuantParams::PerAxis {
                axis: new_axis,
                scales: scales.clone(),
                zero_points: zero_points.clone(),
            };
            return Ok(ElemType::Quant(q));
        }
    }
    Ok(elem.clone())
}

/// The element type of a result whose axes correspond one to one with the operand's: per-axis
/// quantization requires the quantized axis to keep its extent.
pub(crate) fn kept_elem(ty: &TensorType, out: &[Dim], op: &str) -> OpResult<ElemType> {
    moved_elem(
        &ty.elem,
        |a| match (ty.dims.get(a), out.get(a)) {
            (Some(x), Some(y)) if ty.rank() == out.len() && x == y => Some(a),
            _ => None,
        },
        op,
    )
}

/// Selection of elements, one list per axis: output element `(o_0, ..., o_{r-1})` is
/// `a[sel_0[o_0], ..., sel_{r-1}[o_{r-1}]]`, or `fill` where some selector is `None`.
/// Slice, tile, expand, pad and nearest resize are all such selections.
pub(crate) fn select<T: Clone>(
    a: &ArrayD<T>,
    sel: &[Vec<Option<usize>>],
    fill: Option<&T>,
) -> OpResult<ArrayD<T>> {
    let shape = a.shape();
    if sel.len() != shape.len() {
        return Err(format!("internal: {} selectors for rank {}", sel.len(), shape.len()));
    }
    if sel.is_empty() {
        return Ok(a.clone());
    }
    let src = a.as_standard_layout();
    let data = src.as_slice().ok_or("internal: non-contiguous array")?;
    let st = strides(shape);
    let offs: Vec<Vec<Option<usize>>> =
        sel.iter().enumerate().map(|(d, s)| s.iter().map(|i| i.map(|i| i * st[d])).collect()).collect();
    let out_shape: Vec<usize> = sel.iter().map(Vec::len).collect();
    let n = out_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("selection of shape {out_shape:?} is too large"))?;
    let mut out = Vec::with_capacity(n);
    if n > 0 {
        let r = sel.len();
        let mut idx = vec![0usize; r];
        let missing = || "internal: selection needs a fill value".to_string();
        'outer: loop {
            let mut base = Some(0usize);
            for d in 0..r - 1 {
                base = match (base, offs[d][idx[d]]) {
                    (Some(b), Some(o)) => Some(b + o),
                    _ => None,
                };
            }
            for o in &offs[r - 1] {
                match (base, o) {
                    (Some(b), Some(o)) => {
                        out.push(data.get(b + o).ok_or("internal: selection out of bounds")?.clone())
                    }
                    _ => out.push(fill.ok_or_else(missing)?.clone()),
                }
            }
            let mut d = r - 1;
            loop {
                if d == 0 {
                    break 'outer;
                }
                d -= 1;
                idx[d] += 1;
                if idx[d] < out_shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
    }
    from_vec(&out_shape, out)
}

/// Reshape to `shape` (same number of elements), keeping the row-major order.
pub(crate) fn reshape_array<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> OpResult<ArrayD<T>> {
    let n: usize = shape.iter().product();
    if n != a.len() {
        return Err(format!("cannot reshape {:?} ({} elements) to {shape:?}", a.shape(), a.len()));
    }
    from_vec(shape, elems(a))
}

/// Transpose by `perm` (a validated permutation) into standard layout.
pub(crate) fn transpose_array<T: Clone>(a: &ArrayD<T>, perm: &[usize]) -> ArrayD<T> {
    a.view().permuted_axes(IxDyn(perm)).as_standard_layout().into_owned()
}

// ---------------------------------------------------------------------------------------------
// Reshape
// ---------------------------------------------------------------------------------------------

pub static RESHAPE: OpDef = OpDef {
    name: "shape.reshape",
    summary: "Reshapes `data` to `shape`: 0 copies the input dim (unless `allowzero`), -1 is inferred.",
    operands: &["data", "shape"],
    results: &["reshaped"],
    attrs: &[AttrDef::opt("allowzero", AttrKind::Int, "0")],
    traits: MOVE,
    infer: infer_reshape,
    eval: eval_reshape,
};

/// Resolves a reshape target against the input dims. Symbolic dims cancel when the input and
/// output hold the same ones, so `-1` stays static in e.g. `[B, S, 768] -> [0, 0, 12, -1]`.
fn reshape_dims(input: &[Dim], target: &[i64], allowzero: bool) -> OpResult<Vec<Dim>> {
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    // For every output dim copied from the input (a 0 entry), the input position.
    let mut copied_from = vec![None; target.len()];
    for (i, &s) in target.iter().enumerate() {
        match s {
            -1 => {
                if infer_at.replace(i).is_some() {
                    return Err(format!("reshape target {target:?} has more than one -1"));
                }
                out.push(Dim::Unknown);
            }
            0 if !allowzero => {
                let d = input.get(i).ok_or_else(|| {
                    format!(
                        "reshape target {target:?} copies dim {i} (0) but the input has rank {}",
                        input.len()
                    )
                })?;
                copied_from[i] = Some(i);
                out.push(d.clone());
            }
            s if s < -1 => return Err(format!("reshape target {target:?} has invalid dim {s}")),
            s => out.push(Dim::Static(s as u64)),
        }
    }
    if allowzero && infer_at.is_some() && target.contains(&0) {
        return Err(format!("reshape target {target:?} has both 0 and -1 with allowzero=1"));
    }
    // Cancel the non-static dims common to input and output; what remains decides the result.
    let mut rest_in: Vec<Option<&Dim>> =
        input.iter().map(|d| if d.as_static().is_some() { None } else { Some(d) }).collect();
    let in_static: u64 = input.iter().filter_map(Dim::as_static).product();
    let mut out_static = 1u64;
    let mut unmatched_out = false;
    for (i, d) in out.iter().enumerate() {
        if Some(i) == infer_at {
            continue;
        }
        match d {
            Dim::Static(n) => out_static = out_static.saturating_mul(*n),
            d => {
                let pos = match copied_from[i] {
                    Some(j) => Some(j),
                    None => rest_in
                        .iter()
                        .position(|r| matches!(r, Some(x) if *x == d && matches!(d, Dim::Sym(_)))),
                };
                match pos {
                    Some(j) if rest_in[j].is_some() => rest_in[j] = None,
                    _ => unmatched_out = true,
                }
            }
        }
    }
    let rest: Vec<&Dim> = rest_in.into_iter().flatten().collect();
    match infer_at {
        Some(i) => {
            out[i] = if unmatched_out {
                Dim::Unknown
            } else if rest.is_empty() {
                if out_static == 0 {
                    if in_static == 0 {
                        return Err(format!("reshape target {target:?}: -1 is ambiguous with zero elements"));
                    }
                    return Err(format!("cannot reshape {} elements to {target:?}", in_static));
                }
                if in_static % out_static != 0 {
                    return Err(format!("cannot reshape {in_static} elements to {target:?}"));
                }
                Dim::Static(in_static / out_static)
            } else if rest.len() == 1 && in_static == out_static {
                rest[0].clone()
            } else {
                Dim::Unknown
            };
        }
        None => {
            if rest.is_empty() && !unmatched_out && in_static != out_static {
                let shown: Vec<String> = input.iter().map(|d| d.to_string()).collect();
                return Err(format!(
                    "cannot reshape [{}] ({in_static} elements) to {target:?} ({out_static} elements)",
                    shown.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

fn infer_reshape(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let shape_ty = operand(ctx, 1)?;
    check_int_operand(shape_ty, "reshape `shape`")?;
    let allowzero = attr_int(ctx.attrs, "allowzero", 0) != 0;
    let dims = match const_ints(ctx, 1, "reshape `shape`")? {
        Some(target) => reshape_dims(&data.dims, &target, allowzero)?,
        None => {
            let n = static_len(shape_ty, "reshape `shape`")?
                .ok_or("reshape `shape` operand has no static length, so the result rank is unknown")?;
            vec![Dim::Unknown; n]
        }
    };
    let elem = kept_elem(data, &dims, "reshape")?;
    Ok(vec![TensorType { dims, elem }])
}

fn eval_reshape(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let target = ints(input(ctx, 1)?, "reshape `shape`")?;
    let allowzero = attr_int(ctx.attrs, "allowzero", 0) != 0;
    let dims = reshape_dims(&static_dims(data.shape()), &target, allowzero)?;
    let shape: Vec<usize> = dims
        .iter()
        .map(|d| d.as_static().map(|n| n as usize).ok_or("internal: reshape dim not resolved"))
        .collect::<Result<_, _>>()?;
    Ok(vec![map_tensor!(data, a => reshape_array(a, &shape)?)])
}

// ---------------------------------------------------------------------------------------------
// Transpose
// ---------------------------------------------------------------------------------------------

pub static TRANSPOSE: OpDef = OpDef {
    name: "shape.transpose",
    summary: "Permutes the axes: result axis i is input axis perm[i] (default: reversed).",
    operands: &["data"],
    results: &["transposed"],
    attrs: &[AttrDef::opt("perm", AttrKind::Ints, "reversed axes")],
    traits: MOVE,
    infer: infer_transpose,
    eval: eval_transpose,
};

fn transpose_perm(attrs: &Attrs, rank: usize) -> OpResult<Vec<usize>> {
    let Some(p) = attrs.ints("perm") else {
        return Ok((0..rank).rev().collect());
    };
    if p.len() != rank {
        return Err(format!("perm {p:?} has {} entries but the input has rank {rank}", p.len()));
    }
    let perm = norm_axes(p, rank, "perm")?;
    Ok(perm)
}

fn infer_transpose(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let perm = transpose_perm(ctx.attrs, data.rank())?;
    let dims = perm.iter().map(|&p| data.dims[p].clone()).collect();
    let elem = moved_elem(&data.elem, |a| perm.iter().position(|&p| p == a), "transpose")?;
    Ok(vec![TensorType { dims, elem }])
}

fn eval_transpose(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let perm = transpose_perm(ctx.attrs, data.shape().len())?;
    Ok(vec![map_tensor!(data, a => transpose_array(a, &perm))])
}

// ---------------------------------------------------------------------------------------------
// Concat and Split
// ---------------------------------------------------------------------------------------------

pub static CONCAT: OpDef = OpDef {
    name: "shape.concat",
    summary: "Concatenates tensors of equal rank along `axis`.",
    operands: &["inputs+"],
    results: &["concat_result"],
    attrs: &[AttrDef::req("axis", AttrKind::Int)],
    traits: MOVE,
    infer: infer_concat,
    eval: eval_concat,
};

fn infer_concat(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let first = operand(ctx, 0)?;
    let rank = first.rank();
    if rank == 0 {
        return Err("concat of scalars: inputs must have rank >= 1".into());
    }
    let axis = norm_axis(ctx.attrs.int("axis").ok_or("missing `axis`")?, rank)?;
    let mut dims = first.dims.clone();
    let mut total = Some(0u64);
    for (i, t) in ctx.operands.iter().enumerate() {
        if t.elem != first.elem {
            return Err(format!(
                "concat input #{i} has element type {}, input #0 has {}",
                t.elem, first.elem
            ));
        }
        if t.rank() != rank {
            return Err(format!("concat input #{i} has rank {}, input #0 has rank {rank}", t.rank()));
        }
        for (d, (x, y)) in dims.iter_mut().zip(&t.dims).enumerate() {
            if d == axis {
                total = total.zip(y.as_static()).map(|(a, b)| a + b);
            } else {
                *x = merge_dim(x, y, &format!("concat input #{i} dim {d}"))?;
            }
        }
    }
    // A single input with a non-static axis dim keeps it; otherwise the sum must be static.
    dims[axis] = match total {
        Some(n) => Dim::Static(n),
        None if ctx.operands.len() == 1 => first.dims[axis].clone(),
        None => {
            let non_empty: Vec<&Dim> =
                ctx.operands.iter().map(|t| &t.dims[axis]).filter(|d| **d != Dim::Static(0)).collect();
            match non_empty.as_slice() {
                [d] => (*d).clone(),
                _ => Dim::Unknown,
            }
        }
    };
    let elem = kept_elem(first, &dims, "concat")?;
    Ok(vec![TensorType { dims, elem }])
}

fn concat_arrays<T: Elem>(
    first: &Tensor,
    a: &ArrayD<T>,
    rest: &[&Tensor],
    axis: usize,
) -> OpResult<ArrayD<T>> {
    let rest = same_arrays::<T>(first, rest, "concat")?;
    let mut views = vec![a.view()];
    views.extend(rest.iter().map(|r| r.view()));
    ndarray::concatenate(ndarray::Axis(axis), &views)
        .map_err(|e| format!("concat: incompatible shapes ({e})"))
}

fn eval_concat(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let first = input(ctx, 0)?;
    let rank = first.shape().len();
    if rank == 0 {
        return Err("concat of scalars: inputs must have rank >= 1".into());
    }
    let axis = norm_axis(ctx.attrs.int("axis").ok_or("missing `axis`")?, rank)?;
    let rest: Vec<&Tensor> = ctx.inputs[1..].iter().collect();
    for (i, t) in rest.iter().enumerate() {
        let s = t.shape();
        if s.len() != rank || s.iter().zip(first.shape()).enumerate().any(|(d, (x, y))| d != axis && x != y) {
            return Err(format!("concat input #{} has shape {s:?}, input #0 has {:?}", i + 1, first.shape()));
        }
    }
    Ok(vec![map_tensor!(first, a => concat_arrays(first, a, &rest, axis)?)])
}

pub static SPLIT: OpDef = OpDef {
    name: "shape.split",
    summary: "Splits `input` along `axis` into parts of lengths `split`, or into equal parts \
              (the last one smaller when uneven).",
    operands: &["input", "split?"],
    results: &["outputs+"],
    attrs: &[AttrDef::opt("axis", AttrKind::Int, "0"), AttrDef::opt("num_outputs", AttrKind::Int, "")],
    traits: MOVE,
    infer: infer_split,
    eval: eval_split,
};

/// Part lengths of a split of `dim` elements into `n` parts when no `split` is given: all of
/// `ceil(dim / n)` but the last, which takes what is left.
fn equal_split(dim: u64, n: usize) -> OpResult<Vec<u64>> {
    if n == 0 {
        return Err("split into zero outputs".into());
    }
    let chunk = dim.div_ceil(n as u64);
    let head = chunk * (n as u64 - 1);
    if head > dim {
        return Err(format!("cannot split a dim of {dim} into {n} parts of at most {chunk}"));
    }
    let mut v = vec![chunk; n - 1];
    v.push(dim - head);
    Ok(v)
}

fn split_count(attrs: &Attrs, num_results: usize) -> OpResult<usize> {
    match attrs.int("num_outputs") {
        Some(n) if n as usize != num_results || n < 1 => {
            Err(format!("num_outputs is {n} but the op has {num_results} results"))
        }
        _ => Ok(num_results),
    }
}

fn split_axis(attrs: &Attrs, rank: usize) -> OpResult<usize> {
    let axis = norm_axes(&[attr_int(attrs, "axis", 0)], rank, "split axis")?;
    axis.first().copied().ok_or_else(|| "split axis missing".to_string())
}

fn infer_split(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let axis = split_axis(ctx.attrs, data.rank())?;
    let n = split_count(ctx.attrs, ctx.num_results)?;
    let dim = &data.dims[axis];
    let parts: Vec<Dim> = if ctx.has_operand(1) {
        if ctx.attrs.int("num_outputs").is_some() {
            return Err("split: give either the `split` operand or `num_outputs`, not both".into());
        }
        check_int_operand(operand(ctx, 1)?, "split `split`")?;
        match opt_const_ints(ctx, 1, "split `split`")? {
            Some(s) => {
                if s.len() != n {
                    return Err(format!("split {s:?} has {} entries for {n} results", s.len()));
                }
                let s: Vec<u64> = s
                    .iter()
                    .map(|&v| to_usize(v, "split lengths").map(|v| v as u64))
                    .collect::<Result<_, _>>()?;
                if let Some(d) = dim.as_static() {
                    if s.iter().sum::<u64>() != d {
                        return Err(format!("split {s:?} does not add up to the dim {d}"));
                    }
                }
                s.into_iter().map(Dim::Static).collect()
            }
            None => vec![Dim::Unknown; n],
        }
    } else {
        match dim.as_static() {
            Some(d) => equal_split(d, n)?.into_iter().map(Dim::Static).collect(),
            None if n == 1 => vec![dim.clone()],
            None => vec![Dim::Unknown; n],
        }
    };
    parts
        .into_iter()
        .map(|p| {
            let mut dims = data.dims.clone();
            dims[axis] = p;
            let elem = kept_elem(data, &dims, "split")?;
            Ok(TensorType { dims, elem })
        })
        .collect()
}

fn eval_split(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let shape = data.shape();
    let axis = split_axis(ctx.attrs, shape.len())?;
    let n = split_count(ctx.attrs, ctx.result_types.len())?;
    let dim = shape[axis];
    let parts: Vec<usize> = match ctx.opt_input(1) {
        Some(s) => {
            let s = ints(s, "split `split`")?;
            let s: Vec<usize> = s.iter().map(|&v| to_usize(v, "split lengths")).collect::<Result<_, _>>()?;
            if s.len() != n || s.iter().sum::<usize>() != dim {
                return Err(format!("split {s:?} does not split a dim of {dim} into {n} parts"));
            }
            s
        }
        None => equal_split(dim as u64, n)?.into_iter().map(|v| v as usize).collect(),
    };
    let mut start = 0;
    let mut out = Vec::with_capacity(n);
    for p in parts {
        let sel: Vec<Vec<Option<usize>>> = shape
            .iter()
            .enumerate()
            .map(|(d, &len)| {
                if d == axis {
                    (start..start + p).map(Some).collect()
                } else {
                    (0..len).map(Some).collect()
                }
            })
            .collect();
        out.push(map_tensor!(data, a => select(a, &sel, None)?));
        start += p;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Slice
// ---------------------------------------------------------------------------------------------

pub static SLICE: OpDef = OpDef {
    name: "shape.slice",
    summary: "Takes `data[starts:ends:steps]` along `axes` (python slicing, clamped; negative \
              steps walk backwards).",
    operands: &["data", "starts", "ends", "axes?", "steps?"],
    results: &["output"],
    attrs: &[],
    traits: MOVE,
    infer: infer_slice,
    eval: eval_slice,
};

/// The indices `start, start+step, ...` of a slice of a dim of length `dim`, with ONNX's
/// clamping (which is python's).
fn slice_range(dim: usize, start: i64, end: i64, step: i64) -> OpResult<(i64, i64, usize)> {
    if step == 0 {
        return Err("slice step must not be 0".into());
    }
    let d = dim as i128;
    let adj = |v: i64| -> i128 {
        let v = v as i128;
        if v < 0 {
            v + d
        } else {
            v
        }
    };
    let (s, e) = (adj(start), adj(end));
    let (s, e) =
        if step > 0 { (s.clamp(0, d), e.clamp(0, d)) } else { (s.clamp(0, d - 1), e.clamp(-1, d - 1)) };
    let st = step as i128;
    let count = if step > 0 {
        if e > s {
            (e - s + st - 1) / st
        } else {
            0
        }
    } else if s > e {
        (s - e + (-st) - 1) / (-st)
    } else {
        0
    };
    Ok((s as i64, step, count as usize))
}

/// The per-axis `(start, end, step)` triples of a slice, completed with defaults.
struct SliceSpec {
    starts: Vec<i64>,
    ends: Vec<i64>,
    axes: Vec<usize>,
    steps: Vec<i64>,
}

fn slice_spec(
    rank: usize,
    starts: Vec<i64>,
    ends: Vec<i64>,
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
) -> OpResult<SliceSpec> {
    let n = starts.len();
    if ends.len() != n {
        return Err(format!("slice has {n} starts but {} ends", ends.len()));
    }
    let axes = match axes {
        Some(a) if a.len() != n => return Err(format!("slice has {n} starts but {} axes", a.len())),
        Some(a) => norm_axes(&a, rank, "slice axes")?,
        None if n > rank => return Err(format!("slice has {n} starts for rank {rank}")),
        None => (0..n).collect(),
    };
    let steps = match steps {
        Some(s) if s.len() != n => return Err(format!("slice has {n} starts but {} steps", s.len())),
        Some(s) => s,
        None => vec![1; n],
    };
    if steps.contains(&0) {
        return Err("slice step must not be 0".into());
    }
    Ok(SliceSpec { starts, ends, axes, steps })
}

fn infer_slice(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let rank = data.rank();
    for (i, what) in [(1, "slice `starts`"), (2, "slice `ends`")] {
        check_int_operand(operand(ctx, i)?, what)?;
        static_len(operand(ctx, i)?, what)?;
    }
    let starts = const_ints(ctx, 1, "slice `starts`")?;
    let ends = const_ints(ctx, 2, "slice `ends`")?;
    let axes = opt_const_ints(ctx, 3, "slice `axes`")?;
    let steps = opt_const_ints(ctx, 4, "slice `steps`")?;
    let axes_known = axes.is_some() || !ctx.has_operand(3);
    let steps_known = steps.is_some() || !ctx.has_operand(4);
    let mut dims = data.dims.clone();
    match (starts, ends) {
        (Some(starts), Some(ends)) if axes_known => {
            let n = starts.len();
            let steps_v = if steps_known { steps } else { Some(vec![1; n]) };
            let spec = slice_spec(rank, starts, ends, axes, steps_v)?;
            for i in 0..spec.axes.len() {
                let ax = spec.axes[i];
                let (s, e, st) = (spec.starts[i], spec.ends[i], spec.steps[i]);
                dims[ax] = if !steps_known {
                    Dim::Unknown
                } else {
                    match data.dims[ax].as_static() {
                        Some(d) => Dim::Static(slice_range(d as usize, s, e, st)?.2 as u64),
                        // The whole axis, whatever its extent.
                        None if s == 0 && st == 1 && e >= i32::MAX as i64 => data.dims[ax].clone(),
                        None => Dim::Unknown,
                    }
                };
            }
        }
        _ => {
            // The sliced axes are known only from a constant `axes` (or, without `axes`, from
            // the length of `starts`); their extents are not.
            let sliced: Option<Vec<usize>> = match (ctx.has_operand(3), &axes) {
                (true, Some(a)) => Some(norm_axes(a, rank, "slice axes")?),
                (true, None) => None,
                (false, _) => {
                    static_len(operand(ctx, 1)?, "slice `starts`")?.map(|n| (0..n.min(rank)).collect())
                }
            };
            match sliced {
                Some(s) => s.into_iter().for_each(|a| dims[a] = Dim::Unknown),
                None => dims.iter_mut().for_each(|d| *d = Dim::Unknown),
            }
        }
    }
    let elem = kept_elem(data, &dims, "slice")?;
    Ok(vec![TensorType { dims, elem }])
}

fn eval_slice(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let shape = data.shape();
    let spec = slice_spec(
        shape.len(),
        ints(input(ctx, 1)?, "slice `starts`")?,
        ints(input(ctx, 2)?, "slice `ends`")?,
        ctx.opt_input(3).map(|t| ints(t, "slice `axes`")).transpose()?,
        ctx.opt_input(4).map(|t| ints(t, "slice `steps`")).transpose()?,
    )?;
    let mut sel: Vec<Vec<Option<usize>>> = shape.iter().map(|&d| (0..d).map(Some).collect()).collect();
    for i in 0..spec.axes.len() {
        let ax = spec.axes[i];
        let (s, st, n) = slice_range(shape[ax], spec.starts[i], spec.ends[i], spec.steps[i])?;
        sel[ax] = (0..n as i64).map(|k| Some((s + k * st) as usize)).collect();
    }
    Ok(vec![map_tensor!(data, a => select(a, &sel, None)?)])
}

// ---------------------------------------------------------------------------------------------
// Squeeze, Unsqueeze, Flatten
// ---------------------------------------------------------------------------------------------

pub static SQUEEZE: OpDef = OpDef {
    name: "shape.squeeze",
    summary: "Removes the size-1 dims listed in `axes` (all size-1 dims when absent).",
    operands: &["data", "axes?"],
    results: &["squeezed"],
    attrs: &[],
    traits: MOVE,
    infer: infer_squeeze,
    eval: eval_squeeze,
};

/// The axes a squeeze removes, given the input dims.
fn squeeze_axes(dims: &[Dim], axes: Option<&[i64]>) -> OpResult<Vec<usize>> {
    match axes {
        Some(a) => {
            let axes = norm_axes(a, dims.len(), "squeeze axes")?;
            for &ax in &axes {
                if let Some(n) = dims[ax].as_static().filter(|&n| n != 1) {
                    return Err(format!("cannot squeeze axis {ax} of size {n}"));
                }
            }
            Ok(axes)
        }
        None => {
            if let Some(d) = dims.iter().find(|d| d.as_static().is_none()) {
                return Err(format!(
                    "squeeze without `axes` needs static dims to know which are 1, found {d}"
                ));
            }
            Ok((0..dims.len()).filter(|&i| dims[i] == Dim::Static(1)).collect())
        }
    }
}

fn squeezed_type(data: &TensorType, removed: &[usize]) -> OpResult<TensorType> {
    let kept: Vec<usize> = (0..data.rank()).filter(|i| !removed.contains(i)).collect();
    let dims = kept.iter().map(|&i| data.dims[i].clone()).collect();
    let elem = moved_elem(&data.elem, |a| kept.iter().position(|&k| k == a), "squeeze")?;
    Ok(TensorType { dims, elem })
}

fn infer_squeeze(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    if !ctx.has_operand(1) {
        return Ok(vec![squeezed_type(data, &squeeze_axes(&data.dims, None)?)?]);
    }
    check_int_operand(operand(ctx, 1)?, "squeeze `axes`")?;
    match opt_const_ints(ctx, 1, "squeeze `axes`")? {
        Some(a) => Ok(vec![squeezed_type(data, &squeeze_axes(&data.dims, Some(&a))?)?]),
        None => {
            let n = static_len(operand(ctx, 1)?, "squeeze `axes`")?
                .ok_or("squeeze `axes` has no static length, so the result rank is unknown")?;
            let rank = data.rank().checked_sub(n).ok_or("squeeze has more axes than the input rank")?;
            Ok(vec![TensorType { dims: vec![Dim::Unknown; rank], elem: data.elem.clone() }])
        }
    }
}

fn eval_squeeze(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let dims = static_dims(data.shape());
    let axes = ctx.opt_input(1).map(|t| ints(t, "squeeze `axes`")).transpose()?;
    let removed = squeeze_axes(&dims, axes.as_deref())?;
    let shape: Vec<usize> =
        data.shape().iter().enumerate().filter(|(i, _)| !removed.contains(i)).map(|(_, &d)| d).collect();
    Ok(vec![map_tensor!(data, a => reshape_array(a, &shape)?)])
}

pub static UNSQUEEZE: OpDef = OpDef {
    name: "shape.unsqueeze",
    summary: "Inserts size-1 dims at `axes` (positions in the result).",
    operands: &["data", "axes"],
    results: &["expanded"],
    attrs: &[],
    traits: MOVE,
    infer: infer_unsqueeze,
    eval: eval_unsqueeze,
};

fn unsqueeze_dims(dims: &[Dim], axes: &[i64]) -> OpResult<(Vec<Dim>, Vec<usize>)> {
    let rank = dims.len() + axes.len();
    let axes = norm_axes(axes, rank, "unsqueeze axes")?;
    let mut out = Vec::with_capacity(rank);
    let mut src = dims.iter();
    let mut kept = vec![];
    for i in 0..rank {
        if axes.contains(&i) {
            out.push(Dim::Static(1));
        } else {
            out.push(src.next().ok_or("internal: unsqueeze")?.clone());
            kept.push(i);
        }
    }
    Ok((out, kept))
}

fn infer_unsqueeze(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let axes_ty = operand(ctx, 1)?;
    check_int_operand(axes_ty, "unsqueeze `axes`")?;
    match const_ints(ctx, 1, "unsqueeze `axes`")? {
        Some(a) => {
            let (dims, kept) = unsqueeze_dims(&data.dims, &a)?;
            let elem = moved_elem(&data.elem, |x| kept.get(x).copied(), "unsqueeze")?;
            Ok(vec![TensorType { dims, elem }])
        }
        None => {
            let n = static_len(axes_ty, "unsqueeze `axes`")?
                .ok_or("unsqueeze `axes` has no static length, so the result rank is unknown")?;
            Ok(vec![TensorType { dims: vec![Dim::Unknown; data.rank() + n], elem: data.elem.clone() }])
        }
    }
}

fn eval_unsqueeze(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let axes = ints(input(ctx, 1)?, "unsqueeze `axes`")?;
    let (dims, _) = unsqueeze_dims(&static_dims(data.shape()), &axes)?;
    let shape: Vec<usize> = dims.iter().map(|d| d.as_static().unwrap_or(1) as usize).collect();
    Ok(vec![map_tensor!(data, a => reshape_array(a, &shape)?)])
}

pub static FLATTEN: OpDef = OpDef {
    name: "shape.flatten",
    summary: "Reshapes to 2-D: dims before `axis` form the rows, the rest the columns.",
    operands: &["input"],
    results: &["output"],
    attrs: &[AttrDef::opt("axis", AttrKind::Int, "1")],
    traits: MOVE,
    infer: infer_flatten,
    eval: eval_flatten,
};

fn flatten_axis(attrs: &Attrs, rank: usize) -> OpResult<usize> {
    let a = attr_int(attrs, "axis", 1);
    let r = rank as i64;
    if a < -r || a > r {
        return Err(format!("flatten axis {a} is out of range for rank {rank}"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

fn infer_flatten(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let axis = flatten_axis(ctx.attrs, data.rank())?;
    let dims = vec![dim_product(&data.dims[..axis]), dim_product(&data.dims[axis..])];
    let elem = kept_elem(data, &dims, "flatten")?;
    Ok(vec![TensorType { dims, elem }])
}

fn eval_flatten(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let s = data.shape();
    let axis = flatten_axis(ctx.attrs, s.len())?;
    let shape = [s[..axis].iter().product(), s[axis..].iter().product()];
    Ok(vec![map_tensor!(data, a => reshape_array(a, &shape)?)])
}

// ---------------------------------------------------------------------------------------------
// Expand and Tile
// ---------------------------------------------------------------------------------------------

pub static EXPAND: OpDef = OpDef {
    name: "shape.expand",
    summary: "Broadcasts `input` to `shape` (numpy rules, both ways: a 1 in `shape` keeps the input dim).",
    operands: &["input", "shape"],
    results: &["output"],
    attrs: &[],
    traits: MOVE,
    infer: infer_expand,
    eval: eval_expand,
};

fn infer_expand(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let shape_ty = operand(ctx, 1)?;
    check_int_operand(shape_ty, "expand `shape`")?;
    let dims = match const_ints(ctx, 1, "expand `shape`")? {
        Some(s) => {
            let target: Vec<Dim> = s
                .iter()
                .map(|&v| to_usize(v, "expand shape").map(|v| Dim::Static(v as u64)))
                .collect::<Result<_, _>>()?;
            broadcast_dims(&data.dims, &target).map_err(|e| format!("expand: {e}"))?
        }
        None => {
            let n = static_len(shape_ty, "expand `shape`")?
                .ok_or("expand `shape` has no static length, so the result rank is unknown")?;
            let rank = n.max(data.rank());
            // An input dim other than 1 survives whatever the target says (it must be 1 or equal).
            (0..rank)
                .map(|i| match (i + data.rank()).checked_sub(rank).map(|j| &data.dims[j]) {
                    Some(Dim::Static(d)) if *d != 1 => Dim::Static(*d),
                    _ => Dim::Unknown,
                })
                .collect()
        }
    };
    let elem = moved_elem(&data.elem, |a| Some(a + dims.len() - data.rank()), "expand")?;
    Ok(vec![TensorType { dims, elem }])
}

/// Selection that broadcasts `in_shape` (already of the output rank) to `out`.
fn broadcast_selection(in_shape: &[usize], out: &[usize]) -> Vec<Vec<Option<usize>>> {
    in_shape
        .iter()
        .zip(out)
        .map(|(&i, &o)| (0..o).map(|k| Some(if i == 1 { 0 } else { k })).collect())
        .collect()
}

fn eval_expand(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let target: Vec<usize> = ints(input(ctx, 1)?, "expand `shape`")?
        .iter()
        .map(|&v| to_usize(v, "expand shape"))
        .collect::<Result<_, _>>()?;
    let out = broadcast_shapes(&[data.shape(), &target]).map_err(|e| format!("expand: {e}"))?;
    let mut padded = vec![1usize; out.len() - data.shape().len()];
    padded.extend_from_slice(data.shape());
    let sel = broadcast_selection(&padded, &out);
    Ok(vec![map_tensor!(data, a => select(&reshape_array(a, &padded)?, &sel, None)?)])
}

pub static TILE: OpDef = OpDef {
    name: "shape.tile",
    summary: "Repeats `input` `repeats[i]` times along each axis i.",
    operands: &["input", "repeats"],
    results: &["output"],
    attrs: &[],
    traits: MOVE,
    infer: infer_tile,
    eval: eval_tile,
};

fn check_repeats(reps: &[i64], rank: usize) -> OpResult<Vec<u64>> {
    if reps.len() != rank {
        return Err(format!("tile has {} repeats for rank {rank}", reps.len()));
    }
    reps.iter().map(|&r| to_usize(r, "tile repeats").map(|r| r as u64)).collect()
}

fn infer_tile(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let reps_ty = operand(ctx, 1)?;
    check_int_operand(reps_ty, "tile `repeats`")?;
    if let Some(n) = static_len(reps_ty, "tile `repeats`")? {
        if n != data.rank() {
            return Err(format!("tile has {n} repeats for rank {}", data.rank()));
        }
    }
    let dims = match const_ints(ctx, 1, "tile `repeats`")? {
        Some(r) => {
            let r = check_repeats(&r, data.rank())?;
            data.dims.iter().zip(&r).map(|(d, &k)| dim_scale(d, k)).collect::<Result<_, _>>()?
        }
        None => vec![Dim::Unknown; data.rank()],
    };
    let elem = kept_elem(data, &dims, "tile")?;
    Ok(vec![TensorType { dims, elem }])
}

fn eval_tile(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let reps = check_repeats(&ints(input(ctx, 1)?, "tile `repeats`")?, data.shape().len())?;
    let sel: Vec<Vec<Option<usize>>> = data
        .shape()
        .iter()
        .zip(&reps)
        .map(|(&d, &r)| (0..d * r as usize).map(|k| Some(k % d)).collect())
        .collect();
    Ok(vec![map_tensor!(data, a => select(a, &sel, None)?)])
}

// ---------------------------------------------------------------------------------------------
// DepthToSpace, SpaceToDepth
// ---------------------------------------------------------------------------------------------

pub static DEPTH_TO_SPACE: OpDef = OpDef {
    name: "shape.depth_to_space",
    summary: "Moves channel blocks of an NCHW tensor into blocksize x blocksize spatial blocks \
              (DCR: depth-column-row order, CRD: column-row-depth).",
    operands: &["input"],
    results: &["output"],
    attrs: &[AttrDef::req("blocksize", AttrKind::Int), AttrDef::opt("mode", AttrKind::Str, "\"DCR\"")],
    traits: MOVE,
    infer: |ctx| infer_block_move(ctx, true),
    eval: |ctx| eval_block_move(ctx, true),
};

pub static SPACE_TO_DEPTH: OpDef = OpDef {
    name: "shape.space_to_depth",
    summary: "Moves blocksize x blocksize spatial blocks of an NCHW tensor into channels \
              (DCR: depth-column-row order, CRD: column-row-depth).",
    operands: &["input"],
    results: &["output"],
    attrs: &[AttrDef::req("blocksize", AttrKind::Int), AttrDef::opt("mode", AttrKind::Str, "\"DCR\"")],
    traits: MOVE,
    infer: |ctx| infer_block_move(ctx, false),
    eval: |ctx| eval_block_move(ctx, false),
};

/// Blocksize and whether the mode is CRD.
fn block_params(attrs: &Attrs, op: &str) -> OpResult<(u64, bool)> {
    let b = attrs.int("blocksize").ok_or_else(|| format!("{op}: missing `blocksize`"))?;
    // (The bound keeps blocksize² within u64; real block sizes are tiny.)
    if !(1..=u32::MAX as i64).contains(&b) {
        return Err(format!("{op}: blocksize must be in [1, 2^32), found {b}"));
    }
    let crd = match attr_str(attrs, "mode", "DCR") {
        "DCR" => false,
        "CRD" => true,
        m => return Err(format!("{op}: unknown mode {m:?} (expected DCR or CRD)")),
    };
    Ok((b as u64, crd))
}

fn infer_block_move(ctx: &InferCtx, to_space: bool) -> OpResult<Vec<TensorType>> {
    let op = if to_space { "depth_to_space" } else { "space_to_depth" };
    let data = operand(ctx, 0)?;
    if data.rank() != 4 {
        return Err(format!("{op} needs a 4-D NCHW input, found rank {}", data.rank()));
    }
    let (b, _) = block_params(ctx.attrs, op)?;
    let d = &data.dims;
    let div = |x: &Dim, k: u64, what: &str| -> OpResult<Dim> {
        Ok(match x {
            Dim::Static(n) if n % k != 0 => return Err(format!("{op}: {what} {n} is not divisible by {k}")),
            Dim::Static(n) => Dim::Static(n / k),
            x if k == 1 => x.clone(),
            _ => Dim::Unknown,
        })
    };
    let dims = if to_space {
        vec![d[0].clone(), div(&d[1], b * b, "channels")?, dim_scale(&d[2], b)?, dim_scale(&d[3], b)?]
    } else {
        vec![d[0].clone(), dim_scale(&d[1], b * b)?, div(&d[2], b, "height")?, div(&d[3], b, "width")?]
    };
    let elem = moved_elem(&data.elem, |a| (a == 0).then_some(0), op)?;
    Ok(vec![TensorType { dims, elem }])
}

fn eval_block_move(ctx: &EvalCtx, to_space: bool) -> OpResult<Vec<Tensor>> {
    let op = if to_space { "depth_to_space" } else { "space_to_depth" };
    let data = input(ctx, 0)?;
    let s = data.shape();
    if s.len() != 4 {
        return Err(format!("{op} needs a 4-D NCHW input, found rank {}", s.len()));
    }
    let (b, crd) = block_params(ctx.attrs, op)?;
    let b = b as usize;
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    // Both are a reshape to 6-D, a transpose and a reshape back to 4-D (the ONNX definition).
    let (tmp, perm, out): (Vec<usize>, [usize; 6], Vec<usize>) = if to_space {
        if c % (b * b) != 0 {
            return Err(format!("{op}: channels {c} are not divisible by {}", b * b));
        }
        let cb = c / (b * b);
        if crd {
            (vec![n, cb, b, b, h, w], [0, 1, 4, 2, 5, 3], vec![n, cb, h * b, w * b])
        } else {
            (vec![n, b, b, cb, h, w], [0, 3, 4, 1, 5, 2], vec![n, cb, h * b, w * b])
        }
    } else {
        if h % b != 0 || w % b != 0 {
            return Err(format!("{op}: spatial dims {h}x{w} are not divisible by {b}"));
        }
        let tmp = vec![n, c, h / b, b, w / b, b];
        let perm = if crd { [0, 1, 3, 5, 2, 4] } else { [0, 3, 5, 1, 2, 4] };
        (tmp, perm, vec![n, c * b * b, h / b, w / b])
    };
    Ok(vec![map_tensor!(data, a => reshape_array(&transpose_array(&reshape_array(a, &tmp)?, &perm), &out)?)])
}

// ---------------------------------------------------------------------------------------------
// Shape, Size, ConstantOfShape, Range
// ---------------------------------------------------------------------------------------------

pub static SHAPE: OpDef = OpDef {
    name: "shape.shape",
    summary: "The dims of `data` (from `start` to `end`, python-style clamped) as a 1-D i64 tensor.",
    operands: &["data"],
    results: &["shape"],
    attrs: &[AttrDef::opt("end", AttrKind::Int, "rank"), AttrDef::opt("start", AttrKind::Int, "0")],
    traits: Traits::PURE,
    infer: infer_shape,
    eval: eval_shape,
};

fn shape_bounds(attrs: &Attrs, rank: usize) -> (usize, usize) {
    let r = rank as i64;
    let clampi = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clampi(attr_int(attrs, "start", 0));
    let end = clampi(attr_int(attrs, "end", r));
    (start, end.max(start))
}

fn infer_shape(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let (s, e) = shape_bounds(ctx.attrs, data.rank());
    Ok(vec![TensorType::of(&[e - s], ScalarType::I64)])
}

fn eval_shape(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let (s, e) = shape_bounds(ctx.attrs, data.shape().len());
    let v: Vec<i64> = data.shape()[s..e].iter().map(|&d| d as i64).collect();
    Ok(vec![Tensor::I64(from_vec(&[e - s], v)?)])
}

pub static SIZE: OpDef = OpDef {
    name: "shape.size",
    summary: "The number of elements of `data` as an i64 scalar.",
    operands: &["data"],
    results: &["size"],
    attrs: &[],
    traits: Traits::PURE,
    infer: |ctx| {
        operand(ctx, 0)?;
        Ok(vec![TensorType::of(&[], ScalarType::I64)])
    },
    eval: |ctx| {
        let n = input(ctx, 0)?.len() as i64;
        Ok(vec![Tensor::I64(ArrayD::from_elem(IxDyn(&[]), n))])
    },
};

pub static CONSTANT_OF_SHAPE: OpDef = OpDef {
    name: "shape.constant_of_shape",
    summary: "A tensor of the given 1-D i64 shape filled with the one element of `value`.",
    operands: &["input"],
    results: &["output"],
    attrs: &[AttrDef::opt("value", AttrKind::Tensor, "f32 0")],
    traits: Traits::PURE,
    infer: infer_constant_of_shape,
    eval: eval_constant_of_shape,
};

/// The fill value of constant_of_shape as a one-element tensor.
fn fill_value(attrs: &Attrs) -> OpResult<Tensor> {
    match attrs.tensor("value") {
        Some(c) => {
            let t = c.to_tensor()?;
            if t.len() != 1 {
                return Err(format!("constant_of_shape `value` must have one element, found {}", t.len()));
            }
            Ok(t)
        }
        None => Ok(Tensor::zeros(ScalarType::F32, &[1])),
    }
}

fn infer_constant_of_shape(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let shape_ty = operand(ctx, 0)?;
    check_int_operand(shape_ty, "constant_of_shape `input`")?;
    let elem = match ctx.attrs.tensor("value") {
        Some(c) => {
            if c.ty.num_elements() != Some(1) {
                return Err(format!("constant_of_shape `value` must have one element, found type {}", c.ty));
            }
            c.ty.elem.clone()
        }
        None => ElemType::Scalar(ScalarType::F32),
    };
    let dims = match const_ints(ctx, 0, "constant_of_shape `input`")? {
        Some(s) => s
            .iter()
            .map(|&v| to_usize(v, "constant_of_shape dims").map(|v| Dim::Static(v as u64)))
            .collect::<Result<_, _>>()?,
        None => {
            let n = static_len(shape_ty, "constant_of_shape `input`")?
                .ok_or("constant_of_shape `input` has no static length, so the result rank is unknown")?;
            vec![Dim::Unknown; n]
        }
    };
    Ok(vec![TensorType { dims, elem }])
}

fn eval_constant_of_shape(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let shape: Vec<usize> = ints(input(ctx, 0)?, "constant_of_shape `input`")?
        .iter()
        .map(|&v| to_usize(v, "constant_of_shape dims"))
        .collect::<Result<_, _>>()?;
    let v = fill_value(ctx.attrs)?;
    Ok(vec![map_tensor!(&v, a => {
        let x = a.iter().next().ok_or("constant_of_shape `value` is empty")?.clone();
        ArrayD::from_elem(IxDyn(&shape), x)
    })])
}

pub static RANGE: OpDef = OpDef {
    name: "shape.range",
    summary: "The 1-D sequence `start, start + delta, ...` up to `limit` (exclusive).",
    operands: &["start", "limit", "delta"],
    results: &["output"],
    attrs: &[AttrDef::opt("stash_type", AttrKind::Int, "1")],
    traits: Traits::PURE,
    infer: infer_range,
    eval: eval_range,
};

/// The scalar value of a one-element tensor.
fn scalar_f64(t: &Tensor, what: &str) -> OpResult<f64> {
    if t.len() != 1 {
        return Err(format!("{what} must be a scalar, found shape {:?}", t.shape()));
    }
    Ok(t.to_f64_vec()[0])
}

/// Number of elements of a range. Integers are computed exactly; floats as ONNX defines it,
/// `ceil((limit - start) / delta)` in double precision.
fn range_len(start: &Tensor, limit: &Tensor, delta: &Tensor) -> OpResult<usize> {
    let n: i128 = if start.scalar_type().is_float() {
        let (s, l, d) = (
            scalar_f64(start, "range start")?,
            scalar_f64(limit, "range limit")?,
            scalar_f64(delta, "range delta")?,
        );
        if d == 0.0 || !d.is_finite() || !s.is_finite() || !l.is_finite() {
            return Err(format!("range with start {s}, limit {l}, delta {d} is not finite"));
        }
        ((l - s) / d).ceil().max(0.0) as i128
    } else {
        let one = |t: &Tensor, what: &str| -> OpResult<i128> {
            let v = t.to_i64_vec().ok_or_else(|| format!("{what} must be numeric"))?;
            match v.as_slice() {
                [x] => Ok(match t {
                    // u64 values above i64::MAX wrap in to_i64_vec; read them unsigned.
                    Tensor::U64(a) => a.iter().next().map(|&u| u as i128).unwrap_or(0),
                    _ => *x as i128,
                }),
                _ => Err(format!("{what} must be a scalar, found shape {:?}", t.shape())),
            }
        };
        let (s, l, d) = (one(start, "range start")?, one(limit, "range limit")?, one(delta, "range delta")?);
        if d == 0 {
            return Err("range delta must not be 0".into());
        }
        let num = l - s;
        // ceil(num / d) for any signs.
        let q = num / d;
        let q = if num % d != 0 && ((num < 0) == (d < 0)) { q + 1 } else { q };
        q.max(0)
    };
    usize::try_from(n).map_err(|_| format!("range of {n} elements is too large"))
}

fn infer_range(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let t = operand(ctx, 0)?;
    for i in 0..3 {
        let o = operand(ctx, i)?;
        if o.elem != t.elem {
            return Err(format!(
                "range operands must have the same element type, found {} and {}",
                t.elem, o.elem
            ));
        }
        if o.num_elements().is_some_and(|n| n != 1) || o.rank() > 1 {
            return Err(format!("range operand #{i} must be a scalar, found {o}"));
        }
    }
    if t.scalar() == ScalarType::Bool {
        return Err("range is not defined for bool".into());
    }
    let dim = match (ctx.opt_const(0), ctx.opt_const(1), ctx.opt_const(2)) {
        (Some(s), Some(l), Some(d)) => Dim::Static(range_len(s, l, d)? as u64),
        _ => Dim::Unknown,
    };
    Ok(vec![TensorType { dims: vec![dim], elem: t.elem.clone() }])
}

fn range_values<T: Elem>(
    first: &Tensor,
    s: &ArrayD<T>,
    rest: &[&Tensor],
    n: usize,
    stash_f32: bool,
) -> OpResult<ArrayD<T>> {
    let rest = same_arrays::<T>(first, rest, "range")?;
    let get = |a: &ArrayD<T>| a.iter().next().cloned().ok_or("range operand is empty");
    let (start, delta) = (get(s)?, get(rest[1])?);
    let v: Vec<T> = if first.scalar_type().is_float() {
        let (s0, d) = (start.to_f64(), delta.to_f64());
        // With a f32 stash (the default for 16-bit floats), the sequence is computed in f32.
        let round = |x: f64| if stash_f32 { x as f32 as f64 } else { x };
        let (s0, d) = if stash_f32 { (round(s0), round(d)) } else { (s0, d) };
        (0..n).map(|i| T::from_f64(round(s0 + i as f64 * d))).collect()
    } else {
        let mut v = Vec::with_capacity(n);
        let mut x = start;
        for _ in 0..n {
            v.push(x.clone());
            x = x.add(&delta);
        }
        v
    };
    from_vec(&[n], v)
}

fn eval_range(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (s, l, d) = (input(ctx, 0)?, input(ctx, 1)?, input(ctx, 2)?);
    if s.scalar_type() == ScalarType::Bool {
        return Err("range is not defined for bool".into());
    }
    let n = range_len(s, l, d)?;
    let stash = attr_int(ctx.attrs, "stash_type", 1);
    let half = matches!(s.scalar_type(), ScalarType::F16 | ScalarType::BF16);
    let stash_f32 = half && stash != 11;
    let rest = [l, d];
    Ok(vec![clamp_nibbles(map_tensor!(s, a => range_values(s, a, &rest, n, stash_f32)?))])
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
