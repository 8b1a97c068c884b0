//! Pooling: `nn.max_pool`, `nn.average_pool`, `nn.lp_pool`, their global forms, and
//! `nn.lrn` (local response normalization across channels).
//!
//! A window covers the taps `out * stride - pad_begin + k * dilation` of each spatial dim;
//! taps outside the input never contribute a value. Because a window is a box, the set of
//! valid taps is the product of per-dim sets, which are precomputed per output position.

use super::linalg::{dispatch, float_attr, float_scalar, int_attr, plain_scalar, Kernel, Scalar, Work};
use super::linalg_conv::{for_each_index, Window};
use super::util::{input, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::{AttrKind, Attrs};
use crate::tensor::Tensor;
use crate::types::{Dim, ScalarType, TensorType};
use ndarray::{ArrayD, ArrayViewD, IxDyn};

/// What a window computes.
#[derive(Clone, Copy, Debug)]
enum PoolKind {
    Max,
    Average { count_include_pad: bool },
    Lp { p: f64 },
}

/// Spatial rank of a pooled input `[N, C, D...]`.
fn pool_rank(x: &TensorType) -> OpResult<usize> {
    if x.rank() < 3 {
        return Err(format!("X must have rank >= 3 ([N, C, spatial...]), found {}", x.rank()));
    }
    Ok(x.rank() - 2)
}

/// The required `kernel_shape` attribute, checked against the spatial rank.
fn kernel_attr(attrs: &Attrs, nd: usize) -> OpResult<Vec<usize>> {
    let k = attrs.ints("kernel_shape").ok_or("missing attribute `kernel_shape`")?;
    if k.len() != nd {
        return Err(format!("kernel_shape has {} dims but the input has {nd} spatial dims", k.len()));
    }
    k.iter()
        .map(|&v| usize::try_from(v).ok().filter(|&v| v > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("kernel_shape must be positive, found {k:?}"))
}

fn window(attrs: &Attrs, nd: usize) -> OpResult<Window> {
    let ceil = int_attr(attrs, "ceil_mode", 0) != 0;
    Window::from_attrs(attrs, kernel_attr(attrs, nd)?, ceil)
}

fn infer_pool(ctx: &InferCtx, float_only: bool) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    let s = plain_scalar(x, "X")?;
    if float_only {
        float_scalar(x, "X")?;
    } else if s == ScalarType::Bool {
        return Err("X must be numeric, found bool".into());
    }
    let nd = pool_rank(x)?;
    let win = window(ctx.attrs, nd)?;
    let mut dims = x.dims[..2].to_vec();
    dims.extend(win.out_dims(&x.dims[2..])?);
    let mut out = vec![TensorType::new(dims.clone(), x.elem.clone())];
    if ctx.num_results > 1 {
        out.push(TensorType::new(dims, ScalarType::I64));
    }
    Ok(out)
}

/// Per spatial dim and output position: the valid input positions and the number of taps
/// inside the padded extent (for `count_include_pad`).
struct Taps {
    valid: Vec<Vec<Vec<usize>>>,
    padded_count: Vec<Vec<usize>>,
}

fn taps(win: &Window, input: &[usize]) -> OpResult<(Vec<usize>, Taps)> {
    let nd = input.len();
    let mut outs = Vec::with_capacity(nd);
    let mut valid = Vec::with_capacity(nd);
    let mut padded_count = Vec::with_capacity(nd);
    for (d, &n) in input.iter().enumerate() {
        let (o, pb, pe) = win.out_dim(d, n)?;
        let mut vd = Vec::with_capacity(o);
        let mut cd = Vec::with_capacity(o);
        for oi in 0..o {
            let start = (oi * win.strides[d]) as i64 - pb as i64;
            let mut v = Vec::with_capacity(win.kernel[d]);
            let mut count = 0;
            for k in 0..win.kernel[d] {
                let pos = start + (k * win.dilations[d]) as i64;
                if pos >= 0 && pos < n as i64 {
                    v.push(pos as usize);
                }
                if pos < (n + pe) as i64 {
                    count += 1;
                }
            }
            vd.push(v);
            cd.push(count);
        }
        outs.push(o);
        valid.push(vd);
        padded_count.push(cd);
    }
    Ok((outs, Taps { valid, padded_count }))
}

/// Pools every `[N, C]` plane of `x`. Also returns the flat argmax indices for max pooling
/// (row-major, or column-major over the spatial dims when `col_major`), offset by the plane.
fn pool<T: Scalar>(
    x: &ArrayViewD<T>,
    win: &Window,
    kind: PoolKind,
    col_major: bool,
) -> OpResult<(ArrayD<T>, Option<ArrayD<i64>>)> {
    let shape = x.shape();
    if shape.len() != win.kernel.len() + 2 {
        return Err(format!("X of shape {shape:?} does not have {} spatial dims", win.kernel.len()));
    }
    let input = &shape[2..];
    let (outs, taps) = taps(win, input)?;
    let planes = shape[0] * shape[1];
    let iprod: usize = input.iter().product();
    let oprod: usize = outs.iter().product();
    let mut yshape = shape[..2].to_vec();
    yshape.extend(&outs);
    let mut y = Vec::with_capacity(planes * oprod);
    let want_idx = matches!(kind, PoolKind::Max);
    let mut idx = Vec::with_capacity(if want_idx { planes * oprod } else { 0 });
    // Strides of the spatial dims for the flat input offset and for the reported index.
    let nd = input.len();
    let mut row_strides = vec![1usize; nd];
    let mut idx_strides = vec![1usize; nd];
    for d in (0..nd.saturating_sub(1)).rev() {
        row_strides[d] = row_strides[d + 1] * input[d + 1];
    }
    for d in 1..nd {
        idx_strides[d] = idx_strides[d - 1] * input[d - 1];
    }
    let idx_strides = if col_major { idx_strides } else { row_strides.clone() };
    let xs = x.as_standard_layout();
    let xs = xs.as_slice().ok_or("internal: layout")?;
    let mut lists: Vec<&[usize]> = vec![&[]; nd];
    let mut lens = vec![0usize; nd];
    let mut t = vec![0usize; nd];
    for pl in 0..planes {
        let plane = &xs[pl * iprod..(pl + 1) * iprod];
        for_each_index(&outs, |o| {
            for d in 0..nd {
                lists[d] = &taps.valid[d][o[d]];
                lens[d] = lists[d].len();
            }
            let mut best = T::LOWEST;
            let mut best_idx = 0usize;
            let mut found = false;
            let mut acc = 0f64;
            let n_valid: usize = lens.iter().product();
            if n_valid > 0 {
                // Odometer over the window's valid taps (no allocation per output).
                t.iter_mut().for_each(|v| *v = 0);
                loop {
                    let mut off = 0;
                    let mut ioff = 0;
                    for d in 0..nd {
                        let pos = lists[d][t[d]];
                        off += pos * row_strides[d];
                        ioff += pos * idx_strides[d];
                    }
                    let v = plane[off];
                    match kind {
                        PoolKind::Max => {
                            if !found || v > best {
                                best = v;
                                best_idx = ioff;
                                found = true;
                            }
                        }
                        PoolKind::Average { .. } => acc += v.to_f64(),
                        PoolKind::Lp { p } => acc += v.to_f64().abs().powf(p),
                    }
                    let mut d = nd;
                    let done = loop {
                        if d == 0 {
                            break true;
                        }
                        d -= 1;
                        t[d] += 1;
                        if t[d] < lens[d] {
                            break false;
                        }
                        t[d] = 0;
                    };
                    if done {
                        break;
                    }
                }
            }
            let out = match kind {
                PoolKind::Max => best,
                PoolKind::Average { count_include_pad } => {
                    let count = if count_include_pad {
                        (0..nd).map(|d| taps.padded_count[d][o[d]]).product()
                    } else {
                        n_valid
                    };
                    T::from_f64(acc / count as f64)
                }
                PoolKind::Lp { p } => T::from_f64(acc.powf(1.0 / p)),
            };
            y.push(out);
            if want_idx {
                idx.push((pl * iprod + best_idx) as i64);
            }
        });
    }
    let y = ArrayD::from_shape_vec(IxDyn(&yshape), y).map_err(|e| e.to_string())?;
    let idx = if want_idx {
        Some(ArrayD::from_shape_vec(IxDyn(&yshape), idx).map_err(|e| e.to_string())?)
    } else {
        None
    };
    Ok((y, idx))
}

struct PoolK<'a> {
    win: &'a Window,
    kind: PoolKind,
}

