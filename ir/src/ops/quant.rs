//! `q.*`: quantize/dequantize and integer matmul/conv with ONNX semantics.
//!
//! ## Data model at graph level
//! These ops are the ONNX quantization ops as imported: they take and produce plain
//! storage-typed tensors (`i8`, `u8`, `i16`, `u16`, `i4`, `u4`, `i32`), and the scales and zero
//! points are ordinary operands, exactly like ONNX. Quantized element types
//! (`ElemType::Quant`, `!q.uniform<...>`) are introduced by later passes that fold constant
//! scales and zero points into the types; here an operand of a quantized type is simply read
//! through its storage type.
//!
//! `real = scale * (q - zero_point)` throughout. Scales and zero points come in three
//! granularities, told apart by the scale's shape (QuantizeLinear/DequantizeLinear):
//! - per tensor: one element (rank 0, or any shape with a single element);
//! - per axis: a 1-D tensor as long as `x`'s dim `axis`;
//! - blocked (`block_size > 0`): `x`'s shape with dim `axis` replaced by `ceil(D / block_size)`;
//!   each scale covers `block_size` consecutive elements along `axis` (the last block may be
//!   short).
//!
//! ## Numerics (matching ONNX's reference implementation bit for bit)
//! - Quantize: `x / scale` is rounded to the division precision (the `precision` attribute, else
//!   the numpy promotion of `x`'s and the scale's types: equal float types stay, `f16` with `bf16`
//!   gives `f32`, `i32` with anything gives `f64`), then rounded half to even, offset by the zero
//!   point and saturated to the output type. NaN quantizes to the zero point.
//! - Dequantize: `(x - zero_point) * scale` in `f32`, then rounded to the output type.
//! - MatMulInteger/ConvInteger: inputs minus zero points in `i32`, products and sums in `i32`
//!   (wrapping: ONNX allows the accumulation to overflow in 32 bits, never the products).
//!   Convolution padding contributes zero *after* the zero point is subtracted, i.e. pads hold
//!   the zero point in the quantized domain.
//! - QLinearMatMul/QLinearConv: the same integer accumulation (plus the `i32` bias for
//!   QLinearConv), then `acc * M + y_zero_point` in `f64` with the multiplier
//!   `M = a_scale * b_scale / y_scale` computed in the scales' own type (so `f16` scales give an
//!   `f16`-rounded multiplier), rounded half to even and saturated.
//!
//! ## Mapping to TFLite-style integer arithmetic (for later passes)
//! TFLite's integer kernels (see the project's `int8-arithmetic.md`) compute the same affine maps
//! with integer-only requantization; these graph-level ops map onto them as follows:
//! - `q.quantize_linear` / `q.dequantize_linear` with constant scale and zero point become the
//!   TFLite QUANTIZE / DEQUANTIZE ops at the model's float boundaries; between int8 ops they
//!   disappear into the quantized element types (`!q.uniform<i8:f32, s, zp>`).
//!   Per-axis parameters map to TFLite per-channel quantization (`quantized_dimension`);
//!   blocked parameters have no TFLite equivalent and stay as weight-only dequantization.
//! - `q.qlinear_conv` / `q.qlinear_matmul` (and the `q.dequantize_linear -> nn.conv ->
//!   q.quantize_linear` pattern) become CONV_2D / FULLY_CONNECTED / BATCH_MATMUL with int8
//!   tensors: accumulation `Σ w · (x − x_zp)` in int32 is identical; the bias is the same int32
//!   with scale `x_scale · w_scale[c]`. Only the last step differs: here `acc · M` is computed
//!   in floating point and rounded half to even, while TFLite quantizes `M` to a 31-bit
//!   fixed-point multiplier and shift (SaturatingRoundingDoublingHighMul + RoundingDivideByPOT,
//!   ties away from zero). The two can differ by one LSB, so kernels using the fixed-point rule
//!   match these ops only within one LSB.
//! - TFLite requires symmetric int8 weights (zero point 0, range [−127, 127]); a `u8` or
//!   asymmetric weight zero point must be folded (`w − w_zp` re-quantized) or rejected by the
//!   lowering. Activations are asymmetric int8; `u8` activations are shifted by 128
//!   (`q_i8 = q_u8 − 128`, `zp_i8 = zp_u8 − 128`), which leaves every real value unchanged.
//! - `q.matmul_integer` / `q.conv_integer` (and `q.dynamic_quantize_linear`) have no direct
//!   TFLite builtin: dynamic-range quantization is TFLite's "hybrid" kernels (float activations
//!   quantized on the fly per row/tensor, int8 weights), so these are lowered to those kernels
//!   or expanded back to float.

use super::util::{broadcast_dims, input, norm_axis, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::{AttrKind, Attrs};
use crate::tensor::Tensor;
use crate::types::{Dim, ScalarType, TensorType};
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};

// ---------------------------------------------------------------------------------------------
// Declarations
// ---------------------------------------------------------------------------------------------

pub static QUANTIZE_LINEAR: OpDef = OpDef {
    name: "q.quantize_linear",
    summary: "ONNX QuantizeLinear: y = saturate(round_half_even(x / y_scale) + y_zero_point), \
              per tensor, per axis or blocked.",
    operands: &["x", "y_scale", "y_zero_point?"],
    results: &["y"],
    attrs: &[
        AttrDef::opt("axis", AttrKind::Int, "1"),
        AttrDef::opt("block_size", AttrKind::Int, "0"),
        AttrDef::opt("output_dtype", AttrKind::Type, "(type of y_zero_point, else u8)"),
        AttrDef::opt("precision", AttrKind::Type, "(promotion of x's and y_scale's types)"),
        AttrDef::opt("saturate", AttrKind::Int, "1"),
    ],
    traits: Traits::PURE,
    infer: infer_quantize,
    eval: eval_quantize,
};

pub static DEQUANTIZE_LINEAR: OpDef = OpDef {
    name: "q.dequantize_linear",
    summary: "ONNX DequantizeLinear: y = (x - x_zero_point) * x_scale, per tensor, per axis or blocked.",
    operands: &["x", "x_scale", "x_zero_point?"],
    results: &["y"],
    attrs: &[
        AttrDef::opt("axis", AttrKind::Int, "1"),
        AttrDef::opt("block_size", AttrKind::Int, "0"),
        AttrDef::opt("output_dtype", AttrKind::Type, "(type of x_scale)"),
    ],
    traits: Traits::PURE,
    infer: infer_dequantize,
    eval: eval_dequantize,
};

pub static DYNAMIC_QUANTIZE_LINEAR: OpDef = OpDef {
    name: "q.dynamic_quantize_linear",
    summary: "ONNX DynamicQuantizeLinear: quantizes f32 to u8 with a scale and zero point computed \
              from the data range (extended to include 0).",
    operands: &["x"],
    results: &["y", "y_scale", "y_zero_point"],
    attrs: &[],
    traits: Traits::PURE,
    infer: infer_dynamic_quantize,
    eval: eval_dynamic_quantize,
};

pub static MATMUL_INTEGER: OpDef = OpDef {
    name: "q.matmul_integer",
    summary: "ONNX MatMulInteger: numpy matmul of (A - a_zero_point) and (B - b_zero_point) in i32.",
    operands: &["A", "B", "a_zero_point?", "b_zero_point?"],
    results: &["Y"],
    attrs: &[],
    traits: Traits::PURE,
    infer: infer_matmul_integer,
    eval: eval_matmul_integer,
};

/// The attributes shared by ConvInteger and QLinearConv (those of ONNX Conv).
const CONV_ATTRS: &[AttrDef] = &[
    AttrDef::opt("auto_pad", AttrKind::Str, "\"NOTSET\""),
    AttrDef::opt("dilations", AttrKind::Ints, "[1, ...]"),
    AttrDef::opt("group", AttrKind::Int, "1"),
    AttrDef::opt("kernel_shape", AttrKind::Ints, "(from w)"),
    AttrDef::opt("pads", AttrKind::Ints, "[0, ...]"),
    AttrDef::opt("strides", AttrKind::Ints, "[1, ...]"),
];

pub static CONV_INTEGER: OpDef = OpDef {
    name: "q.conv_integer",
    summary: "ONNX ConvInteger: convolution of (x - x_zero_point) and (w - w_zero_point) in i32; \
              w_zero_point may be per output channel.",
    operands: &["x", "w", "x_zero_point?", "w_zero_point?"],
    results: &["y"],
    attrs: CONV_ATTRS,
    traits: Traits::PURE,
    infer: infer_conv_integer,
    eval: eval_conv_integer,
};

pub static QLINEAR_MATMUL: OpDef = OpDef {
    name: "q.qlinear_matmul",
    summary: "ONNX QLinearMatMul: integer matmul of quantized a and b, requantized to y's scale and \
              zero point (round half to even, saturate).",
    operands: &["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale", "y_zero_point"],
    results: &["y"],
    attrs: &[],
    traits: Traits::PURE,
    infer: infer_qlinear_matmul,
    eval: eval_qlinear_matmul,
};

pub static QLINEAR_CONV: OpDef = OpDef {
    name: "q.qlinear_conv",
    summary: "ONNX QLinearConv: integer convolution of quantized x and w (per-channel w scales), \
              plus i32 bias, requantized to y's scale and zero point.",
    operands: &[
        "x",
        "x_scale",
        "x_zero_point",
        "w",
        "w_scale",
        "w_zero_point",
        "y_scale",
        "y_zero_point",
        "B?",
    ],
    results: &["y"],
    attrs: CONV_ATTRS,
    traits: Traits::PURE,
    infer: infer_qlinear_conv,
    eval: eval_qlinear_conv,
};

// ---------------------------------------------------------------------------------------------
// Element helpers
// ---------------------------------------------------------------------------------------------

/// The saturation range of an integer quantized type.
fn int_range(t: ScalarType) -> Option<(i64, i64)> {
    Some(match t {
        ScalarType::I8 => (-128, 127),
        ScalarType::U8 => (0, 255),
        ScalarType::I16 => (-32768, 32767),
        ScalarType::U16 => (0, 65535),
        ScalarType::I4 => (-8, 7),
        ScalarType::U4 => (0, 15),
        ScalarType::I32 => (i32::MIN as i64, i32::MAX as i64),
        _ => return None,
    })
}

/// Types QuantizeLinear may produce (and DequantizeLinear accept, with `i32` added).
fn is_quant_storage(t: ScalarType) -> bool {
    matches!(
        t,
        ScalarType::I8 | ScalarType::U8 | ScalarType::I16 | ScalarType::U16 | ScalarType::I4 | ScalarType::U4
    )
}

fn is_scale_type(t: ScalarType) -> bool {
    matches!(t, ScalarType::F32 | ScalarType::F16 | ScalarType::BF16)
}

