//! Dead code elimination: removes ops whose results are all unused, if the op is pure.
//!
//! Works backwards over each block so that a chain of dead ops disappears in one sweep; ops in
//! regions are considered uses of the values they reference.

use crate::pass::{Pass, PassError};
use edgec_ir::entity::{Block, SecondaryMap};
use edgec_ir::ops::Traits;
use edgec_ir::{Function, Module, Value};

pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        for f in &mut module.functions {
            eliminate_dead_ops(f);
        }
        Ok(())
    }
}

/// Removes dead pure ops from every block of `f`. Returns how many ops were removed.
pub fn eliminate_dead_ops(f: &mut Function) -> usize {
    let mut uses: SecondaryMap<Value, u32> = SecondaryMap::with_default(0);
    // Only uses by placed ops count; dead arena entries left by earlier passes don't.
    let mut placed = Vec::new();
    collect_blocks(f, f.body, &mut placed);
    for &b in &placed {
        for &op in &f.blocks[b].ops {
            for &o in &f.ops[op].operands {
                uses.set(o, uses.get(o) + 1);
            }
        }
    }
    let mut removed = 0;
    // Inner blocks were pushed after outer ones; process in reverse so inner dead ops release
    // their operands before outer ops are considered.
    for &b in placed.iter().rev() {
        let ops = f.blocks[b].ops.clone();
        let mut keep = vec![true; ops.len()];
        for (i, &op) in ops.iter().enumerate().rev() {
            let d = &f.ops[op];
            let dead = d.kind.traits().contains(Traits::PURE)
                && d.regions.is_empty()
                && d.results.iter().all(|&r| *uses.get(r) == 0);
            if dead {
                keep[i] = false;
                removed += 1;
                for &o in &d.operands {
                    uses.set(o, uses.get(o).saturating_sub(1));
                }
            }
        }
        let mut it = keep.iter();
        f.blocks[b].ops.retain(|_| *it.next().expect("same length"));
    }
    removed
}

fn collect_blocks(f: &Function, b: Block, out: &mut Vec<Block>) {
    out.push(b);
    for &op in &f.blocks[b].ops {
        for r in &f.ops[op].regions {
            for &rb in &r.blocks {
                collect_blocks(f, rb, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PassManager;
    use edgec_ir::{Attrs, Builder, Loc, OpKind, ScalarType, TensorType};

    fn module_with_dead_chain() -> Module {
        let mut f = Function::new("main");
        let x = f.add_param(TensorType::of(&[2], ScalarType::F32), Some("x".into()));
        let mut b = Builder::new(&mut f);
        let live = b.op(OpKind::Relu, vec![x], Attrs::new(), Loc::name("live")).unwrap();
        let dead1 = b.op(OpKind::Exp, vec![x], Attrs::new(), Loc::name("dead1")).unwrap();
        b.op(OpKind::Neg, vec![dead1], Attrs::new(), Loc::name("dead2")).unwrap();
        b.ret(vec![live]);
        f.result_names = vec!["y".into()];
        Module { functions: vec![f] }
    }

    #[test]
    fn removes_dead_chains_in_one_sweep() {
        let mut m = module_with_dead_chain();
        assert_eq!(m.functions[0].compute_op_count(), 3);
        let mut pm = PassManager::parse("dce,verify").unwrap();
        pm.verify_each = true;
        pm.run(&mut m).unwrap();
        assert_eq!(m.functions[0].compute_op_count(), 1);
        assert_eq!(pm.timings.len(), 2);
        assert!(pm.timing_report().contains("dce"));
    }

    #[test]
    fn unknown_pass_names_the_available_ones() {
        let err = PassManager::parse("dce,frobnicate").err().unwrap().to_string();
        assert!(err.contains("frobnicate") && err.contains("dce") && err.contains("verify"), "{err}");
    }
}