impl Kernel for PoolK<'_> {
    fn run<T: Scalar>(&self, ins: &[Option<ArrayViewD<T>>]) -> OpResult<ArrayD<T>> {
        let x = ins.first().and_then(|x| x.as_ref()).ok_or("missing X")?;
        Ok(pool(x, self.win, self.kind, false)?.0)
    }
}

const WINDOW_ATTRS_DOC: [AttrDef; 5] = [
    AttrDef::opt("auto_pad", AttrKind::Str, "\"NOTSET\""),
    AttrDef::opt("ceil_mode", AttrKind::Int, "0"),
    AttrDef::opt("dilations", AttrKind::Ints, "[1, ...]"),
    AttrDef::req("kernel_shape", AttrKind::Ints),
    AttrDef::opt("pads", AttrKind::Ints, "[0, ...]"),
];

// ---------------------------------------------------------------------------------------------
// nn.max_pool
// ---------------------------------------------------------------------------------------------

pub static MAX_POOL: OpDef = OpDef {
    name: "nn.max_pool",
    summary: "Max over sliding windows of X `[N, C, D...]`; the optional Indices result gives the \
              flat input index of each maximum (ONNX MaxPool).",
    operands: &["X"],
    results: &["Y", "Indices?"],
    attrs: &[
        WINDOW_ATTRS_DOC[0],
        WINDOW_ATTRS_DOC[1],
        WINDOW_ATTRS_DOC[2],
        WINDOW_ATTRS_DOC[3],
        WINDOW_ATTRS_DOC[4],
        AttrDef::opt("storage_order", AttrKind::Int, "0"),
        AttrDef::opt("strides", AttrKind::Ints, "[1, ...]"),
    ],
    traits: Traits::PURE,
    infer: |ctx| infer_pool(ctx, false),
    eval: eval_max_pool,
};

