//! Data movement: ops whose results only select (or fill) elements of one input.
//!
//! Rather than a hand-written lowering per op, the op's own reference evaluation runs at compile
//! time on an *index tensor* (1, 2, 3, … in place of the data, 0 in place of a fill value), which
//! tells for every result element which input element it copies. When that map is affine in the
//! result's multi-index (transpose, slice, expand, split, …) the kernel is a plain loop nest with
//! computed strides; otherwise (tile, depth-to-space, nearest resize, reflect padding, …) the map
//! is stored as a constant table. Every op with these semantics is thereby compiled exactly as the
//! reference defines it. Concat and gathers with run-time indices have their own kernels.

use super::{io_kernel, kty, Bind, ConstData, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::ops::EvalCtx;
use edgec_ir::{OpKind, ScalarType, Tensor, TensorType};
use ndarray::{ArrayD, IxDyn};

pub(super) fn lower(cx: &mut OpCx) -> Result<Option<Lowered>, OpError> {
    use OpKind as K;
    Ok(Some(match cx.kind {
        K::Concat => concat(cx)?,
        K::Gather if cx.konst(1).is_none() => gather(cx)?,
        K::Transpose
        | K::Slice
        | K::Split
        | K::Expand
        | K::Tile
        | K::DepthToSpace
        | K::SpaceToDepth
        | K::Trilu
        | K::Gather
        | K::GatherElements
        | K::GatherNd
        | K::Pad
        | K::FromPanels => index_mapped(cx, 0)?,
        K::Resize if cx.attrs.str("mode").unwrap_or("nearest") == "nearest" => index_mapped(cx, 0)?,
        _ => return Ok(None),
    }))
}

/// The source element (1-based; 0 = fill value) of every element of every result.
fn index_maps(cx: &OpCx, data: usize) -> Result<Vec<Vec<i64>>, String> {
    let n = cx.operands[data].num_elements().unwrap_or(0) as usize;
    let shape = cx.shape(data);
    let iota = Tensor::I64(ArrayD::from_shape_vec(IxDyn(&shape), (1..=n as i64).collect()).unwrap());
    let mut inputs = Vec::new();
    let mut operand_types = cx.operands.clone();
    for i in 0..cx.operands.len() {
        if i == data {
            inputs.push(iota.clone());
            operand_types[i] = TensorType::of(&shape, ScalarType::I64);
        } else if cx.kind == OpKind::Pad && i == 2 {
            // The fill value becomes the sentinel 0.
            let s = cx.shape(2);
            inputs.push(Tensor::zeros(ScalarType::I64, &s));
            operand_types[i] = TensorType::of(&s, ScalarType::I64);
        } else {
            let t = cx
                .konst(i)
                .cloned()
                .or_else(|| (!cx.has(i)).then(|| Tensor::zeros(cx.operands[i].scalar(), &cx.shape(i))))
                .ok_or_else(|| {
                    format!("operand #{i} must be a compile-time constant for machine backends")
                })?;
            inputs.push(t);
        }
    }
    let result_types: Vec<TensorType> = cx
        .results
        .iter()
        .map(|t| TensorType::of(&t.static_shape().unwrap_or_default(), ScalarType::I64))
        .collect();
    let ecx = EvalCtx {
        attrs: cx.attrs,
        inputs: &inputs,
        operand_types: &operand_types,
        result_types: &result_types,
    };
    let outs = (cx.kind.def().eval)(&ecx)?;
    outs.iter()
        .map(|t| t.to_i64_vec().ok_or_else(|| "internal: index map is not integer".to_string()))
        .collect()
}

/// `base + Σ ix[d]·stride[d]` when the map has that form (all entries non-zero).
fn affine(map: &[i64], shape: &[usize]) -> Option<(i64, Vec<i64>)> {
    if map.is_empty() || map.contains(&0) {
        return None;
    }
    let st = strides(shape);
    let base = map[0];
    let stride: Vec<i64> =
        (0..shape.len()).map(|d| if shape[d] > 1 { map[st[d]] - base } else { 0 }).collect();
    // Check every element incrementally in row-major order.
    let mut ix = vec![0usize; shape.len()];
    let mut expect = base;
    for &m in map {
        if m != expect {
            return None;
        }
        for d in (0..shape.len()).rev() {
            ix[d] += 1;
            expect += stride[d];
            if ix[d] < shape[d] {
                break;
            }
            expect -= stride[d] * shape[d] as i64;
            ix[d] = 0;
        }
    }
    Some((base, stride))
}

fn signed_linear(ix: &[Expr], stride: &[i64], base: i64) -> Expr {
    let mut e = idx(base);
    for (i, &s) in ix.iter().zip(stride) {
        if s != 0 {
            e = add(e, mul(i.clone(), idx(s)));
        }
    }
    e
}

fn index_mapped(cx: &mut OpCx, data: usize) -> Result<Lowered, OpError> {
    let maps = index_maps(cx, data)?;
    let (mut k, mut binds) =
        io_kernel(cx, cx.kind.name().trim_start_matches("shape.").trim_start_matches("nn."))?;
    let ty = cx.ty(data)?;
    let n_in = cx.operands.len();
    let fill = if cx.kind == OpKind::Pad && cx.has(2) {
        match cx.konst(2) {
            Some(t) => cnst(t.to_f64_vec()[0], ty),
            None => load(2, idx(0)),
        }
    } else {
        cnst(0.0, ty)
    };
    for (r, map) in maps.iter().enumerate() {
        let shape = cx.rshape(r);
        let out = n_in + r;
        if let Some((base, stride)) = affine(map, &shape) {
            let body = k.nest(&shape, |_, ix| {
                let src = signed_linear(ix, &stride, base - 1);
                vec![Stmt::Store { buf: out, index: linear(ix, &strides(&shape)), value: load(data, src) }]
            });
            k.body.extend(body);
            continue;
        }
        let n = map.len();
        let (tty, bytes) = if n < (1 << 31) {
            (Ty::I32, map.iter().flat_map(|&v| (v as i32).to_le_bytes()).collect::<Vec<u8>>())
        } else {
            (Ty::I64, map.iter().flat_map(|&v| v.to_le_bytes()).collect::<Vec<u8>>())
        };
        let t = cx.add_table(ConstData { ty: tty, bytes: bytes.into() });
        let tb = k.param(tty, n as u64, Access::Read);
        binds.push(Bind::Table(t));
        let has_fill = map.contains(&0);
        let fill = fill.clone();
        let body = k.nest(&[n], |_, ix| {
            let src = cast(Ty::Idx, load(tb, ix[0].clone()));
            let v = if has_fill {
                // Clamp so the (unselected) load stays in bounds.
                let safe = bin(BinOp::Max, sub(src.clone(), idx(1)), idx(0));
                select(cmp(CmpOp::Eq, src, idx(0)), fill.clone(), load(data, safe))
            } else {
                load(data, sub(src, idx(1)))
            };
            vec![Stmt::Store { buf: out, index: ix[0].clone(), value: v }]
        });
        k.body.extend(body);
    }
    Ok(Lowered::Calls(vec![(k, binds)]))
}

fn concat(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let out = cx.rshape(0);
    let axis = super::norm_axis(cx.int("axis", 0), out.len())?;
    let (mut k, binds) = io_kernel(cx, "concat")?;
    let ob = cx.operands.len();
    let outer: usize = out[..axis].iter().product();
    let inner: usize = out[axis + 1..].iter().product();
    let mut at = 0;
    let mut parts = Vec::new();
    for i in 0..cx.operands.len() {
        let len = cx.shape(i)[axis];
        if len == 0 {
            continue;
        }
        parts.push((i, (at * inner) as u64));
        let run = len * inner;
        let off = at;
        let body = k.nest(&[outer, run], |_, ix| {
            let dst = add(
                mul(ix[0].clone(), idx((out[axis] * inner) as i64)),
                add(ix[1].clone(), idx((off * inner) as i64)),
            );
            vec![Stmt::Store { buf: ob, index: dst, value: load(i, linear(ix, &[run, 1])) }]
        });
        k.body.extend(body);
        at += len;
    }
    if outer == 1 {
        // Each operand is one contiguous run of the output: its producer could write it there.
        k.concat = Some((ob, parts));
    }
    Ok(Lowered::Calls(vec![(k, binds)]))
}

/// Gather along `axis` with run-time indices (negative indices count from the end; out-of-range
/// indices are clamped so the kernel never reads outside the data).
fn gather(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let data = cx.shape(0);
    let ishape = cx.shape(1);
    let axis = super::norm_axis(cx.int("axis", 0), data.len())?;
    let out = cx.rshape(0);
    let (mut k, binds) = io_kernel(cx, "gather")?;
    let _ = kty(cx.operands[1].scalar())?;
    let ni = ishape.len();
    let dim = data[axis] as i64;
    let ds = strides(&data);
    let body = k.nest(&out, |_, ix| {
        let iidx = linear(&ix[axis..axis + ni], &strides(&ishape));
        let raw = cast(Ty::Idx, load(1, iidx));
        let wrapped = select(cmp(CmpOp::Lt, raw.clone(), idx(0)), add(raw.clone(), idx(dim)), raw);
        let safe = bin(BinOp::Min, bin(BinOp::Max, wrapped, idx(0)), idx(dim - 1));
        let mut src = mul(safe, idx(ds[axis] as i64));
        for d in 0..axis {
            src = add(src, mul(ix[d].clone(), idx(ds[d] as i64)));
        }
        for d in axis + 1..data.len() {
            src = add(src, mul(ix[d - 1 + ni].clone(), idx(ds[d] as i64)));
        }
        vec![Stmt::Store { buf: 2, index: linear(ix, &strides(&out)), value: load(0, src) }]
    });
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}
