//! Kernel formation: groups an anchor (convolution, transposed convolution, matmul, gemm, an int8
//! fully connected layer that writes f32) and the elementwise ops after it, or a chain of
//! elementwise ops alone, into one `fused.kernel`.
//!
//! A group grows backwards from a root elementwise op. It absorbs the producer of one of its
//! operands when
//! - the producer is an elementwise op, or an anchor and the group has none yet;
//! - the produced value has exactly the root's type (so every member computes each output
//!   element once: no broadcast of an intermediate, no recomputation, and the value can be
//!   written in place of the anchor's output);
//! - every use of the produced value is inside the group (so no intermediate escapes);
//! - it is not a producer of the anchor's own operands (the anchor runs first, so members
//!   that precede it in the body move after it; there is no prologue);
//! - with an anchor, the epilogue reads no outside value that the body computes after the
//!   anchor's operands: fusing must not make the anchor wait (and keep its inputs live) for
//!   other work, which would take that ordering freedom from the memory-aware scheduler.
//!
//! Under these rules fusing never adds work: each member still runs once per element, and every
//! intermediate tensor's store and reload disappears, with one kernel launch instead of many.
//! Half-precision values are left alone, because the reference rounds every intermediate to
//! half and one fused loop computing in f32 would not.

use crate::pass::{Pass, PassError};
use edgec_ir::entity::SecondaryMap;
use edgec_ir::module::{BlockData, Region, ValueDef};
use edgec_ir::ops::Traits;
use edgec_ir::{Attr, Attrs, Function, Loc, Module, Op, OpKind, ScalarType, Value};
use std::collections::{BTreeSet, HashMap};

pub struct Fuse;

impl Pass for Fuse {
    fn name(&self) -> &'static str {
        "fuse"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        for f in &mut module.functions {
            fuse_function(f);
        }
        Ok(())
    }
}

/// Ops whose result a backend computes into its output buffer, so an epilogue can follow.
/// An int8 fully connected layer is one when it writes f32 (`dequantize = 1`; see
/// `fusable_anchor`).
fn is_anchor(kind: OpKind) -> bool {
    matches!(
        kind,
        OpKind::Conv | OpKind::ConvTranspose | OpKind::MatMul | OpKind::Gemm | OpKind::QFullyConnected
    )
}

fn is_half(s: ScalarType) -> bool {
    matches!(s, ScalarType::F16 | ScalarType::BF16)
}

/// Whether `op` may be a member of a kernel: pure, elementwise, one result, no regions, no
/// half-precision value.
pub(crate) fn fusable_elementwise(f: &Function, op: Op) -> bool {
    let d = &f.ops[op];
    d.kind.traits().contains(Traits::ELEMENTWISE | Traits::PURE)
        && d.regions.is_empty()
        && d.results.len() == 1
        && d.results.iter().chain(&d.operands).all(|&v| !is_half(f.values[v].ty.scalar()))
}

/// Whether `op` may anchor a kernel: conv, conv_transpose, matmul or gemm with one f32 result.
pub(crate) fn fusable_anchor(f: &Function, op: Op) -> bool {
    let d = &f.ops[op];
    is_anchor(d.kind)
        && d.results.len() == 1
        && f.values[d.results[0]].ty.scalar() == ScalarType::F32
        && d.regions.is_empty()
}

