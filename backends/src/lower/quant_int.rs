//! The ONNX integer ops that `fold-quantized` leaves in their ONNX form — `MatMulInteger`,
//! `ConvInteger`, `QLinearMatMul`, `QLinearConv` — with ONNX's numerics (`ir/src/ops/quant.rs`):
//! `(a − a_zp)·(b − b_zp)` summed in wrapping i32 (convolution padding contributes 0), and for
//! the QLinear ops `saturate(round_half_even(acc · M + y_zp))` in f64 with
//! `M = ts(ts(s_a · s_b) / s_y)` rounded in the scales' type `ts`.
//!
//! Scales and zero points are read at run time, so none of them has to be a constant (dynamic
//! quantization's activation zero point never is). Parameters are per tensor, or per row of A /
//! per column of B (matmuls) and per output channel of w (convolutions); other shapes are refused
//! with a message naming the operand.
//!
//! `MatMulInteger` with a constant 2-D B — what `quantize_dynamic` produces for every linear
//! layer — runs on the int8 GEMM when the target has one: `w' = B − b_zp` (which must fit in
//! int8) is packed at compile time, a u8 A is shifted to i8 (`a − 128`, zero point `z − 128`,
//! the same differences), the GEMM stores `Σ a·w'` as i32 ([`QOut::I32`]), and
//! `a_zp · Σ_k w'[k][j]` (column sums computed at compile time, the zero point read at run time)
//! is subtracted — the identical wrapping i32 result. `ConvInteger` with a constant weight does
//! the same per image and group over an im2col of the input ([`gemm_conv_integer`]).
//! Everything else is plain loops.

use super::{bug, io_kernel, Bind, ConstData, Lowered, OpCx, OpError};
use crate::kir::*;
use crate::quant::{QChannel, QOut, QWeights};
use edgec_ir::ops::conv_geometry;
use edgec_ir::{OpKind, Tensor};

pub(super) fn lower(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    Ok(Some(match cx.kind {
        OpKind::MatMulInteger => match gemm_matmul_integer(cx)? {
            Some(l) => l,
            None => matmul(cx)?,
        },
        OpKind::QLinearMatMul => matmul(cx)?,
        OpKind::ConvInteger => match gemm_conv_integer(cx)? {
            Some(l) => l,
            None => conv(cx)?,
        },
        OpKind::QLinearConv => conv(cx)?,
        _ => return Ok(None),
    }))
}

fn i32c(v: i64) -> Expr {
    Expr::IConst(v, Ty::I32)
}

/// The element of a parameter operand for output row `i` / column `j`: per tensor (one
/// element), per row (`rows` elements, indexed by `i`) or per column (`cols`, indexed by `j`).
#[derive(Clone, Copy)]
enum ParamAt {
    Tensor,
    Row,
    Col,
}

fn param_at(
    cx: &OpCx,
    p: usize,
    rows: Option<usize>,
    cols: Option<usize>,
    what: &str,
) -> Result<ParamAt, OpError> {
    let n = cx.operands[p].num_elements().unwrap_or(0) as usize;
    if n == 1 {
        return Ok(ParamAt::Tensor);
    }
    if Some(n) == rows {
        return Ok(ParamAt::Row);
    }
    if Some(n) == cols {
        return Ok(ParamAt::Col);
    }
    Err(format!(
        "{what} has {n} elements: only per-tensor or per-{} parameters are supported",
        if rows.is_some() { "row" } else { "column / output-channel" }
    )
    .into())
}

fn param_load(buf: BufId, at: ParamAt, i: &Expr, j: &Expr) -> Expr {
    match at {
        ParamAt::Tensor => load(buf, idx(0)),
        ParamAt::Row => load(buf, i.clone()),
        ParamAt::Col => load(buf, j.clone()),
    }
}

