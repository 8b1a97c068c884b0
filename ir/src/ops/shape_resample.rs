//! Resampling ops of the `shape.*` family: pad (constant, edge, reflect, wrap; negative pads
//! crop) and resize (nearest, N-D linear and cubic, antialiasing, every ONNX coordinate
//! transformation).
//!
//! Resize is separable: it resamples one axis at a time. Along one axis every output position
//! maps to a source coordinate (the coordinate transformation); nearest mode picks one source
//! index, linear and cubic a weighted set of taps around it. Nearest resizing is therefore an
//! element selection, exact for every element type; linear and cubic compute in f64 and round
//! back (integers round half to even and saturate).

use super::shape::{
    attr_int, attr_str, check_int_operand, clamp_nibbles, kept_elem, norm_axes, opt_const_ints, same_arrays,
    select, static_len, to_usize, Elem,
};
use super::util::{input, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::{AttrKind, Attrs};
use crate::map_tensor;
use crate::tensor::Tensor;
use crate::types::{Dim, TensorType};
use ndarray::ArrayD;

// ---------------------------------------------------------------------------------------------
// Pad
// ---------------------------------------------------------------------------------------------

pub static PAD: OpDef = OpDef {
    name: "shape.pad",
    summary: "Pads (or, with negative pads, crops) `data` along `axes`; pads = [begins..., ends...]; \
              mode constant (constant_value, default 0), edge, reflect or wrap.",
    operands: &["data", "pads", "constant_value?", "axes?"],
    results: &["output"],
    attrs: &[AttrDef::opt("mode", AttrKind::Str, "\"constant\"")],
    traits: Traits::PURE,
    infer: infer_pad,
    eval: eval_pad,
};

#[derive(Clone, Copy, PartialEq)]
enum PadMode {
    Constant,
    Edge,
    Reflect,
    Wrap,
}

fn pad_mode(attrs: &Attrs) -> OpResult<PadMode> {
    Ok(match attr_str(attrs, "mode", "constant") {
        "constant" => PadMode::Constant,
        "edge" => PadMode::Edge,
        "reflect" => PadMode::Reflect,
        "wrap" => PadMode::Wrap,
        m => return Err(format!("pad: unknown mode {m:?} (expected constant, edge, reflect, wrap)")),
    })
}

/// Per-axis (begin, end) pads for the whole rank.
fn pad_amounts(rank: usize, pads: &[i64], axes: Option<&[i64]>) -> OpResult<Vec<(i64, i64)>> {
    let axes = match axes {
        Some(a) => norm_axes(a, rank, "pad axes")?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!(
            "pad has {} pads for {} axes (expected {})",
            pads.len(),
            axes.len(),
            2 * axes.len()
        ));
    }
    let mut out = vec![(0, 0); rank];
    for (i, &a) in axes.iter().enumerate() {
        out[a] = (pads[i], pads[axes.len() + i]);
    }
    Ok(out)
}

fn padded_len(d: u64, (b, e): (i64, i64)) -> OpResult<u64> {
    let n = d as i128 + b as i128 + e as i128;
    u64::try_from(n).map_err(|_| format!("pads ({b}, {e}) crop more than the dim {d}"))
}

fn infer_pad(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    let rank = data.rank();
    let pads_ty = operand(ctx, 1)?;
    check_int_operand(pads_ty, "pad `pads`")?;
    static_len(pads_ty, "pad `pads`")?;
    pad_mode(ctx.attrs)?;
    if ctx.has_operand(2) {
        let c = operand(ctx, 2)?;
        if c.elem.storage() != data.elem.storage() || c.num_elements().is_some_and(|n| n != 1) {
            return Err(format!("pad constant_value must be one element of {}, found {c}", data.elem));
        }
    }
    let axes = opt_const_ints(ctx, 3, "pad `axes`")?;
    let axes_known = axes.is_some() || !ctx.has_operand(3);
    let mut dims = data.dims.clone();
    match opt_const_ints(ctx, 1, "pad `pads`")? {
        Some(pads) if axes_known => {
            for (d, p) in dims.iter_mut().zip(pad_amounts(rank, &pads, axes.as_deref())?) {
                *d = match d {
                    Dim::Static(n) => Dim::Static(padded_len(*n, p)?),
                    _ if p.0 + p.1 == 0 && p.0 >= 0 => d.clone(),
                    _ => Dim::Unknown,
                };
            }
        }
        _ => match &axes {
            Some(a) => norm_axes(a, rank, "pad axes")?.into_iter().for_each(|a| dims[a] = Dim::Unknown),
            None => dims.iter_mut().for_each(|d| *d = Dim::Unknown),
        },
    }
    let elem = kept_elem(data, &dims, "pad")?;
    Ok(vec![TensorType { dims, elem }])
}

