//! `nn.conv` and `nn.conv_transpose` (1-D, 2-D and 3-D), and the sliding-window geometry
//! (`auto_pad`, `pads`, `strides`, `dilations`, `ceil_mode`) they share with the pooling ops.
//!
//! Convolution is computed as im2col + GEMM per image and group: the receptive fields are
//! copied into a `[C/group * prod(kernel), prod(out)]` matrix that the weights, viewed as
//! `[M/group, C/group * prod(kernel)]`, multiply. Transposed convolution is the adjoint:
//! one GEMM `W^T · X` gives every kernel tap's contribution, and col2im adds them into the
//! output at `in * stride + tap * dilation - pad_begin` (no zero-stuffed input).

use super::linalg::{dispatch, float_scalar, int_attr, same_elem, unify_dims, Kernel, Scalar};
use super::util::{input, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::{AttrKind, Attrs};
use crate::tensor::Tensor;
use crate::types::{Dim, TensorType};
use ndarray::{ArrayD, ArrayView2, ArrayViewD, IxDyn};

// ---------------------------------------------------------------------------------------------
// Window geometry
// ---------------------------------------------------------------------------------------------

/// The `auto_pad` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

pub(crate) fn auto_pad(attrs: &Attrs) -> OpResult<AutoPad> {
    match attrs.str("auto_pad").unwrap_or("NOTSET") {
        "NOTSET" | "" => Ok(AutoPad::NotSet),
        "SAME_UPPER" => Ok(AutoPad::SameUpper),
        "SAME_LOWER" => Ok(AutoPad::SameLower),
        "VALID" => Ok(AutoPad::Valid),
        other => Err(format!("auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, found {other:?}")),
    }
}

/// A per-spatial-dim list attribute (`strides`, `dilations`...) of positive values, with a
/// default of all `default`.
pub(crate) fn spatial_attr(attrs: &Attrs, name: &str, nd: usize, default: usize) -> OpResult<Vec<usize>> {
    match attrs.ints(name) {
        None => Ok(vec![default; nd]),
        Some([]) => Ok(vec![default; nd]),
        Some(v) => {
            if v.len() != nd {
                return Err(format!("{name} has {} values but the input has {nd} spatial dims", v.len()));
            }
            v.iter()
                .map(|&x| {
                    usize::try_from(x)
                        .ok()
                        .filter(|&x| x >= 1)
                        .ok_or_else(|| format!("{name} must be positive, found {v:?}"))
                })
                .collect()
        }
    }
}

/// The `pads` attribute as `(begin, end)` per spatial dim (default zeros).
pub(crate) fn pads_attr(attrs: &Attrs, nd: usize) -> OpResult<Vec<(usize, usize)>> {
    match attrs.ints("pads") {
        None => Ok(vec![(0, 0); nd]),
        Some([]) => Ok(vec![(0, 0); nd]),
        Some(v) => {
            if v.len() != 2 * nd {
                return Err(format!("pads has {} values but the input has {nd} spatial dims", v.len()));
            }
            if v.iter().any(|&p| p < 0) {
                return Err(format!("pads must be non-negative, found {v:?}"));
            }
            Ok((0..nd).map(|i| (v[i] as usize, v[nd + i] as usize)).collect())
        }
    }
}

/// Sliding-window attributes of a conv or pool, resolved for a known number of spatial dims.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: Vec<(usize, usize)>,
    pub auto_pad: AutoPad,
    pub ceil_mode: bool,
}

impl Window {
    /// Reads the attributes; `kernel` comes from the caller (attribute or weight shape).
    pub(crate) fn from_attrs(attrs: &Attrs, kernel: Vec<usize>, ceil_mode: bool) -> OpResult<Window> {
        let nd = kernel.len();
        if kernel.contains(&0) {
            return Err(format!("kernel_shape must be positive, found {kernel:?}"));
        }
        Ok(Window {
            strides: spatial_attr(attrs, "strides", nd, 1)?,
            dilations: spatial_attr(attrs, "dilations", nd, 1)?,
            pads: pads_attr(attrs, nd)?,
            auto_pad: auto_pad(attrs)?,
            ceil_mode,
            kernel,
        })
    }

