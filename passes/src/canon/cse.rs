//! `cse`: common subexpression elimination.
//!
//! Two pure, region-free ops of the same kind with the same operands (in either order for
//! `COMMUTATIVE` ops), bit-identical attributes and the same result types compute the same
//! values, so the later one's results are replaced by the earlier one's and it is removed.
//! Constants are deduplicated the same way when their types and bytes are equal. Ops are
//! visited in block order, so the first occurrence is always the one kept and the output does
//! not depend on hash values. Each block is handled on its own: an op is never replaced by one
//! from another block (an outer value would dominate a region, but moving uses across a region
//! boundary would change what a delegated subgraph captures).

use super::{attrs_identical, collect_blocks, const_data, Replacements};
use crate::pass::{Pass, PassError};
use edgec_ir::ops::Traits;
use edgec_ir::{Attr, Function, Module, Op, OpKind, Value};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

pub struct Cse;

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        for f in &mut module.functions {
            cse(f);
        }
        Ok(())
    }
}

/// Eliminates common subexpressions in every block of `f`. Returns how many ops were removed.
pub fn cse(f: &mut Function) -> usize {
    let mut repl = Replacements::new();
    let mut removed = 0;
    for b in collect_blocks(f) {
        let ops = std::mem::take(&mut f.blocks[b].ops);
        let mut kept = Vec::with_capacity(ops.len());
        // The maps are only looked up, never iterated, so their order cannot reach the output.
        let mut seen_ops: HashMap<u64, Vec<Op>> = HashMap::new();
        let mut seen_consts: HashMap<u64, SeenConsts> = HashMap::new();
        for op in ops {
            repl.rewrite_op(f, op);
            let prev = if f.ops[op].kind == OpKind::Constant {
                find_constant(f, op, &mut seen_consts)
            } else if is_candidate(f, op) {
                let bucket = seen_ops.entry(op_hash(f, op)).or_default();
                let found = bucket.iter().copied().find(|&p| equivalent(f, p, op));
                if found.is_none() {
                    bucket.push(op);
                }
                found
            } else {
                None
            };
            match prev {
                Some(p) => {
                    for (from, to) in f.ops[op].results.clone().into_iter().zip(f.ops[p].results.clone()) {
                        repl.replace(from, to);
                    }
                    removed += 1;
                }
                None => kept.push(op),
            }
        }
        f.blocks[b].ops = kept;
    }
    repl.apply(f);
    removed
}

fn is_candidate(f: &Function, op: Op) -> bool {
    let d = &f.ops[op];
    d.kind.traits().contains(Traits::PURE)
        && !d.kind.traits().contains(Traits::HAS_REGIONS)
        && d.regions.is_empty()
        && !d.results.is_empty()
}

/// The operands in a canonical order: a commutative op's first two sorted.
fn canonical_operands(f: &Function, op: Op) -> Vec<Value> {
    let d = &f.ops[op];
    let mut ops = d.operands.clone();
    if d.kind.traits().contains(Traits::COMMUTATIVE) && ops.len() >= 2 && ops[1] < ops[0] {
        ops.swap(0, 1);
    }
    ops
}

fn op_hash(f: &Function, op: Op) -> u64 {
    let d = &f.ops[op];
    let mut h = DefaultHasher::new();
    d.kind.hash(&mut h);
    canonical_operands(f, op).hash(&mut h);
    for (name, a) in d.attrs.iter() {
        name.hash(&mut h);
        hash_attr(a, &mut h);
    }
    for &r in &d.results {
        f.values[r].ty.to_string().hash(&mut h);
    }
    h.finish()
}

fn hash_attr(a: &Attr, h: &mut DefaultHasher) {
    std::mem::discriminant(a).hash(h);
    match a {
        Attr::Int(v) => v.hash(h),
        Attr::Float(v) => v.to_bits().hash(h),
        Attr::Str(v) => v.hash(h),
        Attr::Ints(v) => v.hash(h),
        Attr::Floats(v) => v.iter().for_each(|x| x.to_bits().hash(h)),
        Attr::Strs(v) => v.hash(h),
        Attr::Type(v) => v.hash(h),
        Attr::Tensor(t) => {
            t.ty.to_string().hash(h);
            t.bytes.hash(h);
        }
    }
}

fn equivalent(f: &Function, a: Op, b: Op) -> bool {
    let (da, db) = (&f.ops[a], &f.ops[b]);
    da.kind == db.kind
        && canonical_operands(f, a) == canonical_operands(f, b)
        && attrs_identical(&da.attrs, &db.attrs)
        && da.results.len() == db.results.len()
        && da.results.iter().zip(&db.results).all(|(&x, &y)| f.values[x].ty == f.values[y].ty)
}

/// A constant already seen in the block, with the hash of its bytes once computed.
/// The constants seen with one type and byte length. The first one's bytes are hashed only
/// when a second one arrives (most large weights are unique in their shape); after that,
/// constants are looked up by the hash of their bytes, so many same-shaped constants (every
/// layer's weights) cost one hash each, not a comparison with every earlier one.
#[derive(Default)]
struct SeenConsts {
    unhashed: Option<Op>,
    by_bytes: HashMap<u64, Vec<Op>>,
}

