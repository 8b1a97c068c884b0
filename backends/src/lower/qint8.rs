//! The `q.*` integer kernels with TFLite's arithmetic (`ir/src/ops/qint8.rs`): quantize,
//! dequantize, requantize, and int8 conv / transposed conv / fully connected with int32
//! accumulation and per-channel fixed-point requantization.
//!
//! The requantization is written out in kernel IR exactly as TFLite's reference computes it
//! (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT), with per-channel multipliers
//! and shifts in compile-time tables, so every target produces the interpreter's bits.

use super::{io_kernel, Bind, ConstData, Lowered, OpCx, OpError};
use crate::kir::*;
use crate::quant::{QChannel, QOut, QWeights};
use edgec_ir::ops::qint8::{add_params, per_tensor_i8, quantize_multiplier, weight_scales};
use edgec_ir::ops::{conv_geometry, conv_transpose_geometry};
use edgec_ir::{OpKind, QuantParams};

pub(super) fn lower(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    Ok(Some(match cx.kind {
        OpKind::QQuantize => quantize(cx)?,
        OpKind::QDequantize => dequantize(cx)?,
        OpKind::QRequantize => requantize(cx)?,
        OpKind::QGather => gather(cx)?,
        OpKind::QLookup => lookup(cx)?,
        OpKind::QAdd => qadd(cx)?,
        OpKind::QFullyConnected | OpKind::QConv if cx.kernels.int8_gemm().is_some() => gemm_layer(cx)?,
        OpKind::QConvTranspose if cx.kernels.int8_gemm().is_some() => conv_transpose_layer(cx)?,
        OpKind::QConv | OpKind::QConvTranspose | OpKind::QFullyConnected => integer_layer(cx)?,
        _ => return Ok(None),
    }))
}

fn i32c(v: i64) -> Expr {
    Expr::IConst(v, Ty::I32)
}
fn i64c(v: i64) -> Expr {
    Expr::IConst(v, Ty::I64)
}

/// Statements computing TFLite's `MultiplyByQuantizedMultiplier(acc, m, shift)` into a new
/// `I32` local, given `m`, `2^max(shift, 0)` and `max(−shift, 0)` as `I32` expressions.
fn requant(k: &mut Kernel, acc: Expr, m: Expr, left_mul: Expr, right: Expr) -> (Vec<Stmt>, Expr) {
    let x = k.var(Ty::I32);
    let ab = k.var(Ty::I64);
    let h = k.var(Ty::I32);
    let mask = k.var(Ty::I32);
    let v = Expr::Var;
    let stmts = vec![
        // The left shift wraps, as TFLite's `x * (1 << left)` does.
        Stmt::Let { var: x, value: bin(BinOp::Mul, acc, left_mul) },
        Stmt::Let { var: ab, value: bin(BinOp::Mul, cast(Ty::I64, v(x)), cast(Ty::I64, m)) },
        // SaturatingRoundingDoublingHighMul: m is a positive Q31 value, so the a = b = INT_MIN
        // overflow case cannot occur. `(ab + nudge) / 2^31` truncating, nudge = 2^30 or 1 − 2^30
        // by the sign of ab, equals `(ab + 2^30) >> 31` (for ab < 0 the truncation is a ceiling:
        // ceil((ab + 1 − 2^30) / 2^31) = floor((ab + 2^30) / 2^31)), which vectorizes better.
        Stmt::Let {
            var: h,
            value: cast(Ty::I32, bin(BinOp::Shr, bin(BinOp::Add, v(ab), i64c(1 << 30)), i64c(31))),
        },
        Stmt::Let { var: mask, value: bin(BinOp::Sub, bin(BinOp::Shl, i32c(1), right.clone()), i32c(1)) },
    ];
    // RoundingDivideByPOT(h, right).
    let remainder = bin(BinOp::And, v(h), v(mask));
    let threshold = bin(
        BinOp::Add,
        bin(BinOp::Shr, v(mask), i32c(1)),
        select(cmp(CmpOp::Lt, v(h), i32c(0)), i32c(1), i32c(0)),
    );
    let out = bin(
        BinOp::Add,
        bin(BinOp::Shr, v(h), right),
        select(cmp(CmpOp::Gt, remainder, threshold), i32c(1), i32c(0)),
    );
    (stmts, out)
}

/// `(m, 2^left, right)` of a real multiplier.
fn multiplier_parts(real: f64) -> (i64, i64, i64) {
    let (m, shift) = quantize_multiplier(real);
    (m as i64, 1i64 << shift.max(0), (-shift).max(0) as i64)
}

/// Clamps an `I32` expression and narrows it to `I8`.
fn clamp_i8(e: Expr, lo: i64, hi: i64) -> Expr {
    cast(Ty::I8, bin(BinOp::Min, bin(BinOp::Max, e, i32c(lo)), i32c(hi)))
}

