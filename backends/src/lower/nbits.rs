//! `q.matmul_nbits` and `q.gather_nbits`: int4 block-quantized weights, dequantized inside the
//! kernel (see `edgec_ir::ops::quant_nbits`).
//!
//! The weight is a compile-time `i4 [N, K]` constant (even K). The lowering repacks it, and its
//! scales, into one table per op kind that a tied head and its embedding share (identical
//! tables are stored once): output channels in blocks of `nb`, each block K-major —
//! byte `kb·w + j` of a block of width `w` holds elements `2kb` (low nibble) and `2kb + 1` of
//! channel `n0 + j`, and its scales are `[groups, w]`. The same bytes as the `[N, K]` constant,
//! permuted so that every load in the kernels below is contiguous. A nibble is sign-extended
//! with shifts on an `i32`: `lo = (b << 28) >> 28`, `hi = (b << 24) >> 28`.
//!
//! - `q.matmul_nbits` runs over the blocks: the block is dequantized (times its group scales)
//!   into a per-call f32 scratch `[K, nb]`, then one [`Stmt::Gemm`] multiplies all rows of x
//!   (leading dims flattened: the weight is shared) by it, writing columns `n0 .. n0 + nb` of y
//!   with the bias added as C is stored. `nb` is the largest multiple of the GEMM's tile width
//!   (`TargetKernels::gemm_nr`) whose rows fit `LowerOptions::nbits_block_bytes`, so the GEMM
//!   reads the block in place without packing it. Only `nb × K` floats of weights ever exist,
//!   in cache; the constant data is the int4 table.
//! - `q.gather_nbits` dequantizes the gathered rows straight into the output (indices wrap
//!   when negative and are clamped to the table, like `shape.gather`'s lowering).

