//! `q.*` integer kernels with TFLite's integer arithmetic: what post-training quantization
//! produces and what the integer backends and the TFLite exporter implement.
//!
//! Unlike the ONNX-level ops of `quant.rs`, these carry their quantization parameters in the
//! types (`!q.uniform<i8:f32, scale, zero_point>`), and their arithmetic is that of TFLite's
//! reference integer kernels bit for bit (see `docs/quantization.md`; for fully connected, TFLite's
//! fixed-point rescaling, which LiteRT's reference FC replaces by a float one; checked by
//! `testsuite/tests/tflite_exact.rs`):
//! - `q.quantize`: `clamp(round_half_away(x / scale) + zero_point)` with the division in `f32`.
//! - `q.dequantize`: `f32(scale · (q − zero_point))` with the product in `f64`.
//! - `q.requantize`: `clamp(MBQM(q − zp_in, M) + zp_out)` with `M = scale_in / scale_out`.
//! - `q.lookup`: `table[q + 128]`, TFLite's 256-entry LUT for int8 elementwise functions
//!   (its GELU, TANH, LOGISTIC... int8 kernels): the table holds `f(x)` quantized to the output
//!   for every input value `x`.
//! - `q.add`: TFLite ADD's int8 arithmetic (see [`add_params`]): both inputs, shifted left by 20
//!   bits, are rescaled to twice the larger input scale, summed, rescaled to the output, clamped.
//! - `q.conv`, `q.conv_transpose`, `q.fully_connected`: `acc = Σ w·(x − zp_x) + bias[c]` in
//!   `i32`, then per output channel `c`: `clamp(MBQM(acc, M[c]) + zp_y, act_min, act_max)` with
//!   `M[c] = scale_x · scale_w[c] / scale_y` quantized by [`quantize_multiplier`] and MBQM =
//!   [`multiply_by_quantized_multiplier`]. Weights are symmetric (zero point 0), per tensor or
//!   per output channel; activations are per-tensor `i8`; the bias is `i32` at scale
//!   `scale_x · scale_w[c]`.
//! - `q.fully_connected` without `scale` has no output quantization (not a TFLite kernel; what
//!   ONNX Runtime's dynamic quantization computes): `y = f32(acc) · f32(scale_x · scale_w[c])`,
//!   the scale product in `f64` rounded to `f32`, one `f32` multiply.

use super::util::{input, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::{AttrKind, Attrs};
use crate::tensor::Tensor;
use crate::types::{Dim, ElemType, QuantParams, QuantType, ScalarType, TensorType};
use ndarray::{ArrayD, IxDyn};

// ---------------------------------------------------------------------------------------------
// TFLite's fixed-point arithmetic
// ---------------------------------------------------------------------------------------------

/// Splits a real multiplier into a Q31 significand and a power-of-two exponent, as TFLite's
/// `QuantizeMultiplier`: `m ≈ significand · 2^(shift − 31)`.
pub fn quantize_multiplier(m: f64) -> (i32, i32) {
    if m == 0.0 || !m.is_finite() {
        return (0, 0);
    }
    let (q, mut shift) = frexp(m);
    // Round half away from zero, like C's `round`.
    let mut q_fixed = (q * (1u64 << 31) as f64).round() as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        q_fixed = 0;
    }
    // TFLite also caps the exponent at 30 (a multiplier that large cannot occur for sane scales).
    if shift > 30 {
        shift = 30;
        q_fixed = (1i64 << 31) - 1;
    }
    (q_fixed as i32, shift)
}

/// `x = q · 2^e` with `q` in [0.5, 1), like C's `frexp`.
fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale up first.
        let (q, e) = frexp(x * (1u64 << 54) as f64);
        return (q, e - 54);
    }
    let e = exp - 1022;
    let q = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (q, e)
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: `(a·b·2 + 2^31) >> 32` with rounding half
/// away from zero, saturating the single overflow case `a = b = i32::MIN`.
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // C++ integer division truncates toward zero, as Rust's does.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^e` rounded half away from zero.
pub fn rounding_divide_by_pot(x: i32, e: i32) -> i32 {
    debug_assert!((0..=31).contains(&e));
    let mask = ((1i64 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> e) + (remainder > threshold) as i32
}

/// TFLite's `MultiplyByQuantizedMultiplier`: `acc · m · 2^(shift − 31)` with TFLite's two
/// roundings. The left shift wraps on overflow, as the C++ code does on every real target.
pub fn multiply_by_quantized_multiplier(acc: i32, m: i32, shift: i32) -> i32 {
    let left = shift.max(0);
    let right = (-shift).max(0);
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(acc.wrapping_mul(1 << left), m), right)
}

/// The fixed-point parameters of TFLite's int8 ADD (`PrepareGeneralSubOp` / add.cc `Prepare`):
/// each input is rescaled to `2 · max(s1, s2)` after a left shift of 20 bits, and the sum back to
/// the output scale. All three multipliers are below 1 (TFLite's `QuantizeMultiplierSmallerThanOneExp`
/// refuses others), so their shifts are ≤ 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddParams {
    pub left_shift: i32,
    pub input1: (i32, i32),
    pub input2: (i32, i32),
    pub output: (i32, i32),
}