/// The QLinear requantization of `acc` with run-time scales (`ts`: the scales' type): new
/// statements and the stored value.
///
/// Round half to even is written out with a truncating conversion and compares instead of the
/// `roundeven` intrinsic, which LLVM cannot select for f64 on Cortex-M7 (fpv5-d16): the value
/// is first clamped to `[lo − 1, hi + 1]`, so the i32 conversion is exact and in range.
#[allow(clippy::too_many_arguments)]
fn qlinear_requant(
    k: &mut Kernel,
    acc: Expr,
    sa: Expr,
    sb: Expr,
    sy: Expr,
    zp: Expr,
    ts: Ty,
    out: Ty,
) -> Result<(Vec<Stmt>, Expr), OpError> {
    let (lo, hi) = match out {
        Ty::I8 => (-128i64, 127i64),
        Ty::U8 => (0, 255),
        t => return Err(format!("a QLinear result of type {} is not supported", t.name()).into()),
    };
    let f = Ty::F64;
    let prod = cast(f, cast(ts, bin(BinOp::Mul, cast(f, sa), cast(f, sb))));
    let mult = cast(f, cast(ts, bin(BinOp::Div, prod, cast(f, sy))));
    let (v, t, fl, d) = (k.var(f), k.var(Ty::I32), k.var(Ty::I32), k.var(f));
    let var = Expr::Var;
    let raw = bin(BinOp::Add, bin(BinOp::Mul, cast(f, acc), mult), cast(f, zp.clone()));
    let clamped = bin(BinOp::Min, bin(BinOp::Max, raw, fc((lo - 1) as f64, f)), fc((hi + 1) as f64, f));
    let stmts = vec![
        // NaN (only from NaN scales) gives the zero point, as the interpreter's rounding does.
        Stmt::Let { var: v, value: select(un(UnOp::IsNan, clamped.clone()), cast(f, zp), clamped) },
        Stmt::Let { var: t, value: cast(Ty::I32, var(v)) },
        // floor(v): truncation rounds negative values up.
        Stmt::Let {
            var: fl,
            value: bin(BinOp::Sub, var(t), select(cmp(CmpOp::Lt, var(v), cast(f, var(t))), i32c(1), i32c(0))),
        },
        Stmt::Let { var: d, value: bin(BinOp::Sub, var(v), cast(f, var(fl))) },
    ];
    // Up when the fraction exceeds one half, or equals it and floor(v) is odd.
    let up = select(
        cmp(CmpOp::Gt, var(d), fc(0.5, f)),
        i32c(1),
        select(cmp(CmpOp::Eq, var(d), fc(0.5, f)), bin(BinOp::And, var(fl), i32c(1)), i32c(0)),
    );
    let r = bin(BinOp::Add, var(fl), up);
    Ok((stmts, cast(out, bin(BinOp::Min, bin(BinOp::Max, r, i32c(lo)), i32c(hi)))))
}

/// Numpy-matmul geometry: batch dims of A, B and the output, M, K, N.
struct Mm {
    a_batch: Vec<usize>,
    b_batch: Vec<usize>,
    batch: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
}

fn mm_shape(a: &[usize], b: &[usize], out: &[usize]) -> Result<Mm, OpError> {
    let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    if a2.len() < 2 || b2.len() < 2 {
        return Err("matmul operands must have rank >= 1".into());
    }
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        return Err(format!("reduction dims differ: {k} and {k2}").into());
    }
    let total: usize = out.iter().product();
    let batch_n = total / (m * n).max(1);
    let nb = (a2.len() - 2).max(b2.len() - 2);
    let mut batch = vec![1; nb];
    for d in 0..nb {
        let get = |s: &[usize]| {
            let bs = &s[..s.len() - 2];
            let off = nb - bs.len();
            if d >= off {
                bs[d - off]
            } else {
                1
            }
        };
        batch[d] = get(&a2).max(get(&b2));
    }
    if batch.iter().product::<usize>() != batch_n {
        return Err(bug("matmul batch dims do not match the result"));
    }
    Ok(Mm { a_batch: a2[..a2.len() - 2].to_vec(), b_batch: b2[..b2.len() - 2].to_vec(), batch, m, k, n })
}

/// The linear index into an operand with batch dims `bs` (right-aligned against the output's
/// batch indices, size-1 dims broadcast) followed by `tail`.
fn bcast_index(bs: &[usize], tail_dims: &[usize], bix: &[Expr], tail: &[Expr]) -> Expr {
    let off = bix.len() - bs.len();
    let mut ix: Vec<Expr> =
        bs.iter().enumerate().map(|(i, &d)| if d == 1 { idx(0) } else { bix[off + i].clone() }).collect();
    ix.extend(tail.iter().cloned());
    let mut dims = bs.to_vec();
    dims.extend(tail_dims);
    linear(&ix, &strides(&dims))
}