fn quantize(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let shape = cx.shape(0);
    let (scale, zp) = per_tensor_i8(&cx.results[0], "y")?;
    let (mut k, binds) = io_kernel(cx, "quantize")?;
    let st = strides(&shape);
    k.body = k.nest(&shape, |k, ix| {
        let i = linear(ix, &st);
        let v = k.var(Ty::F32);
        let r = k.var(Ty::F32);
        let q = k.var(Ty::I32);
        let vv = Expr::Var;
        vec![
            // TFLite: round(x / scale) in f32, half away from zero.
            Stmt::Let { var: v, value: bin(BinOp::Div, load(0, i), fc(scale as f32 as f64, Ty::F32)) },
            Stmt::Let { var: r, value: un(UnOp::Trunc, vv(v)) },
            Stmt::Let {
                var: r,
                value: select(
                    cmp(CmpOp::Ge, bin(BinOp::Sub, vv(v), vv(r)), fc(0.5, Ty::F32)),
                    bin(BinOp::Add, vv(r), fc(1.0, Ty::F32)),
                    select(
                        cmp(CmpOp::Le, bin(BinOp::Sub, vv(v), vv(r)), fc(-0.5, Ty::F32)),
                        bin(BinOp::Sub, vv(r), fc(1.0, Ty::F32)),
                        vv(r),
                    ),
                ),
            },
            // Float→int casts saturate and send NaN to 0, so NaN gives the zero point. In 32 bits
            // (16 lanes per AVX-512 vector, not 8): clamping to [−128 − zp, 127 − zp] before
            // adding zp equals clamping after it, and no sum overflows.
            Stmt::Let { var: q, value: cast(Ty::I32, vv(r)) },
            Stmt::Store {
                buf: 1,
                index: linear(ix, &st),
                value: cast(
                    Ty::I8,
                    bin(
                        BinOp::Add,
                        bin(BinOp::Min, bin(BinOp::Max, vv(q), i32c(-128 - zp)), i32c(127 - zp)),
                        i32c(zp),
                    ),
                ),
            },
        ]
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// An element's `(scale, zero_point)` from its index.
type ParamsAt = Box<dyn Fn(&[Expr]) -> (Expr, Expr)>;

fn dequantize(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let shape = cx.shape(0);
    let q = match &cx.operands[0].elem {
        edgec_ir::ElemType::Quant(q) => q.clone(),
        _ => return Err("q.dequantize of a non-quantized tensor".into()),
    };
    let (mut k, mut binds) = io_kernel(cx, "dequantize")?;
    let st = strides(&shape);
    // Per-axis parameters come from tables; per-tensor ones are constants.
    let params: ParamsAt = match &q.params {
        QuantParams::PerTensor { scale, zero_point } => {
            let (s, z) = (*scale, *zero_point);
            Box::new(move |_: &[Expr]| (fc(s, Ty::F64), i32c(z)))
        }
        QuantParams::PerAxis { axis, scales, zero_points } => {
            let sb: Vec<u8> = scales.iter().flat_map(|s| s.to_le_bytes()).collect();
            let zb: Vec<u8> = zero_points.iter().flat_map(|&z| (z as i32).to_le_bytes()).collect();
            let ts = cx.add_table(ConstData { ty: Ty::F64, bytes: sb.into() });
            let tz = cx.add_table(ConstData { ty: Ty::I32, bytes: zb.into() });
            let (ps, pz) = (
                k.param(Ty::F64, scales.len() as u64, Access::Read),
                k.param(Ty::I32, scales.len() as u64, Access::Read),
            );
            binds.push(Bind::Table(ts));
            binds.push(Bind::Table(tz));
            let a = *axis;
            Box::new(move |ix: &[Expr]| (load(ps, ix[a].clone()), load(pz, ix[a].clone())))
        }
    };
    k.body = k.nest(&shape, |_, ix| {
        let i = linear(ix, &st);
        let (s, z) = params(ix);
        let centered = cast(Ty::F64, bin(BinOp::Sub, cast(Ty::I32, load(0, i.clone())), z));
        vec![Stmt::Store { buf: 1, index: i, value: cast(Ty::F32, bin(BinOp::Mul, s, centered)) }]
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn requantize(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let shape = cx.shape(0);
    let (s_in, zp_in) = per_tensor_i8(&cx.operands[0], "x")?;
    let (s_out, zp_out) = per_tensor_i8(&cx.results[0], "y")?;
    let (m, lm, r) = multiplier_parts(s_in / s_out);
    let (mut k, binds) = io_kernel(cx, "requantize")?;
    let st = strides(&shape);
    k.body = k.nest(&shape, |k, ix| {
        let i = linear(ix, &st);
        let centered = bin(BinOp::Sub, cast(Ty::I32, load(0, i.clone())), i32c(zp_in));
        let (mut s, y) = requant(k, centered, i32c(m), i32c(lm), i32c(r));
        s.push(Stmt::Store {
            buf: 1,
            index: i,
            value: clamp_i8(bin(BinOp::Add, y, i32c(zp_out)), -128, 127),
        });
        s
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// q.lookup: `y[i] = table[x[i] + 128]` over the flat tensor.
fn lookup(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let n: usize = cx.shape(0).iter().product();
    let (mut k, binds) = io_kernel(cx, "lookup")?;
    let view = |buf| View { buf, offset: idx(0) };
    k.body = vec![Stmt::Lookup { x: view(0), y: view(2), table: view(1), elems: n as u64 }];
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// q.add: TFLite's int8 ADD with numpy broadcasting. Both centered inputs are shifted left by
/// 20 bits and rescaled to twice the larger input scale, summed, rescaled to the output scale
/// (every multiplier is below 1, so each right shift is `−shift`), offset and clamped.
fn qadd(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let (ash, bsh, ys) = (cx.shape(0), cx.shape(1), cx.rshape(0));
    let (s1, z1) = per_tensor_i8(&cx.operands[0], "a")?;
    let (s2, z2) = per_tensor_i8(&cx.operands[1], "b")?;
    let (s_y, zp_y) = per_tensor_i8(&cx.results[0], "y")?;
    let p = add_params(s1, s2, s_y)?;
    let (lo, hi) = (cx.int("act_min", -128), cx.int("act_max", 127));
    let (mut k, binds) = io_kernel(cx, "qadd")?;
    let (ast, bst, yst) = (strides(&ash), strides(&bsh), strides(&ys));
    // An input's index: the output's trailing indices, 0 along its broadcast (size-1) dims.
    let bcast = |shape: &[usize], st: &[usize], ix: &[Expr]| {
        let off = ix.len() - shape.len();
        let sub: Vec<Expr> = shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if d == 1 { idx(0) } else { ix[off + i].clone() })
            .collect();
        linear(&sub, st)
    };
    k.body = k.nest(&ys, |k, ix| {
        let mut s = Vec::new();
        let mut scaled = |k: &mut Kernel, buf: BufId, index: Expr, zp: i64, (m, shift): (i32, i32)| {
            let centered = bin(BinOp::Sub, cast(Ty::I32, load(buf, index)), i32c(zp));
            let (st, v) =
                requant(k, centered, i32c(m as i64), i32c(1i64 << p.left_shift), i32c(-shift as i64));
            s.extend(st);
            v
        };
        let a = scaled(k, 0, bcast(&ash, &ast, ix), z1, p.input1);
        let b = scaled(k, 1, bcast(&bsh, &bst, ix), z2, p.input2);
        let (m, shift) = p.output;
        let (st, y) = requant(k, bin(BinOp::Add, a, b), i32c(m as i64), i32c(1), i32c(-shift as i64));
        s.extend(st);
        s.push(Stmt::Store {
            buf: 2,
            index: linear(ix, &yst),
            value: clamp_i8(bin(BinOp::Add, y, i32c(zp_y)), lo, hi),
        });
        s
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// What a layer writes.
#[derive(Clone, Copy, PartialEq)]
enum LayerOut {
    /// int8 with these parameters.
    Int8 { scale: f64, zp: i64 },
    /// The int8 value dequantized to f32 in the same kernel (`q.fully_connected {dequantize =
    /// 1}`: the result type is f32, the parameters are attributes).
    Dequantized { scale: f64, zp: i64 },
    /// f32 without output quantization: `f32(acc) · f32(scale_x · scale_w[c])`
    /// (`q.fully_connected` without `scale`).
    Real,
}

impl LayerOut {
    /// The output quantization; a real-valued result has none (scale 1, zero point 0, which
    /// nothing reads).
    fn params(self) -> (f64, i64) {
        match self {
            LayerOut::Int8 { scale, zp } | LayerOut::Dequantized { scale, zp } => (scale, zp),
            LayerOut::Real => (1.0, 0),
        }
    }
}

fn layer_out(cx: &OpCx) -> Result<LayerOut, OpError> {
    if cx.kind == OpKind::QFullyConnected && edgec_ir::ops::qint8::real_result(cx.attrs)? {
        return Ok(LayerOut::Real);
    }
    if cx.int("dequantize", 0) == 1 {
        return Ok(LayerOut::Dequantized { scale: cx.float("scale", 1.0), zp: cx.int("zero_point", 0) });
    }
    let (scale, zp) = per_tensor_i8(&cx.results[0], "y")?;
    Ok(LayerOut::Int8 { scale, zp })
}

/// `f32(scale_x · scale_w[c])` per channel: a real-valued result's multipliers.
fn acc_scales(s_x: f64, s_w: &[f64]) -> Vec<f32> {
    s_w.iter().map(|&sw| (s_x * sw) as f32).collect()
}

/// How [`integer_layer`] finishes a channel's accumulator (its tables' parameters).
#[derive(Clone, Copy)]
enum Epilogue {
    Requant { m: BufId, left: BufId, right: BufId },
    Scale(BufId),
}

/// q.conv, q.conv_transpose and q.fully_connected in loops (weights known only at run time, or
/// no int8 GEMM): int32 accumulation of `w · (x − zp_x)` over the input positions that exist
/// (padding contributes 0, as TFLite skips it), plus the bias, then per-channel requantization
/// (or, for a real-valued result, the per-channel scale).
fn integer_layer(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let (xs, ws, ys) = (cx.shape(0), cx.shape(1), cx.rshape(0));
    let (s_x, zp_x) = per_tensor_i8(&cx.operands[0], "x")?;
    let out = layer_out(cx)?;
    let (s_y, zp_y) = out.params();
    let w_axis = if cx.kind == OpKind::QConvTranspose { 1 } else { 0 };
    let channels = ws[w_axis];
    let s_w = weight_scales(&cx.operands[1], w_axis, Some(channels), "w")?;
    let lo = cx.int("act_min", -128);
    let hi = cx.int("act_max", 127);
    let has_bias = cx.has(2);
    let name = match cx.kind {
        OpKind::QConv => "qconv",
        OpKind::QConvTranspose => "qconv_transpose",
        _ => "qfully_connected",
    };
    let (mut k, mut binds) = io_kernel(cx, name)?;
    let yb = cx.operands.len();
    // Per channel: the requantization's multiplier, 2^left and right shift, or the f32 scale of
    // a real-valued result.
    let epilogue = if out == LayerOut::Real {
        let bytes: Vec<u8> = acc_scales(s_x, &s_w).iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = cx.add_table(ConstData { ty: Ty::F32, bytes: bytes.into() });
        binds.push(Bind::Table(t));
        Epilogue::Scale(k.param(Ty::F32, channels as u64, Access::Read))
    } else {
        let parts: Vec<(i64, i64, i64)> = s_w.iter().map(|&sw| multiplier_parts(s_x * sw / s_y)).collect();
        let mut table = |vals: Vec<i64>, k: &mut Kernel, binds: &mut Vec<Bind>| {
            let bytes: Vec<u8> = vals.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect();
            let t = cx.add_table(ConstData { ty: Ty::I32, bytes: bytes.into() });
            binds.push(Bind::Table(t));
            k.param(Ty::I32, vals.len() as u64, Access::Read)
        };
        Epilogue::Requant {
            m: table(parts.iter().map(|p| p.0).collect(), &mut k, &mut binds),
            left: table(parts.iter().map(|p| p.1).collect(), &mut k, &mut binds),
            right: table(parts.iter().map(|p| p.2).collect(), &mut k, &mut binds),
        }
    };
    let acc = k.var(Ty::I32);
    let xval = |i: Expr| bin(BinOp::Sub, cast(Ty::I32, load(0, i)), i32c(zp_x));
    let wval = |i: Expr| cast(Ty::I32, load(1, i));
    let kind = cx.kind;
    let attrs = cx.attrs.clone();
    let ystr = strides(&ys);
    let body = k.try_nest(&ys, |k, ix| -> Result<Vec<Stmt>, OpError> {
        let ch = if kind == OpKind::QFullyConnected { ix[ix.len() - 1].clone() } else { ix[1].clone() };
        let init = if has_bias { load(2, ch.clone()) } else { i32c(0) };
        let mut s = vec![Stmt::Let { var: acc, value: init }];
        let update = |prod: Expr| Stmt::Assign { var: acc, value: bin(BinOp::Add, Expr::Var(acc), prod) };
        match kind {
            OpKind::QFullyConnected => {
                let kk = xs[xs.len() - 1];
                let row = linear(&ix[..ix.len() - 1], &strides(&xs[..xs.len() - 1]));
                let r = k.var(Ty::Idx);
                let xi = add(mul(row, idx(kk as i64)), Expr::Var(r));
                let wi = add(mul(ch.clone(), idx(kk as i64)), Expr::Var(r));
                s.push(Stmt::For {
                    var: r,
                    extent: kk as u64,
                    body: vec![update(bin(BinOp::Mul, wval(wi), xval(xi)))],
                });
            }
            OpKind::QConv => {
                let g = conv_geometry(&attrs, &ws, &xs[2..])?;
                let group = attrs.int("group").unwrap_or(1) as usize;
                let (cg, mg) = (xs[1] / group, ws[0] / group);
                let nd = g.kernel.len();
                let c = k.var(Ty::Idx);
                let kv: Vec<VarId> = (0..nd).map(|_| k.var(Ty::Idx)).collect();
                // Input channel = group(m) * cg + c.
                let cin = add(mul(div(ix[1].clone(), idx(mg as i64)), idx(cg as i64)), Expr::Var(c));
                let kvars: Vec<Expr> = kv.iter().map(|&v| Expr::Var(v)).collect();
                let (pos, cond) = conv_positions(&g, &ix[2..], &kvars, &xs[2..]);
                let mut xix = vec![ix[0].clone(), cin];
                xix.extend(pos);
                let mut wix = vec![ix[1].clone(), Expr::Var(c)];
                wix.extend(kv.iter().map(|&v| Expr::Var(v)));
                let prod =
                    bin(BinOp::Mul, wval(linear(&wix, &strides(&ws))), xval(linear(&xix, &strides(&xs))));
                s.push(window_sum(c, cg, &kv, &g.kernel, cond, update(prod)));
            }
            _ => {
                // Transposed: y[o] gathers x[i] with o = i·s + k·d − pad, i.e. i = (o + pad − k·d) / s.
                let g = conv_transpose_geometry(&attrs, &ws, &xs[2..])?;
                let nd = g.kernel.len();
                let c = k.var(Ty::Idx);
                let kv: Vec<VarId> = (0..nd).map(|_| k.var(Ty::Idx)).collect();
                let mut pos = Vec::new();
                let mut cond: Option<Expr> = None;
                for d in 0..nd {
                    let t = sub(
                        add(ix[2 + d].clone(), idx(g.pads_begin[d])),
                        mul(Expr::Var(kv[d]), idx(g.dilations[d] as i64)),
                    );
                    let st = g.strides[d] as i64;
                    let i = div(t.clone(), idx(st));
                    let mut ok = bin(
                        BinOp::And,
                        cmp(CmpOp::Ge, t.clone(), idx(0)),
                        cmp(CmpOp::Lt, i.clone(), idx(xs[2 + d] as i64)),
                    );
                    if st > 1 {
                        ok = bin(BinOp::And, ok, cmp(CmpOp::Eq, rem(t, idx(st)), idx(0)));
                    }
                    cond = Some(match cond {
                        None => ok,
                        Some(c0) => bin(BinOp::And, c0, ok),
                    });
                    pos.push(i);
                }
                let mut xix = vec![ix[0].clone(), Expr::Var(c)];
                xix.extend(pos);
                let mut wix = vec![Expr::Var(c), ix[1].clone()];
                wix.extend(kv.iter().map(|&v| Expr::Var(v)));
                let prod =
                    bin(BinOp::Mul, wval(linear(&wix, &strides(&ws))), xval(linear(&xix, &strides(&xs))));
                s.push(window_sum(c, xs[1], &kv, &g.kernel, cond, update(prod)));
            }
        }
        let (tm, tl, tr) = match epilogue {
            Epilogue::Scale(ts) => {
                let value = bin(BinOp::Mul, cast(Ty::F32, Expr::Var(acc)), load(ts, ch));
                s.push(Stmt::Store { buf: yb, index: linear(ix, &ystr), value });
                return Ok(s);
            }
            Epilogue::Requant { m, left, right } => (m, left, right),
        };
        let (rs, y) = requant(k, Expr::Var(acc), load(tm, ch.clone()), load(tl, ch.clone()), load(tr, ch));
        s.extend(rs);
        let mut value = clamp_i8(bin(BinOp::Add, y, i32c(zp_y)), lo, hi);
        if matches!(out, LayerOut::Dequantized { .. }) {
            // (q − zp) · scale in f32 is q.dequantize's f64 product rounded (an f32 scale).
            let centered = cast(Ty::F32, bin(BinOp::Sub, cast(Ty::I32, value), i32c(zp_y)));
            value = bin(BinOp::Mul, centered, fc(s_y as f32 as f64, Ty::F32));
        }
        s.push(Stmt::Store { buf: yb, index: linear(ix, &ystr), value });
        Ok(s)
    })?;
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// `for c in 0..channels { for k... in kernel { if cond { update } } }`: the accumulation loops
/// of the direct (reference-speed) convolutions.
pub(super) fn window_sum(
    c: VarId,
    channels: usize,
    kv: &[VarId],
    kernel: &[usize],
    cond: Option<Expr>,
    update: Stmt,
) -> Stmt {
    let mut inner = match cond {
        Some(cond) => vec![Stmt::If { cond, then: vec![update], els: vec![] }],
        None => vec![update],
    };
    for d in (0..kv.len()).rev() {
        inner = vec![Stmt::For { var: kv[d], extent: kernel[d] as u64, body: inner }];
    }
    Stmt::For { var: c, extent: channels as u64, body: inner }
}

/// A conv's input position per spatial dim, `o·s + k·d − pad`, and the condition that all of
/// them are inside the input (`None` when there are no spatial dims).
pub(super) fn conv_positions(
    g: &edgec_ir::ops::ConvGeometry,
    out: &[Expr],
    kernel: &[Expr],
    extent: &[usize],
) -> (Vec<Expr>, Option<Expr>) {
    let mut pos = Vec::new();
    let mut cond: Option<Expr> = None;
    for d in 0..g.kernel.len() {
        let p = sub(
            add(
                mul(out[d].clone(), idx(g.strides[d] as i64)),
                mul(kernel[d].clone(), idx(g.dilations[d] as i64)),
            ),
            idx(g.pads_begin[d]),
        );
        let ok = bin(
            BinOp::And,
            cmp(CmpOp::Ge, p.clone(), idx(0)),
            cmp(CmpOp::Lt, p.clone(), idx(extent[d] as i64)),
        );
        cond = Some(match cond {
            None => ok,
            Some(c0) => bin(BinOp::And, c0, ok),
        });
        pos.push(p);
    }
    (pos, cond)
}

/// Weights shared with another op are packed at run time from this size on (see `gemm_layer`).
const SHARED_WEIGHTS_UNPACKED_BYTES: usize = 1 << 20;

/// Binds kernel parameter `param` (an operand's slot) to `packed` int8 weights stored as a
/// compile-time table instead of the operand's own bytes.
pub(super) fn bind_packed(cx: &mut OpCx, k: &mut Kernel, binds: &mut [Bind], param: usize, packed: &[i8]) {
    let t = cx.add_table(ConstData {
        ty: Ty::I8,
        bytes: packed.iter().map(|&v| v as u8).collect::<Vec<_>>().into(),
    });
    k.params[param].len = packed.len() as u64;
    binds[param] = Bind::Table(t);
}

/// Adds an `I32` table parameter.
fn i32_table(cx: &mut OpCx, k: &mut Kernel, binds: &mut Vec<Bind>, vals: &[i32]) -> BufId {
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let t = cx.add_table(ConstData { ty: Ty::I32, bytes: bytes.into() });
    binds.push(Bind::Table(t));
    k.param(Ty::I32, vals.len() as u64, Access::Read)
}

/// The int8 GEMM of a fully connected layer with `n` outputs over `k` inputs, weights `[n, k]`
/// prepacked as B. Its packed weights do not depend on the row count or requantization, so a
/// `q.gather` of the same table packs it with this spec and gets the layer's bytes.
fn fc_weight_spec(n: usize, k: usize) -> QGemmSpec {
    QGemmSpec::with_shape(GemmShape { b_trans: true, ldb: k, ..GemmShape::new(1, n, k) })
}

/// q.fully_connected and q.conv through the backend's int8 GEMM ([`Stmt::QGemm`]): the weights
/// are packed at compile time; a conv's input patches are gathered (im2col, padding with the
/// input's zero point so that it contributes 0) unless the conv is a plain 1×1.
fn gemm_layer(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let kernels = cx.kernels;
    let q = kernels.int8_gemm().ok_or("no int8 GEMM")?;
    let (xs, ws) = (cx.shape(0), cx.shape(1));
    let (s_x, zp_x) = per_tensor_i8(&cx.operands[0], "x")?;
    let out = layer_out(cx)?;
    let (s_y, zp_y) = out.params();
    let channels = ws[0];
    let s_w = weight_scales(&cx.operands[1], 0, Some(channels), "w")?;
    let (lo, hi) = (cx.int("act_min", -128) as i32, cx.int("act_max", 127) as i32);
    let has_bias = cx.has(2);
    let w: Vec<i8> = match cx.konst(1) {
        Some(edgec_ir::Tensor::I8(a)) => a.iter().copied().collect(),
        _ => return integer_layer(cx),
    };
    let fc = cx.kind == OpKind::QFullyConnected;
    let (mut k, mut binds) = io_kernel(cx, if fc { "qfully_connected" } else { "qconv" })?;
    let yb = cx.operands.len();
    let (tm, ts) = if out == LayerOut::Real {
        // The routine reads the f32 scales from `mult` and no shifts.
        let bits: Vec<i32> = acc_scales(s_x, &s_w).iter().map(|v| v.to_bits() as i32).collect();
        let t = i32_table(cx, &mut k, &mut binds, &bits);
        (t, t)
    } else {
        let (mult, shift): (Vec<i32>, Vec<i32>) =
            s_w.iter().map(|&sw| quantize_multiplier(s_x * sw / s_y)).unzip();
        (i32_table(cx, &mut k, &mut binds, &mult), i32_table(cx, &mut k, &mut binds, &shift))
    };
    // The layer's requantization and output, on top of a product's shape and operands.
    let with_output = |spec: QGemmSpec| QGemmSpec {
        c_zp: zp_y as i32,
        act_min: lo,
        act_max: hi,
        out: match out {
            LayerOut::Int8 { .. } => QOut::I8,
            LayerOut::Dequantized { scale, .. } => QOut::F32 { scale_bits: (scale as f32).to_bits() },
            LayerOut::Real => QOut::Scaled,
        },
        ..spec
    };
    let scratch_param = |k: &mut Kernel, binds: &mut Vec<Bind>, bytes: u64| -> Option<BufId> {
        (bytes > 0).then(|| {
            binds.push(Bind::Scratch);
            k.param(Ty::I32, bytes.div_ceil(4), Access::Scratch)
        })
    };
    if fc {
        // Y[rows × N] = X[rows × K] · Wᵀ, W stored N × K: the weights are B, per column.
        let kk = xs[xs.len() - 1];
        let rows: usize = xs[..xs.len() - 1].iter().product();
        let weight_spec = fc_weight_spec(channels, kk);
        let mut spec = with_output(QGemmSpec {
            shape: GemmShape { m: rows, ..weight_spec.shape },
            a_zp: zp_x as i32,
            ..weight_spec
        });
        let packed_for_all = cx.packed.get(1).copied().unwrap_or(false);
        if !packed_for_all
            && cx.shared.get(1).copied().unwrap_or(false)
            && w.len() >= SHARED_WEIGHTS_UNPACKED_BYTES
        {
            // The weights are read in their own layout elsewhere too: packing a copy would store
            // them twice, so the routine packs panels at run time instead. That costs time (45M
            // GPT-2 before its lookup read packed tables: 9.3 ms instead of 5.3 ms per run), so
            // small tables, whose second copy costs little, are still packed at compile time.
            spec.prepacked = false;
        } else {
            let packed = q.pack(&spec, has_bias, &w);
            bind_packed(cx, &mut k, &mut binds, 1, &packed);
        }
        let scratch = scratch_param(&mut k, &mut binds, q.scratch_bytes(&spec, has_bias));
        k.body.push(Stmt::QGemm {
            spec,
            a: View { buf: 0, offset: idx(0) },
            b: View { buf: 1, offset: idx(0) },
            c: View { buf: yb, offset: idx(0) },
            bias: has_bias.then(|| View { buf: 2, offset: idx(0) }),
            mult: View { buf: tm, offset: idx(0) },
            shift: View { buf: ts, offset: idx(0) },
            scratch,
        });
        return Ok(Lowered::Calls(vec![(k, binds)]));
    }
    // Conv: per image and group, Y_g[mg × P] = W_g[mg × cg·K] · col[cg·K × P].
    let g = conv_geometry(cx.attrs, &ws, &xs[2..])?;
    let group = cx.int("group", 1) as usize;
    let (nb, c) = (xs[0], xs[1]);
    let (cg, mg) = (c / group, channels / group);
    let kprod: usize = g.kernel.iter().product();
    let iprod: usize = xs[2..].iter().product();
    let oprod: usize = g.out.iter().product();
    let rows = cg * kprod;
    let direct = kprod == 1
        && g.strides.iter().all(|&s| s == 1)
        && g.pads_begin.iter().chain(&g.pads_end).all(|&p| p == 0);
    // Per image and group: the weights are A (one channel per row), the patches B.
    let spec = with_output(QGemmSpec {
        b_zp: zp_x as i32,
        channel: QChannel::PerRow,
        weights: QWeights::A,
        ..QGemmSpec::new(mg, oprod, rows)
    });
    // Pack each group's weights; the packed groups sit one after another.
    let mut packed = Vec::new();
    let mut group_len = 0;
    for gi in 0..group {
        let p = q.pack(&spec, has_bias, &w[gi * mg * rows..(gi + 1) * mg * rows]);
        group_len = p.len();
        packed.extend(p);
    }
    bind_packed(cx, &mut k, &mut binds, 1, &packed);
    let col = if direct {
        None
    } else {
        binds.push(Bind::Scratch);
        Some(k.param(Ty::I8, (rows * oprod) as u64, Access::Scratch))
    };
    let scratch = scratch_param(&mut k, &mut binds, q.scratch_bytes(&spec, has_bias));
    let xst = strides(&xs);
    let nd = g.kernel.len();
    k.body = k.nest(&[nb, group], |k, ix| {
        let (n, gi) = (&ix[0], &ix[1]);
        let mut s = Vec::new();
        let b_view = match col {
            None => View {
                buf: 0,
                offset: add(
                    mul(n.clone(), idx((c * iprod) as i64)),
                    mul(gi.clone(), idx((cg * iprod) as i64)),
                ),
            },
            Some(colb) => {
                // im2col: col[(ci·K + kk)·P + o] = x[n, g·cg + ci, o·s + kk·d − pad] or zp_x.
                let mut dims = vec![cg];
                dims.extend(&g.kernel);
                dims.extend(&g.out);
                let cols = k.nest(&dims, |_, ix| {
                    let (ci, kv, ov) = (&ix[0], &ix[1..1 + nd], &ix[1 + nd..]);
                    let mut xix = vec![n.clone(), add(mul(gi.clone(), idx(cg as i64)), ci.clone())];
                    let (pos, cond) = conv_positions(&g, ov, kv, &xs[2..]);
                    xix.extend(pos);
                    let ci_k = add(mul(ci.clone(), idx(kprod as i64)), linear(kv, &strides(&g.kernel)));
                    let ci_index = add(mul(ci_k, idx(oprod as i64)), linear(ov, &strides(&g.out)));
                    let store = |v| Stmt::Store { buf: colb, index: ci_index.clone(), value: v };
                    match cond {
                        None => vec![store(load(0, linear(&xix, &xst)))],
                        Some(cond) => vec![Stmt::If {
                            cond,
                            then: vec![store(load(0, linear(&xix, &xst)))],
                            els: vec![store(Expr::IConst(zp_x, Ty::I8))],
                        }],
                    }
                });
                s.extend(cols);
                View { buf: colb, offset: idx(0) }
            }
        };
        let ch0 = mul(gi.clone(), idx(mg as i64));
        s.push(Stmt::QGemm {
            spec: spec.clone(),
            a: View { buf: 1, offset: mul(gi.clone(), idx(group_len as i64)) },
            b: b_view,
            c: View {
                buf: yb,
                offset: add(
                    mul(n.clone(), idx((channels * oprod) as i64)),
                    mul(ch0.clone(), idx(oprod as i64)),
                ),
            },
            bias: has_bias.then(|| View { buf: 2, offset: ch0.clone() }),
            mult: View { buf: tm, offset: ch0.clone() },
            shift: View { buf: ts, offset: ch0 },
            scratch,
        });
        s
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// q.conv_transpose like the f32 ConvTranspose (`linalg::conv_transpose`): per image, the int8
/// GEMM stores the raw int32 products `colᵀ[P_in × M·K] = (X − zp_x)ᵀ · W` ([`QOut::I32`], the
/// weights packed at compile time), col2im scatter-adds them into int32 accumulators that start
/// as the bias, and a last pass requantizes per output channel into the int8 output. The int32
/// sums wrap exactly as the interpreter's accumulator does.
fn conv_transpose_layer(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let kernels = cx.kernels;
    let q = kernels.int8_gemm().ok_or("no int8 GEMM")?;
    let (xs, ws) = (cx.shape(0), cx.shape(1));
    let (s_x, zp_x) = per_tensor_i8(&cx.operands[0], "x")?;
    let (s_y, zp_y) = per_tensor_i8(&cx.results[0], "y")?;
    let g = conv_transpose_geometry(cx.attrs, &ws, &xs[2..])?;
    let (nb, c, m) = (xs[0], xs[1], ws[1]);
    let kprod: usize = g.kernel.iter().product();
    let iprod: usize = xs[2..].iter().product();
    let oprod: usize = g.out.iter().product();
    let rows = m * kprod;
    let w: Vec<i8> = match cx.konst(1) {
        Some(edgec_ir::Tensor::I8(a)) if cx.int("group", 1) == 1 && iprod * rows * c > 0 => {
            a.iter().copied().collect()
        }
        _ => return integer_layer(cx),
    };
    let s_w = weight_scales(&cx.operands[1], 1, Some(m), "w")?;
    let (lo, hi) = (cx.int("act_min", -128), cx.int("act_max", 127));
    let has_bias = cx.has(2);
    let (mut k, mut binds) = io_kernel(cx, "qconv_transpose")?;
    let yb = cx.operands.len();
    let parts: Vec<(i64, i64, i64)> = s_w.iter().map(|&sw| multiplier_parts(s_x * sw / s_y)).collect();
    let table = |cx: &mut OpCx, k: &mut Kernel, binds: &mut Vec<Bind>, f: fn(&(i64, i64, i64)) -> i64| {
        i32_table(cx, k, binds, &parts.iter().map(|p| f(p) as i32).collect::<Vec<_>>())
    };
    let tm = table(cx, &mut k, &mut binds, |p| p.0);
    let tl = table(cx, &mut k, &mut binds, |p| p.1);
    let tr = table(cx, &mut k, &mut binds, |p| p.2);
    // colᵀ (P_in × M·K) = Xᵀ (X stored C × P_in) · W (C × M·K): the weights are B, the small
    // P_in is M.
    let spec = QGemmSpec {
        a_zp: zp_x as i32,
        out: QOut::I32,
        ..QGemmSpec::with_shape(GemmShape { a_trans: true, lda: iprod, ..GemmShape::new(iprod, rows, c) })
    };
    let packed = q.pack(&spec, false, &w);
    bind_packed(cx, &mut k, &mut binds, 1, &packed);
    let mut scratch_buf = |k: &mut Kernel, words: u64| {
        binds.push(Bind::Scratch);
        k.param(Ty::I32, words, Access::Scratch)
    };
    let colb = scratch_buf(&mut k, (iprod * rows) as u64);
    let accb = scratch_buf(&mut k, (m * oprod) as u64);
    let qbytes = q.scratch_bytes(&spec, false);
    let scratch = (qbytes > 0).then(|| scratch_buf(&mut k, qbytes.div_ceil(4)));
    let xsp = xs[2..].to_vec();
    k.body = k.nest(&[nb], |k, ix| {
        let n = &ix[0];
        // Accumulators start as the bias (adding it first or last is the same wrapping sum).
        let mut s = k.nest(&[m, oprod], |_, ix| {
            let v = if has_bias { load(2, ix[0].clone()) } else { i32c(0) };
            vec![Stmt::Store { buf: accb, index: linear(ix, &[oprod, 1]), value: v }]
        });
        s.push(Stmt::QGemm {
            spec: spec.clone(),
            a: View { buf: 0, offset: mul(n.clone(), idx((c * iprod) as i64)) },
            b: View { buf: 1, offset: idx(0) },
            c: View { buf: colb, offset: idx(0) },
            bias: None,
            mult: View { buf: tm, offset: idx(0) },
            shift: View { buf: tr, offset: idx(0) },
            scratch,
        });
        s.extend(super::linalg::col2im(k, &g, &xsp, m, accb, idx(0), colb));
        // Requantize per channel into the int8 output.
        s.extend(k.nest(&[m, oprod], |k, ix| {
            let ch = ix[0].clone();
            let acc = load(accb, linear(ix, &[oprod, 1]));
            let (mut st, y) = requant(k, acc, load(tm, ch.clone()), load(tl, ch.clone()), load(tr, ch));
            st.push(Stmt::Store {
                buf: yb,
                index: add(mul(n.clone(), idx((m * oprod) as i64)), linear(ix, &[oprod, 1])),
                value: clamp_i8(bin(BinOp::Add, y, i32c(zp_y)), lo, hi),
            });
            st
        }));
        s
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// q.gather: each index selects a row of the i8 table, dequantized with that row's scale and
/// zero point (`f32(f64(scale) · (q − zp))`, as the interpreter). Indices are wrapped when
/// negative and clamped into range, like the float gather's lowering.
fn gather(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let (ts, is) = (cx.shape(0), cx.shape(1));
    let q = match &cx.operands[0].elem {
        edgec_ir::ElemType::Quant(q) => q.clone(),
        _ => return Err("q.gather of a non-quantized table".into()),
    };
    let rows = ts[0];
    let row: usize = ts[1..].iter().product();
    let (mut k, mut binds) = io_kernel(cx, "qgather")?;
    // A table that is also an int8 fully connected layer's weight is stored once, in the GEMM's
    // packed layout (see `packed_weight_tables`): pack it exactly as `gemm_layer` does (the
    // interned table is then the same bytes) and read each row from its panel.
    let kernels = cx.kernels;
    let packed_layout = match (cx.packed.first().copied().unwrap_or(false), kernels.int8_gemm(), cx.konst(0))
    {
        (true, Some(q), Some(edgec_ir::Tensor::I8(a))) => {
            let spec = fc_weight_spec(rows, row);
            let w: Vec<i8> = a.iter().copied().collect();
            let packed = q.pack(&spec, false, &w);
            bind_packed(cx, &mut k, &mut binds, 0, &packed);
            Some(q.layout(&spec))
        }
        _ => None,
    };
    let params = match &q.params {
        QuantParams::PerTensor { scale, zero_point } => Err((*scale, *zero_point)),
        QuantParams::PerAxis { scales, zero_points, .. } => {
            // The scales are f32 values (as a TFLite file stores them); f32 tables are exact.
            let sb: Vec<u8> = scales.iter().flat_map(|&s| (s as f32).to_le_bytes()).collect();
            let t = cx.add_table(ConstData { ty: Ty::F32, bytes: sb.into() });
            binds.push(Bind::Table(t));
            let ps = k.param(Ty::F32, rows as u64, Access::Read);
            let zps: Vec<i32> = zero_points.iter().map(|&z| z as i32).collect();
            let pz = zps.iter().any(|&z| z != 0).then(|| i32_table(cx, &mut k, &mut binds, &zps));
            Ok((ps, pz))
        }
    };
    let (r, base, j, g) = (k.var(Ty::Idx), k.var(Ty::Idx), k.var(Ty::Idx), k.var(Ty::Idx));
    let ist = strides(&is);
    let yb = 2;
    // `f32(f64(scale) · (q − zp))` is the f32 product when the scale is an f32 value (q − zp is a
    // small integer, so the f64 product is exact and rounding it is the f32 multiply): f32
    // arithmetic is then exact and twice as wide per vector.
    let f32_math = match &q.params {
        QuantParams::PerTensor { scale, .. } => *scale as f32 as f64 == *scale,
        QuantParams::PerAxis { .. } => true, // the table holds f32 scales
    };
    let mt = if f32_math { Ty::F32 } else { Ty::F64 };
    k.body = k.nest(&is, |_, ix| {
        let raw = cast(Ty::Idx, load(1, linear(ix, &ist)));
        let wrapped = select(cmp(CmpOp::Lt, raw.clone(), idx(0)), add(raw.clone(), idx(rows as i64)), raw);
        let clamped = bin(BinOp::Min, bin(BinOp::Max, wrapped, idx(0)), idx(rows.max(1) as i64 - 1));
        let (scale, zp) = match params {
            Err((s, z)) => (fc(s, mt), i32c(z)),
            Ok((ps, pz)) => {
                (cast(mt, load(ps, Expr::Var(r))), pz.map_or(i32c(0), |pz| load(pz, Expr::Var(r))))
            }
        };
        let out_row = mul(linear(ix, &ist), idx(row as i64));
        // Element `col` of the row, read at `src`.
        let store = |col: Expr, src: Expr| {
            let centered = cast(mt, bin(BinOp::Sub, cast(Ty::I32, load(0, src)), zp.clone()));
            let value = cast(Ty::F32, bin(BinOp::Mul, scale.clone(), centered));
            Stmt::Store { buf: yb, index: add(out_row.clone(), col), value }
        };
        let mut s = vec![Stmt::Let { var: r, value: clamped }];
        match packed_layout {
            None => {
                s.push(Stmt::Let { var: base, value: mul(Expr::Var(r), idx(row as i64)) });
                let src = add(Expr::Var(base), Expr::Var(j));
                s.push(Stmt::For { var: j, extent: row as u64, body: vec![store(Expr::Var(j), src)] });
            }
            Some(l) => {
                // The row starts at (r / width)·panel + (r % width)·kg; group q of `kg` columns is
                // `width · kg` bytes further per group.
                let (wd, kg) = (idx(l.width as i64), l.kg);
                let row_base = add(
                    mul(bin(BinOp::Div, Expr::Var(r), wd.clone()), idx(l.panel_bytes as i64)),
                    mul(bin(BinOp::Rem, Expr::Var(r), wd), idx(kg as i64)),
                );
                s.push(Stmt::Let { var: base, value: row_base });
                let stride = idx((l.width * kg) as i64);
                let group = |q: Expr, count: usize| Stmt::For {
                    var: g,
                    extent: count as u64,
                    body: vec![store(
                        add(mul(q.clone(), idx(kg as i64)), Expr::Var(g)),
                        add(add(Expr::Var(base), mul(q.clone(), stride.clone())), Expr::Var(g)),
                    )],
                };
                let (full, rest) = (row / kg, row % kg);
                s.push(Stmt::For { var: j, extent: full as u64, body: vec![group(Expr::Var(j), kg)] });
                if rest > 0 {
                    s.push(group(idx(full as i64), rest));
                }
            }
        }
        s
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}