/// [`AddParams`] of input scales `s1`, `s2` and output scale `s_out` (each an `f32` value held in
/// an `f64`, as TFLite's tensors store them).
pub fn add_params(s1: f64, s2: f64, s_out: f64) -> OpResult<AddParams> {
    const LEFT_SHIFT: i32 = 20;
    let twice_max = 2.0 * s1.max(s2);
    let real_out = twice_max / ((1i64 << LEFT_SHIFT) as f64 * s_out);
    let q = |m: f64, what: &str| -> OpResult<(i32, i32)> {
        if !(m > 0.0 && m < 1.0) {
            return Err(format!("the {what} multiplier {m} must be in (0, 1) (TFLite's int8 ADD)"));
        }
        Ok(quantize_multiplier(m))
    };
    Ok(AddParams {
        left_shift: LEFT_SHIFT,
        input1: q(s1 / twice_max, "first input's")?,
        input2: q(s2 / twice_max, "second input's")?,
        output: q(real_out, "output")?,
    })
}

/// TFLite's int8 ADD of one pair of values, already centered (`q − zero_point`), before the
/// output zero point and the clamp: `MBQM(MBQM(a·2^20, m1) + MBQM(b·2^20, m2), m_out)`.
pub fn add_value(p: &AddParams, a: i32, b: i32) -> i32 {
    let sa = multiply_by_quantized_multiplier(a.wrapping_mul(1 << p.left_shift), p.input1.0, p.input1.1);
    let sb = multiply_by_quantized_multiplier(b.wrapping_mul(1 << p.left_shift), p.input2.0, p.input2.1);
    multiply_by_quantized_multiplier(sa.wrapping_add(sb), p.output.0, p.output.1)
}

/// TFLite's `AffineQuantize` of one value: the division in `f32`, rounding half away from zero.
/// NaN gives the zero point.
pub fn quantize_value(x: f32, scale: f32, zero_point: i32, lo: i32, hi: i32) -> i32 {
    let v = x / scale;
    let r = if v.is_nan() { 0 } else { v.round().clamp(i32::MIN as f32, i32::MAX as f32) as i64 };
    (r + zero_point as i64).clamp(lo as i64, hi as i64) as i32
}

/// TFLite's `Dequantize` of one value: the product in `f64`, then rounded to `f32`.
pub fn dequantize_value(q: i32, scale: f64, zero_point: i32) -> f32 {
    (scale * (q - zero_point) as f64) as f32
}

// ---------------------------------------------------------------------------------------------
// Declarations
// ---------------------------------------------------------------------------------------------

/// The ops of this file (formed by quantization passes, never imported from ONNX).
pub const ALL: &[super::OpKind] = &[
    super::OpKind::QQuantize,
    super::OpKind::QDequantize,
    super::OpKind::QRequantize,
    super::OpKind::QAdd,
    super::OpKind::QConv,
    super::OpKind::QConvTranspose,
    super::OpKind::QFullyConnected,
    super::OpKind::QGather,
    super::OpKind::QLookup,
];

const OUT_ATTRS: [AttrDef; 4] = [
    AttrDef::req("scale", AttrKind::Float),
    AttrDef::opt("zero_point", AttrKind::Int, "0"),
    AttrDef::opt("act_min", AttrKind::Int, "-128"),
    AttrDef::opt("act_max", AttrKind::Int, "127"),
];

pub static QUANTIZE: OpDef = OpDef {
    name: "q.quantize",
    summary: "f32 to per-tensor i8 (TFLite QUANTIZE): clamp(round_half_away(x / scale) + zero_point).",
    operands: &["x"],
    results: &["y"],
    attrs: &[AttrDef::req("scale", AttrKind::Float), AttrDef::opt("zero_point", AttrKind::Int, "0")],
    traits: Traits::PURE,
    infer: infer_quantize,
    eval: eval_quantize,
};

pub static DEQUANTIZE: OpDef = OpDef {
    name: "q.dequantize",
    summary: "Quantized i8 (per tensor or per axis) to f32 (TFLite DEQUANTIZE): scale * (q - zero_point).",
    operands: &["x"],
    results: &["y"],
    attrs: &[],
    traits: Traits::PURE,
    infer: infer_dequantize,
    eval: eval_dequantize,
};

pub static REQUANTIZE: OpDef = OpDef {
    name: "q.requantize",
    summary: "Per-tensor i8 to per-tensor i8 with other parameters (TFLite QUANTIZE on int8).",
    operands: &["x"],
    results: &["y"],
    attrs: &[AttrDef::req("scale", AttrKind::Float), AttrDef::opt("zero_point", AttrKind::Int, "0")],
    traits: Traits::PURE,
    infer: infer_requantize,
    eval: eval_requantize,
};

pub static LOOKUP: OpDef = OpDef {
    name: "q.lookup",
    summary: "An elementwise function of a per-tensor i8 tensor as a 256-entry table (TFLite's \
              int8 LUT kernels): y = table[x + 128], the table (i8 [256]) holding f(x) quantized \
              to (scale, zero_point) for every input value.",
    operands: &["x", "table"],
    results: &["y"],
    attrs: &[AttrDef::req("scale", AttrKind::Float), AttrDef::opt("zero_point", AttrKind::Int, "0")],
    traits: Traits::PURE,
    infer: infer_lookup,
    eval: eval_lookup,
};

pub static QADD: OpDef = OpDef {
    name: "q.add",
    summary: "Elementwise sum of two per-tensor i8 tensors with numpy broadcasting (TFLite ADD \
              int8): inputs rescaled to twice the larger input scale after a 20-bit left shift, \
              summed in i32, requantized to (scale, zero_point), clamped to [act_min, act_max].",
    operands: &["a", "b"],
    results: &["y"],
    attrs: &OUT_ATTRS,
    traits: Traits::PURE.union(Traits::COMMUTATIVE),
    infer: infer_add,
    eval: eval_add,
};

