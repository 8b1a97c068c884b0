//! Reductions, softmax, arg-max/min and global pooling: loops over the kept dims outside, the
//! reduced dims inside, with an accumulator local. Half types accumulate in f32.

use super::{io_kernel, norm_axis, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::OpKind;

pub(super) fn lower(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    use OpKind as K;
    Ok(Some(match cx.kind {
        K::ReduceMean
        | K::ReduceSum
        | K::ReduceMax
        | K::ReduceMin
        | K::ReduceProd
        | K::ReduceL1
        | K::ReduceL2
        | K::ReduceSumSquare
        | K::ReduceLogSum
        | K::ReduceLogSumExp => {
            let x = cx.shape(0);
            let axes: Vec<usize> = if cx.has(1) {
                cx.const_ints(1)?.iter().map(|&a| norm_axis(a, x.len())).collect::<Result<_, _>>()?
            } else {
                vec![]
            };
            let axes = if axes.is_empty() {
                if cx.int("noop_with_empty_axes", 0) != 0 {
                    vec![]
                } else {
                    (0..x.len()).collect()
                }
            } else {
                axes
            };
            reduce(cx, &axes)?
        }
        K::GlobalAveragePool | K::GlobalMaxPool => {
            let r = cx.shape(0).len();
            reduce(cx, &(2..r).collect::<Vec<_>>())?
        }
        K::Softmax | K::LogSoftmax => softmax(cx)?,
        K::ArgMax | K::ArgMin => argext(cx)?,
        _ => return Ok(None),
    }))
}

fn compute(t: Ty) -> Ty {
    if matches!(t, Ty::F16 | Ty::BF16) {
        Ty::F32
    } else {
        t
    }
}

fn reduce(cx: &mut OpCx, axes: &[usize]) -> Result<Lowered, OpError> {
    use OpKind as K;
    let x = cx.shape(0);
    let ty = cx.ty(0)?;
    let ct = compute(ty);
    let kind = cx.kind;
    let (mut k, binds) = io_kernel(cx, kind.name().trim_start_matches("nn."))?;
    let ob = cx.operands.len();
    let kept: Vec<usize> = (0..x.len()).filter(|d| !axes.contains(d)).collect();
    let kshape: Vec<usize> = kept.iter().map(|&d| x[d]).collect();
    let rshape: Vec<usize> = axes.iter().map(|&d| x[d]).collect();
    let count: usize = rshape.iter().product();
    let xs = strides(&x);
    let acc = k.var(ct);
    let mx = k.var(ct);
    let c = |v: f64| cnst(v, ct);
    let init = match kind {
        K::ReduceMax | K::GlobalMaxPool => {
            if ct.is_float() {
                c(f64::NEG_INFINITY)
            } else {
                Expr::IConst(if ct.is_signed() { i64::MIN >> (64 - 8 * ct.bytes()) } else { 0 }, ct)
            }
        }
        K::ReduceMin => {
            if ct.is_float() {
                c(f64::INFINITY)
            } else {
                Expr::IConst(if ct.is_signed() { i64::MAX >> (64 - 8 * ct.bytes()) } else { -1 }, ct)
            }
        }
        K::ReduceProd => c(1.0),
        _ => c(0.0),
    };
    let body = k.nest(&kshape, |k, kx| {
        let src = |rx: &[Expr]| {
            let mut e = idx(0);
            for (i, &d) in kept.iter().enumerate() {
                e = add(e, mul(kx[i].clone(), idx(xs[d] as i64)));
            }
            for (i, &d) in axes.iter().enumerate() {
                e = add(e, mul(rx[i].clone(), idx(xs[d] as i64)));
            }
            let v = load(0, e);
            if ct != ty {
                cast(ct, v)
            } else {
                v
            }
        };
        let mut s = Vec::new();
        if kind == K::ReduceLogSumExp {
            // max first, so exp never overflows.
            s.push(Stmt::Let { var: mx, value: c(f64::NEG_INFINITY) });
            s.extend(k.nest(&rshape, |_, rx| {
                vec![Stmt::Assign { var: mx, value: bin(BinOp::Max, Expr::Var(mx), src(rx)) }]
            }));
        }
        s.push(Stmt::Let { var: acc, value: init.clone() });
        s.extend(k.nest(&rshape, |_, rx| {
            let v = src(rx);
            let a = Expr::Var(acc);
            let upd = match kind {
                K::ReduceMax | K::GlobalMaxPool => bin(BinOp::Max, a, v),
                K::ReduceMin => bin(BinOp::Min, a, v),
                K::ReduceProd => bin(BinOp::Mul, a, v),
                K::ReduceL1 => bin(BinOp::Add, a, un(UnOp::Abs, v)),
                K::ReduceL2 | K::ReduceSumSquare => bin(BinOp::Add, a, bin(BinOp::Mul, v.clone(), v)),
                K::ReduceLogSumExp => {
                    bin(BinOp::Add, a, math(MathFn::Exp, bin(BinOp::Sub, v, Expr::Var(mx))))
                }
                _ => bin(BinOp::Add, a, v),
            };
            vec![Stmt::Assign { var: acc, value: upd }]
        }));
        let a = Expr::Var(acc);
        let mut r = match kind {
            K::ReduceMean | K::GlobalAveragePool => bin(BinOp::Div, a, c(count.max(1) as f64)),
            K::ReduceL2 => un(UnOp::Sqrt, a),
            K::ReduceLogSum => math(MathFn::Log, a),
            K::ReduceLogSumExp => bin(BinOp::Add, math(MathFn::Log, a), Expr::Var(mx)),
            _ => a,
        };
        if ct != ty {
            r = cast(ty, r);
        }
        s.push(Stmt::Store { buf: ob, index: linear(kx, &strides(&kshape)), value: r });
        s
    });
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn softmax(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let axis = norm_axis(cx.int("axis", -1), x.len())?;
    let ty = cx.ty(0)?;
    let ct = compute(ty);
    let log = cx.kind == OpKind::LogSoftmax;
    let (mut k, binds) = io_kernel(cx, if log { "log_softmax" } else { "softmax" })?;
    let outer: usize = x[..axis].iter().product();
    let inner: usize = x[axis + 1..].iter().product();
    let n = x[axis];
    let (mx, sum) = (k.var(ct), k.var(ct));
    let body = k.nest(&[outer, inner], |k, oi| {
        let at = |j: &Expr| {
            add(
                mul(oi[0].clone(), idx((n * inner) as i64)),
                add(mul(j.clone(), idx(inner as i64)), oi[1].clone()),
            )
        };
        let ld = |b: usize, j: &Expr| {
            let v = load(b, at(j));
            if ct != ty {
                cast(ct, v)
            } else {
                v
            }
        };
        let st = |j: &Expr, v: Expr| Stmt::Store {
            buf: 1,
            index: at(j),
            value: if ct != ty { cast(ty, v) } else { v },
        };
        let mut s = vec![
            Stmt::Let { var: mx, value: fc(f64::NEG_INFINITY, ct) },
            Stmt::Let { var: sum, value: fc(0.0, ct) },
        ];
        s.extend(k.nest(&[n], |_, j| {
            vec![Stmt::Assign { var: mx, value: bin(BinOp::Max, Expr::Var(mx), ld(0, &j[0])) }]
        }));
        if log {
            s.extend(k.nest(&[n], |_, j| {
                let e = math(MathFn::Exp, bin(BinOp::Sub, ld(0, &j[0]), Expr::Var(mx)));
                vec![Stmt::Assign { var: sum, value: bin(BinOp::Add, Expr::Var(sum), e) }]
            }));
            s.extend(k.nest(&[n], |_, j| {
                let v = bin(
                    BinOp::Sub,
                    bin(BinOp::Sub, ld(0, &j[0]), Expr::Var(mx)),
                    math(MathFn::Log, Expr::Var(sum)),
                );
                vec![st(&j[0], v)]
            }));
        } else {
            // Half types round `x - max`, the exponential, the sum and the quotient to the storage
            // type, as the reference (and runtimes computing in half precision) do.
            let half = ct != ty;
            let rnd = move |e: Expr| if half { cast(ct, cast(ty, e)) } else { e };
            let ex = move |x: Expr| rnd(math(MathFn::Exp, rnd(bin(BinOp::Sub, x, Expr::Var(mx)))));
            s.extend(k.nest(&[n], |_, j| {
                vec![Stmt::Assign { var: sum, value: bin(BinOp::Add, Expr::Var(sum), ex(ld(0, &j[0]))) }]
            }));
            if half {
                s.push(Stmt::Assign { var: sum, value: rnd(Expr::Var(sum)) });
                s.extend(
                    k.nest(&[n], |_, j| vec![st(&j[0], bin(BinOp::Div, ex(ld(0, &j[0])), Expr::Var(sum)))]),
                );
            } else {
                s.push(Stmt::Assign { var: sum, value: bin(BinOp::Div, fc(1.0, ct), Expr::Var(sum)) });
                s.extend(
                    k.nest(&[n], |_, j| vec![st(&j[0], bin(BinOp::Mul, ex(ld(0, &j[0])), Expr::Var(sum)))]),
                );
            }
        }
        if !log && ct == ty {
            // f32 (or f64): one exponential per element, kept in the output, then scaled.
            let ev = k.var(ct);
            s.truncate(3);
            s.extend(k.nest(&[n], |_, j| {
                vec![
                    Stmt::Let {
                        var: ev,
                        value: math(MathFn::Exp, bin(BinOp::Sub, ld(0, &j[0]), Expr::Var(mx))),
                    },
                    st(&j[0], Expr::Var(ev)),
                    Stmt::Assign { var: sum, value: bin(BinOp::Add, Expr::Var(sum), Expr::Var(ev)) },
                ]
            }));
            s.push(Stmt::Assign { var: sum, value: bin(BinOp::Div, fc(1.0, ct), Expr::Var(sum)) });
            s.extend(
                k.nest(&[n], |_, j| vec![st(&j[0], bin(BinOp::Mul, load(1, at(&j[0])), Expr::Var(sum)))]),
            );
        }
        s
    });
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn argext(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let axis = norm_axis(cx.int("axis", 0), x.len())?;
    let last = cx.int("select_last_index", 0) != 0;
    let is_max = cx.kind == OpKind::ArgMax;
    let ty = cx.ty(0)?;
    let ct = compute(ty);
    let (mut k, binds) = io_kernel(cx, if is_max { "arg_max" } else { "arg_min" })?;
    let outer: usize = x[..axis].iter().product();
    let inner: usize = x[axis + 1..].iter().product();
    let n = x[axis];
    let (best, at) = (k.var(ct), k.var(Ty::Idx));
    let body = k.nest(&[outer, inner], |k, oi| {
        let pos = |j: Expr| {
            add(mul(oi[0].clone(), idx((n * inner) as i64)), add(mul(j, idx(inner as i64)), oi[1].clone()))
        };
        let ld = |j: Expr| {
            let v = load(0, pos(j));
            if ct != ty {
                cast(ct, v)
            } else {
                v
            }
        };
        let mut s = vec![Stmt::Let { var: best, value: ld(idx(0)) }, Stmt::Let { var: at, value: idx(0) }];
        s.extend(k.nest(&[n], |_, j| {
            let v = ld(j[0].clone());
            let op = match (is_max, last) {
                (true, false) => CmpOp::Gt,
                (true, true) => CmpOp::Ge,
                (false, false) => CmpOp::Lt,
                (false, true) => CmpOp::Le,
            };
            vec![Stmt::If {
                cond: cmp(op, v.clone(), Expr::Var(best)),
                then: vec![
                    Stmt::Assign { var: best, value: v },
                    Stmt::Assign { var: at, value: j[0].clone() },
                ],
                els: vec![],
            }]
        }));
        s.push(Stmt::Store { buf: 1, index: linear(oi, &[inner, 1]), value: cast(Ty::I64, Expr::Var(at)) });
        s
    });
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}
