//! Helpers shared by the op families: axis normalization, broadcasting of types and arrays,
//! attribute accessors with defaults.

use super::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::{Dim, TensorType};

/// Resolves a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r.max(1) && !(rank == 0 && axis == 0) {
        return Err(format!("axis {axis} is out of range for rank {rank}"));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

/// Numpy-style broadcast of two dim lists. Unknown and symbolic dims broadcast against 1 and
/// against themselves; a conflict between two static dims > 1 is an error.
pub fn broadcast_dims(a: &[Dim], b: &[Dim]) -> OpResult<Vec<Dim>> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank { &a[i + a.len() - rank] } else { &Dim::Static(1) };
        let db = if i + b.len() >= rank { &b[i + b.len() - rank] } else { &Dim::Static(1) };
        let d = match (da, db) {
            (Dim::Static(1), d) | (d, Dim::Static(1)) => d.clone(),
            (Dim::Static(x), Dim::Static(y)) if x == y => Dim::Static(*x),
            (Dim::Static(x), Dim::Static(y)) => {
                return Err(format!("cannot broadcast dims {x} and {y}"));
            }
            (Dim::Sym(x), Dim::Sym(y)) if x == y => Dim::Sym(x.clone()),
            (Dim::Static(x), _) | (_, Dim::Static(x)) => Dim::Static(*x),
            _ => Dim::Unknown,
        };
        out.push(d);
    }
    Ok(out)
}

/// Broadcast of several runtime shapes.
pub fn broadcast_shapes(shapes: &[&[usize]]) -> OpResult<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return Err(format!("cannot broadcast shapes {shapes:?}"));
            }
        }
    }
    Ok(out)
}

/// Converts runtime shape into static dims.
pub fn static_dims(shape: &[usize]) -> Vec<Dim> {
    shape.iter().map(|&d| Dim::Static(d as u64)).collect()
}

/// Operand `i`'s type, or an error naming the missing operand.
pub fn operand<'a>(ctx: &'a InferCtx, i: usize) -> OpResult<&'a TensorType> {
    ctx.operands.get(i).ok_or_else(|| format!("missing operand #{i}"))
}

pub fn input<'a>(ctx: &'a EvalCtx, i: usize) -> OpResult<&'a Tensor> {
    ctx.inputs.get(i).ok_or_else(|| format!("missing operand #{i}"))
}

/// Shape rule placeholder for ops whose rule has not been written.
pub fn infer_unimplemented(_: &InferCtx) -> OpResult<Vec<TensorType>> {
    Err("shape rule not implemented yet".into())
}

/// Evaluation placeholder for ops whose semantics have not been written.
pub fn eval_unimplemented(_: &EvalCtx) -> OpResult<Vec<Tensor>> {
    Err("reference evaluation not implemented yet".into())
}

/// Declares an op whose rules are not written yet. It declares no attributes, so the verifier
/// rejects any use that carries some, and its shape rule fails: a stub cannot pass a test.
#[macro_export]
macro_rules! stub_op {
    ($id:ident, $name:literal) => {
        pub static $id: $crate::ops::OpDef = $crate::ops::OpDef {
            name: $name,
            summary: "(not implemented yet)",
            operands: &["inputs..."],
            results: &["outputs..."],
            attrs: &[],
            traits: $crate::ops::Traits::PURE,
            infer: $crate::ops::util::infer_unimplemented,
            eval: $crate::ops::util::eval_unimplemented,
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        let d = |v: &[u64]| v.iter().map(|&x| Dim::Static(x)).collect::<Vec<_>>();
        assert_eq!(broadcast_dims(&d(&[2, 1, 3]), &d(&[4, 1])).unwrap(), d(&[2, 4, 3]));
        assert!(broadcast_dims(&d(&[2]), &d(&[3])).is_err());
        assert_eq!(broadcast_shapes(&[&[3, 1], &[1, 4], &[4]]).unwrap(), vec![3, 4]);
        assert_eq!(norm_axis(-1, 3).unwrap(), 2);
        assert!(norm_axis(3, 3).is_err());
    }
}