/// The source index of each output position along one axis (`None`: the constant).
/// Negative pads crop first; positive pads then extend what is left.
fn pad_selection(dim: usize, (b, e): (i64, i64), mode: PadMode) -> OpResult<Vec<Option<usize>>> {
    let lo = (-b).max(0) as usize;
    let cut_end = (-e).max(0) as usize;
    if lo + cut_end > dim {
        return Err(format!("pads ({b}, {e}) crop more than the dim {dim}"));
    }
    let n = (dim - lo - cut_end) as i64;
    let (pb, pe) = (b.max(0), e.max(0));
    if n == 0 && pb + pe > 0 && mode != PadMode::Constant {
        return Err(format!(
            "pad mode {} needs a non-empty axis",
            ["", "edge", "reflect", "wrap"][mode as usize]
        ));
    }
    let out_len = n + pb + pe;
    Ok((0..out_len)
        .map(|o| {
            let i = o - pb;
            let src = if (0..n).contains(&i) {
                Some(i)
            } else {
                match mode {
                    PadMode::Constant => None,
                    PadMode::Edge => Some(i.clamp(0, n - 1)),
                    // Mirror without repeating the edge element; the pattern has period 2(n-1).
                    PadMode::Reflect if n == 1 => Some(0),
                    PadMode::Reflect => {
                        let period = 2 * (n - 1);
                        let m = i.rem_euclid(period);
                        Some(if m >= n { period - m } else { m })
                    }
                    PadMode::Wrap => Some(i.rem_euclid(n)),
                }
            };
            src.map(|s| s as usize + lo)
        })
        .collect())
}

fn pad_array<T: Elem>(
    data: &Tensor,
    a: &ArrayD<T>,
    sel: &[Vec<Option<usize>>],
    value: Option<&Tensor>,
) -> OpResult<ArrayD<T>> {
    let fill = match value {
        Some(v) => same_arrays::<T>(data, &[v], "pad constant_value")?[0]
            .iter()
            .next()
            .cloned()
            .ok_or("pad constant_value is empty")?,
        None => T::zero(),
    };
    select(a, sel, Some(&fill))
}

fn eval_pad(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let shape = data.shape();
    let mode = pad_mode(ctx.attrs)?;
    let pads = super::shape::ints(input(ctx, 1)?, "pad `pads`")?;
    let axes = ctx.opt_input(3).map(|t| super::shape::ints(t, "pad `axes`")).transpose()?;
    let amounts = pad_amounts(shape.len(), &pads, axes.as_deref())?;
    let sel: Vec<Vec<Option<usize>>> =
        shape.iter().zip(amounts).map(|(&d, p)| pad_selection(d, p, mode)).collect::<Result<_, _>>()?;
    let value = ctx.opt_input(2);
    if let Some(v) = value {
        if v.len() != 1 {
            return Err(format!("pad constant_value must be a scalar, found shape {:?}", v.shape()));
        }
    }
    Ok(vec![map_tensor!(data, a => pad_array(data, a, &sel, value)?)])
}

// ---------------------------------------------------------------------------------------------
// Resize
// ---------------------------------------------------------------------------------------------