fn is_8bit(t: ScalarType) -> bool {
    matches!(t, ScalarType::I8 | ScalarType::U8)
}

/// Integer contents widened to `i32` (the quantized storage types and `i32`).
fn int_values(t: &Tensor, what: &str) -> OpResult<Vec<i32>> {
    Ok(match t {
        Tensor::I8(a) | Tensor::I4(a) => a.iter().map(|&v| v as i32).collect(),
        Tensor::U8(a) | Tensor::U4(a) => a.iter().map(|&v| v as i32).collect(),
        Tensor::I16(a) => a.iter().map(|&v| v as i32).collect(),
        Tensor::U16(a) => a.iter().map(|&v| v as i32).collect(),
        Tensor::I32(a) => a.iter().copied().collect(),
        _ => return Err(format!("{what} must be an integer tensor, found {}", t.scalar_type())),
    })
}

/// Float (or `i32`, for QuantizeLinear's inputs) contents as `f64`; exact for every accepted type.
fn float_values(t: &Tensor, what: &str, allow_i32: bool) -> OpResult<Vec<f64>> {
    let st = t.scalar_type();
    if st.is_float() || (allow_i32 && st == ScalarType::I32) {
        Ok(t.to_f64_vec())
    } else {
        Err(format!("{what} must be a float tensor, found {st}"))
    }
}

/// Rounds `v` to the nearest value of float type `t` (ties to even).
fn round_to(t: ScalarType, v: f64) -> f64 {
    match t {
        ScalarType::F32 => v as f32 as f64,
        ScalarType::F16 => f16::from_f64(v).to_f64(),
        ScalarType::BF16 => bf16::from_f64(v).to_f64(),
        _ => v,
    }
}

/// Builds an integer tensor of type `t` from values already inside its range.
fn make_int(t: ScalarType, shape: &[usize], vals: Vec<i64>) -> OpResult<Tensor> {
    fn arr<T>(shape: &[usize], v: Vec<T>) -> OpResult<ArrayD<T>> {
        ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| format!("internal shape error: {e}"))
    }
    Ok(match t {
        ScalarType::I8 => Tensor::I8(arr(shape, vals.into_iter().map(|v| v as i8).collect())?),
        ScalarType::U8 => Tensor::U8(arr(shape, vals.into_iter().map(|v| v as u8).collect())?),
        ScalarType::I16 => Tensor::I16(arr(shape, vals.into_iter().map(|v| v as i16).collect())?),
        ScalarType::U16 => Tensor::U16(arr(shape, vals.into_iter().map(|v| v as u16).collect())?),
        ScalarType::I4 => Tensor::I4(arr(shape, vals.into_iter().map(|v| v as i8).collect())?),
        ScalarType::U4 => Tensor::U4(arr(shape, vals.into_iter().map(|v| v as u8).collect())?),
        ScalarType::I32 => Tensor::I32(arr(shape, vals.into_iter().map(|v| v as i32).collect())?),
        _ => return Err(format!("{t} is not an integer quantized type")),
    })
}

/// Builds a float tensor of type `t`, rounding from `f32`.
fn make_float(t: ScalarType, shape: &[usize], vals: Vec<f32>) -> OpResult<Tensor> {
    let s = IxDyn(shape);
    let e = |e: ndarray::ShapeError| format!("internal shape error: {e}");
    Ok(match t {
        ScalarType::F32 => Tensor::F32(ArrayD::from_shape_vec(s, vals).map_err(e)?),
        ScalarType::F16 => {
            Tensor::F16(ArrayD::from_shape_vec(s, vals.into_iter().map(f16::from_f32).collect()).map_err(e)?)
        }
        ScalarType::BF16 => Tensor::BF16(
            ArrayD::from_shape_vec(s, vals.into_iter().map(bf16::from_f32).collect()).map_err(e)?,
        ),
        _ => return Err(format!("output type {t} is not f32, f16 or bf16")),
    })
}

/// Rounds half to even, saturating into `[lo, hi]`; NaN gives `nan_value`.
fn round_saturate(v: f64, lo: i64, hi: i64, nan_value: i64) -> i64 {
    if v.is_nan() {
        return nan_value.clamp(lo, hi);
    }
    // `as` saturates at the i64 bounds, which are far outside every quantized range.
    (v.round_ties_even() as i64).clamp(lo, hi)
}

fn num_elements(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn fmt_dims(dims: &[Dim]) -> String {
    let v: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", v.join(", "))
}

// ---------------------------------------------------------------------------------------------
// Quantization granularity (QuantizeLinear / DequantizeLinear)
// ---------------------------------------------------------------------------------------------

/// How the elements of `x` map to the elements of a scale or zero-point tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Granularity {
    PerTensor,
    /// `inner` = product of `x`'s dims after the axis, `dim` = `x`'s dim along the axis.
    PerAxis {
        inner: usize,
        dim: usize,
    },
    /// Like `PerAxis`, with `blocks = ceil(dim / block)` parameters along the axis.
    Blocked {
        inner: usize,
        dim: usize,
        block: usize,
        blocks: usize,
    },
}

impl Granularity {
    /// Index of the parameter for `x`'s element at row-major position `i`.
    fn index(self, i: usize) -> usize {
        match self {
            Granularity::PerTensor => 0,
            Granularity::PerAxis { inner, dim } => (i / inner) % dim,
            Granularity::Blocked { inner, dim, block, blocks } => {
                let outer = i / (inner * dim);
                let along = (i / inner) % dim;
                (outer * blocks + along / block) * inner + i % inner
            }
        }
    }
}

/// Reads `axis` and `block_size` (with their ONNX defaults 1 and 0).
fn axis_and_block(attrs: &Attrs) -> OpResult<(i64, usize)> {
    let axis = attrs.int("axis").unwrap_or(1);
    let block = attrs.int("block_size").unwrap_or(0);
    if block < 0 {
        return Err(format!("block_size must be positive, found {block}"));
    }
    Ok((axis, block as usize))
}

/// The granularity of parameter `what` (shape `p`) against input shape `x` (runtime shapes).
fn granularity(x: &[usize], p: &[usize], axis: i64, block: usize, what: &str) -> OpResult<Granularity> {
    if num_elements(p) == 1 {
        return Ok(Granularity::PerTensor);
    }
    if block == 0 {
        if p.len() != 1 {
            return Err(format!(
                "{what} of shape {p:?} must be a scalar or a 1-D tensor (per-axis) unless block_size is set"
            ));
        }
        let ax = norm_axis(axis, x.len())?;
        let dim = *x.get(ax).ok_or_else(|| format!("axis {axis} is out of range for rank {}", x.len()))?;
        if p[0] != dim {
            return Err(format!("per-axis {what} has {} elements but x has {dim} along axis {ax}", p[0]));
        }
        return Ok(Granularity::PerAxis { inner: num_elements(&x[ax + 1..]), dim });
    }
    if p.len() != x.len() {
        return Err(format!(
            "blocked {what} has rank {} but x has rank {} (shape {p:?} vs {x:?})",
            p.len(),
            x.len()
        ));
    }
    let ax = norm_axis(axis, x.len())?;
    let dim = x[ax];
    let blocks = dim.div_ceil(block);
    for (d, (&xd, &pd)) in x.iter().zip(p).enumerate() {
        let want = if d == ax { blocks } else { xd };
        if pd != want {
            return Err(format!(
                "blocked {what} has shape {p:?}, expected {} along dim {d} for x of shape {x:?}, \
                 axis {ax} and block_size {block}",
                want
            ));
        }
    }
    Ok(Granularity::Blocked { inner: num_elements(&x[ax + 1..]), dim, block, blocks })
}

