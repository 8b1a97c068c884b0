//! Canonicalization: constant folding, common subexpression elimination, algebraic
//! simplification and batch-norm folding.
//!
//! The passes share the helpers below. Each one rewrites uses through a [`Replacements`] table
//! that is applied to every op at the end (one sweep over the arena instead of one per replaced
//! value), and removes from its block the ops whose results it replaced, so that it reaches a
//! fixed point without re-matching ops it already rewrote. Ops that merely became unused (the
//! operands of a folded op, say) are left for `dce`.
//!
//! Testing: every pass has a differential unit test (the reference interpreter on
//! pseudo-random inputs, with signed zeros, before and after the pass);
//! `testsuite/filetests/passes/*.eir` pin the printed output (the `passes=` filetest kind, which
//! also runs the interpreter before and after); the testsuite's `pipeline` test runs every zoo
//! model and node test through the whole default pipeline.

pub mod cse;
pub mod fold_batchnorm;
pub mod fold_constants;
pub mod simplify;

#[cfg(test)]
pub(crate) mod testutil;

use edgec_ir::entity::{Block, SecondaryMap};
use edgec_ir::module::ValueDef;
use edgec_ir::{Attr, Attrs, ConstTensor, Function, Loc, Op, OpKind, Tensor, TensorType, Value};

/// Every block of `f`, outer blocks before the blocks of the regions they contain.
pub(crate) fn collect_blocks(f: &Function) -> Vec<Block> {
    fn walk(f: &Function, b: Block, out: &mut Vec<Block>) {
        out.push(b);
        for &op in &f.blocks[b].ops {
            for r in &f.ops[op].regions {
                for &rb in &r.blocks {
                    walk(f, rb, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(f, f.body, &mut out);
    out
}

/// The op defining `v`, if `v` is an op result.
pub(crate) fn defining_op(f: &Function, v: Value) -> Option<Op> {
    match f.values[v].def {
        ValueDef::Result { op, .. } => Some(op),
        ValueDef::Arg { .. } => None,
    }
}

/// The constant data of `v` when it is the result of a `builtin.constant`.
pub(crate) fn const_data(f: &Function, v: Value) -> Option<&ConstTensor> {
    let op = defining_op(f, v)?;
    let d = &f.ops[op];
    if d.kind != OpKind::Constant {
        return None;
    }
    d.attrs.tensor("value")
}

/// Whether operand `i` of `op` is present: not omitted and not a zero-element constant (the
/// IR's two spellings of an absent optional operand).
pub(crate) fn has_operand(f: &Function, op: Op, i: usize) -> bool {
    match f.ops[op].operands.get(i) {
        None => false,
        Some(&v) => !matches!(f.values[v].ty.num_elements(), Some(0)),
    }
}

/// Creates a `builtin.constant` op (not placed in a block) holding `value`.
pub(crate) fn create_constant(f: &mut Function, value: ConstTensor, loc: Loc) -> Op {
    let ty = value.ty.clone();
    f.create_op(OpKind::Constant, vec![], vec![ty], Attrs::new().with("value", Attr::Tensor(value)), loc)
}

/// Creates a constant from an interpreter tensor, typed `ty` (which may carry quantization
/// parameters over the tensor's storage type).
pub(crate) fn create_constant_typed(f: &mut Function, t: &Tensor, ty: TensorType, loc: Loc) -> Op {
    create_constant(f, ConstTensor::from_tensor(t).with_type(ty), loc)
}

/// A location naming both ops of a merged pair (outer names first, duplicates dropped).
pub(crate) fn fused_loc(a: &Loc, b: &Loc) -> Loc {
    let mut names: Vec<String> = Vec::new();
    for l in [a, b] {
        let more: &[String] = match l {
            Loc::Unknown => &[],
            Loc::Name(n) => std::slice::from_ref(n),
            Loc::Fused(ns) => ns,
        };
        for n in more {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    match names.len() {
        0 => Loc::Unknown,
        1 => Loc::Name(names.remove(0)),
        _ => Loc::Fused(names),
    }
}

/// Number of uses of every value by placed ops (ops inside regions included).
pub(crate) fn use_counts(f: &Function) -> SecondaryMap<Value, u32> {
    let mut uses = SecondaryMap::with_default(0u32);
    for b in collect_blocks(f) {
        for &op in &f.blocks[b].ops {
            for &o in &f.ops[op].operands {
                uses.set(o, uses.get(o) + 1);
            }
        }
    }
    uses
}

/// Pending value replacements. `resolve` follows chains (`a -> b -> c`), so a value replaced by
/// a value that is itself replaced later ends at the final one.
pub(crate) struct Replacements {
    map: SecondaryMap<Value, Option<Value>>,
    any: bool,
}

impl Replacements {
    pub fn new() -> Self {
        Replacements { map: SecondaryMap::with_default(None), any: false }
    }

    pub fn replace(&mut self, from: Value, to: Value) {
        debug_assert_ne!(from, to);
        self.map.set(from, Some(to));
        self.any = true;
    }

    pub fn resolve(&self, mut v: Value) -> Value {
        while let Some(to) = *self.map.get(v) {
            v = to;
        }
        v
    }

    /// Rewrites the operands of one op (used while sweeping forward, so that the op is matched
    /// against its final operands).
    pub fn rewrite_op(&self, f: &mut Function, op: Op) {
        if !self.any {
            return;
        }
        for i in 0..f.ops[op].operands.len() {
            let v = f.ops[op].operands[i];
            f.ops[op].operands[i] = self.resolve(v);
        }
    }

    /// Rewrites the operands of every op of `f` (region ops and dead arena entries included).
    pub fn apply(&self, f: &mut Function) {
        if !self.any {
            return;
        }
        for op in f.ops.keys().collect::<Vec<_>>() {
            self.rewrite_op(f, op);
        }
    }
}

/// Attribute equality that tells `-0.0` from `0.0` and treats equal NaNs as equal: two ops are
/// interchangeable only if their attributes have the same bits.
pub(crate) fn attrs_identical(a: &Attrs, b: &Attrs) -> bool {
    a.0.len() == b.0.len()
        && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| ka == kb && attr_identical(va, vb))
}

fn attr_identical(a: &Attr, b: &Attr) -> bool {
    match (a, b) {
        (Attr::Float(x), Attr::Float(y)) => x.to_bits() == y.to_bits(),
        (Attr::Floats(x), Attr::Floats(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        (Attr::Tensor(x), Attr::Tensor(y)) => x.ty == y.ty && x.bytes == y.bytes,
        _ => a == b,
    }
}
