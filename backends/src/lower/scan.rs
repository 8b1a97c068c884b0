//! Ops over the 1-D lanes along one axis: running sums and products, hardmax, Lp normalization
//! and top-k. A lane is `outer × n × inner`: element `(o, j, i)` is at `(o·n + j)·inner + i`.

use super::{io_kernel, norm_axis, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::OpKind;

pub(super) fn lower(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    use OpKind as K;
    Ok(Some(match cx.kind {
        K::CumSum | K::CumProd => cum(cx)?,
        K::Hardmax => hardmax(cx)?,
        K::LpNorm => lp_norm(cx)?,
        K::TopK => top_k(cx)?,
        _ => return Ok(None),
    }))
}

/// (outer, n, inner) of the lanes along `axis`.
fn lanes(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (shape[..axis].iter().product(), shape[axis], shape[axis + 1..].iter().product())
}

fn at(o: &Expr, j: Expr, i: &Expr, n: usize, inner: usize) -> Expr {
    add(mul(add(mul(o.clone(), idx(n as i64)), j), idx(inner as i64)), i.clone())
}

/// Narrows a value computed in f64 to the float type `ty` (half types through f32).
fn narrow_f64(e: Expr, ty: Ty) -> Expr {
    match ty {
        Ty::F64 => e,
        Ty::F32 => cast(Ty::F32, e),
        t => cast(t, cast(Ty::F32, e)),
    }
}

fn cum(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let ty = cx.ty(0)?;
    let prod = cx.kind == OpKind::CumProd;
    let exclusive = cx.int("exclusive", 0) != 0;
    let reverse = cx.int("reverse", 0) != 0;
    let (mut k, binds) = io_kernel(cx, if prod { "cumprod" } else { "cumsum" })?;
    // Floats accumulate in f64 (as the reference); integers wrap in their own type.
    let ct = if ty.is_float() { Ty::F64 } else { ty };
    let acc = k.var(ct);
    let nv = k.var(ct);
    let rank = x.len();
    if rank == 0 {
        let v = if exclusive { cnst(if prod { 1.0 } else { 0.0 }, ty) } else { load(0, idx(0)) };
        k.body.push(Stmt::Store { buf: 2, index: idx(0), value: v });
        return Ok(Lowered::Calls(vec![(k, binds)]));
    }
    let per_axis = |k: &mut Kernel, axis: usize| {
        let (outer, n, inner) = lanes(&x, axis);
        k.nest(&[outer, inner], |k, oi| {
            let mut s = vec![Stmt::Let { var: acc, value: cnst(if prod { 1.0 } else { 0.0 }, ct) }];
            s.extend(k.nest(&[n], |_, j| {
                let p = if reverse { sub(idx(n as i64 - 1), j[0].clone()) } else { j[0].clone() };
                let a = at(&oi[0], p, &oi[1], n, inner);
                let xv = if ct != ty { cast(ct, load(0, a.clone())) } else { load(0, a.clone()) };
                let next = bin(if prod { BinOp::Mul } else { BinOp::Add }, Expr::Var(acc), xv);
                let out = if exclusive { Expr::Var(acc) } else { Expr::Var(nv) };
                let out = if ct != ty { narrow_f64(out, ty) } else { out };
                vec![
                    Stmt::Let { var: nv, value: next },
                    Stmt::Store { buf: 2, index: a, value: out },
                    Stmt::Assign { var: acc, value: Expr::Var(nv) },
                ]
            }));
            s
        })
    };
    match cx.konst(1).and_then(|t| t.to_i64_vec()) {
        Some(a) => {
            let axis = norm_axis(*a.first().ok_or("cum axis must be a scalar")?, rank)?;
            k.body = per_axis(&mut k, axis);
        }
        None => {
            // A run-time axis: one loop nest per possible axis.
            let av = cast(Ty::Idx, load(1, idx(0)));
            for axis in 0..rank {
                let body = per_axis(&mut k, axis);
                let cond = bin(
                    BinOp::Or,
                    cmp(CmpOp::Eq, av.clone(), idx(axis as i64)),
                    cmp(CmpOp::Eq, av.clone(), idx(axis as i64 - rank as i64)),
                );
                k.body.push(Stmt::If { cond, then: body, els: vec![] });
            }
        }
    }
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn hardmax(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let ty = cx.ty(0)?;
    let axis = norm_axis(cx.int("axis", -1), x.len())?;
    let (outer, n, inner) = lanes(&x, axis);
    let (mut k, binds) = io_kernel(cx, "hardmax")?;
    let (best, bv) = (k.var(Ty::Idx), k.var(ty));
    k.body = k.nest(&[outer, inner], |k, oi| {
        let ld = |j: Expr| load(0, at(&oi[0], j, &oi[1], n, inner));
        let mut s = vec![Stmt::Let { var: best, value: idx(0) }, Stmt::Let { var: bv, value: ld(idx(0)) }];
        s.extend(k.nest(&[n], |_, j| {
            vec![Stmt::If {
                cond: cmp(CmpOp::Gt, ld(j[0].clone()), Expr::Var(bv)),
                then: vec![
                    Stmt::Assign { var: best, value: j[0].clone() },
                    Stmt::Assign { var: bv, value: ld(j[0].clone()) },
                ],
                els: vec![],
            }]
        }));
        s.extend(k.nest(&[n], |_, j| {
            let v = select(cmp(CmpOp::Eq, j[0].clone(), Expr::Var(best)), cnst(1.0, ty), cnst(0.0, ty));
            vec![Stmt::Store { buf: 1, index: at(&oi[0], j[0].clone(), &oi[1], n, inner), value: v }]
        }));
        s
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn lp_norm(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let ty = cx.ty(0)?;
    let axis = norm_axis(cx.int("axis", -1), x.len())?;
    let p = cx.int("p", 2);
    if !(p == 1 || p == 2) {
        return Err(format!("p must be 1 or 2, found {p}").into());
    }
    let (outer, n, inner) = lanes(&x, axis);
    let (mut k, binds) = io_kernel(cx, "lp_norm")?;
    let ct = Ty::F64;
    let norm = k.var(ct);
    k.body = k.nest(&[outer, inner], |k, oi| {
        let ld = |j: Expr| cast(ct, load(0, at(&oi[0], j, &oi[1], n, inner)));
        let mut s = vec![Stmt::Let { var: norm, value: fc(0.0, ct) }];
        s.extend(k.nest(&[n], |_, j| {
            let v = ld(j[0].clone());
            let t = if p == 1 { un(UnOp::Abs, v) } else { bin(BinOp::Mul, v.clone(), v) };
            vec![Stmt::Assign { var: norm, value: bin(BinOp::Add, Expr::Var(norm), t) }]
        }));
        if p == 2 {
            s.push(Stmt::Assign { var: norm, value: un(UnOp::Sqrt, Expr::Var(norm)) });
        }
        s.extend(k.nest(&[n], |_, j| {
            let v = select(
                cmp(CmpOp::Eq, Expr::Var(norm), fc(0.0, ct)),
                fc(0.0, ct),
                bin(BinOp::Div, ld(j[0].clone()), Expr::Var(norm)),
            );
            vec![Stmt::Store {
                buf: 1,
                index: at(&oi[0], j[0].clone(), &oi[1], n, inner),
                value: narrow_f64(v, ty),
            }]
        }));
        s
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// Top-k by rank counting: an element's rank is the number of elements ordered before it
/// (greater — NaN above every number — or equal with a lower index, for `largest`); ranks
/// below k are written to their position. O(n²) per lane, exact and stable.
fn top_k(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let ty = cx.ty(0)?;
    let axis = norm_axis(cx.int("axis", -1), x.len())?;
    let largest = cx.int("largest", 1) != 0;
    let kk = cx.rshape(0)[axis];
    let (outer, n, inner) = lanes(&x, axis);
    let (mut k, binds) = io_kernel(cx, "top_k")?;
    let (vo, io) = (2, 3);
    let rank = k.var(Ty::Idx);
    let float = ty.is_float();
    // a > b in the total order (NaN largest).
    let gt = move |a: Expr, b: Expr| {
        let g = cmp(CmpOp::Gt, a.clone(), b.clone());
        if float {
            bin(BinOp::Or, g, bin(BinOp::And, un(UnOp::IsNan, a), un(UnOp::Not, un(UnOp::IsNan, b))))
        } else {
            g
        }
    };
    let eq = move |a: Expr, b: Expr| {
        let e = cmp(CmpOp::Eq, a.clone(), b.clone());
        if float {
            bin(BinOp::Or, e, bin(BinOp::And, un(UnOp::IsNan, a), un(UnOp::IsNan, b)))
        } else {
            e
        }
    };
    k.body = k.nest(&[outer, inner], |k, oi| {
        let ld = |j: Expr| load(0, at(&oi[0], j, &oi[1], n, inner));
        k.nest(&[n], |k, iv| {
            let i = iv[0].clone();
            let mut s = vec![Stmt::Let { var: rank, value: idx(0) }];
            s.extend(k.nest(&[n], |_, jv| {
                let j = jv[0].clone();
                let (a, b) = (ld(j.clone()), ld(i.clone()));
                let better = if largest { gt(a.clone(), b.clone()) } else { gt(b.clone(), a.clone()) };
                let before = bin(BinOp::Or, better, bin(BinOp::And, eq(a, b), cmp(CmpOp::Lt, j, i.clone())));
                vec![Stmt::Assign { var: rank, value: add(Expr::Var(rank), select(before, idx(1), idx(0))) }]
            }));
            let dst = at(&oi[0], Expr::Var(rank), &oi[1], kk, inner);
            s.push(Stmt::If {
                cond: cmp(CmpOp::Lt, Expr::Var(rank), idx(kk as i64)),
                then: vec![
                    Stmt::Store { buf: vo, index: dst.clone(), value: ld(i.clone()) },
                    Stmt::Store { buf: io, index: dst, value: cast(Ty::I64, i) },
                ],
                els: vec![],
            });
            s
        })
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}