/// Forms fused kernels in `f`'s body. Returns how many were formed.
pub fn fuse_function(f: &mut Function) -> usize {
    let body: Vec<Op> = f.blocks[f.body].ops.clone();
    let pos: HashMap<Op, usize> = body.iter().enumerate().map(|(i, &o)| (o, i)).collect();
    // Users of each value, as body positions; a use inside some op's region counts as a use by
    // that op, which is never a group member, so such values stay unfused.
    let mut users: SecondaryMap<Value, Vec<usize>> = SecondaryMap::with_default(Vec::new());
    for (i, &op) in body.iter().enumerate() {
        let mut stack = vec![op];
        while let Some(o) = stack.pop() {
            for &v in &f.ops[o].operands {
                let mut u = users.get(v).clone();
                u.push(i);
                users.set(v, u);
            }
            for r in &f.ops[o].regions {
                for &b in &r.blocks {
                    stack.extend(f.blocks[b].ops.iter().copied());
                }
            }
        }
    }

    let mut grouped = vec![false; body.len()];
    let mut groups: Vec<(Vec<usize>, Option<usize>)> = Vec::new();
    for root in (0..body.len()).rev() {
        if grouped[root] || !fusable_elementwise(f, body[root]) {
            continue;
        }
        let root_ty = f.values[f.ops[body[root]].results[0]].ty.clone();
        let mut members: BTreeSet<usize> = BTreeSet::from([root]);
        let mut anchor: Option<usize> = None;
        loop {
            let mut added = false;
            for m in members.iter().rev().copied().collect::<Vec<_>>() {
                if Some(m) == anchor {
                    continue;
                }
                for &o in &f.ops[body[m]].operands {
                    let ValueDef::Result { op: p, .. } = f.values[o].def else { continue };
                    let Some(&pi) = pos.get(&p) else { continue };
                    if members.contains(&pi) || grouped[pi] || f.values[o].ty != root_ty {
                        continue;
                    }
                    let take_anchor = anchor.is_none() && fusable_anchor(f, p);
                    if !(take_anchor || fusable_elementwise(f, p)) {
                        continue;
                    }
                    let o_users = users.get(o);
                    if !o_users.iter().all(|u| members.contains(u))
                        || anchor.is_some_and(|a| o_users.contains(&a))
                    {
                        continue;
                    }
                    let anchor_pos = if take_anchor { Some(pi) } else { anchor };
                    if anchor_pos.is_some_and(|a| delays_anchor(f, &body, &pos, a, &members, pi)) {
                        continue;
                    }
                    members.insert(pi);
                    if take_anchor {
                        anchor = Some(pi);
                    }
                    added = true;
                }
            }
            if !added {
                break;
            }
        }
        if members.len() >= 2 {
            for &m in &members {
                grouped[m] = true;
            }
            groups.push((members.into_iter().collect(), anchor));
        }
    }

    // Rewrite: each group becomes one op at its root's position.
    let mut replace: HashMap<usize, Op> = HashMap::new();
    let mut redirect: Vec<(Value, Value)> = Vec::new();
    let mut removed = vec![false; body.len()];
    groups.sort();
    for (members, anchor) in &groups {
        let root = *members.last().expect("groups have two or more members");
        // The anchor runs first (it reads only values from outside the group); the epilogue keeps
        // body order.
        let ordered = anchor.iter().chain(members.iter().filter(|&m| Some(*m) != *anchor)).map(|&m| body[m]);
        let ordered: Vec<Op> = ordered.collect();
        let fused = fused_kernel_op(f, &ordered, &mut |_, v| v);
        let last = *ordered.last().expect("groups have two or more members");
        redirect.push((f.ops[last].results[0], f.ops[fused].results[0]));
        replace.insert(root, fused);
        for &m in members {
            removed[m] = true;
        }
    }
    let new_ops: Vec<Op> = body
        .iter()
        .enumerate()
        .filter_map(|(i, &op)| match replace.get(&i) {
            Some(&fused) => Some(fused),
            None if removed[i] => None,
            None => Some(op),
        })
        .collect();
    // Each root's uses now read its kernel (one sweep for all kernels).
    f.replace_uses(&redirect);
    f.blocks[f.body].ops = new_ops;
    groups.len()
}