const QCONV_ATTRS: &[AttrDef] = &[
    AttrDef::opt("auto_pad", AttrKind::Str, "\"NOTSET\""),
    AttrDef::opt("dilations", AttrKind::Ints, "[1, ...]"),
    AttrDef::opt("group", AttrKind::Int, "1"),
    AttrDef::opt("kernel_shape", AttrKind::Ints, "(from w)"),
    AttrDef::opt("pads", AttrKind::Ints, "[0, ...]"),
    AttrDef::opt("strides", AttrKind::Ints, "[1, ...]"),
    OUT_ATTRS[0],
    OUT_ATTRS[1],
    OUT_ATTRS[2],
    OUT_ATTRS[3],
];

pub static QCONV: OpDef = OpDef {
    name: "q.conv",
    summary: "Integer N-D convolution (TFLite CONV_2D / DEPTHWISE_CONV_2D int8): x `[N, C, D...]` \
              i8, w `[M, C/group, k...]` symmetric i8 per tensor or per output channel, i32 bias; \
              result requantized to (scale, zero_point) and clamped to [act_min, act_max].",
    operands: &["x", "w", "bias?"],
    results: &["y"],
    attrs: QCONV_ATTRS,
    traits: Traits::PURE,
    infer: infer_qconv,
    eval: eval_qconv,
};

const QCONV_TRANSPOSE_ATTRS: &[AttrDef] = &[
    AttrDef::opt("auto_pad", AttrKind::Str, "\"NOTSET\""),
    AttrDef::opt("dilations", AttrKind::Ints, "[1, ...]"),
    AttrDef::opt("group", AttrKind::Int, "1"),
    AttrDef::opt("kernel_shape", AttrKind::Ints, "the weight's spatial dims"),
    AttrDef::opt("output_padding", AttrKind::Ints, "[0, ...]"),
    AttrDef::opt("output_shape", AttrKind::Ints, "computed from the other attributes"),
    AttrDef::opt("pads", AttrKind::Ints, "[0, ...]"),
    AttrDef::opt("strides", AttrKind::Ints, "[1, ...]"),
    OUT_ATTRS[0],
    OUT_ATTRS[1],
    OUT_ATTRS[2],
    OUT_ATTRS[3],
];

pub static QCONV_TRANSPOSE: OpDef = OpDef {
    name: "q.conv_transpose",
    summary: "Integer N-D transposed convolution (TFLite TRANSPOSE_CONV int8): x `[N, C, D...]` i8, \
              w `[C, M, k...]` (group 1) symmetric i8 per tensor or per output channel (axis 1), \
              i32 bias; requantized like q.conv.",
    operands: &["x", "w", "bias?"],
    results: &["y"],
    attrs: QCONV_TRANSPOSE_ATTRS,
    traits: Traits::PURE,
    infer: infer_qconv_transpose,
    eval: eval_qconv_transpose,
};

/// q.fully_connected's attributes: the output's (`scale` optional), plus `dequantize`.
const FC_ATTRS: [AttrDef; 5] = [
    AttrDef::opt("scale", AttrKind::Float, "none: an f32 result without output quantization"),
    OUT_ATTRS[1],
    OUT_ATTRS[2],
    OUT_ATTRS[3],
    AttrDef::opt("dequantize", AttrKind::Int, "0"),
];

pub static QFULLY_CONNECTED: OpDef = OpDef {
    name: "q.fully_connected",
    summary: "Integer matrix product with constant weights (TFLite FULLY_CONNECTED int8): x \
              `[..., K]` i8, w `[N, K]` symmetric i8 per tensor or per row, i32 bias `[N]`; result \
              `[..., N]` requantized like q.conv. With `dequantize = 1` the result is that int8 \
              value dequantized to f32 (exactly `q.dequantize` of it; `scale` must be an f32 \
              value), so a float consumer reads it without an int8 round trip through memory. \
              Without `scale` the result is f32 with no output quantization: \
              f32(acc) * f32(scale_x * scale_w[c]).",
    operands: &["x", "w", "bias?"],
    results: &["y"],
    attrs: &FC_ATTRS,
    traits: Traits::PURE,
    infer: infer_fully_connected,
    eval: eval_fully_connected,
};

pub static QGATHER: OpDef = OpDef {
    name: "q.gather",
    summary: "Rows of an i8 table quantized per row (axis 0), dequantized to f32: an embedding \
              lookup with int8 weights. y[i..., j...] = scale[r] * (table[r, j...] - zero_point[r]) \
              with r = indices[i...] (negative indices count from the end).",
    operands: &["table", "indices"],
    results: &["y"],
    attrs: &[],
    traits: Traits::PURE,
    infer: infer_qgather,
    eval: eval_qgather,
};

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/// The per-tensor `i8` quantized element type these ops produce.
pub fn i8_type(scale: f64, zero_point: i64) -> ElemType {
    ElemType::Quant(Box::new(QuantType {
        storage: ScalarType::I8,
        expressed: ScalarType::F32,
        params: QuantParams::PerTensor { scale, zero_point },
    }))
}

/// Output parameters from the attributes, validated.
fn out_params(attrs: &Attrs) -> OpResult<(f64, i64)> {
    let scale = attrs.float("scale").ok_or("missing `scale`")?;
    if !(scale.is_finite() && scale > 0.0) {
        return Err(format!("scale must be finite and > 0, found {scale}"));
    }
    let zp = attrs.int("zero_point").unwrap_or(0);
    if !(-128..=127).contains(&zp) {
        return Err(format!("zero_point {zp} is outside i8"));
    }
    Ok((scale, zp))
}

/// The activation clamp `[act_min, act_max]`, validated.
fn act_range(attrs: &Attrs) -> OpResult<(i32, i32)> {
    let lo = attrs.int("act_min").unwrap_or(-128);
    let hi = attrs.int("act_max").unwrap_or(127);
    if !(-128..=127).contains(&lo) || !(-128..=127).contains(&hi) || lo > hi {
        return Err(format!("act_min {lo} / act_max {hi} must satisfy -128 <= act_min <= act_max <= 127"));
    }
    Ok((lo as i32, hi as i32))
}

