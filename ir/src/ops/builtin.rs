//! `builtin.*`, `func.*` and `fused.*`: constants, function return, and the region-holding ops
//! (a delegate's subgraph, a fused kernel).

use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::AttrKind;
use crate::tensor::Tensor;
use crate::types::TensorType;

pub static CONSTANT: OpDef = OpDef {
    name: "builtin.constant",
    summary: "A compile-time tensor (weights, folded shapes); its type is the `value`'s type.",
    operands: &[],
    results: &["out"],
    attrs: &[AttrDef::req("value", AttrKind::Tensor)],
    traits: Traits::PURE.union(Traits::CONSTANT_LIKE),
    infer: infer_constant,
    eval: eval_constant,
};

fn infer_constant(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let t = ctx.attrs.tensor("value").ok_or("missing `value`")?;
    Ok(vec![t.ty.clone()])
}

fn eval_constant(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let t = ctx.attrs.tensor("value").ok_or("missing `value`")?;
    Ok(vec![t.to_tensor()?])
}

pub static RETURN: OpDef = OpDef {
    name: "func.return",
    summary: "Ends a function body; its operands are the function's results.",
    operands: &["values..."],
    results: &[],
    attrs: &[],
    traits: Traits::TERMINATOR,
    infer: |_| Ok(vec![]),
    eval: |_| Ok(vec![]),
};

pub static SUBGRAPH: OpDef = OpDef {
    name: "builtin.subgraph",
    summary: "Runs its single-block region with the operands bound to the block arguments; \
              the region's `builtin.yield` operands are the results. Groups ops for a delegate.",
    operands: &["inputs..."],
    results: &["outputs..."],
    attrs: &[AttrDef::opt("target", AttrKind::Str, "\"\"")],
    traits: Traits::PURE.union(Traits::HAS_REGIONS),
    // The result types are whatever the region yields; the verifier checks that against the
    // region's terminator, and the interpreter evaluates the region itself.
    infer: |ctx| Err(format!("subgraph results are given by its region ({} operands)", ctx.operands.len())),
    eval: |_| Err("subgraph is evaluated by the interpreter driver".into()),
};

pub static FUSED_KERNEL: OpDef = OpDef {
    name: "fused.kernel",
    summary: "One kernel made of the ops in its single-block region (an anchor such as a convolution or \
              matmul followed by an elementwise epilogue, or a chain of elementwise ops): it means \
              exactly what the region computes, with the operands bound to the block arguments. The \
              fusion pass forms it; `pattern` names the fused ops for reports and profiles.",
    operands: &["inputs..."],
    results: &["outputs..."],
    attrs: &[AttrDef::req("pattern", AttrKind::Str)],
    traits: Traits::PURE.union(Traits::HAS_REGIONS),
    infer: |ctx| {
        Err(format!("fused kernel results are given by its region ({} operands)", ctx.operands.len()))
    },
    eval: |_| Err("a fused kernel is evaluated by the interpreter driver".into()),
};

pub static YIELD: OpDef = OpDef {
    name: "builtin.yield",
    summary: "Ends a region block; its operands become the results of the enclosing op.",
    operands: &["values..."],
    results: &[],
    attrs: &[],
    traits: Traits::TERMINATOR,
    infer: |_| Ok(vec![]),
    eval: |_| Ok(vec![]),
};