pub static RESIZE: OpDef = OpDef {
    name: "shape.resize",
    summary: "Resizes `X` by `scales` or to `sizes` along `axes` with nearest, linear or cubic \
              interpolation (ONNX Resize-19).",
    operands: &["X", "roi?", "scales?", "sizes?"],
    results: &["Y"],
    attrs: &[
        AttrDef::opt("antialias", AttrKind::Int, "0"),
        AttrDef::opt("axes", AttrKind::Ints, "all axes"),
        AttrDef::opt("coordinate_transformation_mode", AttrKind::Str, "\"half_pixel\""),
        AttrDef::opt("cubic_coeff_a", AttrKind::Float, "-0.75"),
        AttrDef::opt("exclude_outside", AttrKind::Int, "0"),
        AttrDef::opt("extrapolation_value", AttrKind::Float, "0.0"),
        AttrDef::opt("keep_aspect_ratio_policy", AttrKind::Str, "\"stretch\""),
        AttrDef::opt("mode", AttrKind::Str, "\"nearest\""),
        AttrDef::opt("nearest_mode", AttrKind::Str, "\"round_prefer_floor\""),
    ],
    traits: Traits::PURE,
    infer: infer_resize,
    eval: eval_resize,
};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Interp {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Rounding {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum AspectPolicy {
    Stretch,
    NotLarger,
    NotSmaller,
}

/// The attributes of a resize, decoded and checked.
struct ResizeAttrs {
    interp: Interp,
    coord: Coord,
    rounding: Rounding,
    cubic_a: f64,
    exclude_outside: bool,
    extrapolation: f64,
    antialias: bool,
    policy: AspectPolicy,
    axes: Vec<usize>,
}

fn resize_attrs(attrs: &Attrs, rank: usize) -> OpResult<ResizeAttrs> {
    let interp = match attr_str(attrs, "mode", "nearest") {
        "nearest" => Interp::Nearest,
        "linear" => Interp::Linear,
        "cubic" => Interp::Cubic,
        m => return Err(format!("resize: unknown mode {m:?} (expected nearest, linear, cubic)")),
    };
    let coord = match attr_str(attrs, "coordinate_transformation_mode", "half_pixel") {
        "half_pixel" => Coord::HalfPixel,
        "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "align_corners" => Coord::AlignCorners,
        "asymmetric" => Coord::Asymmetric,
        "tf_crop_and_resize" => Coord::TfCropAndResize,
        m => return Err(format!("resize: unknown coordinate_transformation_mode {m:?}")),
    };
    let rounding = match attr_str(attrs, "nearest_mode", "round_prefer_floor") {
        "round_prefer_floor" => Rounding::RoundPreferFloor,
        "round_prefer_ceil" => Rounding::RoundPreferCeil,
        "floor" => Rounding::Floor,
        "ceil" => Rounding::Ceil,
        m => return Err(format!("resize: unknown nearest_mode {m:?}")),
    };
    let policy = match attr_str(attrs, "keep_aspect_ratio_policy", "stretch") {
        "stretch" => AspectPolicy::Stretch,
        "not_larger" => AspectPolicy::NotLarger,
        "not_smaller" => AspectPolicy::NotSmaller,
        m => return Err(format!("resize: unknown keep_aspect_ratio_policy {m:?}")),
    };
    let axes = match attrs.ints("axes") {
        Some(a) => norm_axes(a, rank, "resize axes")?,
        None => (0..rank).collect(),
    };
    Ok(ResizeAttrs {
        interp,
        coord,
        rounding,
        cubic_a: attrs.float("cubic_coeff_a").unwrap_or(-0.75),
        exclude_outside: attr_int(attrs, "exclude_outside", 0) != 0,
        extrapolation: attrs.float("extrapolation_value").unwrap_or(0.0),
        antialias: attr_int(attrs, "antialias", 0) != 0,
        policy,
        axes,
    })
}

/// Output length (None when unknown) and scale of every axis, from `scales` or `sizes` (each
/// listing the resized axes in `axes` order). Unresized axes keep their length with scale 1.
fn resize_geometry(
    in_dims: &[Option<usize>],
    ra: &ResizeAttrs,
    scales: Option<&[f64]>,
    sizes: Option<&[i64]>,
) -> OpResult<(Vec<Option<usize>>, Vec<f64>)> {
    let mut out = in_dims.to_vec();
    let mut scale = vec![1.0; in_dims.len()];
    let n = ra.axes.len();
    if let Some(s) = scales {
        if s.len() != n {
            return Err(format!("resize has {} scales for {n} axes", s.len()));
        }
        for (&ax, &sc) in ra.axes.iter().zip(s) {
            if !(sc > 0.0) || !sc.is_finite() {
                return Err(format!("resize scales must be positive, found {sc}"));
            }
            scale[ax] = sc;
            // floor(length * scale), computed in double precision.
            out[ax] = in_dims[ax].map(|d| (d as f64 * sc).floor() as usize);
        }
    } else if let Some(sz) = sizes {
        if sz.len() != n {
            return Err(format!("resize has {} sizes for {n} axes", sz.len()));
        }
        for (&ax, &v) in ra.axes.iter().zip(sz) {
            let v = to_usize(v, "resize sizes")?;
            out[ax] = Some(v);
            scale[ax] = match in_dims[ax] {
                Some(0) if v > 0 => return Err(format!("resize cannot enlarge the empty axis {ax}")),
                Some(d) => v as f64 / d as f64,
                None => f64::NAN,
            };
        }
        if ra.policy != AspectPolicy::Stretch {
            // One scale for all resized axes, and the sizes rounded from it.
            let per: Vec<f64> = ra.axes.iter().map(|&a| scale[a]).collect();
            let common = if per.iter().any(|s| s.is_nan()) {
                f64::NAN
            } else if ra.policy == AspectPolicy::NotLarger {
                per.iter().copied().fold(f64::INFINITY, f64::min)
            } else {
                per.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            };
            for &ax in &ra.axes {
                scale[ax] = common;
                out[ax] = if common.is_nan() {
                    None
                } else {
                    in_dims[ax].map(|d| (common * d as f64 + 0.5).floor() as usize)
                };
            }
        }
    } else {
        return Err("resize needs exactly one of `scales` and `sizes`".into());
    }
    Ok((out, scale))
}

fn check_scales_sizes(has_scales: bool, has_sizes: bool) -> OpResult<()> {
    if has_scales == has_sizes {
        return Err("resize needs exactly one of `scales` and `sizes`".into());
    }
    Ok(())
}

fn infer_resize(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    let ra = resize_attrs(ctx.attrs, x.rank())?;
    let (has_scales, has_sizes) = (ctx.has_operand(2), ctx.has_operand(3));
    check_scales_sizes(has_scales, has_sizes)?;
    if has_sizes {
        check_int_operand(operand(ctx, 3)?, "resize `sizes`")?;
    }
    let in_dims: Vec<Option<usize>> = x.dims.iter().map(|d| d.as_static().map(|n| n as usize)).collect();
    let scales = if has_scales { ctx.opt_const(2).map(|t| t.to_f64_vec()) } else { None };
    let sizes = if has_sizes { opt_const_ints(ctx, 3, "resize `sizes`")? } else { None };
    let mut dims = x.dims.clone();
    if scales.is_some() || sizes.is_some() {
        let (out, scale) = resize_geometry(&in_dims, &ra, scales.as_deref(), sizes.as_deref())?;
        for &ax in &ra.axes {
            dims[ax] = match out[ax] {
                Some(n) => Dim::Static(n as u64),
                // A symbolic dim resized by 1 keeps its name.
                None if scale[ax] == 1.0 && scales.is_some() => x.dims[ax].clone(),
                None => Dim::Unknown,
            };
        }
    } else {
        for &ax in &ra.axes {
            dims[ax] = Dim::Unknown;
        }
    }
    let elem = kept_elem(x, &dims, "resize")?;
    Ok(vec![TensorType { dims, elem }])
}

/// The source coordinate of output position `y` along an axis (ONNX's coordinate
/// transformations). `out_w` is `scale * in_len`, which differs from `out_len` when the scale
/// does not divide evenly.
fn source_coord(coord: Coord, y: f64, scale: f64, in_len: usize, out_len: usize, roi: (f64, f64)) -> f64 {
    let in_f = in_len as f64;
    let out_w = scale * in_f;
    match coord {
        Coord::HalfPixel => (y + 0.5) / scale - 0.5,
        Coord::HalfPixelSymmetric => {
            let adjustment = out_len as f64 / out_w;
            let center = in_f / 2.0;
            center * (1.0 - adjustment) + (y + 0.5) / scale - 0.5
        }
        Coord::PytorchHalfPixel if out_len > 1 => (y + 0.5) / scale - 0.5,
        Coord::PytorchHalfPixel => 0.0,
        Coord::AlignCorners if out_w == 1.0 => 0.0,
        Coord::AlignCorners => y * (in_f - 1.0) / (out_w - 1.0),
        Coord::Asymmetric => y / scale,
        Coord::TfCropAndResize => {
            let (r0, r1) = roi;
            let x = if out_w == 1.0 {
                (r1 - r0) * (in_f - 1.0) / 2.0
            } else {
                y * (r1 - r0) * (in_f - 1.0) / (out_w - 1.0)
            };
            x + r0 * (in_f - 1.0)
        }
    }
}

fn cubic_kernel(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

/// How one output position along an axis is computed.
enum Taps {
    /// Outside the crop box of tf_crop_and_resize: the extrapolation value.
    Outside,
    /// One source index (nearest).
    Pick(usize),
    /// A weighted sum of source indices (linear, cubic).
    Weights(Vec<(usize, f64)>),
}

/// The taps of every output position along one axis.
fn axis_taps(
    ra: &ResizeAttrs,
    in_len: usize,
    out_len: usize,
    scale: f64,
    roi: (f64, f64),
) -> OpResult<Vec<Taps>> {
    if in_len == 0 {
        return if out_len == 0 { Ok(vec![]) } else { Err("resize cannot enlarge an empty axis".into()) };
    }
    let last = in_len as i64 - 1;
    let clamp = |i: i64| i.clamp(0, last) as usize;
    let mut out = Vec::with_capacity(out_len);
    for y in 0..out_len {
        let x = source_coord(ra.coord, y as f64, scale, in_len, out_len, roi);
        if ra.coord == Coord::TfCropAndResize && (x < 0.0 || x > last as f64) {
            out.push(Taps::Outside);
            continue;
        }
        let f = x.floor();
        // An integral coordinate uses ratio 1 from the index below it, which selects the
        // coordinate itself with full weight.
        let (base, ratio) = if x == f { (f as i64 - 1, 1.0) } else { (f as i64, x - f) };
        if ra.interp == Interp::Nearest {
            let up = match ra.rounding {
                _ if ratio == 1.0 => true,
                Rounding::RoundPreferFloor => ratio > 0.5,
                Rounding::RoundPreferCeil => ratio >= 0.5,
                Rounding::Floor => false,
                Rounding::Ceil => true,
            };
            out.push(Taps::Pick(clamp(base + up as i64)));
            continue;
        }
        // With antialiasing a downscale stretches the kernel by 1/scale (more taps, each
        // weighted by the kernel at the scaled distance).
        let s = if ra.antialias { scale.min(1.0) } else { 1.0 };
        let support = if ra.interp == Interp::Linear { 1.0 } else { 2.0 };
        let i_start = (-support / s).floor() as i64 + 1;
        let n = 2 - 2 * i_start;
        let mut w: Vec<(i64, f64)> = (0..n)
            .map(|k| {
                let i = i_start + k;
                let arg = s * (i as f64 - ratio);
                let wt = match ra.interp {
                    Interp::Linear => (1.0 - arg.abs()).clamp(0.0, 1.0),
                    _ => cubic_kernel(arg, ra.cubic_a),
                };
                (base + i, wt)
            })
            .collect();
        if ra.antialias {
            let sum: f64 = w.iter().map(|p| p.1).sum();
            if sum != 0.0 {
                w.iter_mut().for_each(|p| p.1 /= sum);
            }
        }
        if ra.exclude_outside {
            for p in w.iter_mut() {
                if p.0 < 0 || p.0 > last {
                    p.1 = 0.0;
                }
            }
            let sum: f64 = w.iter().map(|p| p.1).sum();
            if sum != 0.0 {
                w.iter_mut().for_each(|p| p.1 /= sum);
            }
        }
        // Taps outside the input repeat the edge element.
        out.push(Taps::Weights(w.into_iter().map(|(i, wt)| (clamp(i), wt)).collect()));
    }
    Ok(out)
}

/// Resamples axis `axis` of a row-major f64 buffer of shape `shape` (updated in place).
fn resample_axis(
    buf: &[f64],
    shape: &mut [usize],
    axis: usize,
    taps: &[Taps],
    extrapolation: f64,
) -> Vec<f64> {
    let outer: usize = shape[..axis].iter().product();
    let in_len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let out_len = taps.len();
    let mut out = vec![0.0; outer * out_len * inner];
    for o in 0..outer {
        for (j, t) in taps.iter().enumerate() {
            let dst = &mut out[(o * out_len + j) * inner..][..inner];
            let mut add = |idx: usize, wt: f64| {
                let src = &buf[(o * in_len + idx) * inner..][..inner];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += wt * s);
            };
            match t {
                Taps::Outside => dst.iter_mut().for_each(|d| *d = extrapolation),
                Taps::Pick(i) => add(*i, 1.0),
                Taps::Weights(w) => w.iter().for_each(|&(i, wt)| add(i, wt)),
            }
        }
    }
    shape[axis] = out_len;
    out
}

fn interpolate<T: Elem>(
    a: &ArrayD<T>,
    plan: &[(usize, Vec<Taps>)],
    extrapolation: f64,
) -> OpResult<ArrayD<T>> {
    let mut shape = a.shape().to_vec();
    let mut buf: Vec<f64> = a.iter().map(T::to_f64).collect();
    for (axis, taps) in plan {
        buf = resample_axis(&buf, &mut shape, *axis, taps, extrapolation);
    }
    super::shape::from_vec(&shape, buf.into_iter().map(T::from_f64).collect())
}

fn eval_resize(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let shape = x.shape();
    let rank = shape.len();
    let ra = resize_attrs(ctx.attrs, rank)?;
    let scales = ctx.opt_input(2).map(|t| t.to_f64_vec());
    let sizes = ctx.opt_input(3).map(|t| super::shape::ints(t, "resize `sizes`")).transpose()?;
    check_scales_sizes(scales.is_some(), sizes.is_some())?;
    let in_dims: Vec<Option<usize>> = shape.iter().map(|&d| Some(d)).collect();
    let (out, scale) = resize_geometry(&in_dims, &ra, scales.as_deref(), sizes.as_deref())?;
    // The crop box of each axis, as fractions of the input extent.
    let mut roi = vec![(0.0, 1.0); rank];
    if ra.coord == Coord::TfCropAndResize {
        let r = ctx.opt_input(1).ok_or("resize with tf_crop_and_resize needs `roi`")?.to_f64_vec();
        let n = ra.axes.len();
        if r.len() != 2 * n {
            return Err(format!("resize roi has {} values for {n} axes (expected {})", r.len(), 2 * n));
        }
        for (i, &ax) in ra.axes.iter().enumerate() {
            roi[ax] = (r[i], r[n + i]);
        }
    }
    let mut plan = Vec::new();
    for &ax in &ra.axes {
        let out_len = out[ax].ok_or("internal: resize output length unknown")?;
        let identity = (scale[ax] - 1.0).abs() <= 1e-9 * scale[ax].abs().max(1.0)
            && out_len == shape[ax]
            && roi[ax] == (0.0, 1.0);
        if !identity {
            plan.push((ax, axis_taps(&ra, shape[ax], out_len, scale[ax], roi[ax])?));
        }
    }
    let y = if ra.interp == Interp::Nearest {
        // Nearest resizing only selects elements: exact for every element type.
        let mut sel: Vec<Vec<Option<usize>>> = shape.iter().map(|&d| (0..d).map(Some).collect()).collect();
        for (ax, taps) in &plan {
            sel[*ax] = taps
                .iter()
                .map(|t| match t {
                    Taps::Pick(i) => Some(*i),
                    _ => None,
                })
                .collect();
        }
        let e = ra.extrapolation;
        map_tensor!(x, a => select(a, &sel, Some(&Elem::from_f64(e)))?)
    } else {
        if x.scalar_type() == crate::types::ScalarType::Bool {
            return Err("resize: linear and cubic modes need a numeric input".into());
        }
        clamp_nibbles(map_tensor!(x, a => interpolate(a, &plan, ra.extrapolation)?))
    };
    Ok(vec![y])
}