use super::{Bind, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::ops::quant_nbits::num_groups;
use edgec_ir::OpKind;

pub(super) fn lower(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    Ok(Some(match cx.kind {
        OpKind::MatMulNBits => matmul_nbits(cx)?,
        OpKind::GatherNBits => gather_nbits(cx)?,
        _ => return Ok(None),
    }))
}

/// Group size, N and K, checking what the backend needs.
fn geometry(cx: &OpCx, w: usize) -> Result<(usize, usize, usize), OpError> {
    if cx.int("bits", 4) != 4 {
        return Err("only bits = 4 is supported".into());
    }
    let g = cx.int("group_size", 0) as usize;
    let ws = cx.shape(w);
    let (n, k) = (ws[0], ws[1]);
    if !k.is_multiple_of(2) || !g.is_multiple_of(2) {
        return Err(
            format!("machine backends need an even K and group size (K = {k}, group_size = {g})").into()
        );
    }
    if cx.konst(w).is_none() {
        return Err("the int4 weight must be a compile-time constant".into());
    }
    Ok((g, n, k))
}

/// Channel blocking of an `[n, k]` weight: (block width, full blocks, tail width).
fn blocking(cx: &OpCx, n: usize, k: usize) -> (usize, usize, usize) {
    let fit = (cx.nbits_block_bytes / (4 * k as u64)).max(1) as usize;
    let nr = cx.kernels.gemm_nr().max(1);
    let nb = if fit >= nr { fit / nr * nr } else { fit }.min(n).max(1);
    (nb, n / nb, n % nb)
}

/// The weight and scales repacked block by block (see the module docs), as tables.
fn repack(cx: &mut OpCx, w: usize, g: usize, n: usize, k: usize) -> Result<(usize, usize), OpError> {
    let (nb, full, tail) = blocking(cx, n, k);
    let q = match cx.konst(w) {
        Some(edgec_ir::Tensor::I4(a)) => a.iter().copied().collect::<Vec<i8>>(),
        _ => return Err("the int4 weight must be a compile-time i4 constant".into()),
    };
    let s = match cx.konst(w + 1) {
        Some(edgec_ir::Tensor::F32(a)) => a.iter().copied().collect::<Vec<f32>>(),
        _ => return Err("the scales must be a compile-time f32 constant".into()),
    };
    let groups = num_groups(k, g);
    let mut bytes = Vec::with_capacity(n * k / 2);
    let mut scales = Vec::with_capacity(n * groups * 4);
    for blk in 0..full + usize::from(tail > 0) {
        let (n0, width) = (blk * nb, if blk < full { nb } else { tail });
        for kb in 0..k / 2 {
            for j in 0..width {
                let r = (n0 + j) * k + 2 * kb;
                bytes.push((q[r] as u8 & 15) | ((q[r + 1] as u8 & 15) << 4));
            }
        }
        for gi in 0..groups {
            for j in 0..width {
                scales.extend_from_slice(&s[(n0 + j) * groups + gi].to_le_bytes());
            }
        }
    }
    let tw = cx.add_table(super::ConstData { ty: Ty::U8, bytes: bytes.into() });
    let ts = cx.add_table(super::ConstData { ty: Ty::F32, bytes: scales.into() });
    Ok((tw, ts))
}

/// Dequantizes channel `j` of the block at byte `tbase` / scale `sbase` (width `width`) into
/// `out`: element `kk` goes to `at(kk)`.
#[allow(clippy::too_many_arguments)]
fn dequant(
    k: &mut Kernel,
    (wb, sb): (BufId, BufId),
    (tbase, sbase, width, j): (Expr, Expr, Expr, Expr),
    kk: usize,
    g: usize,
    out: BufId,
    at: &dyn Fn(Expr) -> Expr,
    inner: Option<(VarId, u64)>,
) -> Vec<Stmt> {
    let full = kk / g;
    let mut stmts = Vec::new();
    let group = |k: &mut Kernel, gi: Expr, len: usize| -> Vec<Stmt> {
        let kb = k.var(Ty::Idx);
        let pair = add(mul(gi.clone(), idx((g / 2) as i64)), Expr::Var(kb));
        let byte =
            cast(Ty::I32, load(wb, add(tbase.clone(), add(mul(pair.clone(), width.clone()), j.clone()))));
        let scale = load(sb, add(sbase.clone(), add(mul(gi.clone(), width.clone()), j.clone())));
        let nib = |shl: i64| {
            let v = bin(BinOp::Shl, byte.clone(), Expr::IConst(shl, Ty::I32));
            bin(BinOp::Mul, cast(Ty::F32, bin(BinOp::Shr, v, Expr::IConst(28, Ty::I32))), scale.clone())
        };
        let e0 = mul(pair, idx(2));
        let mut body = vec![
            Stmt::Store { buf: out, index: at(e0.clone()), value: nib(28) },
            Stmt::Store { buf: out, index: at(add(e0, idx(1))), value: nib(24) },
        ];
        // The channel loop innermost (matmul): contiguous loads and stores across channels.
        if let Some((var, extent)) = inner {
            body = vec![Stmt::For { var, extent, body }];
        }
        vec![Stmt::For { var: kb, extent: (len / 2) as u64, body }]
    };
    if full > 0 {
        let gv = k.var(Ty::Idx);
        let body = group(k, Expr::Var(gv), g);
        stmts.push(Stmt::For { var: gv, extent: full as u64, body });
    }
    if !kk.is_multiple_of(g) {
        stmts.extend(group(k, idx(full as i64), kk % g));
    }
    stmts
}

fn matmul_nbits(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let (g, n, kk) = geometry(cx, 1)?;
    let xs = cx.shape(0);
    let m: usize = xs[..xs.len() - 1].iter().product();
    let has_bias = cx.has(3);
    let groups = num_groups(kk, g);
    let (tw, ts) = repack(cx, 1, g, n, kk)?;
    let (nb, full, tail) = blocking(cx, n, kk);
    let mut k = Kernel::new("matmul_nbits");
    let mut binds = Vec::new();
    let xb = k.param(Ty::F32, (m * kk) as u64, Access::Read);
    binds.push(Bind::Operand(0));
    let wb = k.param(Ty::U8, (n * kk / 2) as u64, Access::Read);
    binds.push(Bind::Table(tw));
    let sb = k.param(Ty::F32, (n * groups) as u64, Access::Read);
    binds.push(Bind::Table(ts));
    let bb = if has_bias {
        binds.push(Bind::Operand(3));
        Some(k.param(Ty::F32, n as u64, Access::Read))
    } else {
        None
    };
    let yb = k.param(Ty::F32, (m * n) as u64, Access::Write);
    binds.push(Bind::Result(0));
    let db = k.param(Ty::F32, (nb * kk) as u64, Access::Scratch);
    binds.push(Bind::Scratch);
    let spec = |cols: usize| GemmSpec::new(GemmShape { ldc: n, ..GemmShape::new(m, cols, kk) });
    let scratch_bytes =
        cx.gemm_scratch(&spec(nb)).max(if tail > 0 { cx.gemm_scratch(&spec(tail)) } else { 0 });
    let gs = if scratch_bytes > 0 {
        binds.push(Bind::Scratch);
        Some(k.param(Ty::F32, scratch_bytes.div_ceil(4), Access::Scratch))
    } else {
        None
    };
    let block = |k: &mut Kernel, blk: Expr, cols: usize| -> Vec<Stmt> {
        let j = k.var(Ty::Idx);
        let n0 = mul(blk.clone(), idx(nb as i64));
        let tbase = mul(blk.clone(), idx((nb * kk / 2) as i64));
        let sbase = mul(blk, idx((nb * groups) as i64));
        let jv = Expr::Var(j);
        let at = |e: Expr| add(mul(e, idx(cols as i64)), jv.clone());
        let mut s = dequant(
            k,
            (wb, sb),
            (tbase, sbase, idx(cols as i64), Expr::Var(j)),
            kk,
            g,
            db,
            &at,
            Some((j, cols as u64)),
        );
        s.push(Stmt::Gemm {
            spec: spec(cols),
            a: View { buf: xb, offset: idx(0) },
            b: View { buf: db, offset: idx(0) },
            c: View { buf: yb, offset: n0.clone() },
            bias: bb.map(|b| GemmBias { view: View { buf: b, offset: n0 }, per_row: false }),
            scratch: gs,
        });
        s
    };
    if full > 0 {
        let bv = k.var(Ty::Idx);
        let body = block(&mut k, Expr::Var(bv), nb);
        k.body.push(Stmt::For { var: bv, extent: full as u64, body });
    }
    if tail > 0 {
        let body = block(&mut k, idx(full as i64), tail);
        k.body.extend(body);
    }
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn gather_nbits(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let (g, n, kk) = geometry(cx, 0)?;
    let count: usize = cx.shape(2).iter().product();
    let ity = cx.ty(2)?;
    let groups = num_groups(kk, g);
    let (tw, ts) = repack(cx, 0, g, n, kk)?;
    let (nb, full, tail) = blocking(cx, n, kk);
    let mut k = Kernel::new("gather_nbits");
    let wb = k.param(Ty::U8, (n * kk / 2) as u64, Access::Read);
    let sb = k.param(Ty::F32, (n * groups) as u64, Access::Read);
    let ib = k.param(ity, count as u64, Access::Read);
    let yb = k.param(Ty::F32, (count * kk) as u64, Access::Write);
    let binds = vec![Bind::Table(tw), Bind::Table(ts), Bind::Operand(2), Bind::Result(0)];
    let (i, r, blk) = (k.var(Ty::Idx), k.var(Ty::Idx), k.var(Ty::Idx));
    let raw = cast(Ty::Idx, load(ib, Expr::Var(i)));
    let wrapped = select(cmp(CmpOp::Lt, raw.clone(), idx(0)), add(raw.clone(), idx(n as i64)), raw);
    let clamped = bin(BinOp::Min, bin(BinOp::Max, wrapped, idx(0)), idx(n.max(1) as i64 - 1));
    let width = if tail > 0 {
        select(cmp(CmpOp::Lt, Expr::Var(blk), idx(full as i64)), idx(nb as i64), idx(tail as i64))
    } else {
        idx(nb as i64)
    };
    let mut body = vec![
        Stmt::Let { var: r, value: clamped },
        Stmt::Let { var: blk, value: div(Expr::Var(r), idx(nb as i64)) },
    ];
    let j = sub(Expr::Var(r), mul(Expr::Var(blk), idx(nb as i64)));
    let tbase = mul(Expr::Var(blk), idx((nb * kk / 2) as i64));
    let sbase = mul(Expr::Var(blk), idx((nb * groups) as i64));
    let row = mul(Expr::Var(i), idx(kk as i64));
    let at = |e: Expr| add(row.clone(), e);
    body.extend(dequant(&mut k, (wb, sb), (tbase, sbase, width, j), kk, g, yb, &at, None));
    k.body = vec![Stmt::For { var: i, extent: count as u64, body }];
    Ok(Lowered::Calls(vec![(k, binds)]))
}
