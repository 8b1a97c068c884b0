//! Quantize / dequantize (per tensor, per axis or blocked parameters) and dynamic quantization,
//! with the reference's numerics: quantize divides in the division precision and rounds half to
//! even before adding the zero point and saturating; dequantize computes in f32.

use super::{io_kernel, kty, norm_axis, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::{OpKind, ScalarType};

pub(super) fn lower(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    use OpKind as K;
    Ok(Some(match cx.kind {
        K::QuantizeLinear => quantize(cx)?,
        K::DequantizeLinear => dequantize(cx)?,
        K::DynamicQuantizeLinear => dynamic_quantize(cx)?,
        _ => return Ok(None),
    }))
}

/// Index of the parameter (operand `p`) for the element of `x` at multi-index `ix`.
fn param_index(cx: &OpCx, p: usize, ix: &[Expr]) -> Result<Expr, OpError> {
    let x = cx.shape(0);
    let ps = cx.shape(p);
    if ps.iter().product::<usize>() == 1 {
        return Ok(idx(0));
    }
    let axis = norm_axis(cx.int("axis", 1), x.len())?;
    let block = cx.int("block_size", 0);
    if block <= 0 {
        return Ok(ix[axis].clone());
    }
    let mut pix = ix.to_vec();
    pix[axis] = div(pix[axis].clone(), idx(block));
    Ok(linear(&pix, &strides(&ps)))
}

/// (min, max) of an integer type.
fn int_range(t: Ty) -> Result<(i64, i64), OpError> {
    Ok(match t {
        Ty::I8 => (i8::MIN as i64, i8::MAX as i64),
        Ty::U8 => (0, u8::MAX as i64),
        Ty::I16 => (i16::MIN as i64, i16::MAX as i64),
        Ty::U16 => (0, u16::MAX as i64),
        Ty::I32 => (i32::MIN as i64, i32::MAX as i64),
        t => return Err(format!("cannot quantize to {}", t.name()).into()),
    })
}

fn quantize(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let (xt, st) = (cx.operands[0].scalar(), cx.operands[1].scalar());
    // The division precision: the `precision` attribute, else numpy's promotion.
    let prec = match cx.attrs.ty("precision") {
        Some(p) => kty(p)?,
        None => match (xt, st) {
            (a, b) if a == b && a.is_float() => kty(a)?,
            (ScalarType::F64, _) | (_, ScalarType::F64) | (ScalarType::I32, _) | (_, ScalarType::I32) => {
                Ty::F64
            }
            _ => Ty::F32,
        },
    };
    let out = cx.rty(0)?;
    let (lo, hi) = int_range(out)?;
    let has_zp = cx.has(2);
    let (mut k, binds) = io_kernel(cx, "quantize_linear")?;
    let ob = cx.operands.len();
    let f = Ty::F64;
    let rp = move |e: Expr| if prec != f { cast(f, cast(prec, e)) } else { e };
    let body = k.try_nest(&x, |_, ix| -> Result<Vec<Stmt>, OpError> {
        let si = param_index(cx, 1, ix)?;
        let xv = rp(cast(f, load(0, linear(ix, &strides(&x)))));
        let sv = rp(cast(f, load(1, si)));
        let q = rp(bin(BinOp::Div, xv, sv));
        let r = select(un(UnOp::IsNan, q.clone()), fc(0.0, f), un(UnOp::Round, q));
        let r = if has_zp { bin(BinOp::Add, r, cast(f, load(2, param_index(cx, 2, ix)?))) } else { r };
        let r = bin(BinOp::Min, bin(BinOp::Max, r, fc(lo as f64, f)), fc(hi as f64, f));
        Ok(vec![Stmt::Store { buf: ob, index: linear(ix, &strides(&x)), value: cast(out, r) }])
    })?;
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn dequantize(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let out = cx.rty(0)?;
    cx.ty(0)?;
    let has_zp = cx.has(2);
    let (mut k, binds) = io_kernel(cx, "dequantize_linear")?;
    let ob = cx.operands.len();
    let f = Ty::F32;
    let body = k.try_nest(&x, |_, ix| -> Result<Vec<Stmt>, OpError> {
        let mut v = cast(f, load(0, linear(ix, &strides(&x))));
        if has_zp {
            v = bin(BinOp::Sub, v, cast(f, load(2, param_index(cx, 2, ix)?)));
        }
        let v = bin(BinOp::Mul, v, cast(f, load(1, param_index(cx, 1, ix)?)));
        let v = if out != f { cast(out, v) } else { v };
        Ok(vec![Stmt::Store { buf: ob, index: linear(ix, &strides(&x)), value: v }])
    })?;
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn dynamic_quantize(cx: &mut OpCx) -> Result<Lowered, OpError> {
    if cx.ty(0)? != Ty::F32 || cx.results.len() != 3 {
        return Err("dynamic_quantize_linear takes f32 and has 3 results".into());
    }
    let n = cx.operands[0].num_elements().unwrap_or(0) as usize;
    let (mut k, binds) = io_kernel(cx, "dynamic_quantize_linear")?;
    let (y, ys, yz) = (1, 2, 3);
    let f = Ty::F32;
    let (mx, mn, scale, zp) = (k.var(f), k.var(f), k.var(f), k.var(f));
    let v = |e: VarId| Expr::Var(e);
    k.body.push(Stmt::Let { var: mx, value: fc(0.0, f) });
    k.body.push(Stmt::Let { var: mn, value: fc(0.0, f) });
    // NaN-skipping max/min (f32::max/min), the range always including 0.
    let body = k.nest(&[n], |_, i| {
        let x = load(0, i[0].clone());
        vec![
            Stmt::Assign { var: mx, value: select(cmp(CmpOp::Gt, x.clone(), v(mx)), x.clone(), v(mx)) },
            Stmt::Assign { var: mn, value: select(cmp(CmpOp::Lt, x.clone(), v(mn)), x, v(mn)) },
        ]
    });
    k.body.extend(body);
    let range = select(cmp(CmpOp::Eq, v(mx), v(mn)), fc(1.0, f), bin(BinOp::Sub, v(mx), v(mn)));
    k.body.push(Stmt::Let { var: scale, value: bin(BinOp::Div, range, fc(255.0, f)) });
    let init = bin(BinOp::Sub, fc(0.0, f), bin(BinOp::Div, v(mn), v(scale)));
    let clamp = |e: Expr| bin(BinOp::Min, bin(BinOp::Max, e, fc(0.0, f)), fc(255.0, f));
    k.body.push(Stmt::Let { var: zp, value: un(UnOp::Round, clamp(init)) });
    let body = k.nest(&[n], |_, i| {
        let q = bin(BinOp::Add, un(UnOp::Round, bin(BinOp::Div, load(0, i[0].clone()), v(scale))), v(zp));
        let r = select(un(UnOp::IsNan, q.clone()), v(zp), clamp(q));
        vec![Stmt::Store { buf: y, index: i[0].clone(), value: cast(Ty::U8, r) }]
    });
    k.body.extend(body);
    k.body.push(Stmt::Store { buf: ys, index: idx(0), value: v(scale) });
    k.body.push(Stmt::Store { buf: yz, index: idx(0), value: cast(Ty::U8, v(zp)) });
    Ok(Lowered::Calls(vec![(k, binds)]))
}
