//! The verifier. Every pass leaves the IR in a state where [`verify_module`] returns `Ok`.
//!
//! Invariants checked, per function:
//! 1. **Structure.** The body block ends with exactly one `func.return`; a `TERMINATOR` op
//!    (`func.return`, `builtin.yield`) appears only as the last op of a block, and every region
//!    block ends with `builtin.yield`. The number of result names equals the number of returned
//!    values.
//! 2. **Placement.** Every op appears in at most one block, and every block is the body or
//!    belongs to one region, once. (An op in no block is a dead arena entry left by a pass; it is
//!    ignored, and dominance guarantees that nothing placed uses its results.)
//! 3. **SSA.** Every value is defined once; its recorded definition (`ValueDef`) matches the op
//!    result or block argument that holds it.
//! 4. **Dominance.** Every operand is defined before its use: by an earlier op of the same block,
//!    an argument of that block, or (for ops in regions) a value visible in an enclosing block.
//! 5. **Signature.** Operand and result counts are within the op's declared arity.
//! 6. **Attributes.** Every required attribute is present, none is undeclared, and each has the
//!    declared kind.
//! 7. **Regions.** Only ops with the `HAS_REGIONS` trait hold regions; a `builtin.subgraph`'s
//!    region has one block whose argument types equal the operand types and whose yielded
//!    types equal the result types.
//! 8. **Types.** Each op's result types are compatible with what its shape rule infers from the
//!    operand types (and known constant operands): same element type and rank, equal static
//!    dims. `builtin.constant`'s value has a static type whose size matches its bytes, and the
//!    result type equals that type exactly.
//! 9. **Names.** Named values are unique within a function and are not all-digit (numbers are
//!    reserved for the printer).

use crate::entity::{Block, Op, SecondaryMap, Value};
use crate::error::IrError;
use crate::module::{Function, Loc, Module, ValueDef};
use crate::ops::{AttrReq, InferCtx, OpKind, Traits};
use crate::tensor::Tensor;
use std::collections::HashSet;

pub fn verify_module(m: &Module) -> Result<(), IrError> {
    for f in &m.functions {
        verify_function(f)?;
    }
    Ok(())
}

fn err(f: &Function, op: Option<Op>, message: String) -> IrError {
    let (op_name, loc) = match op {
        Some(o) => (f.ops[o].kind.name().to_string(), f.ops[o].loc.clone()),
        None => (format!("func @{}", f.name), Loc::Unknown),
    };
    IrError::Verify { op, op_name, loc, message }
}

pub fn verify_function(f: &Function) -> Result<(), IrError> {
    let mut v = Verifier {
        f,
        defined: SecondaryMap::with_default(false),
        op_seen: SecondaryMap::with_default(false),
        block_seen: SecondaryMap::with_default(false),
    };
    // 1. structure of the body
    let Some(ret) = f.return_op() else {
        return Err(err(f, None, "function body does not end with `func.return`".into()));
    };
    if f.result_names.len() != f.ops[ret].operands.len() {
        return Err(err(
            f,
            Some(ret),
            format!(
                "function has {} result names but returns {} values",
                f.result_names.len(),
                f.ops[ret].operands.len()
            ),
        ));
    }
    // 9. names
    let mut names = HashSet::new();
    for (_, vd) in f.values.iter() {
        if let Some(n) = &vd.name {
            if n.is_empty() || n.chars().all(|c| c.is_ascii_digit()) {
                return Err(err(f, None, format!("value name {n:?} is reserved for numbering")));
            }
            if !names.insert(n.as_str()) {
                return Err(err(f, None, format!("value name {n:?} is used twice")));
            }
        }
    }
    // 2. Placement is checked while walking: `op_seen`/`block_seen` reject a second use. Unplaced
    // ops are dead arena entries left by a pass; dominance already guarantees that nothing placed
    // refers to their results.
    v.block(f.body, OpKind::Return)?;
    Ok(())
}

struct Verifier<'a> {
    f: &'a Function,
    defined: SecondaryMap<Value, bool>,
    op_seen: SecondaryMap<Op, bool>,
    block_seen: SecondaryMap<Block, bool>,
}

