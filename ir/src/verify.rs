//! The verifier. Every pass leaves the IR in a state where [`verify_module`] returns `Ok`.
//!
//! Invariants checked, per function:
//! 1. **Structure.** The body block ends with exactly one `func.return`; a `TERMINATOR` op
//!    (`func.return`, `builtin.yield`) appears only as the last op of a block, and every region
//!    block ends with `builtin.yield`. The number of result names equals the number of returned
//!    values.
//! 2. **Placement.** Every op appears in exactly one block; every block belongs to the body or
//!    to exactly one region.
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
//!    dims. `builtin.constant`'s result type equals its value's type.
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
    v.block(f.body, OpKind::Return)?;
    // 2. every op placed
    for op in f.ops.keys() {
        if !*v.op_seen.get(op) {
            // Unplaced ops are dead arena entries left by a pass; they are allowed only if
            // nothing placed refers to their results, which dominance already guarantees.
            continue;
        }
    }
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
                return Err(err(f, ops.last().copied(), format!("block must end with `{}`", terminator.name())))
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
                        format!("attribute `{}` must be {}, found {}", ad.name, ad.kind.name(), a.kind().name()),
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
        let inferred = match d.kind {
            OpKind::Return | OpKind::Yield => return Ok(()),
            OpKind::Subgraph => {
                let region = d.regions.first().ok_or_else(|| err(f, Some(op), "subgraph has no region".into()))?;
                if region.blocks.len() != 1 || d.regions.len() != 1 {
                    return Err(err(f, Some(op), "subgraph takes exactly one region with one block".into()));
                }
                let blk = &f.blocks[region.blocks[0]];
                let arg_tys: Vec<_> = blk.args.iter().map(|&a| &f.values[a].ty).collect();
                let opnd_tys: Vec<_> = d.operands.iter().map(|&a| &f.values[a].ty).collect();
                if arg_tys != opnd_tys {
                    return Err(err(f, Some(op), "region argument types differ from the operand types".into()));
                }
                let y = *blk.ops.last().expect("checked terminator");
                f.ops[y].operands.iter().map(|&v| f.values[v].ty.clone()).collect()
            }
            _ => {
                let operands: Vec<_> = d.operands.iter().map(|&v| f.values[v].ty.clone()).collect();
                let consts: Vec<Option<Tensor>> = d.operands.iter().map(|&v| constant_value(f, v)).collect();
                let ctx = InferCtx { attrs: &d.attrs, operands: &operands, consts: &consts, num_results: d.results.len() };
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
                return Err(err(f, Some(op), format!("result #{i} is declared {dec} but the shape rule gives {inf}")));
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