/// Compile-time check of a parameter's shape against `x`'s type (static dims only).
fn check_granularity_type(
    x: &TensorType,
    p: &TensorType,
    axis: i64,
    block: usize,
    what: &str,
) -> OpResult<()> {
    if p.num_elements() == Some(1) {
        return Ok(());
    }
    if block == 0 {
        if p.rank() != 1 {
            return Err(format!(
                "{what} of type {p} must be a scalar or a 1-D tensor (per-axis) unless block_size is set"
            ));
        }
        let ax = norm_axis(axis, x.rank())?;
        if let (Some(pd), Some(xd)) = (p.dims[0].as_static(), x.dims.get(ax).and_then(|d| d.as_static())) {
            if pd != xd {
                return Err(format!("per-axis {what} has {pd} elements but x has {xd} along axis {ax}"));
            }
        }
        return Ok(());
    }
    if p.rank() != x.rank() {
        return Err(format!("blocked {what} has rank {} but x has rank {}", p.rank(), x.rank()));
    }
    let ax = norm_axis(axis, x.rank())?;
    for (d, (xd, pd)) in x.dims.iter().zip(&p.dims).enumerate() {
        if let (Some(xd), Some(pd)) = (xd.as_static(), pd.as_static()) {
            let want = if d == ax { xd.div_ceil(block as u64) } else { xd };
            if pd != want {
                return Err(format!(
                    "blocked {what} has shape {}, expected {want} along dim {d} for x of shape {}, \
                     axis {ax} and block_size {block}",
                    fmt_dims(&p.dims),
                    fmt_dims(&x.dims)
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// QuantizeLinear
// ---------------------------------------------------------------------------------------------

/// The output type: `y_zero_point`'s type, else `output_dtype`, else `u8`.
fn quantize_output_type(attrs: &Attrs, zero_point: Option<ScalarType>) -> OpResult<ScalarType> {
    let declared = attrs.ty("output_dtype");
    let t = match (zero_point, declared) {
        (Some(z), Some(d)) if z != d => {
            return Err(format!("output_dtype {d} differs from y_zero_point's type {z}"));
        }
        (Some(z), _) => z,
        (None, Some(d)) => d,
        (None, None) => ScalarType::U8,
    };
    if !is_quant_storage(t) {
        return Err(format!(
            "cannot quantize to {t}: supported outputs are i8, u8, i16, u16, i4 and u4 \
             (float8/float4 quantization is not supported)"
        ));
    }
    Ok(t)
}

/// The precision of `x / y_scale`: the `precision` attribute, else numpy's promotion of the two
/// types (what ONNX's reference computes in).
fn division_precision(attrs: &Attrs, x: ScalarType, s: ScalarType) -> OpResult<ScalarType> {
    use ScalarType::*;
    if let Some(p) = attrs.ty("precision") {
        if !p.is_float() {
            return Err(format!("precision must be a float type, found {p}"));
        }
        return Ok(p);
    }
    Ok(match (x, s) {
        (a, b) if a == b && a.is_float() => a,
        (F64, _) | (_, F64) | (I32, _) | (_, I32) => F64,
        _ => F32,
    })
}

fn infer_quantize(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    let s = operand(ctx, 1)?;
    let (axis, block) = axis_and_block(ctx.attrs)?;
    let xs = x.scalar();
    if !(is_scale_type(xs) || xs == ScalarType::I32) {
        return Err(format!("x must be f32, f16, bf16 or i32, found {xs}"));
    }
    if !(is_scale_type(s.scalar()) || s.scalar() == ScalarType::I32) {
        return Err(format!("y_scale must be f32, f16, bf16 or i32, found {}", s.scalar()));
    }
    division_precision(ctx.attrs, xs, s.scalar())?;
    check_granularity_type(x, s, axis, block, "y_scale")?;
    let zp = if ctx.has_operand(2) {
        let z = operand(ctx, 2)?;
        check_granularity_type(x, z, axis, block, "y_zero_point")?;
        Some(z.scalar())
    } else {
        None
    };
    let out = quantize_output_type(ctx.attrs, zp)?;
    if let Some(sat) = ctx.attrs.int("saturate") {
        if sat != 0 && sat != 1 {
            return Err(format!("saturate must be 0 or 1, found {sat}"));
        }
    }
    Ok(vec![TensorType::new(x.dims.clone(), out)])
}

fn eval_quantize(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let s = input(ctx, 1)?;
    let zp = ctx.opt_input(2);
    let (axis, block) = axis_and_block(ctx.attrs)?;
    let out = quantize_output_type(ctx.attrs, zp.map(|z| z.scalar_type()))?;
    let prec = division_precision(ctx.attrs, x.scalar_type(), s.scalar_type())?;
    let (lo, hi) = int_range(out).ok_or_else(|| format!("{out} has no integer range"))?;
    let sg = granularity(x.shape(), s.shape(), axis, block, "y_scale")?;
    let xv = float_values(x, "x", true)?;
    let sv = float_values(s, "y_scale", true)?;
    let (zv, zg) = match zp {
        Some(z) => {
            (int_values(z, "y_zero_point")?, granularity(x.shape(), z.shape(), axis, block, "y_zero_point")?)
        }
        None => (vec![0], Granularity::PerTensor),
    };
    let mut vals = Vec::with_capacity(xv.len());
    for (i, &xf) in xv.iter().enumerate() {
        let scale = round_to(prec, sv[sg.index(i)]);
        // Both operands are exact in f64, and f64 carries more than twice the bits of every
        // narrower precision, so rounding the f64 quotient gives the correctly rounded quotient.
        let q = round_to(prec, round_to(prec, xf) / scale);
        let z = zv[zg.index(i)] as i64;
        let r = if q.is_nan() { 0 } else { q.round_ties_even().clamp(-1e18, 1e18) as i64 };
        vals.push((r + z).clamp(lo, hi));
    }
    Ok(vec![make_int(out, x.shape(), vals)?])
}

// ---------------------------------------------------------------------------------------------
// DequantizeLinear
// ---------------------------------------------------------------------------------------------

fn dequantize_output_type(attrs: &Attrs, scale: ScalarType) -> OpResult<ScalarType> {
    let t = attrs.ty("output_dtype").unwrap_or(scale);
    if !is_scale_type(t) {
        return Err(format!("output_dtype must be f32, f16 or bf16, found {t}"));
    }
    Ok(t)
}

fn infer_dequantize(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    let s = operand(ctx, 1)?;
    let (axis, block) = axis_and_block(ctx.attrs)?;
    let xs = x.scalar();
    if !(is_quant_storage(xs) || xs == ScalarType::I32) {
        return Err(format!(
            "x must be i8, u8, i16, u16, i32, i4 or u4, found {xs} (float8/float4 inputs are not supported)"
        ));
    }
    if !is_scale_type(s.scalar()) {
        return Err(format!("x_scale must be f32, f16 or bf16, found {}", s.scalar()));
    }
    check_granularity_type(x, s, axis, block, "x_scale")?;
    if ctx.has_operand(2) {
        let z = operand(ctx, 2)?;
        if z.scalar() != xs {
            return Err(format!("x_zero_point has type {} but x has type {xs}", z.scalar()));
        }
        check_granularity_type(x, z, axis, block, "x_zero_point")?;
    }
    let out = dequantize_output_type(ctx.attrs, s.scalar())?;
    Ok(vec![TensorType::new(x.dims.clone(), out)])
}

fn eval_dequantize(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let s = input(ctx, 1)?;
    let zp = ctx.opt_input(2);
    let (axis, block) = axis_and_block(ctx.attrs)?;
    let out = dequantize_output_type(ctx.attrs, s.scalar_type())?;
    let xv = int_values(x, "x")?;
    let sv = float_values(s, "x_scale", false)?;
    let sg = granularity(x.shape(), s.shape(), axis, block, "x_scale")?;
    let (zv, zg) = match zp {
        Some(z) => {
            if z.scalar_type() != x.scalar_type() {
                return Err(format!(
                    "x_zero_point has type {} but x has type {}",
                    z.scalar_type(),
                    x.scalar_type()
                ));
            }
            (int_values(z, "x_zero_point")?, granularity(x.shape(), z.shape(), axis, block, "x_zero_point")?)
        }
        None => (vec![0], Granularity::PerTensor),
    };
    // ONNX's reference computes in f32 and rounds to the output type at the end.
    let vals: Vec<f32> = xv
        .iter()
        .enumerate()
        .map(|(i, &q)| (q as f32 - zv[zg.index(i)] as f32) * sv[sg.index(i)] as f32)
        .collect();
    Ok(vec![make_float(out, x.shape(), vals)?])
}

// ---------------------------------------------------------------------------------------------
// DynamicQuantizeLinear
// ---------------------------------------------------------------------------------------------

fn infer_dynamic_quantize(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    if x.scalar() != ScalarType::F32 {
        return Err(format!("x must be f32, found {}", x.scalar()));
    }
    if ctx.num_results != 3 {
        return Err(format!("dynamic_quantize_linear has 3 results, found {}", ctx.num_results));
    }
    Ok(vec![
        TensorType::new(x.dims.clone(), ScalarType::U8),
        TensorType::new(vec![], ScalarType::F32),
        TensorType::new(vec![], ScalarType::U8),
    ])
}

/// The ONNX formula, step by step in f32 as the spec (and its reference) writes it:
/// `scale = (max(0, max x) - min(0, min x)) / 255` (1/255 when the range is empty),
/// `zp = round_half_even(clamp(0 - min / scale, 0, 255))`,
/// `y = clamp(round_half_even(x / scale) + zp, 0, 255)`.
fn eval_dynamic_quantize(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = match input(ctx, 0)? {
        Tensor::F32(a) => a,
        t => return Err(format!("x must be f32, found {}", t.scalar_type())),
    };
    let (qmin, qmax) = (0f32, 255f32);
    // NaNs are skipped by f32::max/min; the range always includes 0.
    let maxx = x.iter().fold(0f32, |m, &v| m.max(v));
    let minx = x.iter().fold(0f32, |m, &v| m.min(v));
    let range = if maxx == minx { 1.0 } else { maxx - minx };
    let scale = range / (qmax - qmin);
    let initial_zp = qmin - minx / scale;
    let zp = initial_zp.clamp(qmin, qmax).round_ties_even();
    let y = x.mapv(|v| {
        let q = (v / scale).round_ties_even() + zp;
        if q.is_nan() {
            zp as u8
        } else {
            q.clamp(qmin, qmax) as u8
        }
    });
    Ok(vec![
        Tensor::U8(y),
        Tensor::F32(ArrayD::from_elem(IxDyn(&[]), scale)),
        Tensor::U8(ArrayD::from_elem(IxDyn(&[]), zp as u8)),
    ])
}

// ---------------------------------------------------------------------------------------------
// Integer matmul (MatMulInteger, QLinearMatMul)
// ---------------------------------------------------------------------------------------------

/// numpy matmul's result dims: 1-D operands are promoted (a row for `a`, a column for `b`) and
/// the promoted dim is dropped again; batch dims broadcast.
fn matmul_dims(a: &[Dim], b: &[Dim], an: &str, bn: &str) -> OpResult<Vec<Dim>> {
    if a.is_empty() || b.is_empty() {
        return Err(format!(
            "matmul operands must have rank >= 1 ({an} has rank {}, {bn} has rank {})",
            a.len(),
            b.len()
        ));
    }
    let ap: Vec<Dim> = if a.len() == 1 { vec![Dim::Static(1), a[0].clone()] } else { a.to_vec() };
    let bp: Vec<Dim> = if b.len() == 1 { vec![b[0].clone(), Dim::Static(1)] } else { b.to_vec() };
    let (ka, kb) = (&ap[ap.len() - 1], &bp[bp.len() - 2]);
    if let (Some(x), Some(y)) = (ka.as_static(), kb.as_static()) {
        if x != y {
            return Err(format!(
                "matmul reduction dims differ: {an} {} has {x} columns, {bn} {} has {y} rows",
                fmt_dims(a),
                fmt_dims(b)
            ));
        }
    }
    let mut out = broadcast_dims(&ap[..ap.len() - 2], &bp[..bp.len() - 2])?;
    if a.len() > 1 {
        out.push(ap[ap.len() - 2].clone());
    }
    if b.len() > 1 {
        out.push(bp[bp.len() - 1].clone());
    }
    Ok(out)
}

/// Shapes of one integer matmul after numpy's 1-D promotion and batch broadcasting.
struct MatmulShape {
    /// `a` and `b` promoted to rank >= 2.
    a: Vec<usize>,
    b: Vec<usize>,
    /// The broadcast batch dims.
    batch: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
    /// The result shape with the promoted dims dropped.
    out: Vec<usize>,
}

impl MatmulShape {
    fn new(a: &[usize], b: &[usize]) -> OpResult<MatmulShape> {
        if a.is_empty() || b.is_empty() {
            return Err("matmul operands must have rank >= 1".into());
        }
        let ap = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
        let bp = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
        let (m, k) = (ap[ap.len() - 2], ap[ap.len() - 1]);
        let (kb, n) = (bp[bp.len() - 2], bp[bp.len() - 1]);
        if k != kb {
            return Err(format!("matmul reduction dims differ: {a:?} x {b:?}"));
        }
        let batch = super::util::broadcast_shapes(&[&ap[..ap.len() - 2], &bp[..bp.len() - 2]])?;
        let mut out = batch.clone();
        if a.len() > 1 {
            out.push(m);
        }
        if b.len() > 1 {
            out.push(n);
        }
        Ok(MatmulShape { a: ap, b: bp, batch, m, k, n, out })
    }

    /// The promoted result shape `[batch..., m, n]`.
    fn full_out(&self) -> Vec<usize> {
        let mut v = self.batch.clone();
        v.extend([self.m, self.n]);
        v
    }

    /// For each batch index of the result, the matching batch index of an operand whose
    /// batch dims are `own` (numpy broadcasting: size-1 dims repeat).
    fn batch_map(&self, own: &[usize]) -> Vec<usize> {
        let nb = num_elements(&self.batch);
        let off = self.batch.len() - own.len();
        (0..nb)
            .map(|mut i| {
                let mut idx = 0;
                let mut stride = 1;
                for d in (0..self.batch.len()).rev() {
                    let coord = i % self.batch[d];
                    i /= self.batch[d];
                    if d >= off {
                        let od = own[d - off];
                        if od != 1 {
                            idx += coord * stride;
                        }
                        stride *= od;
                    }
                }
                idx
            })
            .collect()
    }
}

/// Which operand of a matmul a quantization parameter belongs to: `a`'s parameters may be
/// per row (a 1-D vector of length M is read as `[M, 1]`, as the ONNX spec describes); `b`'s
/// may be per column (a 1-D vector of length N, plain numpy broadcasting).
#[derive(Clone, Copy, PartialEq)]
enum Side {
    A,
    B,
}

/// A parameter's shape as it broadcasts against its (promoted) operand.
fn param_shape(p: &[usize], target: &[usize], side: Side) -> Vec<usize> {
    if side == Side::A && p.len() == 1 && target.len() >= 2 && p[0] == target[target.len() - 2] && p[0] != 1 {
        vec![p[0], 1]
    } else {
        p.to_vec()
    }
}

/// Expands a zero point or scale to the full (promoted) shape of its operand.
fn broadcast_param<T: Clone>(
    vals: Vec<T>,
    p: &[usize],
    target: &[usize],
    side: Side,
    what: &str,
) -> OpResult<Vec<T>> {
    if vals.len() == 1 {
        return Ok(vec![vals[0].clone(); num_elements(target)]);
    }
    let shape = param_shape(p, target, side);
    let arr = ArrayD::from_shape_vec(IxDyn(&shape), vals).map_err(|e| format!("{what}: {e}"))?;
    let b = arr.broadcast(IxDyn(target)).ok_or_else(|| {
        format!("{what} of shape {p:?} does not broadcast to its operand's shape {target:?}")
    })?;
    Ok(b.iter().cloned().collect())
}

/// Compile-time check that a parameter broadcasts to its operand (static dims only).
fn check_param_type(p: &TensorType, target: &[Dim], side: Side, what: &str) -> OpResult<()> {
    if p.num_elements() == Some(1) {
        return Ok(());
    }
    let target: Vec<Dim> = if target.len() == 1 {
        match side {
            Side::A => vec![Dim::Static(1), target[0].clone()],
            Side::B => vec![target[0].clone(), Dim::Static(1)],
        }
    } else {
        target.to_vec()
    };
    let pd: Vec<Dim> = match (p.rank(), p.dims.first().and_then(|d| d.as_static())) {
        (1, Some(len)) if side == Side::A && target[target.len() - 2].as_static() == Some(len) => {
            vec![Dim::Static(len), Dim::Static(1)]
        }
        _ => p.dims.clone(),
    };
    if pd.len() > target.len() {
        return Err(format!("{what} has rank {} but its operand has rank {}", pd.len(), target.len()));
    }
    let off = target.len() - pd.len();
    for (i, d) in pd.iter().enumerate() {
        if let (Some(x), Some(t)) = (d.as_static(), target[off + i].as_static()) {
            if x != 1 && x != t {
                return Err(format!(
                    "{what} of shape {} does not broadcast to its operand's shape {}",
                    fmt_dims(&p.dims),
                    fmt_dims(&target)
                ));
            }
        }
    }
    Ok(())
}

/// `x - zero_point` in i32 over the operand's promoted shape.
fn subtract_zero_point(
    x: &Tensor,
    zp: Option<&Tensor>,
    target: &[usize],
    side: Side,
    what: &str,
) -> OpResult<Vec<i32>> {
    let mut v = int_values(x, what)?;
    if let Some(z) = zp {
        let zv =
            broadcast_param(int_values(z, what)?, z.shape(), target, side, &format!("{what}'s zero point"))?;
        for (a, b) in v.iter_mut().zip(zv) {
            *a = a.wrapping_sub(b);
        }
    }
    Ok(v)
}

/// Batched `a [.., m, k] x b [.., k, n]` in i32 (wrapping accumulation), result `[batch.., m, n]`.
fn int_matmul(a: &[i32], b: &[i32], s: &MatmulShape) -> Vec<i32> {
    let (m, k, n) = (s.m, s.k, s.n);
    let amap = s.batch_map(&s.a[..s.a.len() - 2]);
    let bmap = s.batch_map(&s.b[..s.b.len() - 2]);
    let mut out = vec![0i32; amap.len() * m * n];
    for (bi, (&ai, &bj)) in amap.iter().zip(&bmap).enumerate() {
        let a = &a[ai * m * k..(ai + 1) * m * k];
        let b = &b[bj * k * n..(bj + 1) * k * n];
        let o = &mut out[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            let row = &mut o[i * n..(i + 1) * n];
            for p in 0..k {
                let av = a[i * k + p];
                if av == 0 {
                    continue;
                }
                for (r, &bv) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                    *r = r.wrapping_add(av.wrapping_mul(bv));
                }
            }
        }
    }
    out
}

fn check_8bit(t: &TensorType, what: &str) -> OpResult<ScalarType> {
    let s = t.scalar();
    if !is_8bit(s) {
        return Err(format!("{what} must be i8 or u8, found {s}"));
    }
    Ok(s)
}

fn check_zero_point_type(
    ctx: &InferCtx,
    i: usize,
    of: ScalarType,
    what: &str,
) -> OpResult<Option<TensorType>> {
    if !ctx.has_operand(i) {
        return Ok(None);
    }
    let z = operand(ctx, i)?;
    if z.scalar() != of {
        return Err(format!("{what} has type {} but its input has type {of}", z.scalar()));
    }
    Ok(Some(z.clone()))
}

fn infer_matmul_integer(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let a = operand(ctx, 0)?;
    let b = operand(ctx, 1)?;
    let at = check_8bit(a, "A")?;
    let bt = check_8bit(b, "B")?;
    if let Some(z) = check_zero_point_type(ctx, 2, at, "a_zero_point")? {
        check_param_type(&z, &a.dims, Side::A, "a_zero_point")?;
    }
    if let Some(z) = check_zero_point_type(ctx, 3, bt, "b_zero_point")? {
        check_param_type(&z, &b.dims, Side::B, "b_zero_point")?;
    }
    Ok(vec![TensorType::new(matmul_dims(&a.dims, &b.dims, "A", "B")?, ScalarType::I32)])
}

fn eval_matmul_integer(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let a = input(ctx, 0)?;
    let b = input(ctx, 1)?;
    let s = MatmulShape::new(a.shape(), b.shape())?;
    let av = subtract_zero_point(a, ctx.opt_input(2), &s.a, Side::A, "A")?;
    let bv = subtract_zero_point(b, ctx.opt_input(3), &s.b, Side::B, "B")?;
    let y = int_matmul(&av, &bv, &s);
    Ok(vec![make_int(ScalarType::I32, &s.out, y.into_iter().map(i64::from).collect())?])
}

// ---------------------------------------------------------------------------------------------
// QLinearMatMul
// ---------------------------------------------------------------------------------------------

fn check_scale(t: &TensorType, what: &str) -> OpResult<ScalarType> {
    let s = t.scalar();
    if !is_scale_type(s) {
        return Err(format!("{what} must be f32, f16 or bf16, found {s}"));
    }
    Ok(s)
}

/// Checks that a scale is constant along the reduction dim of its operand (per-row for `a`,
/// per-column for `b`): a scale varying along K cannot be factored out of the sum.
fn check_scale_not_along_k(p: &[usize], target: &[usize], side: Side, what: &str) -> OpResult<()> {
    if num_elements(p) == 1 {
        return Ok(());
    }
    let shape = param_shape(p, target, side);
    let along_k = match side {
        Side::A => shape.last().copied(),
        Side::B => shape.len().checked_sub(2).map(|i| shape[i]),
    };
    match along_k {
        Some(d) if d != 1 => Err(format!(
            "{what} of shape {p:?} varies along the reduction dim; it must be per tensor, per {}",
            if side == Side::A { "row" } else { "column" }
        )),
        _ => Ok(()),
    }
}

fn infer_qlinear_matmul(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let a = operand(ctx, 0)?;
    let b = operand(ctx, 3)?;
    let at = check_8bit(a, "a")?;
    let bt = check_8bit(b, "b")?;
    let ts = check_scale(operand(ctx, 1)?, "a_scale")?;
    for (i, what) in [(4, "b_scale"), (6, "y_scale")] {
        if check_scale(operand(ctx, i)?, what)? != ts {
            return Err(format!("{what} has type {} but a_scale has type {ts}", operand(ctx, i)?.scalar()));
        }
    }
    check_param_type(operand(ctx, 1)?, &a.dims, Side::A, "a_scale")?;
    check_param_type(operand(ctx, 4)?, &b.dims, Side::B, "b_scale")?;
    if let Some(z) = check_zero_point_type(ctx, 2, at, "a_zero_point")? {
        check_param_type(&z, &a.dims, Side::A, "a_zero_point")?;
    }
    if let Some(z) = check_zero_point_type(ctx, 5, bt, "b_zero_point")? {
        check_param_type(&z, &b.dims, Side::B, "b_zero_point")?;
    }
    let dims = matmul_dims(&a.dims, &b.dims, "a", "b")?;
    // The output type is y_zero_point's; ONNX's reference falls back to a's type without one.
    let yt = if ctx.has_operand(7) { check_8bit(operand(ctx, 7)?, "y_zero_point")? } else { at };
    Ok(vec![TensorType::new(dims, yt)])
}

/// Per-output-element requantization: `round_half_even(acc * mult + y_zp)` saturated to `yt`.
fn requantize(acc: i32, mult: f64, zp: i32, yt: ScalarType) -> OpResult<i64> {
    let (lo, hi) = int_range(yt).ok_or_else(|| format!("{yt} is not an integer type"))?;
    Ok(round_saturate(acc as f64 * mult + zp as f64, lo, hi, zp as i64))
}

fn eval_qlinear_matmul(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let a = input(ctx, 0)?;
    let b = input(ctx, 3)?;
    let (a_scale, b_scale, y_scale) = (input(ctx, 1)?, input(ctx, 4)?, input(ctx, 6)?);
    let ts = a_scale.scalar_type();
    let s = MatmulShape::new(a.shape(), b.shape())?;
    let av = subtract_zero_point(a, ctx.opt_input(2), &s.a, Side::A, "a")?;
    let bv = subtract_zero_point(b, ctx.opt_input(5), &s.b, Side::B, "b")?;
    let acc = int_matmul(&av, &bv, &s);

    check_scale_not_along_k(a_scale.shape(), &s.a, Side::A, "a_scale")?;
    check_scale_not_along_k(b_scale.shape(), &s.b, Side::B, "b_scale")?;
    // Scales are constant along K, so they broadcast to the operands' shapes with K = 1.
    let mut a1 = s.a.clone();
    let la = a1.len();
    a1[la - 1] = 1;
    let mut b1 = s.b.clone();
    let lb = b1.len();
    b1[lb - 2] = 1;
    let asv =
        broadcast_param(float_values(a_scale, "a_scale", false)?, a_scale.shape(), &a1, Side::A, "a_scale")?;
    let bsv =
        broadcast_param(float_values(b_scale, "b_scale", false)?, b_scale.shape(), &b1, Side::B, "b_scale")?;
    let full = s.full_out();
    let ysv = broadcast_param(
        float_values(y_scale, "y_scale", false)?,
        y_scale.shape(),
        &full,
        Side::B,
        "y_scale",
    )?;
    let (yzv, yt) = match ctx.opt_input(7) {
        Some(z) => (
            broadcast_param(int_values(z, "y_zero_point")?, z.shape(), &full, Side::B, "y_zero_point")?,
            z.scalar_type(),
        ),
        None => (vec![0; num_elements(&full)], a.scalar_type()),
    };
    let amap = s.batch_map(&s.a[..s.a.len() - 2]);
    let bmap = s.batch_map(&s.b[..s.b.len() - 2]);
    let (m, n) = (s.m, s.n);
    let mut vals = Vec::with_capacity(acc.len());
    for (bi, (&ai, &bj)) in amap.iter().zip(&bmap).enumerate() {
        for i in 0..m {
            for j in 0..n {
                let o = (bi * m + i) * n + j;
                let sa = asv[ai * m + i];
                let sb = bsv[bj * n + j];
                // ONNX computes the multiplier in the scales' type, then the product in f64.
                let mult = round_to(ts, round_to(ts, sa * sb) / ysv[o]);
                vals.push(requantize(acc[o], mult, yzv[o], yt)?);
            }
        }
    }
    Ok(vec![make_int(yt, &s.out, vals)?])
}

// ---------------------------------------------------------------------------------------------
// Integer convolution (ConvInteger, QLinearConv)
// ---------------------------------------------------------------------------------------------

/// The resolved geometry of an N-D convolution.
#[derive(Debug)]
struct ConvGeom {
    batch: usize,
    in_ch: usize,
    out_ch: usize,
    group: usize,
    in_sp: Vec<usize>,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pad_begin: Vec<usize>,
    out_sp: Vec<usize>,
}

/// Conv attributes read and validated against the spatial rank.
struct ConvAttrs {
    auto_pad: String,
    group: usize,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    /// `[begin..., end...]` (explicit pads; ignored unless `auto_pad` is NOTSET).
    pads: Vec<usize>,
    kernel_shape: Option<Vec<usize>>,
}

fn positive_list(attrs: &Attrs, name: &str, n: usize) -> OpResult<Vec<usize>> {
    match attrs.ints(name) {
        None => Ok(vec![1; n]),
        Some(v) => {
            if v.len() != n {
                return Err(format!("{name} has {} values but the input has {n} spatial dims", v.len()));
            }
            v.iter()
                .map(|&x| {
                    if x >= 1 {
                        Ok(x as usize)
                    } else {
                        Err(format!("{name} must be positive, found {v:?}"))
                    }
                })
                .collect()
        }
    }
}

fn conv_attrs(attrs: &Attrs, n: usize) -> OpResult<ConvAttrs> {
    let auto_pad = attrs.str("auto_pad").unwrap_or("NOTSET").to_string();
    if !matches!(auto_pad.as_str(), "NOTSET" | "SAME_UPPER" | "SAME_LOWER" | "VALID") {
        return Err(format!("auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, found {auto_pad:?}"));
    }
    let group = attrs.int("group").unwrap_or(1);
    if group < 1 {
        return Err(format!("group must be positive, found {group}"));
    }
    let pads = match attrs.ints("pads") {
        None => vec![0; 2 * n],
        Some(p) => {
            if p.len() != 2 * n {
                return Err(format!(
                    "pads has {} values, expected {} (begin and end for {n} spatial dims)",
                    p.len(),
                    2 * n
                ));
            }
            p.iter()
                .map(|&x| {
                    if x >= 0 {
                        Ok(x as usize)
                    } else {
                        Err(format!("pads must be non-negative, found {p:?}"))
                    }
                })
                .collect::<OpResult<Vec<_>>>()?
        }
    };
    let kernel_shape = match attrs.ints("kernel_shape") {
        None => None,
        Some(_) => Some(positive_list(attrs, "kernel_shape", n)?),
    };
    Ok(ConvAttrs {
        auto_pad,
        group: group as usize,
        strides: positive_list(attrs, "strides", n)?,
        dilations: positive_list(attrs, "dilations", n)?,
        pads,
        kernel_shape,
    })
}

/// Begin padding and output extent of one spatial dim.
fn conv_out_dim(a: &ConvAttrs, i: usize, d: usize, k: usize) -> OpResult<(usize, usize)> {
    let n = a.strides.len();
    let (s, dil) = (a.strides[i], a.dilations[i]);
    let eff = (k - 1) * dil + 1;
    let (pb, pe) = match a.auto_pad.as_str() {
        "VALID" => (0, 0),
        "SAME_UPPER" | "SAME_LOWER" => {
            let target = d.div_ceil(s);
            let need = ((target.max(1) - 1) * s + eff).saturating_sub(d);
            let head = if a.auto_pad == "SAME_LOWER" { need.div_ceil(2) } else { need / 2 };
            (head, need - head)
        }
        _ => (a.pads[i], a.pads[i + n]),
    };
    let padded = d + pb + pe;
    if padded < eff {
        return Err(format!(
            "spatial dim {i}: the kernel (extent {eff} with dilation) is larger than the padded input ({padded})"
        ));
    }
    Ok((pb, (padded - eff) / s + 1))
}

fn conv_geom(x: &[usize], w: &[usize], attrs: &Attrs) -> OpResult<ConvGeom> {
    if x.len() < 3 {
        return Err(format!("x must have rank >= 3 (N, C, spatial...), found shape {x:?}"));
    }
    if w.len() != x.len() {
        return Err(format!("w has rank {} but x has rank {}", w.len(), x.len()));
    }
    let n = x.len() - 2;
    let a = conv_attrs(attrs, n)?;
    let kernel = w[2..].to_vec();
    if let Some(ks) = &a.kernel_shape {
        if *ks != kernel {
            return Err(format!("kernel_shape {ks:?} differs from w's spatial dims {kernel:?}"));
        }
    }
    if kernel.contains(&0) {
        return Err(format!("w has an empty kernel {kernel:?}"));
    }
    let (in_ch, out_ch) = (x[1], w[0]);
    if w[1] * a.group != in_ch {
        return Err(format!(
            "x has {in_ch} channels but w expects {} x group {} = {}",
            w[1],
            a.group,
            w[1] * a.group
        ));
    }
    if out_ch % a.group != 0 {
        return Err(format!("w has {out_ch} output channels, not a multiple of group {}", a.group));
    }
    let mut pad_begin = Vec::with_capacity(n);
    let mut out_sp = Vec::with_capacity(n);
    for i in 0..n {
        let (pb, o) = conv_out_dim(&a, i, x[2 + i], kernel[i])?;
        pad_begin.push(pb);
        out_sp.push(o);
    }
    Ok(ConvGeom {
        batch: x[0],
        in_ch,
        out_ch,
        group: a.group,
        in_sp: x[2..].to_vec(),
        kernel,
        strides: a.strides,
        dilations: a.dilations,
        pad_begin,
        out_sp,
    })
}

/// The shape rule of both integer convolutions: `[N, M, out...]`.
fn conv_dims(x: &TensorType, w: &TensorType, attrs: &Attrs) -> OpResult<Vec<Dim>> {
    if x.rank() < 3 {
        return Err(format!("x must have rank >= 3 (N, C, spatial...), found {x}"));
    }
    if w.rank() != x.rank() {
        return Err(format!("w has rank {} but x has rank {}", w.rank(), x.rank()));
    }
    let n = x.rank() - 2;
    let a = conv_attrs(attrs, n)?;
    if let (Some(c), Some(cw)) = (x.dims[1].as_static(), w.dims[1].as_static()) {
        if cw * a.group as u64 != c {
            return Err(format!(
                "x has {c} channels but w expects {cw} x group {} = {}",
                a.group,
                cw * a.group as u64
            ));
        }
    }
    if let Some(m) = w.dims[0].as_static() {
        if m % a.group as u64 != 0 {
            return Err(format!("w has {m} output channels, not a multiple of group {}", a.group));
        }
    }
    let mut out = vec![x.dims[0].clone(), w.dims[0].clone()];
    for i in 0..n {
        let k = match (w.dims[2 + i].as_static(), &a.kernel_shape) {
            (Some(k), Some(ks)) if ks[i] as u64 != k => {
                return Err(format!(
                    "kernel_shape {ks:?} differs from w's spatial dims {}",
                    fmt_dims(&w.dims[2..])
                ));
            }
            (Some(k), _) => Some(k as usize),
            (None, Some(ks)) => Some(ks[i]),
            (None, None) => None,
        };
        let d = x.dims[2 + i].as_static();
        out.push(match (d, k) {
            (Some(d), Some(k)) if k > 0 => Dim::Static(conv_out_dim(&a, i, d as usize, k)?.1 as u64),
            (Some(_), Some(_)) => return Err("w has an empty kernel".into()),
            // SAME padding gives ceil(d / stride) whatever the kernel.
            (Some(d), None) if a.auto_pad.starts_with("SAME") => Dim::Static(d.div_ceil(a.strides[i] as u64)),
            _ => Dim::Unknown,
        });
    }
    Ok(out)
}

/// Integer convolution of `x` (`[N, C, in...]`, zero point already subtracted) with `w`
/// (`[M, C/group, k...]`, likewise), plus an optional per-channel bias; result `[N, M, out...]`.
/// Per (image, group) the input patches are gathered into a column matrix (im2col) with zeros
/// for the padding, then each output channel is a dot product with its filter row.
fn int_conv(x: &[i32], w: &[i32], bias: Option<&[i32]>, g: &ConvGeom) -> Vec<i32> {
    let nsp = g.in_sp.len();
    let ksize = num_elements(&g.kernel);
    let osize = num_elements(&g.out_sp);
    let isize = num_elements(&g.in_sp);
    let cg = g.in_ch / g.group;
    let mg = g.out_ch / g.group;
    let rows = cg * ksize;
    // in_index[d][kd * out_d + od]: the input coordinate along dim d, or None in the padding.
    let in_index: Vec<Vec<Option<usize>>> = (0..nsp)
        .map(|d| {
            let mut v = Vec::with_capacity(g.kernel[d] * g.out_sp[d]);
            for kd in 0..g.kernel[d] {
                for od in 0..g.out_sp[d] {
                    let pos = (od * g.strides[d] + kd * g.dilations[d]) as isize - g.pad_begin[d] as isize;
                    v.push(if pos >= 0 && (pos as usize) < g.in_sp[d] { Some(pos as usize) } else { None });
                }
            }
            v
        })
        .collect();
    // For each (kernel offset, output position): the flat spatial input offset, or None.
    let mut gather: Vec<Option<usize>> = Vec::with_capacity(ksize * osize);
    let mut kidx = vec![0usize; nsp];
    for _ in 0..ksize {
        let mut oidx = vec![0usize; nsp];
        for _ in 0..osize {
            let mut off = Some(0usize);
            for d in 0..nsp {
                off = match (off, in_index[d][kidx[d] * g.out_sp[d] + oidx[d]]) {
                    (Some(o), Some(p)) => Some(o * g.in_sp[d] + p),
                    _ => None,
                };
            }
            gather.push(off);
            odometer(&mut oidx, &g.out_sp);
        }
        odometer(&mut kidx, &g.kernel);
    }
    let mut out = vec![0i32; g.batch * g.out_ch * osize];
    let mut cols = vec![0i32; rows * osize];
    for nb in 0..g.batch {
        for gr in 0..g.group {
            for c in 0..cg {
                let plane = &x[(nb * g.in_ch + gr * cg + c) * isize..][..isize];
                for kk in 0..ksize {
                    let dst = &mut cols[(c * ksize + kk) * osize..][..osize];
                    for (d, src) in dst.iter_mut().zip(&gather[kk * osize..(kk + 1) * osize]) {
                        *d = src.map_or(0, |o| plane[o]);
                    }
                }
            }
            for mo in 0..mg {
                let m = gr * mg + mo;
                let o = &mut out[(nb * g.out_ch + m) * osize..][..osize];
                let b = bias.map_or(0, |b| b[m]);
                o.fill(b);
                for (r, &wv) in w[m * rows..(m + 1) * rows].iter().enumerate() {
                    if wv == 0 {
                        continue;
                    }
                    for (acc, &cv) in o.iter_mut().zip(&cols[r * osize..(r + 1) * osize]) {
                        *acc = acc.wrapping_add(wv.wrapping_mul(cv));
                    }
                }
            }
        }
    }
    out
}

/// Advances a row-major multi-index.
fn odometer(idx: &mut [usize], dims: &[usize]) {
    for d in (0..idx.len()).rev() {
        idx[d] += 1;
        if idx[d] < dims[d] {
            return;
        }
        idx[d] = 0;
    }
}

/// Reads a per-tensor zero point (any shape with one element), as the conv inputs require.
fn scalar_param(t: Option<&Tensor>, what: &str) -> OpResult<i32> {
    match t {
        None => Ok(0),
        Some(t) => {
            let v = int_values(t, what)?;
            if v.len() != 1 {
                return Err(format!("{what} must be a scalar (per tensor), found shape {:?}", t.shape()));
            }
            Ok(v[0])
        }
    }
}

/// Reads a per-tensor or per-output-channel parameter as `m` values.
fn per_channel<T: Copy>(vals: Vec<T>, shape: &[usize], m: usize, what: &str) -> OpResult<Vec<T>> {
    if vals.len() == 1 {
        return Ok(vec![vals[0]; m]);
    }
    if shape.len() != 1 || vals.len() != m {
        return Err(format!(
            "{what} must be a scalar or a 1-D tensor with one value per output channel ({m}), found shape {shape:?}"
        ));
    }
    Ok(vals)
}

fn check_per_tensor_type(t: &TensorType, what: &str) -> OpResult<()> {
    match t.num_elements() {
        Some(1) | None => Ok(()),
        Some(_) => Err(format!("{what} must be a scalar (per tensor), found {t}")),
    }
}

fn check_per_channel_type(t: &TensorType, m: &Dim, what: &str) -> OpResult<()> {
    if t.num_elements() == Some(1) {
        return Ok(());
    }
    if t.rank() != 1 {
        return Err(format!("{what} must be a scalar or 1-D (per output channel), found {t}"));
    }
    if let (Some(a), Some(b)) = (t.dims[0].as_static(), m.as_static()) {
        if a != b {
            return Err(format!("{what} has {a} values but w has {b} output channels"));
        }
    }
    Ok(())
}

/// Input operands minus zero points for both convolutions: `(x, w, geometry)`.
fn conv_inputs(
    x: &Tensor,
    w: &Tensor,
    x_zp: Option<&Tensor>,
    w_zp: Option<&Tensor>,
    attrs: &Attrs,
) -> OpResult<(Vec<i32>, Vec<i32>, ConvGeom)> {
    let g = conv_geom(x.shape(), w.shape(), attrs)?;
    let xz = scalar_param(x_zp, "x_zero_point")?;
    let xv: Vec<i32> = int_values(x, "x")?.into_iter().map(|v| v.wrapping_sub(xz)).collect();
    let mut wv = int_values(w, "w")?;
    if let Some(z) = w_zp {
        let zs = per_channel(int_values(z, "w_zero_point")?, z.shape(), g.out_ch, "w_zero_point")?;
        let per = wv.len() / g.out_ch.max(1);
        for (i, v) in wv.iter_mut().enumerate() {
            *v = v.wrapping_sub(zs[i / per]);
        }
    }
    Ok((xv, wv, g))
}

fn infer_conv_integer(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    let w = operand(ctx, 1)?;
    let xt = check_8bit(x, "x")?;
    let wt = check_8bit(w, "w")?;
    if let Some(z) = check_zero_point_type(ctx, 2, xt, "x_zero_point")? {
        check_per_tensor_type(&z, "x_zero_point")?;
    }
    if let Some(z) = check_zero_point_type(ctx, 3, wt, "w_zero_point")? {
        check_per_channel_type(&z, &w.dims[0], "w_zero_point")?;
    }
    Ok(vec![TensorType::new(conv_dims(x, w, ctx.attrs)?, ScalarType::I32)])
}

fn eval_conv_integer(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let w = input(ctx, 1)?;
    let (xv, wv, g) = conv_inputs(x, w, ctx.opt_input(2), ctx.opt_input(3), ctx.attrs)?;
    let y = int_conv(&xv, &wv, None, &g);
    let mut shape = vec![g.batch, g.out_ch];
    shape.extend(&g.out_sp);
    Ok(vec![make_int(ScalarType::I32, &shape, y.into_iter().map(i64::from).collect())?])
}

fn infer_qlinear_conv(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    let w = operand(ctx, 3)?;
    let xt = check_8bit(x, "x")?;
    let wt = check_8bit(w, "w")?;
    let ts = check_scale(operand(ctx, 1)?, "x_scale")?;
    for (i, what) in [(4, "w_scale"), (6, "y_scale")] {
        if check_scale(operand(ctx, i)?, what)? != ts {
            return Err(format!("{what} has type {} but x_scale has type {ts}", operand(ctx, i)?.scalar()));
        }
    }
    check_per_tensor_type(operand(ctx, 1)?, "x_scale")?;
    check_per_channel_type(operand(ctx, 4)?, &w.dims[0], "w_scale")?;
    check_per_tensor_type(operand(ctx, 6)?, "y_scale")?;
    if let Some(z) = check_zero_point_type(ctx, 2, xt, "x_zero_point")? {
        check_per_tensor_type(&z, "x_zero_point")?;
    }
    if let Some(z) = check_zero_point_type(ctx, 5, wt, "w_zero_point")? {
        check_per_channel_type(&z, &w.dims[0], "w_zero_point")?;
    }
    let yt = if ctx.has_operand(7) {
        let z = operand(ctx, 7)?;
        check_per_tensor_type(z, "y_zero_point")?;
        check_8bit(z, "y_zero_point")?
    } else {
        xt
    };
    if ctx.has_operand(8) {
        let b = operand(ctx, 8)?;
        if b.scalar() != ScalarType::I32 {
            return Err(format!("B must be i32, found {}", b.scalar()));
        }
        check_per_channel_type(b, &w.dims[0], "B")?;
    }
    Ok(vec![TensorType::new(conv_dims(x, w, ctx.attrs)?, yt)])
}

fn eval_qlinear_conv(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let w = input(ctx, 3)?;
    let (x_scale, w_scale, y_scale) = (input(ctx, 1)?, input(ctx, 4)?, input(ctx, 6)?);
    let (xv, wv, g) = conv_inputs(x, w, ctx.opt_input(2), ctx.opt_input(5), ctx.attrs)?;
    let bias = match ctx.opt_input(8) {
        Some(b) => {
            if b.scalar_type() != ScalarType::I32 {
                return Err(format!("B must be i32, found {}", b.scalar_type()));
            }
            Some(per_channel(int_values(b, "B")?, b.shape(), g.out_ch, "B")?)
        }
        None => None,
    };
    let acc = int_conv(&xv, &wv, bias.as_deref(), &g);

    let ts = x_scale.scalar_type();
    let xs = float_values(x_scale, "x_scale", false)?;
    let ys = float_values(y_scale, "y_scale", false)?;
    if xs.len() != 1 || ys.len() != 1 {
        return Err("x_scale and y_scale must be scalars (per tensor)".into());
    }
    let ws = per_channel(float_values(w_scale, "w_scale", false)?, w_scale.shape(), g.out_ch, "w_scale")?;
    let (yz, yt) = match ctx.opt_input(7) {
        Some(z) => (scalar_param(Some(z), "y_zero_point")?, z.scalar_type()),
        None => (0, x.scalar_type()),
    };
    // The multiplier is computed in the scales' type, as ONNX's reference does.
    let mults: Vec<f64> = ws.iter().map(|&w| round_to(ts, round_to(ts, xs[0] * w) / ys[0])).collect();
    let osize = num_elements(&g.out_sp);
    let vals = acc
        .iter()
        .enumerate()
        .map(|(i, &a)| requantize(a, mults[(i / osize) % g.out_ch], yz, yt))
        .collect::<OpResult<Vec<i64>>>()?;
    let mut shape = vec![g.batch, g.out_ch];
    shape.extend(&g.out_sp);
    Ok(vec![make_int(yt, &shape, vals)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::Attr;
    use crate::interp::check_value;

    fn arr<T>(shape: &[usize], v: Vec<T>) -> ArrayD<T> {
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }
    fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::F32(arr(shape, v.to_vec()))
    }
    fn i8s(shape: &[usize], v: &[i8]) -> Tensor {
        Tensor::I8(arr(shape, v.to_vec()))
    }
    fn u8s(shape: &[usize], v: &[u8]) -> Tensor {
        Tensor::U8(arr(shape, v.to_vec()))
    }

    /// Runs the shape rule, then the evaluation, and checks the values against the types.
    fn run(def: &OpDef, inputs: Vec<Tensor>, attrs: Attrs, num_results: usize) -> OpResult<Vec<Tensor>> {
        let types: Vec<TensorType> = inputs.iter().map(|t| t.ty()).collect();
        let consts: Vec<Option<Tensor>> = vec![None; inputs.len()];
        let ictx = InferCtx { attrs: &attrs, operands: &types, consts: &consts, num_results };
        let rt = (def.infer)(&ictx)?;
        assert_eq!(rt.len(), num_results);
        let ectx = EvalCtx { attrs: &attrs, inputs: &inputs, operand_types: &types, result_types: &rt };
        let out = (def.eval)(&ectx)?;
        for (t, ty) in out.iter().zip(&rt) {
            check_value(ty, t).unwrap();
        }
        Ok(out)
    }
    fn run1(def: &OpDef, inputs: Vec<Tensor>, attrs: Attrs) -> OpResult<Tensor> {
        Ok(run(def, inputs, attrs, 1)?.remove(0))
    }
    fn ints(t: &Tensor) -> Vec<i64> {
        t.to_i64_vec().unwrap()
    }

    const HALF_X: [f32; 10] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 300.0, -300.0, 1e10, 3.4999998];

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        let x = f32s(&[10], &HALF_X);
        let y =
            run1(&QUANTIZE_LINEAR, vec![x.clone(), f32s(&[], &[1.0]), i8s(&[], &[0])], Attrs::new()).unwrap();
        assert_eq!(y.scalar_type(), ScalarType::I8);
        // ONNX's reference wraps 1e10 through int32 (giving -128); the spec saturates to 127.
        assert_eq!(ints(&y), vec![0, 2, 2, 0, -2, -2, 127, -128, 127, 3]);
        let y = run1(&QUANTIZE_LINEAR, vec![x.clone(), f32s(&[], &[2.0]), u8s(&[], &[128])], Attrs::new())
            .unwrap();
        assert_eq!(ints(&y), vec![128, 129, 129, 128, 127, 127, 255, 0, 255, 130]);
        // Without a zero point the output is u8.
        let y = run1(&QUANTIZE_LINEAR, vec![x, f32s(&[], &[0.5])], Attrs::new()).unwrap();
        assert_eq!(y.scalar_type(), ScalarType::U8);
        assert_eq!(ints(&y), vec![1, 3, 5, 0, 0, 0, 255, 0, 255, 7]);
    }

    #[test]
    fn quantize_blocked_with_short_last_block() {
        let x = f32s(
            &[2, 5],
            &[
                7.0562096, 1.6006289, 3.914952, 8.9635725, 7.470232, -3.9091115, 3.8003538, -0.6054288,
                -0.4128754, 1.6423941,
            ],
        );
        let s = f32s(&[2, 3], &[0.5, 1.0, 0.25, 2.0, 0.75, 1.5]);
        let z = i8s(&[2, 3], &[1, -2, 0, 3, 0, -1]);
        let attrs = Attrs::new().with("axis", Attr::Int(1)).with("block_size", Attr::Int(2));
        let y = run1(&QUANTIZE_LINEAR, vec![x, s.clone(), z.clone()], attrs.clone()).unwrap();
        assert_eq!(ints(&y), vec![15, 4, 2, 7, 30, 1, 5, -1, -1, 0]);
        let d = run1(&DEQUANTIZE_LINEAR, vec![y, s.clone(), z.clone()], attrs.clone()).unwrap();
        assert_eq!(d.to_f64_vec(), vec![7.0, 1.5, 4.0, 9.0, 7.5, -4.0, 4.0, -0.75, -0.75, 1.5]);
        // A block size that leaves a scale unused is rejected.
        let bad = Attrs::new().with("axis", Attr::Int(1)).with("block_size", Attr::Int(3));
        let e = run1(&QUANTIZE_LINEAR, vec![f32s(&[2, 5], &[0.0; 10]), s, z], bad).unwrap_err();
        assert!(e.contains("blocked y_scale"), "{e}");
    }

    #[test]
    fn quantize_blocked_to_int4() {
        let x = f32s(&[1, 4], &[-9.0, 3.4, 14.0, -1.0]);
        let s = f32s(&[1, 2], &[1.0, 2.0]);
        let attrs = Attrs::new()
            .with("axis", Attr::Int(-1))
            .with("block_size", Attr::Int(2))
            .with("output_dtype", Attr::Type(ScalarType::I4));
        let y = run1(&QUANTIZE_LINEAR, vec![x, s.clone()], attrs).unwrap();
        assert_eq!(y, Tensor::I4(arr(&[1, 4], vec![-8, 3, 7, 0])));
        let d = run1(
            &DEQUANTIZE_LINEAR,
            vec![y, s],
            Attrs::new().with("axis", Attr::Int(1)).with("block_size", Attr::Int(2)),
        )
        .unwrap();
        assert_eq!(d.to_f64_vec(), vec![-8.0, 3.0, 14.0, 0.0]);
    }

    #[test]
    fn quantize_per_axis_int16() {
        let x = f32s(
            &[2, 3, 2],
            &[
                14.404356, 145.42735, 76.10377, 12.167501, 44.386326, 33.367435, 149.40791, -20.515827,
                31.30677, -85.40958, -255.29897, 65.361855,
            ],
        );
        let s = f32s(&[3], &[0.01, 0.5, 3.0]);
        let z = Tensor::I16(arr(&[3], vec![-5, 0, 7]));
        let y =
            run1(&QUANTIZE_LINEAR, vec![x, s.clone(), z.clone()], Attrs::new().with("axis", Attr::Int(-2)))
                .unwrap();
        assert_eq!(y.scalar_type(), ScalarType::I16);
        assert_eq!(ints(&y), vec![1435, 14538, 152, 24, 22, 18, 14936, -2057, 63, -171, -78, 29]);
        // The default axis is 1; the scale must match x's dim there.
        let e = run1(&QUANTIZE_LINEAR, vec![f32s(&[3, 2], &[0.0; 6]), s, z], Attrs::new()).unwrap_err();
        assert!(e.contains("per-axis"), "{e}");
    }

    #[test]
    fn quantize_f16_divides_in_f16() {
        let x = Tensor::F16(arr(&[5], [0.1f32, 0.2, 0.3, 100.7, -3.3].map(f16::from_f32).to_vec()));
        let s = Tensor::F16(arr(&[], vec![f16::from_f32(0.0999)]));
        let y = run1(&QUANTIZE_LINEAR, vec![x, s, i8s(&[], &[0])], Attrs::new()).unwrap();
        assert_eq!(ints(&y), vec![1, 2, 3, 127, -33]);
    }

    #[test]
    fn quantize_rejects_conflicting_or_float_outputs() {
        let x = f32s(&[2], &[1.0, 2.0]);
        let s = f32s(&[], &[1.0]);
        let a = Attrs::new().with("output_dtype", Attr::Type(ScalarType::U8));
        assert!(run1(&QUANTIZE_LINEAR, vec![x.clone(), s.clone(), i8s(&[], &[0])], a).is_err());
        let a = Attrs::new().with("output_dtype", Attr::Type(ScalarType::F16));
        let e = run1(&QUANTIZE_LINEAR, vec![x, s], a).unwrap_err();
        assert!(e.contains("float8"), "{e}");
    }

    #[test]
    fn dequantize_int32_to_f16() {
        let x = Tensor::I32(arr(&[3], vec![-7, 100000, 3]));
        let a = Attrs::new().with("output_dtype", Attr::Type(ScalarType::F16));
        let y = run1(&DEQUANTIZE_LINEAR, vec![x, f32s(&[], &[0.001])], a).unwrap();
        assert_eq!(y.scalar_type(), ScalarType::F16);
        let want = Tensor::F16(arr(&[3], [-0.007f32, 100.0, 0.003].map(f16::from_f32).to_vec()));
        assert_eq!(y, want);
    }

    #[test]
    fn dequantize_per_axis_and_type_checks() {
        let x = u8s(&[2, 3], &[0, 10, 20, 30, 40, 255]);
        let s = f32s(&[3], &[0.5, 1.0, 2.0]);
        let z = u8s(&[3], &[0, 10, 128]);
        let y = run1(&DEQUANTIZE_LINEAR, vec![x.clone(), s.clone(), z], Attrs::new()).unwrap();
        assert_eq!(y.to_f64_vec(), vec![0.0, 0.0, -216.0, 15.0, 30.0, 254.0]);
        // The zero point must have x's type.
        assert!(run1(&DEQUANTIZE_LINEAR, vec![x, s, i8s(&[3], &[0, 0, 0])], Attrs::new()).is_err());
    }

    #[test]
    fn dynamic_quantize_matches_formula() {
        let x = f32s(&[6], &[-1.0, -0.3, 0.0, 2.7, 5.1, 1.2]);
        let r = run(&DYNAMIC_QUANTIZE_LINEAR, vec![x], Attrs::new(), 3).unwrap();
        assert_eq!(ints(&r[0]), vec![0, 29, 42, 155, 255, 92]);
        assert_eq!(r[1], Tensor::F32(arr(&[], vec![0.023921568f32])));
        assert_eq!(ints(&r[2]), vec![42]);
        // All-zero input: scale 1/255, zero point 0.
        let r = run(&DYNAMIC_QUANTIZE_LINEAR, vec![f32s(&[2], &[0.0, 0.0])], Attrs::new(), 3).unwrap();
        assert_eq!(r[1], Tensor::F32(arr(&[], vec![1.0f32 / 255.0])));
        assert_eq!(ints(&r[0]), vec![0, 0]);
    }

    #[test]
    fn matmul_integer_batched_per_row_and_per_column() {
        let a = i8s(
            &[2, 1, 3, 4],
            &[
                -91, 107, 12, -56, 127, 9, 75, 5, -49, 64, 16, 1, 76, -57, 109, 124, 6, -103, 50, -108, 126,
                -27, 18, 84,
            ],
        );
        let b = u8s(
            &[3, 4, 2],
            &[
                139, 252, 234, 156, 157, 142, 50, 68, 215, 215, 233, 241, 247, 222, 96, 86, 141, 233, 137, 7,
                63, 61, 22, 57,
            ],
        );
        let az = i8s(&[2, 1, 3, 1], &[-127, 0, -68, 81, -120, 88]);
        let bz = u8s(&[2], &[7, 200]);
        let y = run1(&MATMUL_INTEGER, vec![a, b, az, bz], Attrs::new()).unwrap();
        assert_eq!(y.shape(), &[2, 3, 3, 2]);
        assert_eq!(
            ints(&y),
            vec![
                81773, -25858, 30272, 1198, 48039, -18800, 100051, 5098, 46895, 3354, 60085, -321, 44093,
                -73448, 22463, -8686, 25445, -46392, -25937, -1488, 46507, -5640, -31761, 11624, -21681,
                -10019, 71918, 4959, -35242, -5229, -16397, 16428, 28794, -24469, -13838, 33751
            ]
        );
        // A 1-D a_zero_point of length M is per row (the spec's [zp_1, ..., zp_M]); b is 1-D.
        let a2 = u8s(&[3, 4], &[141, 115, 175, 234, 121, 200, 30, 71, 131, 198, 149, 49]);
        let b2 = i8s(&[4], &[-71, -125, 68, -104]);
        let y = run1(&MATMUL_INTEGER, vec![a2, b2, u8s(&[3], &[1, 2, 250])], Attrs::new()).unwrap();
        assert_eq!(y.shape(), &[3]);
        assert_eq!(ints(&y), vec![-36590, -38471, 28985]);
    }

    #[test]
    fn matmul_shape_rule() {
        let t = |d: Vec<Dim>| TensorType::new(d, ScalarType::U8);
        let attrs = Attrs::new();
        let ops = [t(vec![Dim::Sym("b".into()), Dim::Static(5), Dim::Static(4)]), t(vec![Dim::Static(4)])];
        let ctx = InferCtx { attrs: &attrs, operands: &ops, consts: &[None, None], num_results: 1 };
        let r = infer_matmul_integer(&ctx).unwrap();
        assert_eq!(r[0], TensorType::new(vec![Dim::Sym("b".into()), Dim::Static(5)], ScalarType::I32));
        let ops = [t(vec![Dim::Static(5), Dim::Static(4)]), t(vec![Dim::Static(3), Dim::Static(2)])];
        let ctx = InferCtx { attrs: &attrs, operands: &ops, consts: &[None, None], num_results: 1 };
        assert!(infer_matmul_integer(&ctx).unwrap_err().contains("reduction"));
    }

    const CX: [u8; 120] = [
        241, 43, 76, 26, 52, 80, 109, 115, 41, 210, 15, 64, 196, 25, 111, 226, 215, 135, 26, 153, 104, 22, 9,
        195, 231, 126, 23, 125, 100, 155, 165, 57, 83, 166, 136, 32, 162, 10, 23, 143, 239, 87, 25, 199, 243,
        92, 74, 190, 46, 160, 216, 151, 183, 65, 113, 77, 3, 128, 248, 253, 205, 6, 52, 213, 198, 2, 76, 219,
        149, 203, 7, 77, 200, 75, 76, 43, 20, 30, 36, 103, 7, 45, 196, 57, 240, 252, 210, 96, 13, 10, 23,
        124, 81, 135, 121, 152, 202, 220, 148, 160, 140, 193, 94, 60, 233, 152, 82, 115, 97, 130, 236, 220,
        103, 98, 10, 182, 96, 233, 82, 214,
    ];
    const CW: [i8; 48] = [
        70, 66, -57, 103, 48, -74, -113, 5, 17, 42, -108, -10, 48, -106, 101, 13, 113, -14, -31, 53, -44,
        -118, -32, 55, -67, -72, 89, 21, 103, -32, 121, 83, -103, 113, 14, 13, 84, -12, -85, 6, 77, 56, 59,
        15, -104, 123, 9, 66,
    ];

    #[test]
    fn conv_integer_grouped_strided_dilated_same_lower() {
        let attrs = Attrs::new()
            .with("group", Attr::Int(2))
            .with("strides", Attr::Ints(vec![2, 1]))
            .with("dilations", Attr::Ints(vec![1, 2]))
            .with("auto_pad", Attr::Str("SAME_LOWER".into()));
        let inputs = vec![
            u8s(&[1, 4, 5, 6], &CX),
            i8s(&[4, 2, 3, 2], &CW),
            u8s(&[], &[120]),
            i8s(&[4], &[0, 1, -3, 5]),
        ];
        let y = run1(&CONV_INTEGER, inputs, attrs).unwrap();
        assert_eq!(y.shape(), &[1, 4, 3, 6]);
        assert_eq!(
            ints(&y),
            vec![
                -9107, -10466, 318, 8811, 4634, -13744, -10189, -9219, 38841, 6001, -15245, -39126, 1190,
                -20145, -8745, -12123, 3354, -11573, 708, 7279, -8505, -3101, 6901, -23207, -14061, -3984,
                -8080, 17100, -4614, -11684, 3738, 28828, 14012, -8578, -31750, -14993, -3543, 7701, 3511,
                6779, 19829, -4562, -5618, 31241, 9644, -23505, -8906, 12079, 12393, 41713, 34579, 18614,
                14411, -13016, 11507, -1400, 25888, 8224, 2049, -15185, -8065, 4836, 27590, -11850, 3385,
                10699, 7837, -6349, -3856, -14200, 1151, 18858
            ]
        );
    }

    #[test]
    fn conv_integer_explicit_asymmetric_pads() {
        let attrs = Attrs::new()
            .with("group", Attr::Int(2))
            .with("strides", Attr::Ints(vec![2, 2]))
            .with("pads", Attr::Ints(vec![1, 0, 2, 1]));
        let inputs = vec![
            u8s(&[1, 4, 5, 6], &CX),
            i8s(&[4, 2, 3, 2], &CW),
            u8s(&[], &[120]),
            i8s(&[4], &[0, 1, -3, 5]),
        ];
        let y = run1(&CONV_INTEGER, inputs, attrs).unwrap();
        assert_eq!(y.shape(), &[1, 4, 3, 3]);
        assert_eq!(
            ints(&y),
            vec![
                -20303, -6077, -17086, -18172, 19638, -43502, -3474, -13890, 2293, 8165, -15092, -14157,
                -12133, -12690, -19653, 13103, 2947, -41285, 10707, 3399, -1267, 8031, -20386, 20059, 36957,
                58603, -2297, 11590, 21107, -9267, -17619, -7263, 6925, 1149, 7438, 30691
            ]
        );
    }

    #[test]
    fn conv_shape_errors() {
        let attrs = Attrs::new().with("group", Attr::Int(3));
        let inputs = vec![u8s(&[1, 4, 5, 6], &CX), i8s(&[4, 2, 3, 2], &CW)];
        assert!(run1(&CONV_INTEGER, inputs.clone(), attrs).unwrap_err().contains("channels"));
        let attrs = Attrs::new().with("group", Attr::Int(2)).with("kernel_shape", Attr::Ints(vec![3, 3]));
        assert!(run1(&CONV_INTEGER, inputs, attrs).unwrap_err().contains("kernel_shape"));
    }

    #[test]
    fn qlinear_matmul_per_column_scales() {
        let qa = i8s(&[2, 3], &[71, -75, -59, 36, -27, 120]);
        let qb = i8s(&[3, 4], &[-107, -88, -51, 91, 49, -15, -81, 77, 40, 78, -83, -41]);
        let scales = |v: f32, shape: &[usize], vs: &[f32], half: bool| -> Tensor {
            let vals: Vec<f32> = if shape.is_empty() { vec![v] } else { vs.to_vec() };
            if half {
                Tensor::F16(arr(shape, vals.into_iter().map(f16::from_f32).collect()))
            } else {
                f32s(shape, &vals)
            }
        };
        for half in [false, true] {
            let inputs = vec![
                qa.clone(),
                scales(0.0123, &[], &[], half),
                i8s(&[], &[3]),
                qb.clone(),
                scales(0.0, &[4], &[0.02, 0.031, 0.007, 0.5], half),
                i8s(&[4], &[0, 1, -2, 4]),
                scales(0.0411, &[], &[], half),
                i8s(&[], &[-7]),
            ];
            let y = run1(&QLINEAR_MATMUL, inputs, Attrs::new()).unwrap();
            assert_eq!(ints(&y), vec![-88, -96, 9, 127, -9, 54, -25, -128]);
        }
    }

    #[test]
    fn qlinear_matmul_rounds_half_to_even() {
        // acc = 1 * 1 per element; multiplier 0.5 / 1 -> 0.5 rounds to 0, 1.5 (acc 3) to 2.
        let inputs = vec![
            u8s(&[1, 2], &[1, 3]),
            f32s(&[], &[0.5]),
            u8s(&[], &[0]),
            u8s(&[2, 2], &[1, 0, 0, 1]),
            f32s(&[], &[1.0]),
            u8s(&[], &[0]),
            f32s(&[], &[1.0]),
            u8s(&[], &[0]),
        ];
        let y = run1(&QLINEAR_MATMUL, inputs, Attrs::new()).unwrap();
        assert_eq!(ints(&y), vec![0, 2]);
    }

    #[test]
    fn qlinear_conv_per_channel_with_bias() {
        let x = [
            144, 156, 234, 45, 195, 116, 66, 206, 46, 128, 157, 63, 75, 35, 181, 221, 33, 130, 212, 83, 48,
            54, 32, 253, 156, 55, 210, 31, 28, 222, 74, 136, 109, 99, 32, 8, 84, 205, 50, 79, 169, 64, 108,
            211, 24, 113, 234, 20, 44, 15, 158, 219, 142, 243, 19, 251, 154, 235, 86, 135, 227, 53, 175, 110,
        ];
        let w = [
            61, 116, -93, -27, 101, -95, 20, 68, -103, 84, 102, -33, 39, 48, 104, 6, -48, -64, -14, -40, 33,
            -85, 75, 67,
        ];
        let inputs = vec![
            u8s(&[2, 2, 4, 4], &x),
            f32s(&[], &[0.02]),
            u8s(&[], &[128]),
            i8s(&[3, 2, 2, 2], &w),
            f32s(&[3], &[0.01, 0.003, 0.02]),
            i8s(&[3], &[0, 0, 0]),
            f32s(&[], &[0.05]),
            u8s(&[], &[100]),
            Tensor::I32(arr(&[3], vec![100, -2000, 5])),
        ];
        let y = run1(&QLINEAR_CONV, inputs, Attrs::new().with("pads", Attr::Ints(vec![1, 1, 0, 0]))).unwrap();
        assert_eq!(y.shape(), &[2, 3, 4, 4]);
        assert_eq!(
            ints(&y),
            vec![
                73, 84, 102, 64, 115, 28, 104, 180, 178, 120, 89, 12, 30, 167, 75, 115, 96, 87, 98, 124, 91,
                92, 101, 56, 103, 73, 74, 131, 92, 90, 100, 82, 44, 33, 109, 141, 92, 0, 0, 146, 161, 97,
                173, 0, 86, 215, 31, 146, 80, 73, 121, 176, 132, 132, 0, 58, 77, 110, 194, 0, 148, 78, 136,
                86, 98, 85, 84, 95, 93, 81, 114, 84, 93, 130, 85, 93, 108, 93, 91, 130, 61, 0, 82, 216, 188,
                227, 137, 169, 114, 92, 255, 0, 148, 87, 140, 91
            ]
        );
    }
}