/// Whether a group with the anchor at body position `a`, the `members` and the candidate `pi`
/// would make the anchor wait for a value its own operands do not: an epilogue operand from
/// outside the group that the body computes after the anchor's last operand. Fused, the anchor
/// could only run once that value exists, so its inputs (often larger than its output, like a
/// shortcut conv's) would stay live through everything computed in between, a conv's im2col
/// peak included; unfused, a memory-aware schedule runs the anchor as soon as its inputs exist.
fn delays_anchor(
    f: &Function,
    body: &[Op],
    pos: &HashMap<Op, usize>,
    a: usize,
    members: &BTreeSet<usize>,
    pi: usize,
) -> bool {
    let def_pos = |v: Value| match f.values[v].def {
        ValueDef::Result { op, .. } if f.ops[op].kind != OpKind::Constant => pos.get(&op).copied(),
        _ => None,
    };
    let ready = f.ops[body[a]].operands.iter().filter_map(|&v| def_pos(v)).max();
    let epilogue = members.iter().copied().chain([pi]).filter(|&m| m != a);
    epilogue.flat_map(|m| f.ops[body[m]].operands.iter().copied()).any(|v| {
        def_pos(v).is_some_and(|q| q != a && !members.contains(&q) && q != pi && ready.is_none_or(|r| q > r))
    })
}

/// Creates (without placing it in a block) the `fused.kernel` op computing what `members` (in
/// execution order, the last one the root) compute: its operands are the members' operands that
/// no member defines, in order of first use, each passed through `external` (which may return
/// a replacement value of the same type); its region holds copies of the members (same kinds,
/// attributes and locations); `pattern` names them; its location is `fused[...]` of theirs.
pub(crate) fn fused_kernel_op(
    f: &mut Function,
    members: &[Op],
    external: &mut dyn FnMut(&mut Function, Value) -> Value,
) -> Op {
    let root = *members.last().expect("non-empty");
    let inside: BTreeSet<Op> = members.iter().copied().collect();
    let mut originals: Vec<Value> = Vec::new();
    for &m in members {
        for &o in &f.ops[m].operands {
            let internal = matches!(f.values[o].def, ValueDef::Result { op, .. } if inside.contains(&op));
            if !internal && !originals.contains(&o) {
                originals.push(o);
            }
        }
    }
    let operands: Vec<Value> = originals.iter().map(|&v| external(f, v)).collect();
    let block = f.blocks.push(BlockData::default());
    let mut map: HashMap<Value, Value> = HashMap::new();
    for &v in &originals {
        let ty = f.values[v].ty.clone();
        let a = f.add_block_arg(block, ty, None);
        map.insert(v, a);
    }
    let mut names = Vec::new();
    let mut pattern = Vec::new();
    for &m in members {
        let d = f.ops[m].clone();
        let operands = d.operands.iter().map(|o| map[o]).collect();
        let tys = d.results.iter().map(|&r| f.values[r].ty.clone()).collect();
        let c = f.create_op(d.kind, operands, tys, d.attrs.clone(), d.loc.clone());
        f.append_op(block, c);
        for (&old, &new) in d.results.iter().zip(&f.ops[c].results.clone()) {
            map.insert(old, new);
        }
        match &d.loc {
            Loc::Name(n) => names.push(n.clone()),
            Loc::Fused(ns) => names.extend(ns.iter().cloned()),
            Loc::Unknown => {}
        }
        pattern.push(d.kind.name().split('.').nth(1).unwrap_or(d.kind.name()).to_string());
    }
    let root_result = f.ops[root].results[0];
    let y = f.create_op(OpKind::Yield, vec![map[&root_result]], vec![], Attrs::new(), Loc::Unknown);
    f.append_op(block, y);
    let ty = f.values[root_result].ty.clone();
    let loc = if names.is_empty() { Loc::Unknown } else { Loc::Fused(names) };
    let attrs = Attrs::new().with("pattern", Attr::Str(pattern.join("+")));
    let fused = f.create_op(OpKind::FusedKernel, operands, vec![ty], attrs, loc);
    f.ops[fused].regions.push(Region { blocks: vec![block] });
    fused
}
