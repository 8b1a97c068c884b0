//! Normalizations. Each is "split the input into `outer` groups of `inner` contiguous elements,
//! take mean and variance (or mean square) per group, then scale and shift", differing only in
//! the grouping and in how the scale/bias element is found for a position.

use super::{io_kernel, norm_axis, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::OpKind;

pub(super) fn lower(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    use OpKind as K;
    let x = cx.shape(0);
    let eps = cx.float("epsilon", 1e-5);
    Ok(Some(match cx.kind {
        K::LayerNorm | K::RmsNorm => {
            let axis = norm_axis(cx.int("axis", -1), x.len())?;
            let outer: usize = x[..axis].iter().product();
            let inner: usize = x[axis..].iter().product();
            let sshape = cx.shape(1);
            let bshape = if cx.has(2) && cx.kind == K::LayerNorm { Some(cx.shape(2)) } else { None };
            let tail = x[axis..].to_vec();
            let rms = cx.kind == K::RmsNorm;
            groups(cx, outer, inner, eps, rms, &move |_o, i| {
                // Scale and bias broadcast against the normalized dims.
                let ix = unravel(i, &tail);
                let s = linear(&ix, &broadcast_strides(&sshape, &tail));
                let b = bshape.as_ref().map(|bs| linear(&ix, &broadcast_strides(bs, &tail)));
                (Some(s), b)
            })?
        }
        K::InstanceNorm => {
            let c = x[1];
            let inner: usize = x[2..].iter().product();
            groups(cx, x[0] * c, inner, eps, false, &move |o, _i| {
                let ch = rem(o, idx(c as i64));
                (Some(ch.clone()), Some(ch))
            })?
        }
        K::GroupNorm => {
            let g = cx.int("num_groups", 1) as usize;
            let c = x[1];
            let spatial: usize = x[2..].iter().product();
            let inner = c / g * spatial;
            groups(cx, x[0] * g, inner, eps, false, &move |o, i| {
                let ch = add(mul(rem(o, idx(g as i64)), idx((c / g) as i64)), div(i, idx(spatial as i64)));
                (Some(ch.clone()), Some(ch))
            })?
        }
        K::BatchNorm if cx.int("training_mode", 0) == 0 => batch_norm(cx, eps)?,
        _ => return Ok(None),
    }))
}

/// Multi-index of a flat index `i` over `shape`.
fn unravel(i: Expr, shape: &[usize]) -> Vec<Expr> {
    let st = strides(shape);
    (0..shape.len())
        .map(|d| {
            let q = div(i.clone(), idx(st[d] as i64));
            if d == 0 {
                q
            } else {
                rem(q, idx(shape[d] as i64))
            }
        })
        .collect()
}

type ParamIndex<'a> = dyn Fn(Expr, Expr) -> (Option<Expr>, Option<Expr>) + 'a;

/// y = (x - mean) / sqrt(var + eps) * scale[s(o, i)] + bias[b(o, i)] per group `o` of `inner`
/// elements; `rms` skips the mean. Operand 1 is the scale, operand 2 the bias. Extra results
/// (LayerNorm's Mean and InvStdDev) are written when present.
fn groups(
    cx: &mut OpCx,
    outer: usize,
    inner: usize,
    eps: f64,
    rms: bool,
    pidx: &ParamIndex,
) -> Result<Lowered, OpError> {
    let ty = cx.ty(0)?;
    let ct = if matches!(ty, Ty::F16 | Ty::BF16) { Ty::F32 } else { ty };
    let pty = cx.ty(1)?;
    let n_in = cx.operands.len();
    let n_res = cx.results.len();
    let has_b = cx.has(2);
    let (mut k, binds) = io_kernel(cx, cx.kind.name().trim_start_matches("nn."))?;
    let (mean, var) = (k.var(ct), k.var(ct));
    let widen = |e: Expr, t: Ty| if t != ct { cast(ct, e) } else { e };
    let body = k.nest(&[outer], |k, o| {
        let o = o[0].clone();
        let base = mul(o.clone(), idx(inner as i64));
        let x = |i: &Expr| widen(load(0, add(base.clone(), i.clone())), ty);
        let mut s =
            vec![Stmt::Let { var: mean, value: fc(0.0, ct) }, Stmt::Let { var: var, value: fc(0.0, ct) }];
        if !rms {
            s.extend(k.nest(&[inner], |_, i| {
                vec![Stmt::Assign { var: mean, value: bin(BinOp::Add, Expr::Var(mean), x(&i[0])) }]
            }));
            s.push(Stmt::Assign { var: mean, value: bin(BinOp::Div, Expr::Var(mean), fc(inner as f64, ct)) });
        }
        s.extend(k.nest(&[inner], |_, i| {
            let d = bin(BinOp::Sub, x(&i[0]), Expr::Var(mean));
            vec![Stmt::Assign {
                var: var,
                value: bin(BinOp::Add, Expr::Var(var), bin(BinOp::Mul, d.clone(), d)),
            }]
        }));
        // var becomes 1/sqrt(var/n + eps).
        let inv = bin(
            BinOp::Div,
            fc(1.0, ct),
            un(
                UnOp::Sqrt,
                bin(BinOp::Add, bin(BinOp::Div, Expr::Var(var), fc(inner as f64, ct)), fc(eps, ct)),
            ),
        );
        s.push(Stmt::Assign { var: var, value: inv });
        let o2 = o.clone();
        s.extend(k.nest(&[inner], |_, i| {
            let i = i[0].clone();
            let (si, bi) = pidx(o2.clone(), i.clone());
            let mut v = bin(BinOp::Mul, bin(BinOp::Sub, x(&i), Expr::Var(mean)), Expr::Var(var));
            if let Some(si) = si {
                v = bin(BinOp::Mul, v, widen(load(1, si), pty));
            }
            if let (Some(bi), true) = (bi, has_b) {
                v = bin(BinOp::Add, v, widen(load(2, bi), pty));
            }
            let v = if ct != ty { cast(ty, v) } else { v };
            vec![Stmt::Store { buf: n_in, index: add(base.clone(), i), value: v }]
        }));
        for (r, var_) in [(1usize, mean), (2, var)] {
            if r < n_res {
                s.push(Stmt::Store { buf: n_in + r, index: o.clone(), value: Expr::Var(var_) });
            }
        }
        s
    });
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn batch_norm(cx: &mut OpCx, eps: f64) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let ty = cx.ty(0)?;
    let ct = if matches!(ty, Ty::F16 | Ty::BF16) { Ty::F32 } else { ty };
    let pty = cx.ty(1)?;
    let (mut k, binds) = io_kernel(cx, "batch_norm")?;
    let c = x[1];
    let widen = |e: Expr, t: Ty| if t != ct { cast(ct, e) } else { e };
    let body = k.nest(&x, |_, ix| {
        let ch = ix[1].clone();
        let p = |b: usize| widen(load(b, ch.clone()), pty);
        let inv = bin(BinOp::Div, fc(1.0, ct), un(UnOp::Sqrt, bin(BinOp::Add, p(4), fc(eps, ct))));
        let lin = linear(ix, &strides(&x));
        let v = bin(BinOp::Sub, widen(load(0, lin.clone()), ty), p(3));
        let v = bin(BinOp::Add, bin(BinOp::Mul, bin(BinOp::Mul, v, inv), p(1)), p(2));
        let v = if ct != ty { cast(ty, v) } else { v };
        vec![Stmt::Store { buf: 5, index: lin, value: v }]
    });
    let _ = c;
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}