impl Verifier<'_> {
    fn define(&mut self, v: Value, expected: ValueDef, op: Option<Op>) -> Result<(), IrError> {
        let f = self.f;
        if f.values.get(v).is_none() {
            return Err(err(f, op, format!("refers to value {v} that does not exist")));
        }
        if *self.defined.get(v) {
            return Err(err(f, op, format!("value {v} is defined twice")));
        }
        if f.values[v].def != expected {
            return Err(err(f, op, format!("value {v} records a different definition")));
        }
        self.defined.set(v, true);
        Ok(())
    }

    fn block(&mut self, b: Block, terminator: OpKind) -> Result<(), IrError> {
        let f = self.f;
        if *self.block_seen.get(b) {
            return Err(err(f, None, format!("block {b} is used twice")));
        }
        self.block_seen.set(b, true);
        for (index, &a) in f.blocks[b].args.iter().enumerate() {
            self.define(a, ValueDef::Arg { block: b, index }, None)?;
        }
        let ops = &f.blocks[b].ops;
        match ops.last() {
            Some(&last) if f.ops[last].kind == terminator => {}
            _ => {
                return Err(err(
                    f,
                    ops.last().copied(),
                    format!("block must end with `{}`", terminator.name()),
                ))
            }
        }
        // Values defined in this block are visible only within it (and nested regions); undo
        // them at the end so sibling regions cannot see each other's values.
        let mut local = Vec::new();
        for (i, &op) in ops.iter().enumerate() {
            if *self.op_seen.get(op) {
                return Err(err(f, Some(op), "op appears in two places".into()));
            }
            self.op_seen.set(op, true);
            let d = &f.ops[op];
            if d.kind.traits().contains(Traits::TERMINATOR) && i + 1 != ops.len() {
                return Err(err(f, Some(op), "terminator is not the last op of its block".into()));
            }
            for &o in &d.operands {
                if f.values.get(o).is_none() || !*self.defined.get(o) {
                    return Err(err(f, Some(op), format!("operand {o} is used before it is defined")));
                }
            }
            self.op_signature(op)?;
            for (ri, region) in d.regions.iter().enumerate() {
                for &rb in &region.blocks {
                    self.block(rb, OpKind::Yield)?;
                }
                if region.blocks.is_empty() {
                    return Err(err(f, Some(op), format!("region #{ri} has no block")));
                }
            }
            for (index, &r) in d.results.iter().enumerate() {
                self.define(r, ValueDef::Result { op, index }, Some(op))?;
                local.push(r);
            }
            self.op_types(op)?;
        }
        for a in f.blocks[b].args.iter().chain(&local) {
            // Body-level values stay visible for the function's own return; region values go.
            if b != f.body {
                self.defined.set(*a, false);
            }
        }
        Ok(())
    }

    fn op_signature(&self, op: Op) -> Result<(), IrError> {
        let f = self.f;
        let d = &f.ops[op];
        let def = d.kind.def();
        let (omin, omax) = def.operand_arity();
        let n = d.operands.len();
        if n < omin || omax.is_some_and(|m| n > m) {
            return Err(err(f, Some(op), format!("takes {} operands, found {n}", describe(omin, omax))));
        }
        let (rmin, rmax) = def.result_arity();
        let n = d.results.len();
        if n < rmin || rmax.is_some_and(|m| n > m) {
            return Err(err(f, Some(op), format!("has {} results, found {n}", describe(rmin, rmax))));
        }
        for ad in def.attrs {
            match d.attrs.get(ad.name) {
                None if ad.req == AttrReq::Required => {
                    return Err(err(f, Some(op), format!("missing required attribute `{}`", ad.name)));
                }
                Some(a) if !a.fits(ad.kind) => {
                    return Err(err(
                        f,
                        Some(op),
                        format!(
                            "attribute `{}` must be {}, found {}",
                            ad.name,
                            ad.kind.name(),
                            a.kind().name()
                        ),
                    ));
                }
                _ => {}
            }
        }
        for (name, _) in d.attrs.iter() {
            if def.attr(name).is_none() {
                return Err(err(f, Some(op), format!("unknown attribute `{name}`")));
            }
        }
        if !d.regions.is_empty() && !def.traits.contains(Traits::HAS_REGIONS) {
            return Err(err(f, Some(op), "op does not take regions".into()));
        }
        Ok(())
    }

    fn op_types(&self, op: Op) -> Result<(), IrError> {
        let f = self.f;
        let d = &f.ops[op];
        let declared: Vec<_> = d.results.iter().map(|&r| f.values[r].ty.clone()).collect();
        if let (OpKind::Constant, Some(t)) = (d.kind, d.attrs.tensor("value")) {
            // The value is known, so the type must be exact (the general rule below tolerates
            // symbolic/unknown dims on one side), and the bytes must be the type's size.
            let size =
                t.ty.num_elements()
                    .and_then(|n| n.checked_mul(t.ty.scalar().bits() as u64))
                    .map(|b| b.div_ceil(8));
            match size {
                None if t.ty.is_static() => {
                    return Err(err(f, Some(op), format!("constant value type {} is too large", t.ty)))
                }
                None => return Err(err(f, Some(op), format!("constant value has non-static type {}", t.ty))),
                Some(n) if n != t.bytes.len() as u64 => {
                    return Err(err(
                        f,
                        Some(op),
                        format!("constant value has {} bytes but its type {} needs {n}", t.bytes.len(), t.ty),
                    ))
                }
                Some(_) => {}
            }
            if let Some(dec) = declared.first().filter(|&dec| *dec != t.ty) {
                return Err(err(
                    f,
                    Some(op),
                    format!("result #0 is declared {dec} but its value has type {}", t.ty),
                ));
            }
        }
        let inferred = match d.kind {
            OpKind::Return | OpKind::Yield => return Ok(()),
            _ if d.kind.traits().contains(Traits::HAS_REGIONS) => {
                let region =
                    d.regions.first().ok_or_else(|| err(f, Some(op), "subgraph has no region".into()))?;
                if region.blocks.len() != 1 || d.regions.len() != 1 {
                    return Err(err(f, Some(op), "subgraph takes exactly one region with one block".into()));
                }
                let blk = &f.blocks[region.blocks[0]];
                let arg_tys: Vec<_> = blk.args.iter().map(|&a| &f.values[a].ty).collect();
                let opnd_tys: Vec<_> = d.operands.iter().map(|&a| &f.values[a].ty).collect();
                if arg_tys != opnd_tys {
                    return Err(err(
                        f,
                        Some(op),
                        "region argument types differ from the operand types".into(),
                    ));
                }
                let y = *blk.ops.last().expect("checked terminator");
                f.ops[y].operands.iter().map(|&v| f.values[v].ty.clone()).collect()
            }
            _ => {
                let operands: Vec<_> = d.operands.iter().map(|&v| f.values[v].ty.clone()).collect();
                let consts: Vec<Option<Tensor>> = d.operands.iter().map(|&v| constant_value(f, v)).collect();
                let ctx = InferCtx {
                    attrs: &d.attrs,
                    operands: &operands,
                    consts: &consts,
                    num_results: d.results.len(),
                };
                (d.kind.def().infer)(&ctx).map_err(|m| err(f, Some(op), m))?
            }
        };
        if inferred.len() != declared.len() {
            return Err(err(
                f,
                Some(op),
                format!("shape rule gives {} results, op has {}", inferred.len(), declared.len()),
            ));
        }
        for (i, (inf, dec)) in inferred.iter().zip(&declared).enumerate() {
            if !dec.is_compatible_with(inf) {
                return Err(err(
                    f,
                    Some(op),
                    format!("result #{i} is declared {dec} but the shape rule gives {inf}"),
                ));
            }
        }
        Ok(())
    }
}