/// `(scale, zero_point)` of a per-tensor quantized `i8` type.
pub fn per_tensor_i8(t: &TensorType, what: &str) -> OpResult<(f64, i64)> {
    match &t.elem {
        ElemType::Quant(q) if q.storage == ScalarType::I8 => match q.params {
            QuantParams::PerTensor { scale, zero_point } => Ok((scale, zero_point)),
            _ => Err(format!("{what} must be quantized per tensor, found {t}")),
        },
        _ => Err(format!("{what} must have a quantized i8 element type, found {t}")),
    }
}

/// The weight scale of each of `channels` output channels (weights quantized along `axis`, or
/// per tensor). Weights must be symmetric.
pub fn weight_scales(t: &TensorType, axis: usize, channels: Option<usize>, what: &str) -> OpResult<Vec<f64>> {
    let q = match &t.elem {
        ElemType::Quant(q) if q.storage == ScalarType::I8 => q,
        _ => return Err(format!("{what} must have a quantized i8 element type, found {t}")),
    };
    match &q.params {
        QuantParams::PerTensor { scale, zero_point } => {
            if *zero_point != 0 {
                return Err(format!("{what} must be symmetric (zero point 0), found {zero_point}"));
            }
            Ok(vec![*scale; channels.unwrap_or(1)])
        }
        QuantParams::PerAxis { axis: a, scales, zero_points } => {
            if *a != axis {
                return Err(format!("{what} must be quantized along axis {axis}, found axis {a}"));
            }
            if zero_points.iter().any(|&z| z != 0) {
                return Err(format!("{what} must be symmetric (zero points 0)"));
            }
            if let Some(c) = channels {
                if scales.len() != c {
                    return Err(format!("{what} has {} scales for {c} output channels", scales.len()));
                }
            }
            Ok(scales.clone())
        }
    }
}

/// Checks the optional `i32` bias `[channels]`.
fn check_bias(ctx: &InferCtx, channels: &Dim) -> OpResult<()> {
    if !ctx.has_operand(2) {
        return Ok(());
    }
    let b = operand(ctx, 2)?;
    if b.elem != ElemType::Scalar(ScalarType::I32) || b.rank() != 1 {
        return Err(format!("bias must be a 1-D i32 tensor, found {b}"));
    }
    super::linalg::unify_dims(&b.dims[0], channels, "bias length vs output channels")?;
    Ok(())
}

/// The same type with an `f32` element type, to reuse the float ops' shape rules.
fn as_f32(t: &TensorType) -> TensorType {
    TensorType::new(t.dims.clone(), ScalarType::F32)
}

/// Runs a float op's shape rule on `f32` stand-ins for x and w (no bias).
fn float_shape(ctx: &InferCtx, def: &OpDef) -> OpResult<Vec<Dim>> {
    let ops = [as_f32(operand(ctx, 0)?), as_f32(operand(ctx, 1)?)];
    let consts = [None, None];
    let fctx = InferCtx { attrs: ctx.attrs, operands: &ops, consts: &consts, num_results: 1 };
    Ok((def.infer)(&fctx)?.remove(0).dims)
}

fn infer_quantize(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    if x.elem != ElemType::Scalar(ScalarType::F32) {
        return Err(format!("x must be f32, found {x}"));
    }
    let (s, zp) = out_params(ctx.attrs)?;
    Ok(vec![TensorType::new(x.dims.clone(), i8_type(s, zp))])
}

fn infer_dequantize(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    match &x.elem {
        ElemType::Quant(q) if q.storage == ScalarType::I8 && q.expressed == ScalarType::F32 => {
            if let QuantParams::PerAxis { axis, scales, .. } = &q.params {
                if *axis >= x.rank() || !matches!(x.dims[*axis], Dim::Static(n) if n as usize == scales.len())
                {
                    return Err(format!("x's per-axis parameters do not match its shape: {x}"));
                }
            }
        }
        _ => return Err(format!("x must be a quantized i8 tensor expressed in f32, found {x}")),
    }
    Ok(vec![TensorType::new(x.dims.clone(), ScalarType::F32)])
}

fn infer_requantize(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let x = operand(ctx, 0)?;
    per_tensor_i8(x, "x")?;
    let (s, zp) = out_params(ctx.attrs)?;
    Ok(vec![TensorType::new(x.dims.clone(), i8_type(s, zp))])
}

fn infer_lookup(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let (x, t) = (operand(ctx, 0)?, operand(ctx, 1)?);
    per_tensor_i8(x, "x")?;
    if t.elem != ElemType::Scalar(ScalarType::I8) || t.dims != [Dim::Static(256)] {
        return Err(format!("table must be i8 [256], found {t}"));
    }
    let (s, zp) = out_params(ctx.attrs)?;
    Ok(vec![TensorType::new(x.dims.clone(), i8_type(s, zp))])
}

fn infer_add(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let (a, b) = (operand(ctx, 0)?, operand(ctx, 1)?);
    let (s1, _) = per_tensor_i8(a, "a")?;
    let (s2, _) = per_tensor_i8(b, "b")?;
    let (s, zp) = out_params(ctx.attrs)?;
    act_range(ctx.attrs)?;
    add_params(s1, s2, s)?;
    let dims = super::util::broadcast_dims(&a.dims, &b.dims)?;
    Ok(vec![TensorType::new(dims, i8_type(s, zp))])
}