    /// Output extent and actual `(begin, end)` pads of spatial dim `d` for input extent `input`.
    pub(crate) fn out_dim(&self, d: usize, input: usize) -> OpResult<(usize, usize, usize)> {
        let (k, s, dil) = (self.kernel[d], self.strides[d], self.dilations[d]);
        let ek = (k - 1) * dil + 1;
        match self.auto_pad {
            AutoPad::NotSet => {
                let (pb, pe) = self.pads[d];
                let padded = input + pb + pe;
                if padded < ek {
                    return Err(format!(
                        "spatial dim {d}: the kernel extent {ek} exceeds the padded input extent {padded}"
                    ));
                }
                let mut out =
                    if self.ceil_mode { (padded - ek).div_ceil(s) + 1 } else { (padded - ek) / s + 1 };
                // In ceil mode the last window must start inside the input or its begin padding.
                if self.ceil_mode && (out - 1) * s >= input + pb {
                    out -= 1;
                }
                Ok((out, pb, pe))
            }
            AutoPad::Valid => {
                if input < ek {
                    return Err(format!(
                        "spatial dim {d}: the kernel extent {ek} exceeds the input extent {input}"
                    ));
                }
                Ok(((input - ek) / s + 1, 0, 0))
            }
            AutoPad::SameUpper | AutoPad::SameLower => {
                let out = input.div_ceil(s);
                let total = ((out.max(1) - 1) * s + ek).saturating_sub(input);
                let small = total / 2;
                if self.auto_pad == AutoPad::SameUpper {
                    Ok((out, small, total - small))
                } else {
                    Ok((out, total - small, small))
                }
            }
        }
    }

    /// Output dims for input spatial dims that may not be static.
    pub(crate) fn out_dims(&self, input: &[Dim]) -> OpResult<Vec<Dim>> {
        input
            .iter()
            .enumerate()
            .map(|(d, x)| match x {
                Dim::Static(n) => Ok(Dim::Static(self.out_dim(d, *n as usize)?.0 as u64)),
                _ => Ok(Dim::Unknown),
            })
            .collect()
    }

    /// Resolves output extents and begin pads for a runtime input.
    pub(crate) fn resolve(&self, input: &[usize]) -> OpResult<(Vec<usize>, Vec<usize>)> {
        let mut outs = Vec::with_capacity(input.len());
        let mut begins = Vec::with_capacity(input.len());
        for (d, &n) in input.iter().enumerate() {
            let (o, pb, _) = self.out_dim(d, n)?;
            outs.push(o);
            begins.push(pb);
        }
        Ok((outs, begins))
    }
}

/// Calls `f` with every multi-index of `shape` in row-major order (once for an empty shape).
pub(crate) fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx);
        let mut d = shape.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// The range of positions `o` in `0..out` for which `o * s + off` lies in `0..limit`.
fn valid_range(out: usize, s: usize, off: i64, limit: usize) -> (usize, usize) {
    let s = s as i64;
    // o >= ceil(-off / s)
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    // o <= (limit - 1 - off) / s
    let hi_num = limit as i64 - 1 - off;
    let hi = if hi_num < 0 { 0 } else { hi_num / s + 1 };
    let lo = lo.clamp(0, out as i64) as usize;
    let hi = hi.clamp(0, out as i64) as usize;
    (lo, hi.max(lo))
}

/// Shared shape data of a (transposed) convolution.
struct ConvGeom<'a> {
    kernel: &'a [usize],
    strides: &'a [usize],
    dilations: &'a [usize],
    /// Begin pads; negative for transposed convs whose `output_shape` exceeds the natural size.
    pads_begin: Vec<i64>,
}

/// Copies the receptive fields of one image's channel group `x` (`[cg, in...]`, row-major)
/// into `col` (`[cg * prod(kernel), cols]`), with zeros for padding. Only the output rows
/// `rows` of spatial dim 0 are produced (`cols = rows.len() * prod(out[1..])`), so that large
/// images are processed in cache-sized slabs.
fn im2col<T: Scalar>(
    x: &[T],
    cg: usize,
    input: &[usize],
    out: &[usize],
    rows: std::ops::Range<usize>,
    g: &ConvGeom,
    col: &mut [T],
) {
    let nd = input.len();
    let last = nd - 1;
    let iprod: usize = input.iter().product();
    // The produced block of output positions, and the offset of its first row.
    let mut block = out.to_vec();
    block[0] = rows.len();
    let r0 = rows.start;
    let cols: usize = block.iter().product();
    let out_last = block[last];
    let s_last = g.strides[last];
    let mut row = 0;
    for c in 0..cg {
        let xc = &x[c * iprod..(c + 1) * iprod];
        for_each_index(g.kernel, |kidx| {
            let dst = &mut col[row * cols..(row + 1) * cols];
            row += 1;
            let mut koff = (kidx[last] * g.dilations[last]) as i64 - g.pads_begin[last];
            if last == 0 {
                koff += (r0 * s_last) as i64;
            }
            let (lo, hi) = valid_range(out_last, s_last, koff, input[last]);
            let mut o = 0;
            for_each_index(&block[..last], |oidx| {
                let dst_row = &mut dst[o..o + out_last];
                o += out_last;
                let mut off = 0usize;
                for d in 0..last {
                    let od = if d == 0 { oidx[d] + r0 } else { oidx[d] };
                    let ip = (od * g.strides[d] + kidx[d] * g.dilations[d]) as i64 - g.pads_begin[d];
                    if ip < 0 || ip >= input[d] as i64 {
                        dst_row.iter_mut().for_each(|v| *v = T::ZERO);
                        return;
                    }
                    off = off * input[d] + ip as usize;
                }
                let base = off * input[last];
                dst_row[..lo].iter_mut().for_each(|v| *v = T::ZERO);
                dst_row[hi..].iter_mut().for_each(|v| *v = T::ZERO);
                if lo < hi {
                    let start = (base as i64 + (lo * s_last) as i64 + koff) as usize;
                    if s_last == 1 {
                        dst_row[lo..hi].copy_from_slice(&xc[start..start + (hi - lo)]);
                    } else {
                        for (j, v) in dst_row[lo..hi].iter_mut().enumerate() {
                            *v = xc[start + j * s_last];
                        }
                    }
                }
            });
        });
    }
}