fn describe(min: usize, max: Option<usize>) -> String {
    match max {
        Some(m) if m == min => format!("{min}"),
        Some(m) => format!("{min} to {m}"),
        None => format!("at least {min}"),
    }
}

/// The value of `v` if it is the result of a `builtin.constant`. Large constants are skipped:
/// shape rules only need small integer operands (axes, shapes, pads).
pub fn constant_value(f: &Function, v: Value) -> Option<Tensor> {
    const MAX_BYTES: usize = 1 << 16;
    match f.values[v].def {
        ValueDef::Result { op, .. } if f.ops[op].kind == OpKind::Constant => {
            let t = f.ops[op].attrs.tensor("value")?;
            if t.bytes.len() > MAX_BYTES {
                return None;
            }
            t.to_tensor().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! Invariants that the text form cannot express (the parser builds well-formed arenas, gives
    //! each name one definition and takes result names from the signature) are tested here by
    //! corrupting modules built in memory; the others are covered by the filetests in
    //! `testsuite/filetests/verify/`.

    use super::*;
    use crate::attr::{Attr, Attrs};
    use crate::builder::Builder;
    use crate::entity::EntityRef;
    use crate::module::{BlockData, Region};
    use crate::tensor::ConstTensor;
    use crate::types::{ScalarType, TensorType};

    fn scalar() -> TensorType {
        TensorType::of(&[], ScalarType::F32)
    }

    /// `f(x) = subgraph(x) { yield }` with one constant in the body.
    fn sample() -> (Function, Op, Op) {
        let mut f = Function::new("f");
        let x = f.add_param(scalar(), Some("x".into()));
        let mut b = Builder::new(&mut f);
        let c = b.constant(ConstTensor::from_tensor(&Tensor::zeros(ScalarType::F32, &[])), Loc::Unknown);
        let sg = b.op_typed(OpKind::Subgraph, vec![x], vec![scalar()], Attrs::new(), Loc::Unknown);
        let rb = f.blocks.push(BlockData::default());
        let a = f.add_block_arg(rb, scalar(), None);
        Builder { func: &mut f, block: rb }.ret(vec![a]);
        f.ops[sg].regions.push(Region { blocks: vec![rb] });
        let r = f.ops[sg].results[0];
        Builder::new(&mut f).ret(vec![r, c]);
        f.result_names = vec!["r".into(), "c".into()];
        let c_op = match f.values[c].def {
            ValueDef::Result { op, .. } => op,
            _ => unreachable!(),
        };
        (f, sg, c_op)
    }

    fn message(f: &Function) -> String {
        verify_function(f).expect_err("verifier accepted a broken function").message().to_string()
    }

    #[test]
    fn sample_is_valid() {
        verify_function(&sample().0).unwrap();
    }

    #[test]
    fn result_names_match_returned_values() {
        let (mut f, _, _) = sample();
        f.result_names.pop();
        assert_eq!(message(&f), "function has 1 result names but returns 2 values");
    }

    #[test]
    fn op_placed_twice() {
        let (mut f, _, c) = sample();
        let body = f.body;
        f.blocks[body].ops.insert(1, c);
        assert_eq!(message(&f), "op appears in two places");
    }

    #[test]
    fn block_used_twice() {
        let (mut f, sg, _) = sample();
        let rb = f.ops[sg].regions[0].blocks[0];
        f.ops[sg].regions.push(Region { blocks: vec![rb] });
        assert!(message(&f).contains("is used twice"));
        let (mut f, sg, _) = sample();
        let body = f.body;
        f.ops[sg].regions[0].blocks[0] = body;
        assert!(message(&f).contains("is used twice"));
    }

    #[test]
    fn value_defined_twice() {
        let (mut f, sg, c) = sample();
        // The subgraph's result is also listed as a result of the constant.
        let r = f.ops[sg].results[0];
        f.ops[c].results[0] = r;
        assert!(message(&f).contains("records a different definition"), "{}", message(&f));
        let (mut f, _, _) = sample();
        let x = f.params()[0];
        let body = f.body;
        f.blocks[body].args.push(x);
        assert!(message(&f).contains("is defined twice"), "{}", message(&f));
    }

    #[test]
    fn operand_refers_to_missing_value() {
        let (mut f, sg, _) = sample();
        f.ops[sg].operands[0] = Value::new(999);
        assert!(message(&f).contains("is used before it is defined"));
    }

    #[test]
    fn names_used_twice() {
        let (mut f, sg, _) = sample();
        let r = f.ops[sg].results[0];
        f.values[r].name = Some("x".into());
        assert_eq!(message(&f), "value name \"x\" is used twice");
    }

    #[test]
    fn constant_bytes_match_type() {
        let (mut f, _, c) = sample();
        f.ops[c].attrs.set("value", Attr::Tensor(ConstTensor { ty: scalar(), bytes: vec![0u8; 3].into() }));
        assert_eq!(message(&f), "constant value has 3 bytes but its type tensor<f32> needs 4");
    }
}