fn infer_qconv(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let (x, w) = (operand(ctx, 0)?, operand(ctx, 1)?);
    per_tensor_i8(x, "x")?;
    weight_scales(w, 0, w.dims[0].as_static().map(|n| n as usize), "w")?;
    let dims = float_shape(ctx, &super::linalg::CONV)?;
    check_bias(ctx, &w.dims[0])?;
    let (s, zp) = out_params(ctx.attrs)?;
    act_range(ctx.attrs)?;
    Ok(vec![TensorType::new(dims, i8_type(s, zp))])
}

fn infer_qconv_transpose(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let (x, w) = (operand(ctx, 0)?, operand(ctx, 1)?);
    per_tensor_i8(x, "x")?;
    if ctx.attrs.int("group").unwrap_or(1) != 1 {
        return Err("q.conv_transpose supports group 1 only".into());
    }
    if w.rank() < 2 {
        return Err(format!("w must have rank >= 3, found {w}"));
    }
    weight_scales(w, 1, w.dims[1].as_static().map(|n| n as usize), "w")?;
    let dims = float_shape(ctx, &super::linalg::CONV_TRANSPOSE)?;
    check_bias(ctx, &w.dims[1])?;
    let (s, zp) = out_params(ctx.attrs)?;
    act_range(ctx.attrs)?;
    Ok(vec![TensorType::new(dims, i8_type(s, zp))])
}

fn infer_fully_connected(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let (x, w) = (operand(ctx, 0)?, operand(ctx, 1)?);
    per_tensor_i8(x, "x")?;
    if x.rank() < 1 || w.rank() != 2 {
        return Err(format!("x must have rank >= 1 and w rank 2, found {x} and {w}"));
    }
    weight_scales(w, 0, w.dims[0].as_static().map(|n| n as usize), "w")?;
    super::linalg::unify_dims(&x.dims[x.rank() - 1], &w.dims[1], "x's last dim vs w's K")?;
    check_bias(ctx, &w.dims[0])?;
    let mut dims = x.dims.clone();
    *dims.last_mut().unwrap() = w.dims[0].clone();
    if real_result(ctx.attrs)? {
        return Ok(vec![TensorType::new(dims, ScalarType::F32)]);
    }
    let (s, zp) = out_params(ctx.attrs)?;
    act_range(ctx.attrs)?;
    if dequantized(ctx.attrs)? {
        if s as f32 as f64 != s {
            return Err(format!("a dequantized result needs an f32 scale, found {s}"));
        }
        return Ok(vec![TensorType::new(dims, ScalarType::F32)]);
    }
    Ok(vec![TensorType::new(dims, i8_type(s, zp))])
}

/// Whether a q.fully_connected has no output quantization (no `scale`); the attributes that
/// only make sense with one are rejected then.
pub fn real_result(attrs: &Attrs) -> OpResult<bool> {
    if attrs.float("scale").is_some() {
        return Ok(false);
    }
    for a in ["zero_point", "act_min", "act_max", "dequantize"] {
        if attrs.get(a).is_some() {
            return Err(format!("`{a}` needs an output `scale` (without one the result is real-valued f32)"));
        }
    }
    Ok(true)
}

/// Whether q.fully_connected's `dequantize` attribute asks for an f32 result.
fn dequantized(attrs: &Attrs) -> OpResult<bool> {
    match attrs.int("dequantize").unwrap_or(0) {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(format!("dequantize must be 0 or 1, found {v}")),
    }
}

fn infer_qgather(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let (t, i) = (operand(ctx, 0)?, operand(ctx, 1)?);
    if t.rank() < 1 {
        return Err(format!("table must have rank >= 1, found {t}"));
    }
    match &t.elem {
        ElemType::Quant(q) if q.storage == ScalarType::I8 && q.expressed == ScalarType::F32 => {
            match &q.params {
                QuantParams::PerAxis { axis: 0, scales, .. } if matches!(t.dims[0], Dim::Static(n) if n as usize == scales.len()) =>
                    {}
                QuantParams::PerTensor { .. } => {}
                _ => {
                    return Err(format!("table must be quantized per tensor or per row (axis 0), found {t}"))
                }
            }
        }
        _ => return Err(format!("table must be a quantized i8 tensor expressed in f32, found {t}")),
    }
    if !matches!(i.elem, ElemType::Scalar(ScalarType::I64) | ElemType::Scalar(ScalarType::I32)) {
        return Err(format!("indices must be i64 or i32, found {i}"));
    }
    let mut dims = i.dims.clone();
    dims.extend(t.dims[1..].iter().cloned());
    Ok(vec![TensorType::new(dims, ScalarType::F32)])
}

// ---------------------------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------------------------

fn eval_qgather(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let table = i8_values(input(ctx, 0)?, "table")?;
    let tshape = input(ctx, 0)?.shape().to_vec();
    let ids = input(ctx, 1)?.to_i64_vec().ok_or("indices must be integers")?;
    let q = match &ctx.operand_types[0].elem {
        ElemType::Quant(q) => q,
        t => return Err(format!("table must be quantized, found {t}")),
    };
    let rows = tshape[0];
    let row: usize = tshape[1..].iter().product();
    let mut out = Vec::with_capacity(ids.len() * row);
    for &i in &ids {
        let r = if i < 0 { i + rows as i64 } else { i };
        if r < 0 || r >= rows as i64 {
            return Err(format!("index {i} is out of range for {rows} rows"));
        }
        let r = r as usize;
        let (s, z) = match &q.params {
            QuantParams::PerTensor { scale, zero_point } => (*scale, *zero_point),
            QuantParams::PerAxis { scales, zero_points, .. } => (scales[r], zero_points[r]),
        };
        out.extend(table[r * row..(r + 1) * row].iter().map(|&v| dequantize_value(v, s, z as i32)));
    }
    let mut shape = input(ctx, 1)?.shape().to_vec();
    shape.extend(&tshape[1..]);
    Ok(vec![Tensor::F32(ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?)])
}