/// Adds `col` (`[mg * prod(kernel), cols]`, the contributions of the input rows `rows` of
/// spatial dim 0, `cols = rows.len() * prod(in[1..])`) into `y` (`[mg, out...]`, row-major):
/// the value of input position `i` and tap `k` lands at `i * stride + k * dilation - pad_begin`.
fn col2im<T: Scalar>(
    col: &[T],
    mg: usize,
    input: &[usize],
    out: &[usize],
    rows: std::ops::Range<usize>,
    g: &ConvGeom,
    y: &mut [T],
) {
    let nd = input.len();
    let last = nd - 1;
    let mut block = input.to_vec();
    block[0] = rows.len();
    let r0 = rows.start;
    let cols: usize = block.iter().product();
    let oprod: usize = out.iter().product();
    let in_last = block[last];
    let s_last = g.strides[last];
    let mut row = 0;
    for m in 0..mg {
        let ym = &mut y[m * oprod..(m + 1) * oprod];
        for_each_index(g.kernel, |kidx| {
            let src = &col[row * cols..(row + 1) * cols];
            row += 1;
            let mut koff = (kidx[last] * g.dilations[last]) as i64 - g.pads_begin[last];
            if last == 0 {
                koff += (r0 * s_last) as i64;
            }
            let (lo, hi) = valid_range(in_last, s_last, koff, out[last]);
            let mut i = 0;
            for_each_index(&block[..last], |iidx| {
                let src_row = &src[i..i + in_last];
                i += in_last;
                let mut off = 0usize;
                for d in 0..last {
                    let id = if d == 0 { iidx[d] + r0 } else { iidx[d] };
                    let op = (id * g.strides[d] + kidx[d] * g.dilations[d]) as i64 - g.pads_begin[d];
                    if op < 0 || op >= out[d] as i64 {
                        return;
                    }
                    off = off * out[d] + op as usize;
                }
                let base = off * out[last];
                if lo < hi {
                    let start = (base as i64 + (lo * s_last) as i64 + koff) as usize;
                    for (j, &v) in src_row[lo..hi].iter().enumerate() {
                        let t = &mut ym[start + j * s_last];
                        *t = t.add(v);
                    }
                }
            });
        });
    }
}

/// Number of rows of spatial dim 0 per slab so that a `[height, rows * row_len]` buffer stays
/// around 8 MiB (at least one row).
fn slab_rows<T>(height: usize, row_len: usize, total_rows: usize) -> usize {
    const TARGET_BYTES: usize = 8 << 20;
    let per_row = (height * row_len * std::mem::size_of::<T>()).max(1);
    (TARGET_BYTES / per_row).clamp(1, total_rows.max(1))
}

/// Kernel spatial shape: the `kernel_shape` attribute if present (checked against the weight
/// dims when they are static), else the weight's dims from index 2.
fn kernel_dims(attrs: &Attrs, w: &TensorType, nd: usize) -> OpResult<Option<Vec<usize>>> {
    let from_w: Option<Vec<usize>> = w.dims[2..].iter().map(|d| d.as_static().map(|n| n as usize)).collect();
    match attrs.ints("kernel_shape") {
        Some(k) if !k.is_empty() => {
            if k.len() != nd {
                return Err(format!("kernel_shape has {} dims but the input has {nd} spatial dims", k.len()));
            }
            let k: Vec<usize> = k
                .iter()
                .map(|&v| usize::try_from(v).ok().filter(|&v| v > 0))
                .collect::<Option<_>>()
                .ok_or_else(|| format!("kernel_shape must be positive, found {k:?}"))?;
            if let Some(fw) = &from_w {
                if *fw != k {
                    return Err(format!("kernel_shape {k:?} differs from the weight's spatial dims {fw:?}"));
                }
            }
            Ok(Some(k))
        }
        _ => Ok(from_w),
    }
}