/// MatMulInteger (operands A, B, a_zp?, b_zp?) and QLinearMatMul (a, a_scale, a_zp, b, b_scale,
/// b_zp, y_scale, y_zp) as loops.
fn matmul(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let qlinear = cx.kind == OpKind::QLinearMatMul;
    let (ai, bi) = if qlinear { (0, 3) } else { (0, 1) };
    let g = mm_shape(&cx.shape(ai), &cx.shape(bi), &cx.rshape(0))?;
    let (m, k, n) = (g.m, g.k, g.n);
    let (azi, bzi) = if qlinear { (2, 5) } else { (2, 3) };
    let a_zp = if cx.has(azi) { Some(param_at(cx, azi, Some(m), None, "a_zero_point")?) } else { None };
    let b_zp = if cx.has(bzi) { Some(param_at(cx, bzi, None, Some(n), "b_zero_point")?) } else { None };
    let scales = if qlinear {
        let sa = param_at(cx, 1, Some(m), None, "a_scale")?;
        let sb = param_at(cx, 4, None, Some(n), "b_scale")?;
        param_at(cx, 6, None, None, "y_scale")?;
        if cx.has(7) {
            param_at(cx, 7, None, None, "y_zero_point")?;
        }
        Some((sa, sb, cx.ty(1)?))
    } else {
        None
    };
    let out = cx.rty(0)?;
    let (mut k_, binds) = io_kernel(cx, if qlinear { "qlinear_matmul" } else { "matmul_integer" })?;
    let yb = cx.operands.len();
    let acc = k_.var(Ty::I32);
    let r = k_.var(Ty::Idx);
    let (a_batch, b_batch) = (g.a_batch.clone(), g.b_batch.clone());
    let has_yzp = qlinear && cx.has(7);
    let mut dims = g.batch.clone();
    dims.extend([m, n]);
    let ystr = strides(&dims);
    let nbatch = g.batch.len();
    let body = k_.try_nest(&dims, |kn, ix| -> Result<Vec<Stmt>, OpError> {
        let (bix, i, j) = (&ix[..nbatch], &ix[nbatch], &ix[nbatch + 1]);
        let kv = Expr::Var(r);
        let mut av = cast(Ty::I32, load(ai, bcast_index(&a_batch, &[m, k], bix, &[i.clone(), kv.clone()])));
        if let Some(at) = a_zp {
            av = bin(BinOp::Sub, av, cast(Ty::I32, param_load(azi, at, i, j)));
        }
        let mut bv = cast(Ty::I32, load(bi, bcast_index(&b_batch, &[k, n], bix, &[kv, j.clone()])));
        if let Some(bt) = b_zp {
            bv = bin(BinOp::Sub, bv, cast(Ty::I32, param_load(bzi, bt, i, j)));
        }
        let mut s = vec![
            Stmt::Let { var: acc, value: i32c(0) },
            Stmt::For {
                var: r,
                extent: k as u64,
                body: vec![Stmt::Assign {
                    var: acc,
                    value: bin(BinOp::Add, Expr::Var(acc), bin(BinOp::Mul, av, bv)),
                }],
            },
        ];
        let value = match scales {
            None => Expr::Var(acc),
            Some((sa, sb, ts)) => {
                let zp = if has_yzp { cast(Ty::I32, load(7, idx(0))) } else { i32c(0) };
                let (st, v) = qlinear_requant(
                    kn,
                    Expr::Var(acc),
                    param_load(1, sa, i, j),
                    param_load(4, sb, i, j),
                    load(6, idx(0)),
                    zp,
                    ts,
                    out,
                )?;
                s.extend(st);
                v
            }
        };
        s.push(Stmt::Store { buf: yb, index: linear(ix, &ystr), value });
        Ok(s)
    })?;
    k_.body = body;
    Ok(Lowered::Calls(vec![(k_, binds)]))
}