fn eval_max_pool(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let ty = x.scalar_type();
    let win = window(ctx.attrs, x.shape().len().saturating_sub(2))?;
    let col_major = int_attr(ctx.attrs, "storage_order", 0) != 0;
    let (y, idx) = match Work::of(x)? {
        Work::F32(a) => {
            let (y, i) = pool(&a.view(), &win, PoolKind::Max, col_major)?;
            (f32::into_tensor(y, ty)?, i)
        }
        Work::F64(a) => {
            let (y, i) = pool(&a.view(), &win, PoolKind::Max, col_major)?;
            (f64::into_tensor(y, ty)?, i)
        }
        Work::I64(a) => {
            let (y, i) = pool(&a.view(), &win, PoolKind::Max, col_major)?;
            (i64::into_tensor(y, ty)?, i)
        }
    };
    let mut out = vec![y];
    if ctx.result_types.len() > 1 {
        out.push(Tensor::I64(idx.ok_or("internal: no indices")?));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// nn.average_pool
// ---------------------------------------------------------------------------------------------

pub static AVERAGE_POOL: OpDef = OpDef {
    name: "nn.average_pool",
    summary: "Mean over sliding windows of X `[N, C, D...]`, counting padding taps only with \
              `count_include_pad` (ONNX AveragePool).",
    operands: &["X"],
    results: &["Y"],
    attrs: &[
        WINDOW_ATTRS_DOC[0],
        WINDOW_ATTRS_DOC[1],
        AttrDef::opt("count_include_pad", AttrKind::Int, "0"),
        WINDOW_ATTRS_DOC[2],
        WINDOW_ATTRS_DOC[3],
        WINDOW_ATTRS_DOC[4],
        AttrDef::opt("strides", AttrKind::Ints, "[1, ...]"),
    ],
    traits: Traits::PURE,
    infer: |ctx| infer_pool(ctx, true),
    eval: eval_average_pool,
};

fn eval_average_pool(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let win = window(ctx.attrs, x.shape().len().saturating_sub(2))?;
    let kind = PoolKind::Average { count_include_pad: int_attr(ctx.attrs, "count_include_pad", 0) != 0 };
    Ok(vec![dispatch(&PoolK { win: &win, kind }, &[Some(x)], true)?])
}

// ---------------------------------------------------------------------------------------------
// nn.global_average_pool / nn.global_max_pool
// ---------------------------------------------------------------------------------------------

fn infer_global(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    float_scalar(x, "X")?;
    if x.rank() < 2 {
        return Err(format!("X must have rank >= 2 ([N, C, spatial...]), found {}", x.rank()));
    }
    let mut dims = x.dims[..2].to_vec();
    dims.extend(std::iter::repeat_n(Dim::Static(1), x.rank() - 2));
    Ok(vec![TensorType::new(dims, x.elem.clone())])
}

struct GlobalK {
    max: bool,
}

impl Kernel for GlobalK {
    fn run<T: Scalar>(&self, ins: &[Option<ArrayViewD<T>>]) -> OpResult<ArrayD<T>> {
        let x = ins.first().and_then(|x| x.as_ref()).ok_or("missing X")?;
        let shape = x.shape();
        if shape.len() < 2 {
            return Err(format!("X must have rank >= 2, found shape {shape:?}"));
        }
        let planes = shape[0] * shape[1];
        let plane: usize = shape[2..].iter().product();
        let xs = x.as_standard_layout();
        let xs = xs.as_slice().ok_or("internal: layout")?;
        let mut out = Vec::with_capacity(planes);
        for p in 0..planes {
            let v = &xs[p * plane..(p + 1) * plane];
            out.push(if self.max {
                // NaN (unordered with itself) propagates, as in numpy.
                v.iter()
                    .copied()
                    .fold(T::LOWEST, |m, x| if x > m || x.partial_cmp(&x).is_none() { x } else { m })
            } else {
                let s = v.iter().fold(0f64, |s, &x| s + x.to_f64());
                T::from_f64(s / plane as f64)
            });
        }
        let mut oshape = shape[..2].to_vec();
        oshape.extend(std::iter::repeat_n(1, shape.len() - 2));
        ArrayD::from_shape_vec(IxDyn(&oshape), out).map_err(|e| e.to_string())
    }
}

pub static GLOBAL_AVERAGE_POOL: OpDef = OpDef {
    name: "nn.global_average_pool",
    summary: "Mean over all spatial dims of X `[N, C, D...]`, keeping them as 1 (ONNX GlobalAveragePool).",
    operands: &["X"],
    results: &["Y"],
    attrs: &[],
    traits: Traits::PURE,
    infer: infer_global,
    eval: |ctx| Ok(vec![dispatch(&GlobalK { max: false }, &[Some(input(ctx, 0)?)], true)?]),
};

pub static GLOBAL_MAX_POOL: OpDef = OpDef {
    name: "nn.global_max_pool",
    summary: "Max over all spatial dims of X `[N, C, D...]`, keeping them as 1 (ONNX GlobalMaxPool).",
    operands: &["X"],
    results: &["Y"],
    attrs: &[],
    traits: Traits::PURE,
    infer: infer_global,
    eval: |ctx| Ok(vec![dispatch(&GlobalK { max: true }, &[Some(input(ctx, 0)?)], true)?]),
};

// ---------------------------------------------------------------------------------------------
// nn.lp_pool
// ---------------------------------------------------------------------------------------------

pub static LP_POOL: OpDef = OpDef {
    name: "nn.lp_pool",
    summary: "p-norm `(sum |x|^p)^(1/p)` over sliding windows of X `[N, C, D...]` (ONNX LpPool).",
    operands: &["X"],
    results: &["Y"],
    attrs: &[
        WINDOW_ATTRS_DOC[0],
        WINDOW_ATTRS_DOC[1],
        WINDOW_ATTRS_DOC[2],
        WINDOW_ATTRS_DOC[3],
        AttrDef::opt("p", AttrKind::Int, "2"),
        WINDOW_ATTRS_DOC[4],
        AttrDef::opt("strides", AttrKind::Ints, "[1, ...]"),
    ],
    traits: Traits::PURE,
    infer: |ctx| infer_pool(ctx, true),
    eval: eval_lp_pool,
};

fn eval_lp_pool(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let win = window(ctx.attrs, x.shape().len().saturating_sub(2))?;
    let p = int_attr(ctx.attrs, "p", 2);
    if p <= 0 {
        return Err(format!("p must be positive, found {p}"));
    }
    Ok(vec![dispatch(&PoolK { win: &win, kind: PoolKind::Lp { p: p as f64 } }, &[Some(x)], true)?])
}

// ---------------------------------------------------------------------------------------------
// nn.lrn
// ---------------------------------------------------------------------------------------------

pub static LRN: OpDef = OpDef {
    name: "nn.lrn",
    summary: "Local response normalization across channels: \
              `x / (bias + alpha / size * sum of x^2 over size neighbouring channels)^beta` (ONNX LRN).",
    operands: &["X"],
    results: &["Y"],
    attrs: &[
        AttrDef::opt("alpha", AttrKind::Float, "0.0001"),
        AttrDef::opt("beta", AttrKind::Float, "0.75"),
        AttrDef::opt("bias", AttrKind::Float, "1.0"),
        AttrDef::req("size", AttrKind::Int),
    ],
    traits: Traits::PURE,
    infer: infer_lrn,
    eval: eval_lrn,
};

fn infer_lrn(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    float_scalar(x, "X")?;
    if x.rank() < 2 {
        return Err(format!("X must have rank >= 2 ([N, C, ...]), found {}", x.rank()));
    }
    lrn_size(ctx.attrs)?;
    Ok(vec![x.clone()])
}

fn lrn_size(attrs: &Attrs) -> OpResult<usize> {
    let size = attrs.int("size").ok_or("missing attribute `size`")?;
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("size must be positive, found {size}"))
}

struct LrnK {
    alpha: f64,
    beta: f64,
    bias: f64,
    size: usize,
}

impl Kernel for LrnK {
    fn run<T: Scalar>(&self, ins: &[Option<ArrayViewD<T>>]) -> OpResult<ArrayD<T>> {
        let x = ins.first().and_then(|x| x.as_ref()).ok_or("missing X")?;
        let shape = x.shape().to_vec();
        if shape.len() < 2 {
            return Err(format!("X must have rank >= 2, found shape {shape:?}"));
        }
        let (n, c) = (shape[0], shape[1]);
        let plane: usize = shape[2..].iter().product();
        let xs = x.as_standard_layout();
        let xs = xs.as_slice().ok_or("internal: layout")?;
        // Channel window [c - floor((size-1)/2), c + ceil((size-1)/2)].
        let before = (self.size - 1) / 2;
        let after = self.size - 1 - before;
        let mut out = vec![T::ZERO; xs.len()];
        for ni in 0..n {
            for ci in 0..c {
                let lo = ci.saturating_sub(before);
                let hi = (ci + after).min(c - 1);
                for e in 0..plane {
                    let mut sq = 0f64;
                    for cj in lo..=hi {
                        let v = xs[(ni * c + cj) * plane + e].to_f64();
                        sq += v * v;
                    }
                    let i = (ni * c + ci) * plane + e;
                    let denom = (self.bias + self.alpha / self.size as f64 * sq).powf(self.beta);
                    out[i] = T::from_f64(xs[i].to_f64() / denom);
                }
            }
        }
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())
    }
}

fn eval_lrn(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let k = LrnK {
        alpha: float_attr(ctx.attrs, "alpha", 1e-4),
        beta: float_attr(ctx.attrs, "beta", 0.75),
        bias: float_attr(ctx.attrs, "bias", 1.0),
        size: lrn_size(ctx.attrs)?,
    };
    Ok(vec![dispatch(&k, &[Some(input(ctx, 0)?)], true)?])
}