fn group_attr(attrs: &Attrs) -> OpResult<usize> {
    let g = int_attr(attrs, "group", 1);
    usize::try_from(g).ok().filter(|&g| g >= 1).ok_or_else(|| format!("group must be positive, found {g}"))
}

/// Checks that a static dim is divisible by `k`.
fn check_divisible(d: &Dim, k: usize, what: &str) -> OpResult<()> {
    if let Dim::Static(n) = d {
        if *n as usize % k != 0 {
            return Err(format!("{what} ({n}) is not divisible by group ({k})"));
        }
    }
    Ok(())
}

const CONV_ATTRS: &[AttrDef] = &[
    AttrDef::opt("auto_pad", AttrKind::Str, "\"NOTSET\""),
    AttrDef::opt("dilations", AttrKind::Ints, "[1, ...]"),
    AttrDef::opt("group", AttrKind::Int, "1"),
    AttrDef::opt("kernel_shape", AttrKind::Ints, "the weight's spatial dims"),
    AttrDef::opt("pads", AttrKind::Ints, "[0, ...]"),
    AttrDef::opt("strides", AttrKind::Ints, "[1, ...]"),
];

// ---------------------------------------------------------------------------------------------
// nn.conv
// ---------------------------------------------------------------------------------------------

pub static CONV: OpDef = OpDef {
    name: "nn.conv",
    summary: "N-D convolution (cross-correlation) of X `[N, C, D...]` with W `[M, C/group, k...]` \
              plus optional bias B `[M]` (ONNX Conv).",
    operands: &["X", "W", "B?"],
    results: &["Y"],
    attrs: CONV_ATTRS,
    traits: Traits::PURE,
    infer: infer_conv,
    eval: eval_conv,
};

/// Validated operand types of a conv: spatial rank and kernel.
fn conv_operands(ctx: &InferCtx) -> OpResult<(usize, Option<Vec<usize>>)> {
    let x = operand(ctx, 0)?;
    let w = operand(ctx, 1)?;
    float_scalar(x, "X")?;
    same_elem(x, w, "X and W")?;
    if x.rank() < 3 {
        return Err(format!("X must have rank >= 3 ([N, C, spatial...]), found {}", x.rank()));
    }
    if w.rank() != x.rank() {
        return Err(format!("W has rank {} but X has rank {}", w.rank(), x.rank()));
    }
    let nd = x.rank() - 2;
    Ok((nd, kernel_dims(ctx.attrs, w, nd)?))
}

fn infer_conv(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let (nd, kernel) = conv_operands(ctx)?;
    let (x, w) = (operand(ctx, 0)?, operand(ctx, 1)?);
    let group = group_attr(ctx.attrs)?;
    check_divisible(&w.dims[0], group, "the output channels M")?;
    unify_dims(
        &x.dims[1],
        &super::linalg::dim_times(&w.dims[1], group as u64),
        "X channels vs W channels * group",
    )?;
    if ctx.has_operand(2) {
        let b = operand(ctx, 2)?;
        same_elem(x, b, "X and B")?;
        if b.rank() != 1 {
            return Err(format!("B must be 1-D, found rank {}", b.rank()));
        }
        unify_dims(&b.dims[0], &w.dims[0], "B length vs output channels")?;
    }
    let mut dims = vec![x.dims[0].clone(), w.dims[0].clone()];
    match kernel {
        Some(k) => {
            let win = Window::from_attrs(ctx.attrs, k, false)?;
            dims.extend(win.out_dims(&x.dims[2..])?);
        }
        None => {
            // Still validate the list attributes' lengths.
            spatial_attr(ctx.attrs, "strides", nd, 1)?;
            spatial_attr(ctx.attrs, "dilations", nd, 1)?;
            pads_attr(ctx.attrs, nd)?;
            auto_pad(ctx.attrs)?;
            dims.extend(std::iter::repeat_n(Dim::Unknown, nd));
        }
    }
    Ok(vec![TensorType::new(dims, x.elem.clone())])
}

fn eval_conv(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let ins = [Some(input(ctx, 0)?), Some(input(ctx, 1)?), ctx.opt_input(2)];
    Ok(vec![dispatch(&ConvK(ctx.attrs), &ins, true)?])
}

struct ConvK<'a>(&'a Attrs);

impl Kernel for ConvK<'_> {
    fn run<T: Scalar>(&self, ins: &[Option<ArrayViewD<T>>]) -> OpResult<ArrayD<T>> {
        match ins {
            [Some(x), Some(w), b] => conv(self.0, x, w, b.as_ref()),
            _ => Err("Conv takes X, W and an optional B".into()),
        }
    }
}

/// Shape checks common to both convolution evaluations.
fn check_conv_ranks(x: &[usize], w: &[usize]) -> OpResult<usize> {
    if x.len() < 3 || w.len() != x.len() {
        return Err(format!("X {x:?} and W {w:?} must have the same rank >= 3"));
    }
    Ok(x.len() - 2)
}