fn i8_values(t: &Tensor, what: &str) -> OpResult<Vec<i32>> {
    match t {
        Tensor::I8(a) => Ok(a.iter().map(|&v| v as i32).collect()),
        _ => Err(format!("{what} must hold i8 values, found {}", t.scalar_type())),
    }
}

fn i8_tensor(shape: &[usize], vals: Vec<i32>) -> OpResult<Tensor> {
    let v: Vec<i8> = vals.into_iter().map(|v| v as i8).collect();
    Ok(Tensor::I8(ArrayD::from_shape_vec(IxDyn(shape), v).map_err(|e| format!("internal shape error: {e}"))?))
}

fn eval_quantize(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = match input(ctx, 0)? {
        Tensor::F32(a) => a,
        t => return Err(format!("x must be f32, found {}", t.scalar_type())),
    };
    let (s, zp) = out_params(ctx.attrs)?;
    let vals = x.iter().map(|&v| quantize_value(v, s as f32, zp as i32, -128, 127)).collect();
    Ok(vec![i8_tensor(x.shape(), vals)?])
}

fn eval_dequantize(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let ty = ctx.operand_types.first().ok_or("missing operand type")?;
    let q = match &ty.elem {
        ElemType::Quant(q) => q,
        _ => return Err(format!("x must be quantized, found {ty}")),
    };
    let vals = i8_values(x, "x")?;
    let shape = x.shape().to_vec();
    let out: Vec<f32> = match &q.params {
        QuantParams::PerTensor { scale, zero_point } => {
            vals.iter().map(|&v| dequantize_value(v, *scale, *zero_point as i32)).collect()
        }
        QuantParams::PerAxis { axis, scales, zero_points } => {
            let inner: usize = shape[axis + 1..].iter().product();
            vals.iter()
                .enumerate()
                .map(|(i, &v)| {
                    let c = (i / inner) % shape[*axis];
                    dequantize_value(v, scales[c], zero_points[c] as i32)
                })
                .collect()
        }
    };
    Ok(vec![Tensor::F32(ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?)])
}

fn eval_requantize(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let (s_in, zp_in) = per_tensor_i8(ctx.operand_types.first().ok_or("missing operand type")?, "x")?;
    let (s_out, zp_out) = out_params(ctx.attrs)?;
    let (m, shift) = quantize_multiplier(s_in / s_out);
    let vals = i8_values(x, "x")?
        .into_iter()
        .map(|v| {
            (multiply_by_quantized_multiplier(v - zp_in as i32, m, shift) as i64 + zp_out).clamp(-128, 127)
                as i32
        })
        .collect();
    Ok(vec![i8_tensor(x.shape(), vals)?])
}

fn eval_lookup(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = input(ctx, 0)?;
    let table = i8_values(input(ctx, 1)?, "table")?;
    if table.len() != 256 {
        return Err(format!("table must hold 256 values, found {}", table.len()));
    }
    let vals = i8_values(x, "x")?.into_iter().map(|v| table[(v + 128) as usize]).collect();
    Ok(vec![i8_tensor(x.shape(), vals)?])
}

fn eval_add(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (a, b) = match (input(ctx, 0)?, input(ctx, 1)?) {
        (Tensor::I8(a), Tensor::I8(b)) => (a, b),
        (a, b) => {
            return Err(format!(
                "a and b must hold i8 values, found {} and {}",
                a.scalar_type(),
                b.scalar_type()
            ))
        }
    };
    let (s1, z1) = per_tensor_i8(&ctx.operand_types[0], "a")?;
    let (s2, z2) = per_tensor_i8(&ctx.operand_types[1], "b")?;
    let (s, zp) = out_params(ctx.attrs)?;
    let (lo, hi) = act_range(ctx.attrs)?;
    let p = add_params(s1, s2, s)?;
    let (z1, z2, zp) = (z1 as i32, z2 as i32, zp as i32);
    let y = super::elementwise_kernels::zip2(a, b, |x, y| {
        (add_value(&p, x as i32 - z1, y as i32 - z2).saturating_add(zp)).clamp(lo, hi) as i8
    })?;
    Ok(vec![Tensor::I8(y)])
}

/// The inputs of an integer linear op: x − zp_x and w as exact `f64` arrays, the bias, and the
/// per-channel requantization (multiplier, shift) pairs.
struct LinearInputs {
    x: ArrayD<f64>,
    w: ArrayD<f64>,
    bias: Option<Vec<i32>>,
    /// `scale_x · scale_w[c]` per channel.
    acc_scales: Vec<f64>,
    /// Empty for a q.fully_connected without output quantization ([`real_result`]).
    requant: Vec<(i32, i32)>,
    zp_out: i32,
    act: (i32, i32),
}

