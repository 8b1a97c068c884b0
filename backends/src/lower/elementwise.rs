//! Elementwise ops: one loop nest over the result shape, operands read through broadcast strides,
//! the op's scalar formula in the body. Half-precision inputs compute in f32 and round once, as the
//! reference does.

use super::{io_kernel, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::OpKind;

pub(super) fn lower(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let out_shape = cx.rshape(0);
    let (mut k, binds) = io_kernel(cx, cx.kind.name().trim_start_matches("math."))?;
    let n_in = cx.operands.len();
    let out_buf = n_in;
    let out_ty = cx.rty(0)?;
    let in_tys: Vec<Ty> = (0..n_in).map(|i| cx.ty(i)).collect::<Result<_, _>>()?;
    // Scalar constants become immediates, so the loop body is a pure function of one load.
    let consts: Vec<Option<f64>> =
        (0..n_in).map(|i| cx.konst(i).filter(|t| t.len() == 1).map(|t| t.to_f64_vec()[0])).collect();
    let shapes: Vec<Vec<usize>> = (0..n_in).map(|i| cx.shape(i)).collect();
    // Only Clip has optional operands; elsewhere a zero-element operand is real (and unread).
    let present: Vec<bool> = (0..n_in).map(|i| cx.kind != OpKind::Clip || cx.has(i)).collect();
    let kind = cx.kind;
    let attrs = cx.attrs.clone();
    let body = k.nest(&out_shape, |k, ix| {
        let args: Vec<Option<Expr>> = (0..n_in)
            .map(|i| {
                if !present[i] {
                    return None;
                }
                Some(match consts[i] {
                    Some(c) => cnst(c, in_tys[i]),
                    None => load(i, linear(ix, &broadcast_strides(&shapes[i], &out_shape))),
                })
            })
            .collect();
        let v = scalar(kind, &attrs, args, &in_tys, out_ty, k);
        vec![Stmt::Store { buf: out_buf, index: linear(ix, &strides(&out_shape)), value: v }]
    });
    k.body = body;
    // An operand read at the output's own index, with the output's type, may be overwritten.
    for i in 0..n_in {
        if present[i] && consts[i].is_none() && shapes[i] == out_shape && in_tys[i] == out_ty {
            k.inplace.push((i, out_buf));
        }
    }
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// The compute type for storage type `t`: half types compute in f32.
fn compute(t: Ty) -> Ty {
    if matches!(t, Ty::F16 | Ty::BF16) {
        Ty::F32
    } else {
        t
    }
}

fn widen(e: Expr, t: Ty) -> Expr {
    if compute(t) != t {
        cast(compute(t), e)
    } else {
        e
    }
}

/// The scalar formula of an elementwise op over already-loaded operands.
pub(super) fn scalar(
    kind: OpKind,
    attrs: &edgec_ir::Attrs,
    args: Vec<Option<Expr>>,
    in_tys: &[Ty],
    out_ty: Ty,
    k: &Kernel,
) -> Expr {
    use OpKind as K;
    let t0 = in_tys[0];
    let ct = compute(t0);
    let a: Vec<Expr> = args
        .iter()
        .zip(in_tys)
        .map(|(e, &t)| e.clone().map(|e| widen(e, t)).unwrap_or(fc(0.0, ct)))
        .collect();
    let x = || a[0].clone();
    let y = || a[1].clone();
    let f = |name: &str, d: f64| attrs.float(name).unwrap_or(d);
    let c = |v: f64| cnst(v, ct);
    let zero = || c(0.0);
    let one = || c(1.0);
    let sel = |cond: Expr, a: Expr, b: Expr| select(cond, a, b);
    let is_f = ct.is_float();
    let r = match kind {
        K::Add | K::Sum => a.iter().cloned().reduce(|p, q| bin(BinOp::Add, p, q)).unwrap(),
        K::Sub => bin(BinOp::Sub, x(), y()),
        K::Mul => bin(BinOp::Mul, x(), y()),
        K::Div => {
            if is_f {
                bin(BinOp::Div, x(), y())
            } else {
                // Integer division by zero is undefined in ONNX; the generated code must not trap.
                let d = sel(cmp(CmpOp::Eq, y(), zero()), one(), y());
                bin(BinOp::Div, x(), d)
            }
        }
        K::Mean => {
            let s = a.iter().cloned().reduce(|p, q| bin(BinOp::Add, p, q)).unwrap();
            bin(BinOp::Div, s, c(a.len() as f64))
        }
        K::Min => a.iter().cloned().reduce(|p, q| bin(BinOp::Min, p, q)).unwrap(),
        K::Max => a.iter().cloned().reduce(|p, q| bin(BinOp::Max, p, q)).unwrap(),
        K::Pow => {
            let e = if in_tys[1] == t0 { y() } else { cast(ct, args[1].clone().unwrap()) };
            if is_f {
                Expr::Math(MathFn::Pow, vec![x(), e])
            } else {
                // Integer power by repeated squaring would need a loop; compute in f64.
                cast(ct, Expr::Math(MathFn::Pow, vec![cast(Ty::F64, x()), cast(Ty::F64, e)]))
            }
        }
        K::Mod => {
            let fmod = attrs.int("fmod").unwrap_or(0) != 0;
            let d = if is_f { y() } else { sel(cmp(CmpOp::Eq, y(), zero()), one(), y()) };
            let r = bin(BinOp::Rem, x(), d);
            if fmod || (!is_f && !ct.is_signed()) {
                r
            } else {
                // Python semantics: the result takes the divisor's sign.
                let fix = bin(
                    BinOp::And,
                    cmp(CmpOp::Ne, r.clone(), zero()),
                    cmp(CmpOp::Ne, cmp(CmpOp::Lt, r.clone(), zero()), cmp(CmpOp::Lt, y(), zero())),
                );
                sel(fix, bin(BinOp::Add, r.clone(), y()), r)
            }
        }
        K::BitShift => {
            let left = attrs.str("direction") == Some("LEFT");
            bin(if left { BinOp::Shl } else { BinOp::Shr }, x(), y())
        }
        K::Equal => cmp(CmpOp::Eq, x(), y()),
        K::Less => cmp(CmpOp::Lt, x(), y()),
        K::LessOrEqual => cmp(CmpOp::Le, x(), y()),
        K::Greater => cmp(CmpOp::Gt, x(), y()),
        K::GreaterOrEqual => cmp(CmpOp::Ge, x(), y()),
        K::And => bin(BinOp::And, x(), y()),
        K::Or => bin(BinOp::Or, x(), y()),
        K::Xor => bin(BinOp::Xor, x(), y()),
        K::BitwiseAnd => bin(BinOp::And, x(), y()),
        K::BitwiseOr => bin(BinOp::Or, x(), y()),
        K::BitwiseXor => bin(BinOp::Xor, x(), y()),
        K::Not | K::BitwiseNot => un(UnOp::Not, x()),
        K::Where => sel(args[0].clone().unwrap(), a[1].clone(), a[2].clone()),
        K::Sqrt => un(UnOp::Sqrt, x()),
        K::Reciprocal => bin(BinOp::Div, one(), x()),
        K::Neg => un(UnOp::Neg, x()),
        K::Abs => un(UnOp::Abs, x()),
        K::Exp => math(MathFn::Exp, x()),
        K::Log => math(MathFn::Log, x()),
        K::Erf => math(MathFn::Erf, x()),
        K::Tanh => math(MathFn::Tanh, x()),
        K::Sigmoid => math(MathFn::Sigmoid, x()),
        K::Sin => math(MathFn::Sin, x()),
        K::Cos => math(MathFn::Cos, x()),
        K::Tan => math(MathFn::Tan, x()),
        K::Asin => math(MathFn::Asin, x()),
        K::Acos => math(MathFn::Acos, x()),
        K::Atan => math(MathFn::Atan, x()),
        K::Sinh => math(MathFn::Sinh, x()),
        K::Cosh => math(MathFn::Cosh, x()),
        K::Asinh => math(MathFn::Asinh, x()),
        K::Acosh => math(MathFn::Acosh, x()),
        K::Atanh => math(MathFn::Atanh, x()),
        K::Relu => {
            if is_f {
                // max(x, 0) but NaN stays NaN.
                sel(cmp(CmpOp::Lt, x(), zero()), zero(), x())
            } else {
                bin(BinOp::Max, x(), zero())
            }
        }
        K::LeakyRelu => sel(cmp(CmpOp::Lt, x(), zero()), bin(BinOp::Mul, x(), c(f("alpha", 0.01))), x()),
        K::PRelu => sel(cmp(CmpOp::Lt, x(), zero()), bin(BinOp::Mul, x(), y()), x()),
        K::Elu => {
            let al = c(f("alpha", 1.0));
            sel(cmp(CmpOp::Lt, x(), zero()), bin(BinOp::Mul, al, math(MathFn::Expm1, x())), x())
        }
        K::Celu => {
            let al = f("alpha", 1.0);
            let neg = bin(BinOp::Mul, c(al), math(MathFn::Expm1, bin(BinOp::Div, x(), c(al))));
            bin(BinOp::Add, bin(BinOp::Max, zero(), x()), bin(BinOp::Min, zero(), neg))
        }
        K::Selu => {
            let al = f("alpha", 1.673_263_192_176_818_8);
            let ga = f("gamma", 1.050_701_022_148_132_3);
            let neg = bin(BinOp::Mul, c(al), math(MathFn::Expm1, x()));
            bin(BinOp::Mul, c(ga), sel(cmp(CmpOp::Le, x(), zero()), neg, x()))
        }
        K::Gelu => {
            if attrs.str("approximate") == Some("tanh") {
                let k0 = (2.0 / std::f64::consts::PI).sqrt();
                let x3 = bin(BinOp::Mul, bin(BinOp::Mul, x(), x()), x());
                let inner = bin(BinOp::Mul, c(k0), bin(BinOp::Add, x(), bin(BinOp::Mul, c(0.044715), x3)));
                bin(
                    BinOp::Mul,
                    bin(BinOp::Mul, c(0.5), x()),
                    bin(BinOp::Add, one(), math(MathFn::Tanh, inner)),
                )
            } else {
                let e = math(MathFn::Erf, bin(BinOp::Mul, x(), c(std::f64::consts::FRAC_1_SQRT_2)));
                bin(BinOp::Mul, bin(BinOp::Mul, c(0.5), x()), bin(BinOp::Add, one(), e))
            }
        }
        K::HardSigmoid => {
            let v = bin(BinOp::Add, bin(BinOp::Mul, c(f("alpha", 0.2)), x()), c(f("beta", 0.5)));
            bin(BinOp::Max, zero(), bin(BinOp::Min, one(), v))
        }
        K::HardSwish => {
            let v = bin(BinOp::Add, bin(BinOp::Mul, c(1.0 / 6.0), x()), c(0.5));
            bin(BinOp::Mul, x(), bin(BinOp::Max, zero(), bin(BinOp::Min, one(), v)))
        }
        K::Softplus => softplus(x(), ct),
        K::Mish => bin(BinOp::Mul, x(), math(MathFn::Tanh, softplus(x(), ct))),
        K::Softsign => bin(BinOp::Div, x(), bin(BinOp::Add, one(), un(UnOp::Abs, x()))),
        K::ThresholdedRelu => sel(cmp(CmpOp::Gt, x(), c(f("alpha", 1.0))), x(), zero()),
        K::Swish => bin(BinOp::Mul, x(), math(MathFn::Sigmoid, bin(BinOp::Mul, c(f("alpha", 1.0)), x()))),
        K::Shrink => {
            let (bias, l) = (f("bias", 0.0), f("lambd", 0.5));
            sel(
                cmp(CmpOp::Lt, x(), c(-l)),
                bin(BinOp::Add, x(), c(bias)),
                sel(cmp(CmpOp::Gt, x(), c(l)), bin(BinOp::Sub, x(), c(bias)), zero()),
            )
        }
        K::Floor => un(UnOp::Floor, x()),
        K::Ceil => un(UnOp::Ceil, x()),
        K::Round => un(UnOp::Round, x()),
        K::Sign => {
            if is_f || ct.is_signed() {
                sel(cmp(CmpOp::Gt, x(), zero()), one(), sel(cmp(CmpOp::Lt, x(), zero()), c(-1.0), zero()))
            } else {
                sel(cmp(CmpOp::Gt, x(), zero()), one(), zero())
            }
        }
        K::IsNaN => un(UnOp::IsNan, x()),
        K::IsInf => {
            let (p, n) = (
                attrs.int("detect_positive").unwrap_or(1) != 0,
                attrs.int("detect_negative").unwrap_or(1) != 0,
            );
            match (p, n) {
                (true, true) => un(UnOp::IsInf, x()),
                (true, false) => un(UnOp::IsPosInf, x()),
                (false, true) => un(UnOp::IsNegInf, x()),
                (false, false) => Expr::IConst(0, Ty::Bool),
            }
        }
        K::Clip => {
            let mut v = x();
            if let Some(lo) = &args.get(1).cloned().flatten() {
                v = bin(BinOp::Max, v, widen(lo.clone(), in_tys[1]));
            }
            if let Some(hi) = &args.get(2).cloned().flatten() {
                v = bin(BinOp::Min, v, widen(hi.clone(), in_tys[2]));
            }
            v
        }
        K::Cast => return cast(out_ty, args[0].clone().unwrap()),
        other => unreachable!("{} is not an elementwise op the backend knows", other.name()),
    };
    let rt = k.ty(&r);
    if rt != out_ty {
        cast(out_ty, r)
    } else {
        r
    }
}

/// log(1 + e^x), without overflow for large x.
fn softplus(x: Expr, t: Ty) -> Expr {
    let c = |v: f64| cnst(v, t);
    let big = cmp(CmpOp::Gt, x.clone(), c(20.0));
    let small = math(MathFn::Log1p, math(MathFn::Exp, x.clone()));
    select(big, x, small)
}