fn runtime_kernel(attrs: &Attrs, w: &[usize]) -> OpResult<Vec<usize>> {
    let ty = TensorType::of(w, crate::types::ScalarType::F32);
    kernel_dims(attrs, &ty, w.len() - 2)?.ok_or_else(|| "internal: static kernel".into())
}

pub(crate) fn conv<T: Scalar>(
    attrs: &Attrs,
    x: &ArrayViewD<T>,
    w: &ArrayViewD<T>,
    b: Option<&ArrayViewD<T>>,
) -> OpResult<ArrayD<T>> {
    check_conv_ranks(x.shape(), w.shape())?;
    let kernel = runtime_kernel(attrs, w.shape())?;
    let win = Window::from_attrs(attrs, kernel, false)?;
    let group = group_attr(attrs)?;
    let (n, c) = (x.shape()[0], x.shape()[1]);
    let m = w.shape()[0];
    let input = &x.shape()[2..];
    if m % group != 0 || c % group != 0 || w.shape()[1] * group != c {
        return Err(format!("channels do not match: X {:?}, W {:?}, group {group}", x.shape(), w.shape()));
    }
    if let Some(b) = &b {
        if b.shape() != [m] {
            return Err(format!("B has shape {:?}, expected [{m}]", b.shape()));
        }
    }
    let (out, begins) = win.resolve(input)?;
    let (cg, mg) = (c / group, m / group);
    let kprod: usize = win.kernel.iter().product();
    let iprod: usize = input.iter().product();
    let oprod: usize = out.iter().product();
    let mut yshape = vec![n, m];
    yshape.extend(&out);
    let mut y = ArrayD::from_elem(IxDyn(&yshape), T::ZERO);
    if y.is_empty() {
        return Ok(y);
    }
    let xs = x.as_standard_layout();
    let ws = w.as_standard_layout();
    let xs = xs.as_slice().ok_or("internal: layout")?;
    let ws = ws.as_slice().ok_or("internal: layout")?;
    let geom = ConvGeom {
        kernel: &win.kernel,
        strides: &win.strides,
        dilations: &win.dilations,
        pads_begin: begins.iter().map(|&p| p as i64).collect(),
    };
    // A 1x1 kernel with unit strides and no padding reads the input as it is.
    let direct =
        kprod == 1 && win.strides.iter().all(|&s| s == 1) && begins.iter().all(|&p| p == 0) && out == input;
    let row_len: usize = out[1..].iter().product();
    let slab = slab_rows::<T>(cg * kprod, row_len, out[0]);
    let mut col = if direct { Vec::new() } else { vec![T::ZERO; cg * kprod * slab * row_len] };
    let ys = y.as_slice_mut().ok_or("internal: layout")?;
    for ni in 0..n {
        for gi in 0..group {
            let xg = &xs[(ni * c + gi * cg) * iprod..(ni * c + (gi + 1) * cg) * iprod];
            let wg = ArrayView2::from_shape(
                (mg, cg * kprod),
                &ws[gi * mg * cg * kprod..(gi + 1) * mg * cg * kprod],
            )
            .map_err(|e| e.to_string())?;
            let yg = &mut ys[(ni * m + gi * mg) * oprod..(ni * m + (gi + 1) * mg) * oprod];
            let mut yv = ndarray::ArrayViewMut2::from_shape((mg, oprod), yg).map_err(|e| e.to_string())?;
            if direct {
                let xv = ArrayView2::from_shape((cg, oprod), xg).map_err(|e| e.to_string())?;
                T::gemm(T::ONE, &wg, &xv, T::ZERO, &mut yv);
                continue;
            }
            let mut r0 = 0;
            while r0 < out[0] {
                let r1 = (r0 + slab).min(out[0]);
                let cols = (r1 - r0) * row_len;
                let colv = &mut col[..cg * kprod * cols];
                im2col(xg, cg, input, &out, r0..r1, &geom, colv);
                let colv =
                    ArrayView2::from_shape((cg * kprod, cols), &colv[..]).map_err(|e| e.to_string())?;
                let mut yslab = yv.slice_mut(ndarray::s![.., r0 * row_len..r1 * row_len]);
                T::gemm(T::ONE, &wg, &colv, T::ZERO, &mut yslab);
                r0 = r1;
            }
        }
    }
    if let Some(b) = b {
        add_channel_bias(ys, n, m, oprod, b);
    }
    Ok(y)
}