/// ConvInteger (x, w, x_zp?, w_zp?) and QLinearConv (x, x_scale, x_zp, w, w_scale, w_zp,
/// y_scale, y_zp, B?) as direct loops over the input positions that exist.
fn conv(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let qlinear = cx.kind == OpKind::QLinearConv;
    let (xi, wi) = if qlinear { (0, 3) } else { (0, 1) };
    let (xs, ws, ys) = (cx.shape(xi), cx.shape(wi), cx.rshape(0));
    if xs.len() < 3 || ws.len() != xs.len() {
        return Err(format!("x and w must have the same rank >= 3, found {xs:?} and {ws:?}").into());
    }
    let mch = ws[0];
    let (xzi, wzi) = if qlinear { (2, 5) } else { (2, 3) };
    let x_zp = cx.has(xzi).then(|| param_at(cx, xzi, None, None, "x_zero_point")).transpose()?;
    let w_zp = cx.has(wzi).then(|| param_at(cx, wzi, None, Some(mch), "w_zero_point")).transpose()?;
    let qparams = if qlinear {
        param_at(cx, 1, None, None, "x_scale")?;
        let sw = param_at(cx, 4, None, Some(mch), "w_scale")?;
        param_at(cx, 6, None, None, "y_scale")?;
        let bias = cx.has(8).then(|| param_at(cx, 8, None, Some(mch), "B")).transpose()?;
        Some((sw, bias, cx.ty(1)?))
    } else {
        None
    };
    let has_yzp = qlinear && cx.has(7);
    let g = conv_geometry(cx.attrs, &ws, &xs[2..])?;
    let group = cx.int("group", 1).max(1) as usize;
    let (cg, mg) = (xs[1] / group, mch / group);
    let out = cx.rty(0)?;
    let (mut k, binds) = io_kernel(cx, if qlinear { "qlinear_conv" } else { "conv_integer" })?;
    let yb = cx.operands.len();
    let acc = k.var(Ty::I32);
    let nd = g.kernel.len();
    let ystr = strides(&ys);
    let body = k.try_nest(&ys, |k, ix| -> Result<Vec<Stmt>, OpError> {
        let ch = ix[1].clone();
        let c = k.var(Ty::Idx);
        let kv: Vec<VarId> = (0..nd).map(|_| k.var(Ty::Idx)).collect();
        let cin = add(mul(div(ch.clone(), idx(mg as i64)), idx(cg as i64)), Expr::Var(c));
        let kvars: Vec<Expr> = kv.iter().map(|&v| Expr::Var(v)).collect();
        let (pos, cond) = super::qint8::conv_positions(&g, &ix[2..], &kvars, &xs[2..]);
        let mut xix = vec![ix[0].clone(), cin];
        xix.extend(pos);
        let mut wix = vec![ch.clone(), Expr::Var(c)];
        wix.extend(kvars.iter().cloned());
        let mut xv = cast(Ty::I32, load(xi, linear(&xix, &strides(&xs))));
        if let Some(at) = x_zp {
            xv = bin(BinOp::Sub, xv, cast(Ty::I32, param_load(xzi, at, &ch, &ch)));
        }
        let mut wv = cast(Ty::I32, load(wi, linear(&wix, &strides(&ws))));
        if let Some(at) = w_zp {
            wv = bin(BinOp::Sub, wv, cast(Ty::I32, param_load(wzi, at, &ch, &ch)));
        }
        let update =
            Stmt::Assign { var: acc, value: bin(BinOp::Add, Expr::Var(acc), bin(BinOp::Mul, wv, xv)) };
        let init = match qparams {
            Some((_, Some(bt), _)) => cast(Ty::I32, param_load(8, bt, &ch, &ch)),
            _ => i32c(0),
        };
        let mut s = vec![Stmt::Let { var: acc, value: init }];
        s.push(super::qint8::window_sum(c, cg, &kv, &g.kernel, cond, update));
        let value = match qparams {
            None => Expr::Var(acc),
            Some((sw, _, ts)) => {
                let zp = if has_yzp { cast(Ty::I32, load(7, idx(0))) } else { i32c(0) };
                let (st, v) = qlinear_requant(
                    k,
                    Expr::Var(acc),
                    load(1, idx(0)),
                    param_load(4, sw, &ch, &ch),
                    load(6, idx(0)),
                    zp,
                    ts,
                    out,
                )?;
                s.extend(st);
                v
            }
        };
        s.push(Stmt::Store { buf: yb, index: linear(ix, &ystr), value });
        Ok(s)
    })?;
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// MatMulInteger with a constant 2-D B on the int8 GEMM (see the module docs); `None` when the
/// target has no int8 GEMM or the operands do not fit it.
fn gemm_matmul_integer(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    let kernels = cx.kernels;
    let Some(q) = kernels.int8_gemm() else { return Ok(None) };
    let (asz, bsz) = (cx.shape(0), cx.shape(1));
    if asz.len() < 2 || bsz.len() != 2 {
        return Ok(None);
    }
    let (kk, n) = (bsz[0], bsz[1]);
    let rows: usize = asz[..asz.len() - 1].iter().product();
    let a_ty = cx.ty(0)?;
    if !matches!(a_ty, Ty::I8 | Ty::U8) || rows * n * kk == 0 {
        return Ok(None);
    }
    // The activation zero point: per tensor (the GEMM's correction is one scalar).
    if cx.has(2) && cx.operands[2].num_elements() != Some(1) {
        return Ok(None);
    }
    let Some(b) = cx.konst(1) else { return Ok(None) };
    let bv = match b {
        Tensor::I8(a) => a.iter().map(|&v| v as i64).collect::<Vec<_>>(),
        Tensor::U8(a) => a.iter().map(|&v| v as i64).collect(),
        _ => return Ok(None),
    };
    let bz: Vec<i64> = if cx.has(3) {
        match cx.konst(3).and_then(|t| t.to_i64_vec()) {
            Some(z) if z.len() == 1 || z.len() == n => z,
            _ => return Ok(None),
        }
    } else {
        vec![0]
    };
    let mut w = Vec::with_capacity(kk * n);
    for (i, &v) in bv.iter().enumerate() {
        let z = if bz.len() == 1 { bz[0] } else { bz[i % n] };
        let c = v - z;
        if !(-128..=127).contains(&c) {
            return Ok(None);
        }
        w.push(c as i8);
    }
    let colsum: Vec<i32> =
        (0..n).map(|j| (0..kk).map(|r| w[r * n + j] as i32).fold(0i32, |s, v| s.wrapping_add(v))).collect();
    let (mut k, mut binds) = io_kernel(cx, "matmul_integer_gemm")?;
    let yb = cx.operands.len();
    let spec = QGemmSpec { out: QOut::I32, ..QGemmSpec::new(rows, n, kk) };
    let packed = q.pack(&spec, false, &w);
    super::qint8::bind_packed(cx, &mut k, &mut binds, 1, &packed);
    let sb: Vec<u8> = colsum.iter().flat_map(|v| v.to_le_bytes()).collect();
    let ts = cx.add_table(ConstData { ty: Ty::I32, bytes: sb.into() });
    binds.push(Bind::Table(ts));
    let cs = k.param(Ty::I32, n as u64, Access::Read);
    // A u8 A is shifted into an i8 copy (the GEMM's activations are signed).
    let a_buf = if a_ty == Ty::U8 {
        binds.push(Bind::Scratch);
        Some(k.param(Ty::I8, (rows * kk) as u64, Access::Scratch))
    } else {
        None
    };
    let qbytes = q.scratch_bytes(&spec, false);
    let scratch = (qbytes > 0).then(|| {
        binds.push(Bind::Scratch);
        k.param(Ty::I32, qbytes.div_ceil(4), Access::Scratch)
    });
    let mut body = Vec::new();
    if let Some(ab) = a_buf {
        body.extend(k.nest(&[rows * kk], |_, ix| {
            let v = bin(BinOp::Sub, cast(Ty::I32, load(0, ix[0].clone())), i32c(128));
            vec![Stmt::Store { buf: ab, index: ix[0].clone(), value: cast(Ty::I8, v) }]
        }));
    }
    body.push(Stmt::QGemm {
        spec,
        a: View { buf: a_buf.unwrap_or(0), offset: idx(0) },
        b: View { buf: 1, offset: idx(0) },
        c: View { buf: yb, offset: idx(0) },
        bias: None,
        // Not read in the int32 mode.
        mult: View { buf: cs, offset: idx(0) },
        shift: View { buf: cs, offset: idx(0) },
        scratch,
    });
    if cx.has(2) {
        let shift = if a_ty == Ty::U8 { 128 } else { 0 };
        let zp = k.var(Ty::I32);
        body.push(Stmt::Let { var: zp, value: bin(BinOp::Sub, cast(Ty::I32, load(2, idx(0))), i32c(shift)) });
        body.extend(k.nest(&[rows, n], |_, ix| {
            let i = linear(ix, &[n, 1]);
            let corr = bin(BinOp::Mul, Expr::Var(zp), load(cs, ix[1].clone()));
            vec![Stmt::Store { buf: yb, index: i.clone(), value: bin(BinOp::Sub, load(yb, i), corr) }]
        }));
    } else if a_ty == Ty::U8 {
        // No zero point: the shifted A's zero point is −128.
        body.extend(k.nest(&[rows, n], |_, ix| {
            let i = linear(ix, &[n, 1]);
            let corr = bin(BinOp::Mul, i32c(128), load(cs, ix[1].clone()));
            vec![Stmt::Store { buf: yb, index: i.clone(), value: bin(BinOp::Add, load(yb, i), corr) }]
        }));
    }
    k.body = body;
    Ok(Some(Lowered::Calls(vec![(k, binds)])))
}

/// ConvInteger with a constant weight on the int8 GEMM, like `q.conv`'s lowering: per image and
/// group, `Y_g[mg × P] = W'_g[mg × cg·K] · col[cg·K × P]` stored as i32 ([`QOut::I32`]) with
/// `w' = w − w_zp` packed at compile time (it must fit in int8). The patches are gathered
/// (im2col) as i8 — a u8 input shifted by −128 — with padding holding the (shifted) run-time
/// input zero point `z`, so that `Σ w'·(col − z) = Σ w'·col − z · Σ w'` over every tap; the
/// second term (row sums of w' computed at compile time) is subtracted afterwards. The result
/// equals ONNX's wrapping i32 sums.
fn gemm_conv_integer(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    let kernels = cx.kernels;
    let Some(q) = kernels.int8_gemm() else { return Ok(None) };
    let (xs, ws) = (cx.shape(0), cx.shape(1));
    let x_ty = cx.ty(0)?;
    if xs.len() < 3 || ws.len() != xs.len() || !matches!(x_ty, Ty::I8 | Ty::U8) {
        return Ok(None);
    }
    if cx.has(2) && cx.operands[2].num_elements() != Some(1) {
        return Ok(None);
    }
    let Some(wt) = cx.konst(1) else { return Ok(None) };
    let raw: Vec<i64> = match wt {
        Tensor::I8(a) => a.iter().map(|&v| v as i64).collect(),
        Tensor::U8(a) => a.iter().map(|&v| v as i64).collect(),
        _ => return Ok(None),
    };
    let mch = ws[0];
    let per_m: usize = ws[1..].iter().product();
    let wz: Vec<i64> = if cx.has(3) {
        match cx.konst(3).and_then(|t| t.to_i64_vec()) {
            Some(z) if z.len() == 1 || z.len() == mch => z,
            _ => return Ok(None),
        }
    } else {
        vec![0]
    };
    let mut w = Vec::with_capacity(raw.len());
    for (i, &v) in raw.iter().enumerate() {
        let c = v - if wz.len() == 1 { wz[0] } else { wz[i / per_m.max(1)] };
        if !(-128..=127).contains(&c) {
            return Ok(None);
        }
        w.push(c as i8);
    }
    let g = conv_geometry(cx.attrs, &ws, &xs[2..])?;
    let group = cx.int("group", 1).max(1) as usize;
    let (nb, c) = (xs[0], xs[1]);
    let (cg, mg) = (c / group, mch / group);
    let kprod: usize = g.kernel.iter().product();
    let oprod: usize = g.out.iter().product();
    let rows = cg * kprod;
    if nb * mch * oprod * rows == 0 {
        return Ok(None);
    }
    let rowsum: Vec<i32> = (0..mch)
        .map(|m| w[m * per_m..(m + 1) * per_m].iter().fold(0i32, |s, &v| s.wrapping_add(v as i32)))
        .collect();
    let spec = QGemmSpec {
        channel: QChannel::PerRow,
        weights: QWeights::A,
        out: QOut::I32,
        ..QGemmSpec::new(mg, oprod, rows)
    };
    let (mut k, mut binds) = io_kernel(cx, "conv_integer_gemm")?;
    let yb = cx.operands.len();
    let mut packed = Vec::new();
    let mut group_len = 0;
    for gi in 0..group {
        let p = q.pack(&spec, false, &w[gi * mg * rows..(gi + 1) * mg * rows]);
        group_len = p.len();
        packed.extend(p);
    }
    super::qint8::bind_packed(cx, &mut k, &mut binds, 1, &packed);
    let sb: Vec<u8> = rowsum.iter().flat_map(|v| v.to_le_bytes()).collect();
    let ts = cx.add_table(ConstData { ty: Ty::I32, bytes: sb.into() });
    binds.push(Bind::Table(ts));
    let rs = k.param(Ty::I32, mch as u64, Access::Read);
    binds.push(Bind::Scratch);
    let colb = k.param(Ty::I8, (rows * oprod) as u64, Access::Scratch);
    let qbytes = q.scratch_bytes(&spec, false);
    let scratch = (qbytes > 0).then(|| {
        binds.push(Bind::Scratch);
        k.param(Ty::I32, qbytes.div_ceil(4), Access::Scratch)
    });
    // The input zero point in the i8 domain (u8 values are shifted by −128).
    let shift = if x_ty == Ty::U8 { 128 } else { 0 };
    let zp = k.var(Ty::I32);
    let zval = if cx.has(2) { cast(Ty::I32, load(2, idx(0))) } else { i32c(0) };
    let mut body = vec![Stmt::Let { var: zp, value: bin(BinOp::Sub, zval, i32c(shift)) }];
    let xst = strides(&xs);
    let nd = g.kernel.len();
    let inner = k.nest(&[nb, group], |k, ix| {
        let (n, gi) = (&ix[0], &ix[1]);
        let mut dims = vec![cg];
        dims.extend(&g.kernel);
        dims.extend(&g.out);
        let mut s = k.nest(&dims, |_, ix| {
            let (ci, kv, ov) = (&ix[0], &ix[1..1 + nd], &ix[1 + nd..]);
            let mut xix = vec![n.clone(), add(mul(gi.clone(), idx(cg as i64)), ci.clone())];
            let (pos, cond) = super::qint8::conv_positions(&g, ov, kv, &xs[2..]);
            xix.extend(pos);
            let ci_k = add(mul(ci.clone(), idx(kprod as i64)), linear(kv, &strides(&g.kernel)));
            let at = add(mul(ci_k, idx(oprod as i64)), linear(ov, &strides(&g.out)));
            let value =
                cast(Ty::I8, bin(BinOp::Sub, cast(Ty::I32, load(0, linear(&xix, &xst))), i32c(shift)));
            let store = |v| Stmt::Store { buf: colb, index: at.clone(), value: v };
            match cond {
                None => vec![store(value)],
                Some(cond) => vec![Stmt::If {
                    cond,
                    then: vec![store(value)],
                    els: vec![store(cast(Ty::I8, Expr::Var(zp)))],
                }],
            }
        });
        let ch0 = mul(gi.clone(), idx(mg as i64));
        let y0 = add(mul(n.clone(), idx((mch * oprod) as i64)), mul(ch0.clone(), idx(oprod as i64)));
        s.push(Stmt::QGemm {
            spec: spec.clone(),
            a: View { buf: 1, offset: mul(gi.clone(), idx(group_len as i64)) },
            b: View { buf: colb, offset: idx(0) },
            c: View { buf: yb, offset: y0.clone() },
            bias: None,
            // Not read in the int32 mode.
            mult: View { buf: rs, offset: ch0.clone() },
            shift: View { buf: rs, offset: ch0.clone() },
            scratch,
        });
        s.extend(k.nest(&[mg, oprod], |_, ix| {
            let i = add(y0.clone(), linear(ix, &[oprod, 1]));
            let corr = bin(BinOp::Mul, Expr::Var(zp), load(rs, add(ch0.clone(), ix[0].clone())));
            vec![Stmt::Store { buf: yb, index: i.clone(), value: bin(BinOp::Sub, load(yb, i), corr) }]
        }));
        s
    });
    body.extend(inner);
    k.body = body;
    Ok(Some(Lowered::Calls(vec![(k, binds)])))
}
