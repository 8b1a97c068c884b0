//! Ops addressed by run-time data: element and N-d gathers and scatters, trilu with a run-time
//! `k`, one-hot. Negative indices count from the end; indices are clamped into range so a kernel
//! never touches memory outside its buffers (the reference rejects out-of-range indices).

use super::{io_kernel, norm_axis, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::OpKind;

pub(super) fn lower(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    use OpKind as K;
    Ok(Some(match cx.kind {
        K::GatherElements if cx.konst(1).is_none() => gather_elements(cx)?,
        K::GatherNd if cx.konst(1).is_none() => gather_nd(cx)?,
        K::ScatterElements => scatter_elements(cx)?,
        K::ScatterNd => scatter_nd(cx)?,
        K::Trilu if cx.has(1) && cx.konst(1).is_none() => trilu(cx)?,
        K::OneHot => one_hot(cx)?,
        _ => return Ok(None),
    }))
}

/// A run-time index (any integer type) into a dim of length `n`: negative values count from
/// the end, then the result is clamped into `0..n`.
fn norm_index(raw: Expr, n: usize) -> Expr {
    let raw = cast(Ty::Idx, raw);
    let wrapped = select(cmp(CmpOp::Lt, raw.clone(), idx(0)), add(raw.clone(), idx(n as i64)), raw);
    bin(BinOp::Min, bin(BinOp::Max, wrapped, idx(0)), idx(n.max(1) as i64 - 1))
}

fn gather_elements(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let data = cx.shape(0);
    let ishape = cx.shape(1);
    let axis = norm_axis(cx.int("axis", 0), data.len())?;
    let (mut k, binds) = io_kernel(cx, "gather_elements")?;
    let ds = strides(&data);
    k.body = k.nest(&ishape, |_, ix| {
        let lin = linear(ix, &strides(&ishape));
        let mut src = mul(norm_index(load(1, lin.clone()), data[axis]), idx(ds[axis] as i64));
        for d in (0..data.len()).filter(|&d| d != axis) {
            src = add(src, mul(ix[d].clone(), idx(ds[d] as i64)));
        }
        vec![Stmt::Store { buf: 2, index: lin, value: load(0, src) }]
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// Offset into data of the slice addressed by the index tuple starting at `tuple` (of length
/// `m`, into dims `b..b+m`), plus the batch offset of the leading `b` index dims in `ix`.
fn nd_offset(data: &[usize], ix: &[Expr], b: usize, m: usize, tuple: Expr) -> Expr {
    let ds = strides(data);
    let mut off = linear(&ix[..b], &ds[..b]);
    for j in 0..m {
        let i = norm_index(load(1, add(tuple.clone(), idx(j as i64))), data[b + j]);
        off = add(off, mul(i, idx(ds[b + j] as i64)));
    }
    off
}

fn gather_nd(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let data = cx.shape(0);
    let ishape = cx.shape(1);
    let b = cx.int("batch_dims", 0) as usize;
    let q = ishape.len();
    let m = ishape[q - 1];
    let out = cx.rshape(0);
    let (mut k, binds) = io_kernel(cx, "gather_nd")?;
    let ds = strides(&data);
    k.body = k.nest(&out, |_, ix| {
        // ix = [index dims (q-1)] ++ [slice dims].
        let tuple = mul(linear(&ix[..q - 1], &strides(&ishape[..q - 1])), idx(m as i64));
        let mut src = nd_offset(&data, ix, b, m, tuple);
        src = add(src, linear(&ix[q - 1..], &ds[b + m..]));
        vec![Stmt::Store { buf: 2, index: linear(ix, &strides(&out)), value: load(0, src) }]
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// `old ⊕ new` for a scatter `reduction`.
fn combine(red: &str, ty: Ty, old: Expr, new: Expr) -> Result<Expr, OpError> {
    if red != "none" && ty == Ty::Bool {
        return Err(format!("scatter reduction {red} on bool data is not supported").into());
    }
    Ok(match red {
        "none" => new,
        "add" => bin(BinOp::Add, old, new),
        "mul" => bin(BinOp::Mul, old, new),
        // NaN-propagating, as the reference's.
        "max" => bin(BinOp::Max, old, new),
        "min" => bin(BinOp::Min, old, new),
        r => return Err(format!("unknown scatter reduction {r:?}").into()),
    })
}

/// Output = data, then `body` applies the updates in order.
fn scatter_kernel(cx: &mut OpCx, name: &str, dst: impl Fn(&[Expr]) -> Expr) -> Result<Lowered, OpError> {
    let data = cx.shape(0);
    let ushape = cx.shape(2);
    let ty = cx.ty(0)?;
    let red = cx.attrs.str("reduction").unwrap_or("none").to_string();
    let (mut k, binds) = io_kernel(cx, name)?;
    let n: usize = data.iter().product();
    k.body.push(Stmt::Copy {
        dst: View { buf: 3, offset: idx(0) },
        src: View { buf: 0, offset: idx(0) },
        elems: n as u64,
    });
    let body = k.try_nest(&ushape, |_, ix| {
        let d = dst(ix);
        let new = load(2, linear(ix, &strides(&ushape)));
        Ok::<_, OpError>(vec![Stmt::Store {
            buf: 3,
            index: d.clone(),
            value: combine(&red, ty, load(3, d), new)?,
        }])
    })?;
    k.body.extend(body);
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn scatter_elements(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let data = cx.shape(0);
    let ishape = cx.shape(1);
    let axis = norm_axis(cx.int("axis", 0), data.len())?;
    let ds = strides(&data);
    scatter_kernel(cx, "scatter_elements", move |ix| {
        let i = norm_index(load(1, linear(ix, &strides(&ishape))), data[axis]);
        let mut d = mul(i, idx(ds[axis] as i64));
        for dd in (0..data.len()).filter(|&dd| dd != axis) {
            d = add(d, mul(ix[dd].clone(), idx(ds[dd] as i64)));
        }
        d
    })
}

fn scatter_nd(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let data = cx.shape(0);
    let ishape = cx.shape(1);
    let q = ishape.len();
    let m = ishape[q - 1];
    let ds = strides(&data);
    scatter_kernel(cx, "scatter_nd", move |ix| {
        let tuple = mul(linear(&ix[..q - 1], &strides(&ishape[..q - 1])), idx(m as i64));
        add(nd_offset(&data, ix, 0, m, tuple), linear(&ix[q - 1..], &ds[m..]))
    })
}

fn trilu(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let x = cx.shape(0);
    let r = x.len();
    let upper = cx.int("upper", 1) != 0;
    let ty = cx.ty(0)?;
    let (mut k, binds) = io_kernel(cx, "trilu")?;
    k.body = k.nest(&x, |_, ix| {
        let kk = cast(Ty::Idx, load(1, idx(0)));
        let diff = sub(ix[r - 1].clone(), ix[r - 2].clone());
        let keep = if upper { cmp(CmpOp::Ge, diff, kk) } else { cmp(CmpOp::Le, diff, kk) };
        let lin = linear(ix, &strides(&x));
        vec![Stmt::Store { buf: 2, index: lin.clone(), value: select(keep, load(0, lin), cnst(0.0, ty)) }]
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn one_hot(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let s = cx.shape(0);
    let out = cx.rshape(0);
    let axis = norm_axis(cx.int("axis", -1), s.len() + 1)?;
    let depth = out[axis];
    let ity = cx.ty(0)?;
    if ity == Ty::Bool {
        return Err("one_hot indices must be numeric".into());
    }
    let (mut k, binds) = io_kernel(cx, "one_hot")?;
    k.body = k.nest(&out, |_, ix| {
        let mut iix: Vec<Expr> = ix.to_vec();
        let class = iix.remove(axis);
        // Fractional indices truncate; negative ones count from the end.
        let raw = cast(Ty::Idx, load(0, linear(&iix, &strides(&s))));
        let i = select(cmp(CmpOp::Lt, raw.clone(), idx(0)), add(raw.clone(), idx(depth as i64)), raw);
        let v = select(cmp(CmpOp::Eq, i, class), load(2, idx(1)), load(2, idx(0)));
        vec![Stmt::Store { buf: 3, index: linear(ix, &strides(&out)), value: v }]
    });
    Ok(Lowered::Calls(vec![(k, binds)]))
}