/// Adds `b[m]` to every element of channel `m` of `[n, m, spatial]` data.
fn add_channel_bias<T: Scalar>(y: &mut [T], n: usize, m: usize, plane: usize, b: &ArrayViewD<T>) {
    for ni in 0..n {
        for (mi, &bv) in b.iter().enumerate().take(m) {
            let start = (ni * m + mi) * plane;
            y[start..start + plane].iter_mut().for_each(|v| *v = v.add(bv));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// nn.conv_transpose
// ---------------------------------------------------------------------------------------------

pub static CONV_TRANSPOSE: OpDef = OpDef {
    name: "nn.conv_transpose",
    summary: "N-D transposed convolution of X `[N, C, D...]` with W `[C, M/group, k...]` plus \
              optional bias B `[M]` (ONNX ConvTranspose).",
    operands: &["X", "W", "B?"],
    results: &["Y"],
    attrs: &[
        AttrDef::opt("auto_pad", AttrKind::Str, "\"NOTSET\""),
        AttrDef::opt("dilations", AttrKind::Ints, "[1, ...]"),
        AttrDef::opt("group", AttrKind::Int, "1"),
        AttrDef::opt("kernel_shape", AttrKind::Ints, "the weight's spatial dims"),
        AttrDef::opt("output_padding", AttrKind::Ints, "[0, ...]"),
        AttrDef::opt("output_shape", AttrKind::Ints, "computed from the other attributes"),
        AttrDef::opt("pads", AttrKind::Ints, "[0, ...]"),
        AttrDef::opt("strides", AttrKind::Ints, "[1, ...]"),
    ],
    traits: Traits::PURE,
    infer: infer_conv_transpose,
    eval: eval_conv_transpose,
};

/// Resolved geometry of a transposed convolution.
struct TransposeGeom {
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    output_padding: Vec<usize>,
    /// Explicit `output_shape` (spatial part), if given.
    output_shape: Option<Vec<usize>>,
    pads: Vec<(usize, usize)>,
    auto_pad: AutoPad,
}

impl TransposeGeom {
    fn new(attrs: &Attrs, kernel: Vec<usize>) -> OpResult<TransposeGeom> {
        let nd = kernel.len();
        // As for Conv: a zero kernel has no taps (and `out_dim` subtracts one from it).
        if kernel.contains(&0) {
            return Err(format!("kernel_shape must be positive, found {kernel:?}"));
        }
        let strides = spatial_attr(attrs, "strides", nd, 1)?;
        let output_padding: Vec<usize> = match attrs.ints("output_padding") {
            Some(v) if !v.is_empty() => {
                if v.len() != nd {
                    return Err(format!("output_padding has {} values for {nd} spatial dims", v.len()));
                }
                v.iter()
                    .map(|&p| usize::try_from(p).ok())
                    .collect::<Option<_>>()
                    .ok_or_else(|| format!("output_padding must be non-negative, found {v:?}"))?
            }
            _ => vec![0; nd],
        };
        let output_shape = match attrs.ints("output_shape") {
            Some(v) if !v.is_empty() => {
                // Some exporters write the full [N, C, spatial...] shape.
                let sp = if v.len() == nd + 2 { &v[2..] } else { v };
                if sp.len() != nd {
                    return Err(format!("output_shape has {} values for {nd} spatial dims", v.len()));
                }
                Some(
                    sp.iter()
                        .map(|&p| usize::try_from(p).ok())
                        .collect::<Option<_>>()
                        .ok_or_else(|| format!("output_shape must be non-negative, found {v:?}"))?,
                )
            }
            _ => None,
        };
        Ok(TransposeGeom {
            dilations: spatial_attr(attrs, "dilations", nd, 1)?,
            pads: pads_attr(attrs, nd)?,
            auto_pad: auto_pad(attrs)?,
            kernel,
            strides,
            output_padding,
            output_shape,
        })
    }

    /// Output extent and begin pad (negative when the output is larger than the natural
    /// extent) of spatial dim `d`. Kernel, dilation, stride, padding and output shape all come
    /// from the model, so every step is checked: a product that wraps is an error, not a wrong
    /// extent (a stride of 2^62 made the fuzzer's models overflow).
    fn out_dim(&self, d: usize, input: usize) -> OpResult<(usize, i64)> {
        let ovf = || format!("spatial dim {d}: the output extent overflows");
        let i = |v: usize| i64::try_from(v).map_err(|_| ovf());
        let ek = i(self.kernel[d] - 1)?
            .checked_mul(i(self.dilations[d])?)
            .and_then(|v| v.checked_add(1))
            .ok_or_else(ovf)?;
        let natural = i(self.strides[d])?
            .checked_mul(i(input)? - 1)
            .and_then(|v| v.checked_add(i(self.output_padding[d]).ok()?))
            .and_then(|v| v.checked_add(ek))
            .ok_or_else(ovf)?;
        let split = |out: i64| -> OpResult<i64> {
            let total = natural.checked_sub(out).ok_or_else(ovf)?;
            // Floor division, so that a negative total puts the extra output at the end.
            let half = total.div_euclid(2);
            Ok(if self.auto_pad == AutoPad::SameUpper { half } else { total - half })
        };
        let (out, begin) = if let Some(os) = &self.output_shape {
            let o = i(os[d])?;
            (o, split(o)?)
        } else if matches!(self.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
            let o = i(input)?.checked_mul(i(self.strides[d])?).ok_or_else(ovf)?;
            (o, split(o)?)
        } else if self.auto_pad == AutoPad::Valid {
            (natural, 0)
        } else {
            let (pb, pe) = self.pads[d];
            let out = natural.checked_sub(i(pb)?).and_then(|v| v.checked_sub(i(pe).ok()?)).ok_or_else(ovf)?;
            (out, i(pb)?)
        };
        if out < 0 {
            return Err(format!("spatial dim {d}: the output extent {out} is negative"));
        }
        Ok((out as usize, begin))
    }
}

fn infer_conv_transpose(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let (nd, kernel) = conv_operands(ctx)?;
    let (x, w) = (operand(ctx, 0)?, operand(ctx, 1)?);
    let group = group_attr(ctx.attrs)?;
    check_divisible(&w.dims[0], group, "the input channels C")?;
    unify_dims(&x.dims[1], &w.dims[0], "X channels vs W dim 0")?;
    let m = super::linalg::dim_times(&w.dims[1], group as u64);
    if ctx.has_operand(2) {
        let b = operand(ctx, 2)?;
        same_elem(x, b, "X and B")?;
        if b.rank() != 1 {
            return Err(format!("B must be 1-D, found rank {}", b.rank()));
        }
        unify_dims(&b.dims[0], &m, "B length vs output channels")?;
    }
    let mut dims = vec![x.dims[0].clone(), m];
    // Without a static kernel the geometry is still validated with a placeholder kernel.
    let geom = TransposeGeom::new(ctx.attrs, kernel.clone().unwrap_or_else(|| vec![1; nd]))?;
    for d in 0..nd {
        dims.push(match (&geom.output_shape, &kernel, &x.dims[2 + d]) {
            (Some(os), _, _) => Dim::Static(os[d] as u64),
            (None, Some(_), Dim::Static(n)) => Dim::Static(geom.out_dim(d, *n as usize)?.0 as u64),
            _ => Dim::Unknown,
        });
    }
    Ok(vec![TensorType::new(dims, x.elem.clone())])
}

fn eval_conv_transpose(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let ins = [Some(input(ctx, 0)?), Some(input(ctx, 1)?), ctx.opt_input(2)];
    Ok(vec![dispatch(&ConvTransposeK(ctx.attrs), &ins, true)?])
}

struct ConvTransposeK<'a>(&'a Attrs);

impl Kernel for ConvTransposeK<'_> {
    fn run<T: Scalar>(&self, ins: &[Option<ArrayViewD<T>>]) -> OpResult<ArrayD<T>> {
        match ins {
            [Some(x), Some(w), b] => conv_transpose(self.0, x, w, b.as_ref()),
            _ => Err("ConvTranspose takes X, W and an optional B".into()),
        }
    }
}

pub(crate) fn conv_transpose<T: Scalar>(
    attrs: &Attrs,
    x: &ArrayViewD<T>,
    w: &ArrayViewD<T>,
    b: Option<&ArrayViewD<T>>,
) -> OpResult<ArrayD<T>> {
    check_conv_ranks(x.shape(), w.shape())?;
    let kernel = runtime_kernel(attrs, w.shape())?;
    let geom = TransposeGeom::new(attrs, kernel)?;
    let group = group_attr(attrs)?;
    let (n, c) = (x.shape()[0], x.shape()[1]);
    if w.shape()[0] != c || c % group != 0 {
        return Err(format!("channels do not match: X {:?}, W {:?}, group {group}", x.shape(), w.shape()));
    }
    let (cg, mg) = (c / group, w.shape()[1]);
    let m = mg * group;
    if let Some(b) = b {
        if b.shape() != [m] {
            return Err(format!("B has shape {:?}, expected [{m}]", b.shape()));
        }
    }
    let input = &x.shape()[2..];
    let mut out = Vec::with_capacity(input.len());
    let mut begins = Vec::with_capacity(input.len());
    for (d, &i) in input.iter().enumerate() {
        let (o, pb) = geom.out_dim(d, i)?;
        out.push(o);
        begins.push(pb);
    }
    let kprod: usize = geom.kernel.iter().product();
    let iprod: usize = input.iter().product();
    let oprod: usize = out.iter().product();
    let mut yshape = vec![n, m];
    yshape.extend(&out);
    let mut y = ArrayD::from_elem(IxDyn(&yshape), T::ZERO);
    if y.is_empty() {
        return Ok(y);
    }
    let xs = x.as_standard_layout();
    let ws = w.as_standard_layout();
    let xs = xs.as_slice().ok_or("internal: layout")?;
    let ws = ws.as_slice().ok_or("internal: layout")?;
    let cgeom = ConvGeom {
        kernel: &geom.kernel,
        strides: &geom.strides,
        dilations: &geom.dilations,
        pads_begin: begins,
    };
    let row_len: usize = input[1..].iter().product();
    let slab = slab_rows::<T>(mg * kprod, row_len, input[0]);
    let mut col = vec![T::ZERO; mg * kprod * slab * row_len];
    let ys = y.as_slice_mut().ok_or("internal: layout")?;
    for ni in 0..n {
        for gi in 0..group {
            let xg = &xs[(ni * c + gi * cg) * iprod..(ni * c + (gi + 1) * cg) * iprod];
            let xv = ArrayView2::from_shape((cg, iprod), xg).map_err(|e| e.to_string())?;
            let wg = ArrayView2::from_shape(
                (cg, mg * kprod),
                &ws[gi * cg * mg * kprod..(gi + 1) * cg * mg * kprod],
            )
            .map_err(|e| e.to_string())?;
            let yg = &mut ys[(ni * m + gi * mg) * oprod..(ni * m + (gi + 1) * mg) * oprod];
            let mut r0 = 0;
            while r0 < input[0] {
                let r1 = (r0 + slab).min(input[0]);
                let cols = (r1 - r0) * row_len;
                {
                    let mut colv =
                        ndarray::ArrayViewMut2::from_shape((mg * kprod, cols), &mut col[..mg * kprod * cols])
                            .map_err(|e| e.to_string())?;
                    let xslab = xv.slice(ndarray::s![.., r0 * row_len..r1 * row_len]);
                    T::gemm(T::ONE, &wg.t(), &xslab, T::ZERO, &mut colv);
                }
                col2im(&col[..mg * kprod * cols], mg, input, &out, r0..r1, &cgeom, yg);
                r0 = r1;
            }
        }
    }
    if let Some(b) = b {
        add_channel_bias(ys, n, m, oprod, b);
    }
    Ok(y)
}

/// Resolved geometry of a conv, transposed conv or pool for static input spatial dims: what a
/// code generator needs, computed by the same rules as the reference evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    /// Begin padding per spatial dim (negative for a transposed conv whose output is larger than
    /// its natural extent).
    pub pads_begin: Vec<i64>,
    /// End padding per spatial dim (0 for transposed convs, whose begin pad says it all).
    pub pads_end: Vec<i64>,
    /// Output spatial dims.
    pub out: Vec<usize>,
}

