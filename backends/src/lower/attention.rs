//! `nn.attention` (ONNX Attention): one kernel per op.
//!
//! The kernel first gathers the scaled queries and the (past + current) scaled keys and values
//! into `[batch, heads, seq, head_size]` scratch arrays in the compute type (f32 for half types),
//! writing `present_key`/`present_value` on the way. Then, per batch and query head, a GEMM gives
//! the `[q_seq, total]` scores; one pass over each row applies the soft cap and the bias (mask
//! plus the causal / window / padding interval, computed on the fly), a second the softmax (rows
//! with no attendable key become zeros), and a second GEMM multiplies by V. Half types round at
//! the points the reference rounds (scaled Q and K, scores, probabilities).

use super::{io_kernel, kty, Bind, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::{Attr, ScalarType};

/// `e` rounded to the precision of `narrow` and widened back to `wide` (a no-op when `narrow` is
/// not narrower).
fn round_to(e: Expr, narrow: Ty, wide: Ty) -> Expr {
    if narrow.bytes() < wide.bytes() {
        cast(wide, cast(narrow, e))
    } else {
        e
    }
}

fn onnx_float_type(code: i64) -> Result<Ty, OpError> {
    Ok(match code {
        1 => Ty::F32,
        10 => Ty::F16,
        11 => Ty::F64,
        16 => Ty::BF16,
        _ => return Err(format!("softmax_precision must be a float type code, found {code}").into()),
    })
}

pub(super) fn lower(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let ty = cx.ty(0)?;
    let ct = if matches!(ty, Ty::F16 | Ty::BF16) { Ty::F32 } else { ty };
    let rnd = move |e: Expr| round_to(e, ty, ct);
    let sm_ty = match cx.attrs.get("softmax_precision") {
        None => ty,
        Some(Attr::Type(t)) => kty(*t)?,
        Some(Attr::Int(i)) => onnx_float_type(*i)?,
        Some(a) => return Err(format!("softmax_precision must be a type, found {a:?}").into()),
    };
    let (qs, ks, vs) = (cx.shape(0), cx.shape(1), cx.shape(2));
    let rank = qs.len();
    // [B, H, S, D] geometry.
    let (b, hq, sq, d, hkv, skv, dv) = if rank == 4 {
        (qs[0], qs[1], qs[2], qs[3], ks[1], ks[2], vs[3])
    } else {
        let hq = cx.int("q_num_heads", 0) as usize;
        let hkv = cx.int("kv_num_heads", 0) as usize;
        if hq == 0 || hkv == 0 {
            return Err("3-D Q, K, V need q_num_heads and kv_num_heads".into());
        }
        (qs[0], hq, qs[1], qs[2] / hq, hkv, ks[1], vs[2] / hkv)
    };
    if hkv == 0 || hq % hkv != 0 {
        return Err(format!("{hq} query heads are not a multiple of {hkv} key/value heads").into());
    }
    let group = hq / hkv;
    let past = cx.has(4) && cx.has(5);
    let pl = if past { cx.shape(4)[2] } else { 0 };
    let total = pl + skv;
    let nonpad = cx.has(6);
    if nonpad && cx.operands[6].scalar() != ScalarType::I64 {
        return Err("nonpad_kv_seqlen must be i64".into());
    }
    let is_causal = cx.int("is_causal", 0) != 0;
    let mode = cx.int("qk_matmul_output_mode", 0);
    let softcap = cx.float("softcap", 0.0);
    let (left, right) = (cx.int("left_window_size", -1), cx.int("right_window_size", -1));
    let scale = cx.attrs.float("scale").unwrap_or(1.0 / (d as f64).sqrt());
    let ss = if ct == Ty::F32 { scale.sqrt() as f32 as f64 } else { scale.sqrt() };
    let ss = rnd(fc(ss, ct));
    // The mask, broadcast right-aligned to [B, Hq, Sq, *].
    let mask = if cx.has(3) {
        let s = cx.shape(3);
        let mut m = [1usize; 4];
        m[4 - s.len()..].copy_from_slice(&s);
        Some((m, cx.ty(3)?))
    } else {
        None
    };
    let n_ops = cx.operands.len();
    let n_res = cx.results.len();
    let (y_buf, pk_out, pv_out, qk_out) = (
        n_ops,
        (n_res > 1).then_some(n_ops + 1),
        (n_res > 2).then_some(n_ops + 2),
        (n_res > 3).then_some(n_ops + 3),
    );

    let (mut k, mut binds) = io_kernel(cx, "attention")?;
    let mut scratch = |k: &mut Kernel, len: usize| {
        binds.push(Bind::Scratch);
        k.param(ct, len.max(1) as u64, Access::Scratch)
    };
    // 4-D K and V already in the compute type, with no cache to append to, are read where they
    // lie (their layout is the [B, H, S, E] the GEMMs want) and the whole scale goes on Q: only
    // Q is copied, instead of Q, K and V (for llama that is 20% of the arena).
    let direct_kv = rank == 4 && ct == ty && pl == 0 && pk_out.is_none() && pv_out.is_none();
    let qsc = scratch(&mut k, b * hq * sq * d);
    let ksc = if direct_kv { 1 } else { scratch(&mut k, b * hkv * total * d) };
    let vsc = if direct_kv { 2 } else { scratch(&mut k, b * hkv * total * dv) };
    let q_scale = if direct_kv {
        rnd(fc(if ct == Ty::F32 { scale as f32 as f64 } else { scale }, ct))
    } else {
        ss.clone()
    };
    let sc = scratch(&mut k, sq * total);
    let yh = scratch(&mut k, sq * dv);
    let spec_s = GemmSpec::new(GemmShape { b_trans: true, ldb: d, ..GemmShape::new(sq, total, d) });
    let spec_y = GemmSpec::new(GemmShape::new(sq, dv, total));
    let gs = if ct == Ty::F32 { cx.gemm_scratch(&spec_s).max(cx.gemm_scratch(&spec_y)) } else { 0 };
    let gscratch = (gs > 0).then(|| {
        binds.push(Bind::Scratch);
        k.param(Ty::F32, gs.div_ceil(4), Access::Scratch)
    });

    let wide = |e: Expr| if ct != ty { cast(ct, e) } else { e };
    let narrow = |e: Expr| if ct != ty { cast(ty, e) } else { e };
    // Flat index of element (b, h, s, e) of a [B, H, S, E] operand given 4-D, or 3-D as
    // [B, S, H*E].
    let at = move |ix: &[Expr], h: usize, s: usize, e: usize| -> Expr {
        if rank == 4 {
            linear(ix, &[h * s * e, s * e, e, 1])
        } else {
            linear(ix, &[s * h * e, e, h * e, 1])
        }
    };

    // 1. Scaled Q.
    let body = k.nest(&[b, hq, sq, d], |_, ix| {
        let v = rnd(bin(BinOp::Mul, wide(load(0, at(ix, hq, sq, d))), q_scale.clone()));
        vec![Stmt::Store { buf: qsc, index: linear(ix, &strides(&[b, hq, sq, d])), value: v }]
    });
    k.body.extend(body);
    // 2. Present K and V: past rows, then the current ones; scaled K and widened V.
    let copies = if direct_kv {
        vec![]
    } else {
        vec![(4usize, 1usize, pk_out, ksc, d, true), (5, 2, pv_out, vsc, dv, false)]
    };
    for (src_past, src_cur, out, dst, e, scaled) in copies {
        let dshape = [b, hkv, total, e];
        let emit = |src: Expr, ix: &[Expr], t0: usize| {
            let t = add(ix[2].clone(), idx(t0 as i64));
            let di = linear(&[ix[0].clone(), ix[1].clone(), t, ix[3].clone()], &strides(&dshape));
            let mut s = Vec::new();
            if let Some(o) = out {
                s.push(Stmt::Store { buf: o, index: di.clone(), value: src.clone() });
            }
            let w = wide(src);
            let w = if scaled { rnd(bin(BinOp::Mul, w, ss.clone())) } else { w };
            s.push(Stmt::Store { buf: dst, index: di, value: w });
            s
        };
        if pl > 0 {
            let body = k.nest(&[b, hkv, pl, e], |_, ix| {
                emit(load(src_past, linear(ix, &strides(&[b, hkv, pl, e]))), ix, 0)
            });
            k.body.extend(body);
        }
        let body = k.nest(&[b, hkv, skv, e], |_, ix| emit(load(src_cur, at(ix, hkv, skv, e)), ix, pl));
        k.body.extend(body);
    }

    // 3. Per batch and query head.
    let (lo, hi) = (k.var(Ty::Idx), k.var(Ty::Idx));
    let (allm, mx, sum) = (k.var(Ty::Bool), k.var(ct), k.var(ct));
    let neg_inf = fc(f64::NEG_INFINITY, ct);
    let body = k.nest(&[b, hq], |k, bh| {
        let (bi, h) = (bh[0].clone(), bh[1].clone());
        let kvh = div(h.clone(), idx(group as i64));
        let bhq = add(mul(bi.clone(), idx(hq as i64)), h.clone());
        let bhkv = add(mul(bi.clone(), idx(hkv as i64)), kvh);
        let mut s = vec![Stmt::Gemm {
            spec: spec_s.clone(),
            a: View { buf: qsc, offset: mul(bhq.clone(), idx((sq * d) as i64)) },
            b: View { buf: ksc, offset: mul(bhkv.clone(), idx((total * d) as i64)) },
            c: View { buf: sc, offset: idx(0) },
            bias: None,
            scratch: gscratch,
        }];
        // Keys before the query block (causal/window alignment).
        let offset = if past {
            idx(pl as i64)
        } else if nonpad {
            sub(cast(Ty::Idx, load(6, bi.clone())), idx(sq as i64))
        } else {
            idx(0)
        };
        let rows = k.nest(&[sq], |k, iv| {
            let i = iv[0].clone();
            let pos = add(i.clone(), offset.clone());
            let mut lo_e = idx(0);
            let mut hi_e = idx(total as i64);
            if is_causal {
                hi_e = bin(BinOp::Min, hi_e, add(pos.clone(), idx(1)));
            }
            if left >= 0 {
                lo_e = bin(BinOp::Max, lo_e, sub(pos.clone(), idx(left)));
            }
            if right >= 0 {
                hi_e = bin(BinOp::Min, hi_e, add(pos.clone(), idx(right + 1)));
            }
            if nonpad {
                hi_e = bin(BinOp::Min, hi_e, cast(Ty::Idx, load(6, bi.clone())));
            }
            let mut r = vec![
                Stmt::Let { var: lo, value: lo_e },
                Stmt::Let { var: hi, value: hi_e },
                Stmt::Let { var: allm, value: Expr::IConst(1, Ty::Bool) },
            ];
            let row = mul(i.clone(), idx(total as i64));
            let qk_at = |j: &Expr| {
                add(mul(add(mul(bhq.clone(), idx(sq as i64)), i.clone()), idx(total as i64)), j.clone())
            };
            let (sv, bv) = (k.var(ct), k.var(ct));
            let pass1 = k.nest(&[total], |_, jv| {
                let j = jv[0].clone();
                let si = add(row.clone(), j.clone());
                let mut st = vec![Stmt::Let { var: sv, value: rnd(load(sc, si.clone())) }];
                let qk_store = |m: i64, st: &mut Vec<Stmt>| {
                    if let (true, Some(o)) = (mode == m, qk_out) {
                        st.push(Stmt::Store { buf: o, index: qk_at(&j), value: narrow(Expr::Var(sv)) });
                    }
                };
                qk_store(0, &mut st);
                if softcap > 0.0 {
                    let c = fc(softcap, ct);
                    let v = bin(BinOp::Mul, c.clone(), math(MathFn::Tanh, bin(BinOp::Div, Expr::Var(sv), c)));
                    st.push(Stmt::Assign { var: sv, value: rnd(v) });
                }
                qk_store(1, &mut st);
                let inside = bin(
                    BinOp::And,
                    cmp(CmpOp::Ge, j.clone(), Expr::Var(lo)),
                    cmp(CmpOp::Lt, j.clone(), Expr::Var(hi)),
                );
                let mut bias = select(inside, fc(0.0, ct), neg_inf.clone());
                if let Some((m, mty)) = mask {
                    let [mb, mh, mi, mj] = m;
                    let pick = |e: &Expr, n: usize| if n == 1 { idx(0) } else { e.clone() };
                    let jj =
                        if mj < total { bin(BinOp::Min, j.clone(), idx(mj as i64 - 1)) } else { j.clone() };
                    let mi_ = linear(&[pick(&bi, mb), pick(&h, mh), pick(&i, mi), jj], &strides(&m));
                    let mv = if mty == Ty::Bool {
                        select(load(3, mi_), fc(0.0, ct), neg_inf.clone())
                    } else if mty != ct {
                        cast(ct, load(3, mi_))
                    } else {
                        load(3, mi_)
                    };
                    let mv = if mj < total {
                        select(cmp(CmpOp::Lt, j.clone(), idx(mj as i64)), mv, neg_inf.clone())
                    } else {
                        mv
                    };
                    bias = bin(BinOp::Add, bias, mv);
                }
                st.push(Stmt::Let { var: bv, value: bias });
                st.push(Stmt::Assign { var: sv, value: rnd(bin(BinOp::Add, Expr::Var(sv), Expr::Var(bv))) });
                st.push(Stmt::Assign {
                    var: allm,
                    value: bin(BinOp::And, Expr::Var(allm), cmp(CmpOp::Eq, Expr::Var(bv), neg_inf.clone())),
                });
                qk_store(2, &mut st);
                st.push(Stmt::Store { buf: sc, index: si, value: Expr::Var(sv) });
                st
            });
            r.extend(pass1);
            // Softmax in `sm_ty` precision.
            let native = (sm_ty == Ty::F32 && ct == Ty::F32) || sm_ty == Ty::F64;
            let r_sm = move |e: Expr| if native { e } else { round_to(e, sm_ty, ct) };
            let ld = |j: &Expr| load(sc, add(row.clone(), j.clone()));
            r.push(Stmt::Let { var: mx, value: neg_inf.clone() });
            r.extend(k.nest(&[total], |_, j| {
                vec![Stmt::Assign { var: mx, value: bin(BinOp::Max, Expr::Var(mx), r_sm(ld(&j[0]))) }]
            }));
            let zero_row = k.nest(&[total], |_, j| {
                vec![Stmt::Store { buf: sc, index: add(row.clone(), j[0].clone()), value: fc(0.0, ct) }]
            });
            let mut els = vec![Stmt::Let { var: sum, value: fc(0.0, ct) }];
            let ev = k.var(ct);
            els.extend(k.nest(&[total], |_, j| {
                let e = r_sm(math(MathFn::Exp, r_sm(bin(BinOp::Sub, r_sm(ld(&j[0])), Expr::Var(mx)))));
                let acc = bin(BinOp::Add, Expr::Var(sum), Expr::Var(ev));
                vec![
                    Stmt::Let { var: ev, value: e },
                    Stmt::Store { buf: sc, index: add(row.clone(), j[0].clone()), value: Expr::Var(ev) },
                    Stmt::Assign { var: sum, value: if sm_ty == Ty::BF16 { r_sm(acc) } else { acc } },
                ]
            }));
            let norm = |e: Expr| {
                if native {
                    bin(BinOp::Mul, e, Expr::Var(sum))
                } else {
                    r_sm(bin(BinOp::Div, e, Expr::Var(sum)))
                }
            };
            els.push(Stmt::Assign {
                var: sum,
                value: if native {
                    bin(BinOp::Div, fc(1.0, ct), Expr::Var(sum))
                } else {
                    r_sm(Expr::Var(sum))
                },
            });
            els.extend(k.nest(&[total], |_, j| {
                let si = add(row.clone(), j[0].clone());
                vec![Stmt::Store { buf: sc, index: si.clone(), value: rnd(norm(load(sc, si))) }]
            }));
            r.push(Stmt::If {
                cond: bin(BinOp::Or, Expr::Var(allm), cmp(CmpOp::Eq, Expr::Var(mx), neg_inf.clone())),
                then: zero_row,
                els,
            });
            if let (3, Some(o)) = (mode, qk_out) {
                r.extend(k.nest(&[total], |_, j| {
                    let v = narrow(load(sc, add(row.clone(), j[0].clone())));
                    vec![Stmt::Store { buf: o, index: qk_at(&j[0]), value: v }]
                }));
            }
            r
        });
        s.extend(rows);
        s.push(Stmt::Gemm {
            spec: spec_y.clone(),
            a: View { buf: sc, offset: idx(0) },
            b: View { buf: vsc, offset: mul(bhkv.clone(), idx((total * dv) as i64)) },
            c: View { buf: yh, offset: idx(0) },
            bias: None,
            scratch: gscratch,
        });
        s.extend(k.nest(&[sq, dv], |_, ie| {
            let yi = if rank == 4 {
                add(mul(bhq.clone(), idx((sq * dv) as i64)), linear(ie, &[dv, 1]))
            } else {
                add(
                    add(mul(bi.clone(), idx((sq * hq * dv) as i64)), mul(h.clone(), idx(dv as i64))),
                    linear(ie, &[hq * dv, 1]),
                )
            };
            vec![Stmt::Store { buf: y_buf, index: yi, value: narrow(load(yh, linear(ie, &[dv, 1]))) }]
        }));
        s
    });
    k.body.extend(body);
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// `nn.rotary_embedding`: rotates pairs of each head's first `rotary_embedding_dim` features by
/// the angles in the cos/sin caches (rows picked by `position_ids`, or by (batch, seq)).
pub(super) fn rotary(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let ty = cx.ty(0)?;
    let (b, h, s, hs, xst) = match x.len() {
        4 => (x[0], x[1], x[2], x[3], [x[1] * x[2] * x[3], x[2] * x[3], x[3]]),
        3 => {
            let heads = cx.int("num_heads", 0) as usize;
            if heads == 0 || !x[2].is_multiple_of(heads) {
                return Err("3-D X needs a num_heads dividing the hidden size".into());
            }
            let d = x[2] / heads;
            (x[0], heads, x[1], d, [x[1] * x[2], d, x[2]])
        }
        r => return Err(format!("X must be 3-D or 4-D, found rank {r}").into()),
    };
    let rd = match cx.int("rotary_embedding_dim", 0) {
        0 => hs,
        r => r as usize,
    };
    if rd > hs || rd % 2 != 0 {
        return Err(format!("rotary_embedding_dim {rd} must be even and at most the head size {hs}").into());
    }
    let half = rd / 2;
    let interleaved = cx.int("interleaved", 0) != 0;
    let pos = cx.has(3);
    let crow = cx.shape(1)[0];
    let (mut k, binds) = io_kernel(cx, "rotary_embedding")?;
    let ob = cx.operands.len();
    let ct = if matches!(ty, Ty::F16 | Ty::BF16) { Ty::F32 } else { ty };
    let wide = |e: Expr| if ct != ty { cast(ct, e) } else { e };
    let narrow = |e: Expr| if ct != ty { cast(ty, e) } else { e };
    let body = k.nest(&[b, s, h, hs], |_, ix| {
        let (bi, si, hi, e) = (&ix[0], &ix[1], &ix[2], &ix[3]);
        let base = linear(&[bi.clone(), hi.clone(), si.clone()], &xst);
        let at = |j: Expr| add(base.clone(), j);
        let row = if pos {
            let p = cast(Ty::Idx, load(3, add(mul(bi.clone(), idx(s as i64)), si.clone())));
            bin(BinOp::Min, bin(BinOp::Max, p, idx(0)), idx(crow as i64 - 1))
        } else {
            add(mul(bi.clone(), idx(s as i64)), si.clone())
        };
        // Feature e pairs with its partner; i is the pair's cache column.
        let (i, first, partner) = if interleaved {
            let i = div(e.clone(), idx(2));
            let first = cmp(CmpOp::Eq, rem(e.clone(), idx(2)), idx(0));
            let partner = select(first.clone(), add(e.clone(), idx(1)), sub(e.clone(), idx(1)));
            (i, first, partner)
        } else {
            let first = cmp(CmpOp::Lt, e.clone(), idx(half as i64));
            let i = select(first.clone(), e.clone(), sub(e.clone(), idx(half as i64)));
            let partner =
                select(first.clone(), add(e.clone(), idx(half as i64)), sub(e.clone(), idx(half as i64)));
            (i, first, partner)
        };
        let in_rot = cmp(CmpOp::Lt, e.clone(), idx(rd as i64));
        let safe_i = bin(BinOp::Min, i, idx(half.max(1) as i64 - 1));
        let safe_p = bin(BinOp::Min, partner, idx(hs as i64 - 1));
        let ci = add(mul(row, idx(half as i64)), safe_i);
        let (c, sn) = (wide(load(1, ci.clone())), wide(load(2, ci)));
        let xv = wide(load(0, at(e.clone())));
        let xp = wide(load(0, at(safe_p)));
        // first: c*x1 - s*x2; second: s*x1 + c*x2 (x1 = partner, x2 = self).
        let v1 =
            bin(BinOp::Sub, bin(BinOp::Mul, c.clone(), xv.clone()), bin(BinOp::Mul, sn.clone(), xp.clone()));
        let v2 = bin(BinOp::Add, bin(BinOp::Mul, sn, xp), bin(BinOp::Mul, c, xv.clone()));
        let v = select(in_rot, select(first, v1, v2), xv);
        vec![Stmt::Store { buf: ob, index: at(e.clone()), value: narrow(v) }]
    });
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}
