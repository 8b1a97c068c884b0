//! Matrix products, convolutions and pooling.
//!
//! Products become [`Stmt::Gemm`] on views, which the machine backend implements with its packed
//! micro-kernel (f32) or plain loops (other types). Convolutions are im2col + GEMM per sample and
//! group (1×1 unit-stride convs skip the im2col); transposed convolutions are GEMM into columns
//! followed by a scatter-add (col2im), so no zero-stuffed input is ever built.

use super::{io_kernel, Bind, ConstData, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::ops::{conv_geometry, conv_transpose_geometry, pool_geometry, ConvGeometry};
use edgec_ir::OpKind;

pub(super) fn lower(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    Ok(Some(match cx.kind {
        OpKind::MatMul => matmul(cx)?,
        OpKind::Gemm => gemm(cx)?,
        OpKind::Conv => conv(cx)?,
        OpKind::ConvTranspose => conv_transpose(cx)?,
        OpKind::MaxPool | OpKind::AveragePool | OpKind::LpPool => pool(cx)?,
        _ => return Ok(None),
    }))
}

/// Adds a scratch parameter for a GEMM's packing buffers, when the backend wants one.
fn gemm_scratch(bytes: u64, k: &mut Kernel, binds: &mut Vec<Bind>, extra: &mut Option<BufId>) {
    if bytes > 0 {
        match extra {
            Some(b) => {
                let p = &mut k.params[*b];
                p.len = p.len.max(bytes.div_ceil(4));
            }
            None => {
                *extra = Some(k.param(Ty::F32, bytes.div_ceil(4), Access::Scratch));
                binds.push(Bind::Scratch);
            }
        }
    }
}

/// When operand 1 (B) is an f32 compile-time constant and the backend packs constants, binds
/// parameter 1 to B packed at compile time and marks the product `b_prepacked`: the kernel then
/// skips packing B on every call. A B that `choose-layout` already stored in the kernel's panel
/// layout (`layout.from_panels` of panels as wide as this product's) is bound as it is. Returns
/// whether it did.
fn prepack_b(cx: &mut OpCx, spec: &mut GemmSpec, k: &mut Kernel, binds: &mut [Bind]) -> bool {
    let kernels = cx.kernels;
    let Some(gemm) = kernels.f32_gemm() else { return false };
    let Some(b) = cx.konst(1) else { return false };
    if cx.ty(1).ok() != Some(Ty::F32)
        || spec.shape.m * spec.shape.n * spec.shape.k == 0
        || b.len() < spec.shape.k * spec.shape.n
    {
        return false;
    }
    let mut packed_spec = spec.clone();
    packed_spec.b_prepacked = true;
    let chosen = match cx.panels.get(1).copied().flatten() {
        Some(p) if !spec.shape.b_trans && spec.shape.ldb == spec.shape.n => {
            let nr = gemm.panel_width(&packed_spec);
            (p.shape() == [spec.shape.n.div_ceil(nr), spec.shape.k, nr])
                .then(|| p.to_f64_vec().into_iter().map(|v| v as f32).collect())
        }
        _ => None,
    };
    let packed: Vec<f32> = match chosen {
        Some(p) => p,
        None => {
            let vals: Vec<f32> = b.to_f64_vec().into_iter().map(|v| v as f32).collect();
            gemm.pack_b(&packed_spec, &vals)
        }
    };
    let bytes: Vec<u8> = packed.iter().flat_map(|v| v.to_le_bytes()).collect();
    let t = cx.add_table(ConstData { ty: Ty::F32, bytes: bytes::Bytes::from(bytes) });
    k.params[1].len = packed.len() as u64;
    binds[1] = Bind::Table(t);
    *spec = packed_spec;
    true
}

fn matmul(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let (mut a, mut b) = (cx.shape(0), cx.shape(1));
    if a.len() == 1 {
        a.insert(0, 1);
    }
    if b.len() == 1 {
        b.push(1);
    }
    let (m, kk, n) = (a[a.len() - 2], a[a.len() - 1], b[b.len() - 1]);
    let rank = a.len().max(b.len());
    let bshape: Vec<usize> = (0..rank - 2)
        .map(|d| {
            let da = (d + a.len()).checked_sub(rank).map(|i| a[i]).unwrap_or(1);
            let db = (d + b.len()).checked_sub(rank).map(|i| b[i]).unwrap_or(1);
            da.max(db)
        })
        .collect();
    let sa = broadcast_strides(&a[..a.len() - 2], &bshape);
    let sb = broadcast_strides(&b[..b.len() - 2], &bshape);
    let (mut k, mut binds) = io_kernel(cx, "matmul")?;
    let spec = GemmSpec::new(GemmShape::new(m, n, kk));
    let mut spec = spec;
    let mut sb = sb;
    if cx.ty(0)? == Ty::F32 && sb.iter().all(|&s| s == 0) {
        if prepack_b(cx, &mut spec, &mut k, &mut binds) {
            sb = vec![0; sb.len()];
        }
    }
    let mut scratch = None;
    if cx.ty(0)? == Ty::F32 {
        gemm_scratch(cx.gemm_scratch(&spec), &mut k, &mut binds, &mut scratch);
    }
    let sy = strides(&bshape);
    k.body = k.nest(&bshape, |_, ix| {
        let off = |s: &[usize], sz: usize| mul(linear(ix, s), idx(sz as i64));
        vec![Stmt::Gemm {
            spec: spec.clone(),
            a: View { buf: 0, offset: off(&sa, m * kk) },
            b: View { buf: 1, offset: off(&sb, kk * n) },
            c: View { buf: 2, offset: off(&sy, m * n) },
            bias: None,
            scratch,
        }]
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn gemm(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let (a, b) = (cx.shape(0), cx.shape(1));
    let (ta, tb) = (cx.int("transA", 0) != 0, cx.int("transB", 0) != 0);
    let (m, kk) = if ta { (a[1], a[0]) } else { (a[0], a[1]) };
    let n = if tb { b[0] } else { b[1] };
    let (alpha, beta) = (cx.float("alpha", 1.0), cx.float("beta", 1.0));
    let has_c = cx.has(2) && beta != 0.0;
    let ty = cx.rty(0)?;
    let (mut k, mut binds) = io_kernel(cx, "gemm")?;
    let y = cx.operands.len();
    let spec =
        GemmSpec::new(GemmShape { m, n, k: kk, a_trans: ta, b_trans: tb, lda: a[1], ldb: b[1], ldc: n });
    let mut spec = spec;
    if ty == Ty::F32 {
        prepack_b(cx, &mut spec, &mut k, &mut binds);
    }
    let mut scratch = None;
    if ty == Ty::F32 {
        gemm_scratch(cx.gemm_scratch(&spec), &mut k, &mut binds, &mut scratch);
    }
    k.body.push(Stmt::Gemm {
        spec,
        a: View { buf: 0, offset: idx(0) },
        b: View { buf: 1, offset: idx(0) },
        c: View { buf: y, offset: idx(0) },
        bias: None,
        scratch,
    });
    if alpha != 1.0 || has_c {
        let cshape = if has_c { cx.shape(2) } else { vec![] };
        let body = k.nest(&[m, n], |_, ix| {
            let yi = linear(ix, &[n, 1]);
            let mut v = load(y, yi.clone());
            if alpha != 1.0 {
                v = bin(BinOp::Mul, v, cnst(alpha, ty));
            }
            if has_c {
                let mut c = load(2, linear(ix, &broadcast_strides(&cshape, &[m, n])));
                if beta != 1.0 {
                    c = bin(BinOp::Mul, c, cnst(beta, ty));
                }
                v = bin(BinOp::Add, v, c);
            }
            vec![Stmt::Store { buf: y, index: yi, value: v }]
        });
        k.body.extend(body);
    }
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// `select(lo <= i < hi, …)` as a condition on an index expression.
fn in_range(i: &Expr, hi: usize) -> Expr {
    bin(BinOp::And, cmp(CmpOp::Ge, i.clone(), idx(0)), cmp(CmpOp::Lt, i.clone(), idx(hi as i64)))
}

fn conv(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let (x, w) = (cx.shape(0), cx.shape(1));
    let g = conv_geometry(cx.attrs, &w, &x[2..])?;
    let group = cx.int("group", 1) as usize;
    let (nb, c, m) = (x[0], x[1], w[0]);
    let (cg, mg) = (c / group, m / group);
    let kprod: usize = g.kernel.iter().product();
    let iprod: usize = x[2..].iter().product();
    let oprod: usize = g.out.iter().product();
    let ty = cx.rty(0)?;
    let (mut k, mut binds) = io_kernel(cx, "conv")?;
    let yb = cx.operands.len();
    let direct = kprod == 1
        && g.strides.iter().all(|&s| s == 1)
        && g.pads_begin.iter().all(|&p| p == 0)
        && g.out == x[2..];
    let kdim = cg * kprod;
    let col = if direct { None } else { Some(k.param(ty, (kdim * oprod) as u64, Access::Scratch)) };
    if col.is_some() {
        binds.push(Bind::Scratch);
    }
    let spec = GemmSpec::new(GemmShape::new(mg, oprod, kdim));
    let mut scratch = None;
    if ty == Ty::F32 {
        gemm_scratch(cx.gemm_scratch(&spec), &mut k, &mut binds, &mut scratch);
    }
    let has_b = cx.has(2);
    let geom = g.clone();
    let xsp = x[2..].to_vec();
    let body = k.nest(&[nb, group], |k, ng| {
        let (n, gi) = (ng[0].clone(), ng[1].clone());
        let mut s = Vec::new();
        let chan0 = mul(gi.clone(), idx(cg as i64));
        let b_view = match col {
            None => View {
                buf: 0,
                offset: mul(add(mul(n.clone(), idx(c as i64)), chan0.clone()), idx(iprod as i64)),
            },
            Some(colb) => {
                let xoff = mul(add(mul(n.clone(), idx(c as i64)), chan0.clone()), idx(iprod as i64));
                s.extend(im2col(k, &geom, &xsp, cg, ty, xoff, colb));
                View { buf: colb, offset: idx(0) }
            }
        };
        let yoff =
            mul(add(mul(n.clone(), idx(m as i64)), mul(gi.clone(), idx(mg as i64))), idx(oprod as i64));
        // An f32 bias is added by the GEMM as it stores each output tile (no second pass over
        // the output, one loop nest less to compile); other types add it in a loop after.
        let fold_bias = has_b && ty == Ty::F32;
        s.push(Stmt::Gemm {
            spec: spec.clone(),
            a: View { buf: 1, offset: mul(gi.clone(), idx((mg * kdim) as i64)) },
            b: b_view,
            c: View { buf: yb, offset: yoff.clone() },
            bias: fold_bias.then(|| GemmBias {
                view: View { buf: 2, offset: mul(gi.clone(), idx(mg as i64)) },
                per_row: true,
            }),
            scratch,
        });
        if has_b && !fold_bias {
            let yoff2 = yoff.clone();
            let gi2 = gi.clone();
            s.extend(k.nest(&[mg, oprod], move |_, ix| {
                let yi = add(yoff2.clone(), linear(ix, &[oprod, 1]));
                let bi = add(mul(gi2.clone(), idx(mg as i64)), ix[0].clone());
                vec![Stmt::Store {
                    buf: yb,
                    index: yi.clone(),
                    value: bin(BinOp::Add, load(yb, yi), load(2, bi)),
                }]
            }));
        }
        s
    });
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// Valid output positions `[lo, hi)` along one dimension for one kernel tap: those whose input
/// position `o*s - p + kp*d` lies in `[0, size)`.
fn tap_range(size: usize, out: usize, s: usize, p: i64, kd: i64) -> (usize, usize) {
    let (s, size, out) = (s as i64, size as i64, out as i64);
    let first = p - kd; // o*s >= first
    let lo = if first <= 0 { 0 } else { (first + s - 1) / s };
    let end = size + p - kd; // o*s < end
    let hi = if end <= 0 { 0 } else { (end + s - 1) / s };
    let (lo, hi) = (lo.min(out), hi.clamp(0, out));
    (lo as usize, hi.max(lo) as usize)
}

/// `for i in 0..len: buf[base + i] = 0` (becomes a memset).
fn zero_run(k: &mut Kernel, buf: BufId, base: Expr, len: usize, ty: Ty) -> Vec<Stmt> {
    if len == 0 {
        return vec![];
    }
    k.nest(&[len], |_, i| vec![Stmt::Store { buf, index: add(base, i[0].clone()), value: cnst(0.0, ty) }])
}

/// im2col for one (sample, group): `col[(ci, kpos), opos] = X[xoff + ci, opos*s - p + kpos*d]`, 0
/// in the padding. Kernel taps are unrolled, so for each tap the in-bounds output box is known at
/// compile time: the padding becomes zero runs and the interior plain (for stride 1 contiguous)
/// copies, with no per-element bounds test.
fn im2col(
    k: &mut Kernel,
    g: &ConvGeometry,
    xsp: &[usize],
    cg: usize,
    ty: Ty,
    xoff: Expr,
    colb: BufId,
) -> Vec<Stmt> {
    let nd = xsp.len();
    let kprod: usize = g.kernel.iter().product();
    let oprod: usize = g.out.iter().product();
    let ost = strides(&g.out);
    let xst = strides(xsp);
    let mut out = Vec::new();
    for kpos in 0..kprod {
        // Tap coordinates.
        let mut kp = vec![0usize; nd];
        let mut r = kpos;
        for d in (0..nd).rev() {
            kp[d] = r % g.kernel[d];
            r /= g.kernel[d];
        }
        let ranges: Vec<(usize, usize)> = (0..nd)
            .map(|d| {
                tap_range(xsp[d], g.out[d], g.strides[d], g.pads_begin[d], (kp[d] * g.dilations[d]) as i64)
            })
            .collect();
        let body = k.nest(&[cg], |k, ci| {
            let row = mul(add(mul(ci[0].clone(), idx(kprod as i64)), idx(kpos as i64)), idx(oprod as i64));
            let xrow = add(xoff.clone(), mul(ci[0].clone(), idx(xsp.iter().product::<usize>() as i64)));
            taps(k, g, &kp, &ranges, &ost, &xst, 0, row, xrow, colb, ty)
        });
        out.extend(body);
    }
    out
}

/// Dimension `d` of one tap's copy: zero the output rows before `lo` and after `hi`, copy (or
/// recurse into) the rows in between. `cbase`/`xbase` are the col and X offsets so far.
#[allow(clippy::too_many_arguments)]
fn taps(
    k: &mut Kernel,
    g: &ConvGeometry,
    kp: &[usize],
    ranges: &[(usize, usize)],
    ost: &[usize],
    xst: &[usize],
    d: usize,
    cbase: Expr,
    xbase: Expr,
    colb: BufId,
    ty: Ty,
) -> Vec<Stmt> {
    let nd = kp.len();
    let (lo, hi) = ranges[d];
    let od = g.out[d];
    let mut s = zero_run(k, colb, cbase.clone(), lo * ost[d], ty);
    if hi > lo {
        let start = lo as i64 * g.strides[d] as i64 - g.pads_begin[d] + (kp[d] * g.dilations[d]) as i64;
        let cb = add(cbase.clone(), idx((lo * ost[d]) as i64));
        let xb = add(xbase.clone(), idx(start * xst[d] as i64));
        let step = (g.strides[d] * xst[d]) as i64;
        s.extend(k.nest(&[hi - lo], |k, o| {
            let c = add(cb, mul(o[0].clone(), idx(ost[d] as i64)));
            let x = add(xb, mul(o[0].clone(), idx(step)));
            if d + 1 == nd {
                vec![Stmt::Store { buf: colb, index: c, value: load(0, x) }]
            } else {
                taps(k, g, kp, ranges, ost, xst, d + 1, c, x, colb, ty)
            }
        }));
    }
    s.extend(zero_run(k, colb, add(cbase, idx((hi * ost[d]) as i64)), (od - hi) * ost[d], ty));
    s
}

fn conv_transpose(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let (x, w) = (cx.shape(0), cx.shape(1));
    let g = conv_transpose_geometry(cx.attrs, &w, &x[2..])?;
    let group = cx.int("group", 1) as usize;
    let (nb, c, mg) = (x[0], x[1], w[1]);
    let cg = c / group;
    let m = mg * group;
    let kprod: usize = g.kernel.iter().product();
    let iprod: usize = x[2..].iter().product();
    let oprod: usize = g.out.iter().product();
    let ty = cx.rty(0)?;
    let (mut k, mut binds) = io_kernel(cx, "conv_transpose")?;
    let yb = cx.operands.len();
    let rows = mg * kprod;
    let colb = k.param(ty, (rows * iprod) as u64, Access::Scratch);
    binds.push(Bind::Scratch);
    // colᵀ (P_in × mg·K) = X_gᵀ (X_g stored cg × P_in) · W_g (cg × mg·K): the weights are B, so
    // a constant W is packed at compile time (one group only), and the small P_in is M.
    let mut spec = GemmSpec::new(GemmShape { a_trans: true, lda: iprod, ..GemmShape::new(iprod, rows, cg) });
    if ty == Ty::F32 && group == 1 {
        prepack_b(cx, &mut spec, &mut k, &mut binds);
    }
    let w_group_stride = if spec.b_prepacked { 0 } else { cg * rows };
    let mut scratch = None;
    if ty == Ty::F32 {
        gemm_scratch(cx.gemm_scratch(&spec), &mut k, &mut binds, &mut scratch);
    }
    let has_b = cx.has(2);
    // Output starts as the bias (or zero).
    let init = k.nest(&[nb, m, oprod], |_, ix| {
        let v = if has_b { load(2, ix[1].clone()) } else { cnst(0.0, ty) };
        vec![Stmt::Store { buf: yb, index: linear(ix, &[m * oprod, oprod, 1]), value: v }]
    });
    k.body.extend(init);
    let xsp = x[2..].to_vec();
    let body = k.nest(&[nb, group], |k, ng| {
        let (n, gi) = (ng[0].clone(), ng[1].clone());
        let mut s = vec![Stmt::Gemm {
            spec: spec.clone(),
            a: View {
                buf: 0,
                offset: mul(
                    add(mul(n.clone(), idx(c as i64)), mul(gi.clone(), idx(cg as i64))),
                    idx(iprod as i64),
                ),
            },
            b: View { buf: 1, offset: mul(gi.clone(), idx(w_group_stride as i64)) },
            c: View { buf: colb, offset: idx(0) },
            bias: None,
            scratch,
        }];
        let yoff = mul(add(mul(n, idx(m as i64)), mul(gi, idx(mg as i64))), idx(oprod as i64));
        s.extend(col2im(k, &g, &xsp, mg, yb, yoff, colb));
        s
    });
    k.body.extend(body);
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// col2im for one (sample, group) of a transposed convolution: `dst[off + mi·P + o] +=
/// colᵀ[i, (mi, kpos)]` with `o = i·s − p + kpos·d` per spatial dimension (P the output plane,
/// colᵀ `P_in × mg·K` row-major in `colb`). The input positions split per dimension into the
/// interior, where every tap lands inside the output, and the borders; the interior needs no
/// bounds test. Loops run over input positions, then (mi, kpos), so colᵀ is read contiguously
/// and each input position's writes stay in a kernel-sized window of the output. The element
/// type is the buffers' (f32 for ConvTranspose, i32 accumulators for q.conv_transpose).
pub(super) fn col2im(
    k: &mut Kernel,
    g: &ConvGeometry,
    xsp: &[usize],
    mg: usize,
    dst: BufId,
    off: Expr,
    colb: BufId,
) -> Vec<Stmt> {
    let nd = xsp.len();
    let kprod: usize = g.kernel.iter().product();
    let oprod: usize = g.out.iter().product();
    let rows = mg * kprod;
    let segments: Vec<Vec<(usize, usize, bool)>> = (0..nd)
        .map(|d| {
            let (s_, p_, kd) =
                (g.strides[d] as i64, g.pads_begin[d], ((g.kernel[d] - 1) * g.dilations[d]) as i64);
            let n = xsp[d] as i64;
            // Interior: i*s - p >= 0 and i*s - p + kd < out.
            let lo = ((p_ + s_ - 1).div_euclid(s_)).clamp(0, n);
            let hi = ((g.out[d] as i64 - kd + p_ + s_ - 1).div_euclid(s_)).clamp(lo, n);
            [(0, lo, false), (lo, hi, true), (hi, n, false)]
                .into_iter()
                .filter(|&(a, b, _)| b > a)
                .map(|(a, b, inner)| (a as usize, b as usize, inner))
                .collect()
        })
        .collect();
    let mut regions: Vec<Vec<(usize, usize, bool)>> = vec![vec![]];
    for seg in &segments {
        regions =
            regions.iter().flat_map(|r| seg.iter().map(move |&sg| [r.clone(), vec![sg]].concat())).collect();
    }
    let mut s = Vec::new();
    for region in regions {
        let interior = region.iter().all(|r| r.2);
        let mut shape: Vec<usize> = region.iter().map(|r| r.1 - r.0).collect();
        shape.push(mg);
        shape.extend(&g.kernel);
        s.extend(k.nest(&shape, |_, ix| {
            let ip: Vec<Expr> = (0..nd).map(|d| add(ix[d].clone(), idx(region[d].0 as i64))).collect();
            let (mi, kp) = (&ix[nd], &ix[nd + 1..]);
            let mut cond: Option<Expr> = None;
            let mut pos = Vec::new();
            for d in 0..nd {
                let p = add(
                    sub(mul(ip[d].clone(), idx(g.strides[d] as i64)), idx(g.pads_begin[d])),
                    mul(kp[d].clone(), idx(g.dilations[d] as i64)),
                );
                if !region[d].2 {
                    let ok = in_range(&p, g.out[d]);
                    cond = Some(match cond {
                        None => ok,
                        Some(c0) => bin(BinOp::And, c0, ok),
                    });
                }
                pos.push(p);
            }
            let yi =
                add(add(off.clone(), mul(mi.clone(), idx(oprod as i64))), linear(&pos, &strides(&g.out)));
            let ci = add(
                mul(linear(&ip, &strides(xsp)), idx(rows as i64)),
                add(mul(mi.clone(), idx(kprod as i64)), linear(kp, &strides(&g.kernel))),
            );
            let store = Stmt::Store {
                buf: dst,
                index: yi.clone(),
                value: bin(BinOp::Add, load(dst, yi), load(colb, ci)),
            };
            match cond {
                Some(c) if !interior => vec![Stmt::If { cond: c, then: vec![store], els: vec![] }],
                _ => vec![store],
            }
        }));
    }
    s
}

fn pool(cx: &mut OpCx) -> Result<Lowered, OpError> {
    if cx.results.len() > 1 {
        return Err("MaxPool's Indices result is not supported by machine backends yet".into());
    }
    let x = cx.shape(0);
    let nd = x.len() - 2;
    let kernel: Vec<usize> = cx
        .attrs
        .ints("kernel_shape")
        .ok_or("kernel_shape is required")?
        .iter()
        .map(|&v| v as usize)
        .collect();
    let g = pool_geometry(cx.attrs, kernel, cx.int("ceil_mode", 0) != 0, &x[2..])?;
    let ty = cx.rty(0)?;
    let ct = if matches!(ty, Ty::F16 | Ty::BF16) { Ty::F32 } else { ty };
    let kind = cx.kind;
    let count_pad = cx.int("count_include_pad", 0) != 0;
    let p = cx.int("p", 2) as f64;
    let (mut k, binds) = io_kernel(cx, kind.name().trim_start_matches("nn."))?;
    let yb = 1;
    let acc = k.var(ct);
    let cnt = k.var(Ty::Idx);
    let mut oshape = x[..2].to_vec();
    oshape.extend(&g.out);
    let xsp = x[2..].to_vec();
    let body = k.nest(&oshape, |k, ox| {
        let init = match kind {
            OpKind::MaxPool => {
                if ct.is_float() {
                    fc(f64::NEG_INFINITY, ct)
                } else {
                    Expr::IConst(if ct.is_signed() { i64::MIN >> (64 - 8 * ct.bytes()) } else { 0 }, ct)
                }
            }
            _ => cnst(0.0, ct),
        };
        let mut s = vec![Stmt::Let { var: acc, value: init }, Stmt::Let { var: cnt, value: idx(0) }];
        let geom = g.clone();
        let xsp2 = xsp.clone();
        let ox2 = ox.to_vec();
        s.extend(k.nest(&geom.kernel.clone(), move |_, kx| {
            let mut cond: Option<Expr> = None;
            let mut xi = add(mul(ox2[0].clone(), idx(x[1] as i64)), ox2[1].clone());
            for d in 0..nd {
                let pos = add(
                    sub(mul(ox2[2 + d].clone(), idx(geom.strides[d] as i64)), idx(geom.pads_begin[d])),
                    mul(kx[d].clone(), idx(geom.dilations[d] as i64)),
                );
                let ok = in_range(&pos, xsp2[d]);
                cond = Some(match cond {
                    None => ok,
                    Some(c0) => bin(BinOp::And, c0, ok),
                });
                xi = add(mul(xi, idx(xsp2[d] as i64)), pos);
            }
            let mut v = load(0, xi);
            if ct != ty {
                v = cast(ct, v);
            }
            let upd = match kind {
                OpKind::MaxPool => bin(BinOp::Max, Expr::Var(acc), v),
                OpKind::LpPool => bin(
                    BinOp::Add,
                    Expr::Var(acc),
                    Expr::Math(MathFn::Pow, vec![un(UnOp::Abs, v), cnst(p, ct)]),
                ),
                _ => bin(BinOp::Add, Expr::Var(acc), v),
            };
            vec![Stmt::If {
                cond: cond.unwrap(),
                then: vec![
                    Stmt::Assign { var: acc, value: upd },
                    Stmt::Assign { var: cnt, value: add(Expr::Var(cnt), idx(1)) },
                ],
                els: vec![],
            }]
        }));
        let mut res = Expr::Var(acc);
        match kind {
            OpKind::AveragePool => {
                let n = if count_pad {
                    // Windows are clipped to the padded input, not to the kernel.
                    let mut e = idx(1);
                    for d in 0..nd {
                        let start =
                            sub(mul(ox[2 + d].clone(), idx(g.strides[d] as i64)), idx(g.pads_begin[d]));
                        let end_pad = xsp[d] as i64 + g.pads_end[d];
                        let last = add(start.clone(), idx(((g.kernel[d] - 1) * g.dilations[d] + 1) as i64));
                        let hi = bin(BinOp::Min, last, idx(end_pad));
                        let len = sub(hi, start);
                        let taps = add(div(sub(len, idx(1)), idx(g.dilations[d] as i64)), idx(1));
                        e = mul(e, taps);
                    }
                    e
                } else {
                    Expr::Var(cnt)
                };
                res = bin(BinOp::Div, res, cast(ct, bin(BinOp::Max, n, idx(1))));
            }
            OpKind::LpPool => res = Expr::Math(MathFn::Pow, vec![res, cnst(1.0 / p, ct)]),
            _ => {}
        }
        if ct != ty {
            res = cast(ty, res);
        }
        s.push(Stmt::Store { buf: yb, index: linear(ox, &strides(&oshape)), value: res });
        s
    });
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}