fn window_geometry(win: Window, input: &[usize]) -> OpResult<ConvGeometry> {
    let mut out = Vec::new();
    let (mut pads_begin, mut pads_end) = (Vec::new(), Vec::new());
    for (d, &n) in input.iter().enumerate() {
        let (o, pb, pe) = win.out_dim(d, n)?;
        out.push(o);
        pads_begin.push(pb as i64);
        pads_end.push(pe as i64);
    }
    Ok(ConvGeometry {
        pads_begin,
        pads_end,
        out,
        kernel: win.kernel,
        strides: win.strides,
        dilations: win.dilations,
    })
}

/// Geometry of `nn.conv` (and `q.conv_integer`/`q.qlinear_conv`) with weight shape `w`.
pub fn conv_geometry(attrs: &Attrs, w: &[usize], input: &[usize]) -> OpResult<ConvGeometry> {
    window_geometry(Window::from_attrs(attrs, runtime_kernel(attrs, w)?, false)?, input)
}

/// Geometry of `nn.conv_transpose` with weight shape `w`.
pub fn conv_transpose_geometry(attrs: &Attrs, w: &[usize], input: &[usize]) -> OpResult<ConvGeometry> {
    let g = TransposeGeom::new(attrs, runtime_kernel(attrs, w)?)?;
    let mut out = Vec::new();
    let mut pads_begin = Vec::new();
    for (d, &i) in input.iter().enumerate() {
        let (o, b) = g.out_dim(d, i)?;
        out.push(o);
        pads_begin.push(b);
    }
    let pads_end = vec![0; out.len()];
    Ok(ConvGeometry {
        kernel: g.kernel,
        strides: g.strides,
        dilations: g.dilations,
        pads_begin,
        pads_end,
        out,
    })
}

/// Geometry of a pooling op with explicit `kernel_shape` and the given `ceil_mode`.
pub fn pool_geometry(
    attrs: &Attrs,
    kernel: Vec<usize>,
    ceil_mode: bool,
    input: &[usize],
) -> OpResult<ConvGeometry> {
    window_geometry(Window::from_attrs(attrs, kernel, ceil_mode)?, input)
}