/// `real`: the op has no output quantization (a q.fully_connected without `scale`).
fn linear_inputs(ctx: &EvalCtx, w_axis: usize, real: bool) -> OpResult<LinearInputs> {
    let (xt, wt) = (input(ctx, 0)?, input(ctx, 1)?);
    let (s_x, zp_x) = per_tensor_i8(&ctx.operand_types[0], "x")?;
    let channels = wt.shape().get(w_axis).copied().ok_or("w has too low a rank")?;
    let s_w = weight_scales(&ctx.operand_types[1], w_axis, Some(channels), "w")?;
    let x: Vec<f64> = i8_values(xt, "x")?.into_iter().map(|v| (v - zp_x as i32) as f64).collect();
    let w: Vec<f64> = i8_values(wt, "w")?.into_iter().map(|v| v as f64).collect();
    let bias = match ctx.opt_input(2) {
        Some(Tensor::I32(b)) if b.len() == channels => Some(b.iter().copied().collect()),
        Some(b) => return Err(format!("bias must be i32 [{channels}], found {:?}", b.shape())),
        None => None,
    };
    let acc_scales: Vec<f64> = s_w.iter().map(|&sw| s_x * sw).collect();
    let (requant, zp_out, act) = if real {
        (Vec::new(), 0, (-128, 127))
    } else {
        let (s_y, zp_y) = out_params(ctx.attrs)?;
        // TFLite computes the effective scale in double from the (float) scales.
        let requant = acc_scales.iter().map(|&s| quantize_multiplier(s / s_y)).collect();
        (requant, zp_y as i32, act_range(ctx.attrs)?)
    };
    let e = |e: ndarray::ShapeError| format!("internal shape error: {e}");
    Ok(LinearInputs {
        x: ArrayD::from_shape_vec(IxDyn(xt.shape()), x).map_err(e)?,
        w: ArrayD::from_shape_vec(IxDyn(wt.shape()), w).map_err(e)?,
        bias,
        acc_scales,
        requant,
        zp_out,
        act,
    })
}

/// Adds the bias and requantizes exact integer accumulators; `channel(i)` is element i's channel.
fn requantize_all(
    acc: &ArrayD<f64>,
    li: &LinearInputs,
    channel: impl Fn(usize) -> usize,
) -> OpResult<Tensor> {
    let vals = acc
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let c = channel(i);
            // The f64 sum is exact; `as i64 as i32` wraps like TFLite's i32 accumulator.
            let mut acc = a as i64 as i32;
            if let Some(b) = &li.bias {
                acc = acc.wrapping_add(b[c]);
            }
            let (m, shift) = li.requant[c];
            (multiply_by_quantized_multiplier(acc, m, shift).saturating_add(li.zp_out))
                .clamp(li.act.0, li.act.1)
        })
        .collect();
    i8_tensor(acc.shape(), vals)
}

fn eval_qconv(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let li = linear_inputs(ctx, 0, false)?;
    let acc = super::linalg_conv::conv::<f64>(ctx.attrs, &li.x.view(), &li.w.view(), None)?;
    let (m, plane) = (acc.shape()[1], acc.shape()[2..].iter().product::<usize>());
    Ok(vec![requantize_all(&acc, &li, |i| (i / plane.max(1)) % m)?])
}

fn eval_qconv_transpose(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let li = linear_inputs(ctx, 1, false)?;
    let acc = super::linalg_conv::conv_transpose::<f64>(ctx.attrs, &li.x.view(), &li.w.view(), None)?;
    let (m, plane) = (acc.shape()[1], acc.shape()[2..].iter().product::<usize>());
    Ok(vec![requantize_all(&acc, &li, |i| (i / plane.max(1)) % m)?])
}