fn bytes_hash(f: &Function, op: Op) -> u64 {
    let mut h = DefaultHasher::new();
    if let Some(t) = const_data(f, f.ops[op].results[0]) {
        t.bytes.hash(&mut h);
    }
    h.finish()
}

/// An earlier constant with the same type and bytes as `op`, if any (recording `op` otherwise).
/// Constants are bucketed by type first and their bytes hashed only when a bucket holds more
/// than one, so that the (usually unique) weights of a model are never read.
fn find_constant(f: &Function, op: Op, seen: &mut HashMap<u64, SeenConsts>) -> Option<Op> {
    let d = &f.ops[op];
    let (Some(t), [_]) = (d.attrs.tensor("value"), d.results.as_slice()) else { return None };
    let mut h = DefaultHasher::new();
    t.ty.to_string().hash(&mut h);
    t.bytes.len().hash(&mut h);
    let bucket = seen.entry(h.finish()).or_default();
    if bucket.unhashed.is_none() && bucket.by_bytes.is_empty() {
        bucket.unhashed = Some(op);
        return None;
    }
    if let Some(first) = bucket.unhashed.take() {
        bucket.by_bytes.entry(bytes_hash(f, first)).or_default().push(first);
    }
    let same = bucket.by_bytes.entry(bytes_hash(f, op)).or_default();
    let found = same.iter().copied().find(|&o| {
        f.ops[o].attrs.tensor("value").is_some_and(|other| other.ty == t.ty && other.bytes == t.bytes)
    });
    if found.is_none() {
        same.push(op);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canon::testutil::{check_differential, run_pipeline};
    use edgec_ir::parser::parse_module;

    const SRC: &str = r#"
func @f(%x: tensor<2x3xf32>, %y: tensor<2x3xf32>) -> ("a": tensor<2x3xf32>, "b": tensor<2x3xf32>) {
  %c1 = builtin.constant {value = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>} : tensor<3xf32> loc("c1")
  %c2 = builtin.constant {value = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>} : tensor<3xf32> loc("c2")
  %c3 = builtin.constant {value = dense<[1.0, 2.0, 4.0]> : tensor<3xf32>} : tensor<3xf32> loc("c3")
  %a1 = math.add %x, %c1 : tensor<2x3xf32> loc("a1")
  %a2 = math.add %x, %c2 : tensor<2x3xf32> loc("a2")
  %a3 = math.add %c1, %x : tensor<2x3xf32> loc("a3")
  %a4 = math.add %x, %c3 : tensor<2x3xf32> loc("a4")
  %s1 = math.sub %a1, %y : tensor<2x3xf32> loc("s1")
  %s2 = math.sub %y, %a2 : tensor<2x3xf32> loc("s2")
  %l1 = math.leaky_relu %s1 {alpha = 0.0} : tensor<2x3xf32> loc("l1")
  %l2 = math.leaky_relu %s1 {alpha = -0.0} : tensor<2x3xf32> loc("l2")
  %m1 = math.mul %l1, %s2 : tensor<2x3xf32> loc("m1")
  %m2 = math.mul %a3, %l2 : tensor<2x3xf32> loc("m2")
  %r = math.add %m1, %a4 : tensor<2x3xf32> loc("r")
  func.return %r, %m2
}
"#;

    #[test]
    fn merges_equal_ops_and_constants() {
        let out = check_differential(SRC, "cse,dce", None);
        // c2 merges into c1, then a2 and a3 (commuted) into a1; c3 and a4 differ.
        assert!(!out.contains("loc(\"c2\")") && out.contains("loc(\"c3\")"), "{out}");
        assert!(!out.contains("loc(\"a2\")") && !out.contains("loc(\"a3\")"), "{out}");
        assert!(out.contains("loc(\"a4\")"), "{out}");
        // Subtraction is not commutative; attributes differing only in the sign of zero differ.
        assert!(out.contains("loc(\"s1\")") && out.contains("loc(\"s2\")"), "{out}");
        assert!(out.contains("loc(\"l1\")") && out.contains("loc(\"l2\")"), "{out}");
        let mut m = parse_module(SRC).unwrap();
        run_pipeline(&mut m, "cse");
        assert_eq!(cse(&mut m.functions[0]), 0, "a second run finds nothing");
    }

    #[test]
    fn keeps_first_occurrence_and_is_deterministic() {
        let mut a = parse_module(SRC).unwrap();
        let mut b = parse_module(SRC).unwrap();
        let pa = run_pipeline(&mut a, "cse,dce");
        assert_eq!(pa, run_pipeline(&mut b, "cse,dce"));
        assert!(pa.find("loc(\"c1\")").is_some() && pa.find("loc(\"a1\")").is_some(), "{pa}");
    }
}
