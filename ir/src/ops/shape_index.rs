//! Index-driven ops of the `shape.*` family: gather, gather_elements, gather_nd, scatter_nd,
//! scatter_elements, one_hot, non_zero and trilu. Indices may be negative (counted from the end
//! of their axis); an index out of range is an error, never a panic.

use super::shape::{
    attr_int, attr_str, check_int_operand, from_vec, ints, kept_elem, merge_dim, moved_elem, opt_const_ints,
    same_arrays, static_len, strides, to_usize, Elem,
};
use super::util::{input, norm_axis, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::{AttrKind, Attrs};
use crate::map_tensor;
use crate::tensor::Tensor;
use crate::types::{Dim, ScalarType, TensorType};
use ndarray::ArrayD;

const MOVE: Traits = Traits::PURE.union(Traits::DATA_MOVEMENT);

/// Resolves a possibly negative index against an axis of length `dim`.
fn norm_index(i: i64, dim: usize, what: &str) -> OpResult<usize> {
    let d = dim as i64;
    if i < -d || i >= d {
        return Err(format!("{what} {i} is out of range for an axis of length {dim}"));
    }
    Ok(if i < 0 { (i + d) as usize } else { i as usize })
}

/// The row-major elements of an array, copied.
fn contiguous<T: Clone>(a: &ArrayD<T>) -> Vec<T> {
    a.iter().cloned().collect()
}

/// Runs `f` on the row-major elements of `a`, borrowing them when `a` is already in standard
/// layout (gathers read few elements of possibly large tables, e.g. embeddings).
fn with_elems<T: Clone, R>(a: &ArrayD<T>, f: impl FnOnce(&[T]) -> OpResult<R>) -> OpResult<R> {
    let s = a.as_standard_layout();
    f(s.as_slice().ok_or("internal: non-contiguous array")?)
}

// ---------------------------------------------------------------------------------------------
// Gather
// ---------------------------------------------------------------------------------------------

pub static GATHER: OpDef = OpDef {
    name: "shape.gather",
    summary: "Takes the entries of `data` along `axis` at `indices`: the result dims are \
              data[:axis] + indices + data[axis+1:].",
    operands: &["data", "indices"],
    results: &["output"],
    attrs: &[AttrDef::opt("axis", AttrKind::Int, "0")],
    traits: MOVE,
    infer: infer_gather,
    eval: eval_gather,
};

fn infer_gather(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let ind = operand(ctx, 1)?;
    check_int_operand(ind, "gather `indices`")?;
    if data.rank() == 0 {
        return Err("gather needs data of rank >= 1".into());
    }
    let axis = norm_axis(attr_int(ctx.attrs, "axis", 0), data.rank())?;
    let q = ind.rank();
    let mut dims = data.dims[..axis].to_vec();
    dims.extend(ind.dims.iter().cloned());
    dims.extend(data.dims[axis + 1..].iter().cloned());
    let elem = moved_elem(
        &data.elem,
        |a| match a.cmp(&axis) {
            std::cmp::Ordering::Less => Some(a),
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(a + q - 1),
        },
        "gather",
    )?;
    Ok(vec![TensorType { dims, elem }])
}

fn gather_array<T: Clone>(
    a: &ArrayD<T>,
    idx: &[usize],
    ind_shape: &[usize],
    axis: usize,
) -> OpResult<ArrayD<T>> {
    let s = a.shape();
    let outer: usize = s[..axis].iter().product();
    let dim = s[axis];
    let inner: usize = s[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    with_elems(a, |data| {
        for o in 0..outer {
            for &i in idx {
                let start = (o * dim + i) * inner;
                out.extend_from_slice(
                    data.get(start..start + inner).ok_or("internal: gather out of bounds")?,
                );
            }
        }
        Ok(())
    })?;
    let mut shape = s[..axis].to_vec();
    shape.extend_from_slice(ind_shape);
    shape.extend_from_slice(&s[axis + 1..]);
    from_vec(&shape, out)
}

fn eval_gather(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let ind = input(ctx, 1)?;
    let s = data.shape();
    if s.is_empty() {
        return Err("gather needs data of rank >= 1".into());
    }
    let axis = norm_axis(attr_int(ctx.attrs, "axis", 0), s.len())?;
    let idx: Vec<usize> = ints(ind, "gather `indices`")?
        .iter()
        .map(|&i| norm_index(i, s[axis], "gather index"))
        .collect::<Result<_, _>>()?;
    Ok(vec![map_tensor!(data, a => gather_array(a, &idx, ind.shape(), axis)?)])
}

// ---------------------------------------------------------------------------------------------
// GatherElements and ScatterElements
// ---------------------------------------------------------------------------------------------

pub static GATHER_ELEMENTS: OpDef = OpDef {
    name: "shape.gather_elements",
    summary: "out[i][j][k] = data[indices[i][j][k]][j][k] (for axis 0; likewise for other axes).",
    operands: &["data", "indices"],
    results: &["output"],
    attrs: &[AttrDef::opt("axis", AttrKind::Int, "0")],
    traits: MOVE,
    infer: infer_gather_elements,
    eval: eval_gather_elements,
};

fn check_same_rank(data: &TensorType, ind: &TensorType, op: &str) -> OpResult<()> {
    if data.rank() != ind.rank() || data.rank() == 0 {
        return Err(format!(
            "{op}: data (rank {}) and indices (rank {}) must have the same rank >= 1",
            data.rank(),
            ind.rank()
        ));
    }
    Ok(())
}

fn infer_gather_elements(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let ind = operand(ctx, 1)?;
    check_int_operand(ind, "gather_elements `indices`")?;
    check_same_rank(data, ind, "gather_elements")?;
    norm_axis(attr_int(ctx.attrs, "axis", 0), data.rank())?;
    let elem = kept_elem(data, &ind.dims, "gather_elements")?;
    Ok(vec![TensorType { dims: ind.dims.clone(), elem }])
}

/// For every element of the indices (row-major), the offset into `data` it addresses: its own
/// coordinates with the one along `axis` replaced by the index.
fn element_offsets(
    data_shape: &[usize],
    ind_shape: &[usize],
    idx: &[i64],
    axis: usize,
    op: &str,
) -> OpResult<Vec<usize>> {
    if data_shape.len() != ind_shape.len() || data_shape.is_empty() {
        return Err(format!(
            "{op}: data {data_shape:?} and indices {ind_shape:?} must have the same rank >= 1"
        ));
    }
    for (d, (&x, &y)) in data_shape.iter().zip(ind_shape).enumerate() {
        if d != axis && y > x {
            return Err(format!("{op}: indices {ind_shape:?} exceed data {data_shape:?} along axis {d}"));
        }
    }
    let st = strides(data_shape);
    let r = ind_shape.len();
    let mut coord = vec![0usize; r];
    let mut out = Vec::with_capacity(idx.len());
    for &i in idx {
        let mut off = norm_index(i, data_shape[axis], &format!("{op} index"))? * st[axis];
        for d in 0..r {
            if d != axis {
                off += coord[d] * st[d];
            }
        }
        out.push(off);
        for d in (0..r).rev() {
            coord[d] += 1;
            if coord[d] < ind_shape[d] {
                break;
            }
            coord[d] = 0;
        }
    }
    Ok(out)
}

fn eval_gather_elements(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let ind = input(ctx, 1)?;
    let axis = norm_axis(attr_int(ctx.attrs, "axis", 0), data.shape().len())?;
    let idx = ints(ind, "gather_elements `indices`")?;
    let offs = element_offsets(data.shape(), ind.shape(), &idx, axis, "gather_elements")?;
    let shape = ind.shape().to_vec();
    Ok(vec![map_tensor!(data, a => {
        let v = with_elems(a, |v| {
            offs.iter().map(|&o| v.get(o).cloned().ok_or_else(|| "internal: gather_elements out of bounds".to_string())).collect()
        })?;
        from_vec(&shape, v)?
    })])
}

/// How a scatter combines an update with the existing element.
#[derive(Clone, Copy, PartialEq)]
enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

fn reduction(attrs: &Attrs, op: &str) -> OpResult<Reduction> {
    Ok(match attr_str(attrs, "reduction", "none") {
        "none" => Reduction::None,
        "add" => Reduction::Add,
        "mul" => Reduction::Mul,
        "max" => Reduction::Max,
        "min" => Reduction::Min,
        r => return Err(format!("{op}: unknown reduction {r:?} (expected none, add, mul, max, min)")),
    })
}

fn combine<T: Elem>(r: Reduction, old: &T, new: &T) -> T {
    // max/min propagate NaN like numpy's maximum/minimum.
    let nan = |x: &T| x.partial_cmp(x).is_none();
    match r {
        Reduction::None => new.clone(),
        Reduction::Add => old.add(new),
        Reduction::Mul => old.mul(new),
        Reduction::Max | Reduction::Min if nan(old) => old.clone(),
        Reduction::Max | Reduction::Min if nan(new) => new.clone(),
        Reduction::Max => {
            if new > old {
                new.clone()
            } else {
                old.clone()
            }
        }
        Reduction::Min => {
            if new < old {
                new.clone()
            } else {
                old.clone()
            }
        }
    }
}

/// Applies `updates` (one per offset, or `slice` consecutive elements per offset) to a copy of
/// `data`.
fn scatter<T: Elem>(
    data: &Tensor,
    a: &ArrayD<T>,
    updates: &Tensor,
    offsets: &[usize],
    slice: usize,
    r: Reduction,
    op: &str,
) -> OpResult<ArrayD<T>> {
    let upd = same_arrays::<T>(data, &[updates], &format!("{op} updates"))?[0];
    let upd = contiguous(upd);
    if upd.len() != offsets.len() * slice {
        return Err(format!("{op}: {} updates for {} target elements", upd.len(), offsets.len() * slice));
    }
    let mut out = contiguous(a);
    for (k, &o) in offsets.iter().enumerate() {
        for j in 0..slice {
            let dst = out.get_mut(o + j).ok_or_else(|| format!("{op}: target out of bounds"))?;
            *dst = combine(r, dst, &upd[k * slice + j]);
        }
    }
    from_vec(a.shape(), out)
}

pub static SCATTER_ELEMENTS: OpDef = OpDef {
    name: "shape.scatter_elements",
    summary: "A copy of `data` where data[indices[i][j]][j] (for axis 0) is replaced by, or \
              combined with (`reduction` add/mul/max/min), updates[i][j].",
    operands: &["data", "indices", "updates"],
    results: &["output"],
    attrs: &[AttrDef::opt("axis", AttrKind::Int, "0"), AttrDef::opt("reduction", AttrKind::Str, "\"none\"")],
    traits: Traits::PURE,
    infer: infer_scatter_elements,
    eval: eval_scatter_elements,
};

fn infer_scatter_elements(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let ind = operand(ctx, 1)?;
    let upd = operand(ctx, 2)?;
    check_int_operand(ind, "scatter_elements `indices`")?;
    check_same_rank(data, ind, "scatter_elements")?;
    if upd.rank() != ind.rank() {
        return Err(format!(
            "scatter_elements: updates rank {} differs from indices rank {}",
            upd.rank(),
            ind.rank()
        ));
    }
    for (d, (x, y)) in ind.dims.iter().zip(&upd.dims).enumerate() {
        merge_dim(x, y, &format!("scatter_elements indices/updates dim {d}"))?;
    }
    if upd.elem.storage() != data.elem.storage() {
        return Err(format!("scatter_elements: updates {} do not match data {}", upd.elem, data.elem));
    }
    norm_axis(attr_int(ctx.attrs, "axis", 0), data.rank())?;
    reduction(ctx.attrs, "scatter_elements")?;
    Ok(vec![data.clone()])
}

fn eval_scatter_elements(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let ind = input(ctx, 1)?;
    let upd = input(ctx, 2)?;
    if upd.shape() != ind.shape() {
        return Err(format!(
            "scatter_elements: updates {:?} and indices {:?} differ",
            upd.shape(),
            ind.shape()
        ));
    }
    let axis = norm_axis(attr_int(ctx.attrs, "axis", 0), data.shape().len())?;
    let r = reduction(ctx.attrs, "scatter_elements")?;
    let idx = ints(ind, "scatter_elements `indices`")?;
    let offs = element_offsets(data.shape(), ind.shape(), &idx, axis, "scatter_elements")?;
    Ok(vec![map_tensor!(data, a => scatter(data, a, upd, &offs, 1, r, "scatter_elements")?)])
}

// ---------------------------------------------------------------------------------------------
// GatherND and ScatterND
// ---------------------------------------------------------------------------------------------

pub static GATHER_ND: OpDef = OpDef {
    name: "shape.gather_nd",
    summary: "Gathers slices of `data` addressed by the last axis of `indices` (after \
              `batch_dims` leading batch axes shared by both).",
    operands: &["data", "indices"],
    results: &["output"],
    attrs: &[AttrDef::opt("batch_dims", AttrKind::Int, "0")],
    traits: MOVE,
    infer: infer_gather_nd,
    eval: eval_gather_nd,
};

/// Checks the ranks of a gather_nd / scatter_nd and returns (batch dims, index tuple length).
fn nd_params(r: usize, q: usize, m: Option<usize>, b: i64, op: &str) -> OpResult<(usize, Option<usize>)> {
    let b = to_usize(b, &format!("{op} batch_dims"))?;
    if q == 0 || r == 0 {
        return Err(format!("{op}: data and indices must have rank >= 1"));
    }
    if b >= q || b >= r {
        return Err(format!("{op}: batch_dims {b} must be smaller than both ranks ({r}, {q})"));
    }
    if let Some(m) = m {
        if m == 0 && op == "scatter_nd" {
            return Err(format!("{op}: the last indices dim must not be 0"));
        }
        if m > r - b {
            return Err(format!(
                "{op}: index tuples of length {m} exceed data rank {r} minus batch_dims {b}"
            ));
        }
    }
    Ok((b, m))
}

fn infer_gather_nd(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let ind = operand(ctx, 1)?;
    check_int_operand(ind, "gather_nd `indices`")?;
    let (r, q) = (data.rank(), ind.rank());
    let last = ind.dims.last().and_then(Dim::as_static).map(|m| m as usize);
    let (b, m) = nd_params(r, q, last, attr_int(ctx.attrs, "batch_dims", 0), "gather_nd")?;
    let m = m.ok_or("gather_nd: the last dim of `indices` must be static (it decides the result rank)")?;
    let mut dims = Vec::with_capacity(q - 1 + r - b - m);
    for d in 0..b {
        dims.push(merge_dim(&data.dims[d], &ind.dims[d], &format!("gather_nd batch dim {d}"))?);
    }
    dims.extend(ind.dims[b..q - 1].iter().cloned());
    dims.extend(data.dims[b + m..].iter().cloned());
    // Data axes after the indexed ones follow the index tuple dims in the result.
    let elem = moved_elem(
        &data.elem,
        |a| (a < b || a >= b + m).then(|| if a < b { a } else { a + (q - 1) - m }),
        "gather_nd",
    )?;
    Ok(vec![TensorType { dims, elem }])
}

/// Offsets of the slices addressed by each index tuple, in the order of the tuples, and the
/// slice length. `data_shape[..b]` must equal `ind_shape[..b]`.
fn nd_offsets(
    data_shape: &[usize],
    ind_shape: &[usize],
    idx: &[i64],
    b: usize,
    op: &str,
) -> OpResult<(Vec<usize>, usize)> {
    let (r, q) = (data_shape.len(), ind_shape.len());
    let m = ind_shape[q - 1];
    nd_params(r, q, Some(m), b as i64, op)?;
    if data_shape[..b] != ind_shape[..b] {
        return Err(format!("{op}: batch dims of data {data_shape:?} and indices {ind_shape:?} differ"));
    }
    let st = strides(data_shape);
    let slice: usize = data_shape[b + m..].iter().product();
    let batches: usize = data_shape[..b].iter().product();
    let per_batch: usize = ind_shape[b..q - 1].iter().product();
    let mut out = Vec::with_capacity(batches * per_batch);
    for bi in 0..batches {
        let base = if b == 0 { 0 } else { bi * st[b - 1] };
        for t in 0..per_batch {
            let tuple = &idx[(bi * per_batch + t) * m..][..m];
            let mut off = base;
            for (j, &i) in tuple.iter().enumerate() {
                off += norm_index(i, data_shape[b + j], &format!("{op} index"))? * st[b + j];
            }
            out.push(off);
        }
    }
    Ok((out, slice))
}

fn eval_gather_nd(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let ind = input(ctx, 1)?;
    let b = attr_int(ctx.attrs, "batch_dims", 0);
    let (ds, is) = (data.shape(), ind.shape());
    nd_params(ds.len(), is.len(), is.last().copied(), b, "gather_nd")?;
    let b = b as usize;
    let idx = ints(ind, "gather_nd `indices`")?;
    let (offs, slice) = nd_offsets(ds, is, &idx, b, "gather_nd")?;
    let m = is[is.len() - 1];
    let mut shape = is[..is.len() - 1].to_vec();
    shape.extend_from_slice(&ds[b + m..]);
    Ok(vec![map_tensor!(data, a => {
        let out = with_elems(a, |v| {
            let mut out = Vec::with_capacity(offs.len() * slice);
            for &o in &offs {
                out.extend_from_slice(v.get(o..o + slice).ok_or("internal: gather_nd out of bounds")?);
            }
            Ok(out)
        })?;
        from_vec(&shape, out)?
    })])
}

pub static SCATTER_ND: OpDef = OpDef {
    name: "shape.scatter_nd",
    summary: "A copy of `data` where the slices addressed by the last axis of `indices` are \
              replaced by, or combined with (`reduction` add/mul/max/min), `updates`.",
    operands: &["data", "indices", "updates"],
    results: &["output"],
    attrs: &[AttrDef::opt("reduction", AttrKind::Str, "\"none\"")],
    traits: Traits::PURE,
    infer: infer_scatter_nd,
    eval: eval_scatter_nd,
};

fn infer_scatter_nd(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let ind = operand(ctx, 1)?;
    let upd = operand(ctx, 2)?;
    check_int_operand(ind, "scatter_nd `indices`")?;
    if upd.elem.storage() != data.elem.storage() {
        return Err(format!("scatter_nd: updates {} do not match data {}", upd.elem, data.elem));
    }
    let (r, q) = (data.rank(), ind.rank());
    let last = ind.dims.last().and_then(Dim::as_static).map(|m| m as usize);
    let (_, m) = nd_params(r, q, last, 0, "scatter_nd")?;
    if let Some(m) = m {
        if upd.rank() != q - 1 + r - m {
            return Err(format!(
                "scatter_nd: updates have rank {} but indices {} and data {} need rank {}",
                upd.rank(),
                ind,
                data,
                q - 1 + r - m
            ));
        }
    }
    reduction(ctx.attrs, "scatter_nd")?;
    Ok(vec![data.clone()])
}

fn eval_scatter_nd(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let ind = input(ctx, 1)?;
    let upd = input(ctx, 2)?;
    let r = reduction(ctx.attrs, "scatter_nd")?;
    let (ds, is) = (data.shape(), ind.shape());
    nd_params(ds.len(), is.len(), is.last().copied(), 0, "scatter_nd")?;
    let m = is[is.len() - 1];
    let mut want = is[..is.len() - 1].to_vec();
    want.extend_from_slice(&ds[m..]);
    if upd.shape() != want.as_slice() {
        return Err(format!("scatter_nd: updates have shape {:?}, expected {want:?}", upd.shape()));
    }
    let idx = ints(ind, "scatter_nd `indices`")?;
    let (offs, slice) = nd_offsets(ds, is, &idx, 0, "scatter_nd")?;
    Ok(vec![map_tensor!(data, a => scatter(data, a, upd, &offs, slice, r, "scatter_nd")?)])
}

// ---------------------------------------------------------------------------------------------
// OneHot, NonZero, Trilu
// ---------------------------------------------------------------------------------------------

pub static ONE_HOT: OpDef = OpDef {
    name: "shape.one_hot",
    summary: "One-hot encoding of `indices` with `depth` classes inserted at `axis`; `values` is \
              [off_value, on_value]. Out-of-range indices give all off_value.",
    operands: &["indices", "depth", "values"],
    results: &["output"],
    attrs: &[AttrDef::opt("axis", AttrKind::Int, "-1")],
    traits: Traits::PURE,
    infer: infer_one_hot,
    eval: eval_one_hot,
};

fn one_hot_axis(attrs: &Attrs, rank: usize) -> OpResult<usize> {
    norm_axis(attr_int(attrs, "axis", -1), rank + 1).map_err(|e| format!("one_hot: {e}"))
}

fn depth_value(t: &Tensor) -> OpResult<usize> {
    if t.len() != 1 {
        return Err(format!("one_hot depth must be a scalar, found shape {:?}", t.shape()));
    }
    let d = t.to_f64_vec()[0];
    if !(d >= 1.0) || d > u32::MAX as f64 {
        return Err(format!("one_hot depth must be positive, found {d}"));
    }
    Ok(d as usize)
}

fn infer_one_hot(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let ind = operand(ctx, 0)?;
    let depth_ty = operand(ctx, 1)?;
    let values = operand(ctx, 2)?;
    if ind.scalar() == ScalarType::Bool {
        return Err("one_hot indices must be numeric".into());
    }
    if depth_ty.num_elements().is_some_and(|n| n != 1) || depth_ty.rank() > 1 {
        return Err(format!("one_hot depth must be a scalar, found {depth_ty}"));
    }
    if values.rank() != 1 || values.dims[0].as_static().is_some_and(|n| n != 2) {
        return Err(format!("one_hot values must be [off_value, on_value], found {values}"));
    }
    let axis = one_hot_axis(ctx.attrs, ind.rank())?;
    let depth = match ctx.opt_const(1) {
        Some(t) => Dim::Static(depth_value(t)? as u64),
        None => Dim::Unknown,
    };
    let mut dims = ind.dims.clone();
    dims.insert(axis, depth);
    Ok(vec![TensorType { dims, elem: values.elem.clone() }])
}

fn eval_one_hot(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let ind = input(ctx, 0)?;
    let depth = depth_value(input(ctx, 1)?)?;
    let values = input(ctx, 2)?;
    if values.len() != 2 {
        return Err(format!(
            "one_hot values must be [off_value, on_value], found shape {:?}",
            values.shape()
        ));
    }
    if ind.scalar_type() == ScalarType::Bool {
        return Err("one_hot indices must be numeric".into());
    }
    let s = ind.shape();
    let axis = one_hot_axis(ctx.attrs, s.len())?;
    // Fractional indices are truncated (ONNX casts them to integers); negative ones count from
    // the end; the rest out of range match no class.
    let classes: Vec<Option<usize>> = ind
        .to_f64_vec()
        .iter()
        .map(|&v| {
            let i = v.trunc();
            let i = if i < 0.0 { i + depth as f64 } else { i };
            (i >= 0.0 && i < depth as f64).then_some(i as usize)
        })
        .collect();
    let outer: usize = s[..axis].iter().product();
    let inner: usize = s[axis..].iter().product();
    let mut shape = s.to_vec();
    shape.insert(axis, depth);
    Ok(vec![map_tensor!(values, a => {
        let v = contiguous(a);
        let (off, on) = (&v[0], &v[1]);
        let mut out = Vec::with_capacity(outer * depth * inner);
        for o in 0..outer {
            for k in 0..depth {
                for i in 0..inner {
                    out.push(if classes[o * inner + i] == Some(k) { on.clone() } else { off.clone() });
                }
            }
        }
        from_vec(&shape, out)?
    })])
}

pub static NON_ZERO: OpDef = OpDef {
    name: "shape.non_zero",
    summary: "The coordinates of the non-zero elements, as an i64 [rank, count] tensor in \
              row-major order.",
    operands: &["X"],
    results: &["Y"],
    attrs: &[],
    traits: Traits::PURE,
    infer: |ctx| {
        let x = operand(ctx, 0)?;
        Ok(vec![TensorType::new(vec![Dim::Static(x.rank() as u64), Dim::Unknown], ScalarType::I64)])
    },
    eval: eval_non_zero,
};

fn eval_non_zero(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let s = x.shape();
    let r = s.len();
    let st = strides(s);
    let hits: Vec<usize> =
        x.to_f64_vec().iter().enumerate().filter(|(_, &v)| v != 0.0).map(|(i, _)| i).collect();
    let n = hits.len();
    let mut out = vec![0i64; r * n];
    for (k, &flat) in hits.iter().enumerate() {
        for d in 0..r {
            out[d * n + k] = ((flat / st[d]) % s[d]) as i64;
        }
    }
    Ok(vec![Tensor::I64(from_vec(&[r, n], out)?)])
}

pub static TRILU: OpDef = OpDef {
    name: "shape.trilu",
    summary: "Keeps the upper (j - i >= k) or lower (j - i <= k) triangle of the last two axes; \
              the rest becomes zero.",
    operands: &["input", "k?"],
    results: &["output"],
    attrs: &[AttrDef::opt("upper", AttrKind::Int, "1")],
    traits: Traits::PURE,
    infer: infer_trilu,
    eval: eval_trilu,
};

fn infer_trilu(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    if x.rank() < 2 {
        return Err(format!("trilu needs rank >= 2, found {}", x.rank()));
    }
    if ctx.has_operand(1) {
        let k = operand(ctx, 1)?;
        check_int_operand(k, "trilu `k`")?;
        if static_len(k, "trilu `k`")?.is_some_and(|n| n != 1) {
            return Err(format!("trilu `k` must be a scalar, found {k}"));
        }
        opt_const_ints(ctx, 1, "trilu `k`")?;
    }
    Ok(vec![x.clone()])
}

fn trilu_array<T: Elem>(a: &ArrayD<T>, k: i64, upper: bool) -> OpResult<ArrayD<T>> {
    let s = a.shape();
    let (rows, cols) = (s[s.len() - 2], s[s.len() - 1]);
    let mut v = contiguous(a);
    for (n, x) in v.iter_mut().enumerate() {
        let j = (n % cols) as i64;
        let i = ((n / cols) % rows.max(1)) as i64;
        let keep = if upper { j - i >= k } else { j - i <= k };
        if !keep {
            *x = T::zero();
        }
    }
    from_vec(s, v)
}

fn eval_trilu(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    if x.shape().len() < 2 {
        return Err(format!("trilu needs rank >= 2, found {}", x.shape().len()));
    }
    let k = match ctx.opt_input(1) {
        Some(t) => match ints(t, "trilu `k`")?.as_slice() {
            [k] => *k,
            _ => return Err(format!("trilu `k` must be a scalar, found shape {:?}", t.shape())),
        },
        None => 0,
    };
    let upper = attr_int(ctx.attrs, "upper", 1) != 0;
    Ok(vec![map_tensor!(x, a => trilu_array(a, k, upper)?)])
}