fn eval_fully_connected(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let real = real_result(ctx.attrs)?;
    let li = linear_inputs(ctx, 0, real)?;
    let (n, k) = (li.w.shape()[0], li.w.shape()[1]);
    let xs = li.x.as_slice().ok_or("internal: non-contiguous x")?;
    let ws = li.w.as_slice().ok_or("internal: non-contiguous w")?;
    if xs.len() % k.max(1) != 0 {
        return Err(format!("x's last dim is not w's K = {k}"));
    }
    let rows = xs.len().checked_div(k).unwrap_or(xs.len());
    let mut acc = vec![0f64; rows * n];
    for r in 0..rows {
        let xr = &xs[r * k..(r + 1) * k];
        for (j, a) in acc[r * n..(r + 1) * n].iter_mut().enumerate() {
            *a = xr.iter().zip(&ws[j * k..(j + 1) * k]).map(|(x, w)| x * w).sum();
        }
    }
    let mut shape = li.x.shape().to_vec();
    *shape.last_mut().unwrap() = n;
    if real {
        let scales: Vec<f32> = li.acc_scales.iter().map(|&s| s as f32).collect();
        let vals: Vec<f32> = acc
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let c = i % n.max(1);
                let mut acc = a as i64 as i32;
                if let Some(b) = &li.bias {
                    acc = acc.wrapping_add(b[c]);
                }
                acc as f32 * scales[c]
            })
            .collect();
        return Ok(vec![Tensor::F32(
            ArrayD::from_shape_vec(IxDyn(&shape), vals).map_err(|e| e.to_string())?,
        )]);
    }
    let acc = ArrayD::from_shape_vec(IxDyn(&shape), acc).map_err(|e| e.to_string())?;
    let y = requantize_all(&acc, &li, |i| i % n.max(1))?;
    if !dequantized(ctx.attrs)? {
        return Ok(vec![y]);
    }
    let (s, zp) = out_params(ctx.attrs)?;
    let vals: Vec<f32> = i8_values(&y, "y")?.iter().map(|&q| dequantize_value(q, s, zp as i32)).collect();
    Ok(vec![Tensor::F32(ArrayD::from_shape_vec(IxDyn(&shape), vals).map_err(|e| e.to_string())?)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_matches_tflite_definition() {
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.0), (0, 0));
        // Rounds up to 2^31 and renormalizes.
        let (m, s) = quantize_multiplier(0.999_999_999_9);
        assert_eq!((m, s), (1 << 30, 1));
        let (m, s) = quantize_multiplier(0.003);
        assert!((m as f64 * 2f64.powi(s - 31) - 0.003).abs() < 1e-11);
        assert_eq!(quantize_multiplier(1e-20), (0, 0));
        assert_eq!(frexp(3.0), (0.75, 2));
        assert_eq!(frexp(f64::MIN_POSITIVE / 4.0), (0.5, -1023));
    }

    #[test]
    fn fixed_point_rounding() {
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(-4, 1), -2);
        assert_eq!(rounding_divide_by_pot(7, 2), 2);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        // 100 * 0.5 = 50.
        let (m, s) = quantize_multiplier(0.5);
        assert_eq!(multiply_by_quantized_multiplier(100, m, s), 50);
        // SRDHM rounds a negative half toward +inf (its nudge is 1 − 2^30, then truncation).
        assert_eq!(multiply_by_quantized_multiplier(-101, m, s), -50);
        let (m, s) = quantize_multiplier(3.0);
        assert_eq!(multiply_by_quantized_multiplier(-7, m, s), -21);
    }

    #[test]
    fn add_follows_tflite_int8_add() {
        // Equal scales: each input multiplier is 1/2, the output one 2·s / (2^20 · s_out).
        let p = add_params(0.5, 0.5, 0.5).unwrap();
        assert_eq!(p.input1, (1 << 30, 0));
        assert_eq!(p.input2, (1 << 30, 0));
        assert_eq!(p.output, quantize_multiplier(2.0 / (1u64 << 20) as f64));
        assert_eq!(add_value(&p, 3, 4), 7);
        assert_eq!(add_value(&p, -100, 27), -73);
        // Output 4× coarser: (3 + 4) / 4 = 1.75 rounds to 2.
        let p = add_params(0.25, 0.25, 1.0).unwrap();
        assert_eq!(add_value(&p, 3, 4), 2);
        // TFLite refuses an output multiplier ≥ 1 (output scale below 2·max / 2^20).
        assert!(add_params(1.0, 1.0, 1e-7).is_err());
    }

    /// Runs a one-function module through the interpreter.
    fn run(text: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, String> {
        let m = crate::parser::parse_module(text).map_err(|e| e.to_string())?;
        crate::interp::run_function(&m.functions[0], inputs).map_err(|e| e.to_string())
    }

    #[test]
    fn real_valued_fully_connected_scales_the_accumulator() {
        // acc = [1·2 + 2·(−1) + 7, 1·1 + 2·3 − 4] = [7, 3]; scales 0.5·0.25, 0.5·0.1 (f32).
        let text = "func @main(%x: tensor<1x2x!q.uniform<i8:f32, 0.5, -1>>) -> (\"y\": tensor<1x2xf32>) {\n\
            \x20 %0 = builtin.constant {value = dense<[2, -1, 1, 3]> : tensor<2x2x!q.uniform<i8:f32:0, {0.25:0, 0.1:0}>>} : tensor<2x2x!q.uniform<i8:f32:0, {0.25:0, 0.1:0}>> loc(unknown)\n\
            \x20 %1 = builtin.constant {value = dense<[7, -4]> : tensor<2xi32>} : tensor<2xi32> loc(unknown)\n\
            \x20 %2 = q.fully_connected %x, %0, %1 : tensor<1x2xf32> loc(unknown)\n\
            \x20 func.return %2 loc(unknown)\n}\n";
        let x = Tensor::from_f64(ScalarType::I8, &[1, 2], &[0.0, 1.0]).unwrap();
        let y = run(text, vec![x.clone()]).unwrap();
        let want = [7.0 * (0.5f64 * 0.25) as f32, 3.0 * (0.5 * 0.1f32 as f64) as f32];
        assert_eq!(y[0].to_f64_vec(), want.map(|v| v as f64).to_vec());
        // Output parameters other than `scale` need one.
        let bad = text.replace("%0, %1 :", "%0, %1 {zero_point = 1} :");
        let err = run(&bad, vec![x]).unwrap_err();
        assert!(err.contains("needs an output `scale`"), "{err}");
    }

    #[test]
    fn lookup_indexes_the_table_by_value_plus_128() {
        let table: Vec<String> = (0..256).map(|i| ((i as i32 - 128) / 2).to_string()).collect();
        let text = format!(
            "func @main(%x: tensor<3x!q.uniform<i8:f32, 0.5, 0>>) -> (\"y\": tensor<3x!q.uniform<i8:f32, 1.0, 0>>) {{\n\
             \x20 %0 = builtin.constant {{value = dense<[{}]> : tensor<256xi8>}} : tensor<256xi8> loc(unknown)\n\
             \x20 %1 = q.lookup %x, %0 {{scale = 1.0}} : tensor<3x!q.uniform<i8:f32, 1.0, 0>> loc(unknown)\n\
             \x20 func.return %1 loc(unknown)\n}}\n",
            table.join(", ")
        );
        let x = Tensor::from_f64(ScalarType::I8, &[3], &[-128.0, 0.0, 127.0]).unwrap();
        assert_eq!(run(&text, vec![x]).unwrap()[0].to_f64_vec(), vec![-64.0, 0.0, 63.0]);
        let short = text.replace("tensor<256xi8>", "tensor<255xi8>").replacen(", 63]", "]", 1);
        assert!(run(&short, vec![]).is_err());
    }

    #[test]
    fn quantize_rounds_half_away_and_saturates() {
        assert_eq!(quantize_value(0.25, 0.5, 0, -128, 127), 1);
        assert_eq!(quantize_value(-0.25, 0.5, 0, -128, 127), -1);
        assert_eq!(quantize_value(1000.0, 0.5, 3, -128, 127), 127);
        assert_eq!(quantize_value(f32::NAN, 0.5, 3, -128, 127), 3);
        assert_eq!(dequantize_value(-128, 0.5, -128), 0.0);
    }
}
