//! Schedule choice: the order of kernel calls decides which tensors are alive together. Besides
//! the IR's own (topological) order, a memory-aware list scheduler is tried: among the calls whose
//! inputs are ready it runs the one that leaves the fewest bytes alive (freeing its inputs'
//! last uses, allocating its outputs), which keeps one branch of a UNet skip or a residual block
//! from running far ahead of the other. The order with the lower peak wins.

use super::Slot;
use crate::kir::Access;
use edgec_ir::entity::Value;
use std::collections::{HashMap, HashSet};

pub(super) struct Schedule {
    /// Call indices in execution order.
    pub order: Vec<usize>,
    /// Peak live bytes of the original (IR) order.
    pub original_peak: u64,
}

/// Peak of live arena bytes (values from first to last access, plus per-call scratch) for an
/// order of calls.
pub(super) fn peak(
    order: &[usize],
    acc: &[Vec<(Value, Access)>],
    scratch: &[u64],
    size: &dyn Fn(&Value) -> u64,
) -> u64 {
    let mut first: HashMap<Value, usize> = HashMap::new();
    let mut last: HashMap<Value, usize> = HashMap::new();
    for (t, &c) in order.iter().enumerate() {
        for (v, _) in &acc[c] {
            first.entry(*v).or_insert(t);
            last.insert(*v, t);
        }
    }
    // Live bytes change by +size at the first access and -size after the last.
    let mut delta = vec![0i64; order.len() + 1];
    for (v, &f) in &first {
        delta[f] += size(v) as i64;
        delta[last[v] + 1] -= size(v) as i64;
    }
    let mut live = 0i64;
    let mut best = 0u64;
    for (t, &c) in order.iter().enumerate() {
        live += delta[t];
        best = best.max(live as u64 + scratch[c]);
    }
    best
}

pub(super) fn choose(
    acc: &[Vec<(Value, Access)>],
    scratch: &[u64],
    ready_slots: &[Vec<Slot>],
    size: &dyn Fn(&Value) -> u64,
) -> Schedule {
    let n = acc.len();
    let original: Vec<usize> = (0..n).collect();
    let original_peak = peak(&original, acc, scratch, size);
    let greedy = list_schedule(acc, scratch, ready_slots, size);
    let greedy_peak = peak(&greedy, acc, scratch, size);
    if greedy_peak < original_peak {
        Schedule { order: greedy, original_peak }
    } else {
        Schedule { order: original, original_peak }
    }
}

/// Dependencies: a call that reads a value waits for every earlier call that writes it; a call
/// that writes a value waits for every earlier access of it; calls touching the same graph output
/// keep their order.
fn deps(acc: &[Vec<(Value, Access)>], ready_slots: &[Vec<Slot>]) -> Vec<Vec<usize>> {
    let mut d: Vec<Vec<usize>> = vec![Vec::new(); acc.len()];
    let mut writers: HashMap<Value, Vec<usize>> = HashMap::new();
    let mut accessors: HashMap<Value, Vec<usize>> = HashMap::new();
    let mut slot_users: HashMap<Slot, usize> = HashMap::new();
    for (c, list) in acc.iter().enumerate() {
        for (v, a) in list {
            if *a == Access::Write {
                d[c].extend(accessors.get(v).into_iter().flatten().copied());
            } else {
                d[c].extend(writers.get(v).into_iter().flatten().copied());
            }
        }
        for (v, a) in list {
            if *a == Access::Write {
                writers.entry(*v).or_default().push(c);
            }
            accessors.entry(*v).or_default().push(c);
        }
        for s in &ready_slots[c] {
            if matches!(s, Slot::Output(_)) {
                if let Some(&p) = slot_users.get(s) {
                    d[c].push(p);
                }
                slot_users.insert(*s, c);
            }
        }
        d[c].retain(|&p| p != c);
        d[c].sort_unstable();
        d[c].dedup();
    }
    d
}

fn list_schedule(
    acc: &[Vec<(Value, Access)>],
    scratch: &[u64],
    ready_slots: &[Vec<Slot>],
    size: &dyn Fn(&Value) -> u64,
) -> Vec<usize> {
    let n = acc.len();
    let d = deps(acc, ready_slots);
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut waiting: Vec<usize> = vec![0; n];
    for (c, ds) in d.iter().enumerate() {
        waiting[c] = ds.len();
        for &p in ds {
            users[p].push(c);
        }
    }
    // Remaining accesses per value: a value dies when its count reaches zero.
    let mut remaining: HashMap<Value, usize> = HashMap::new();
    for list in acc {
        for (v, _) in list {
            *remaining.entry(*v).or_default() += 1;
        }
    }
    let mut born: HashSet<Value> = HashSet::new();
    let mut ready: Vec<usize> = (0..n).filter(|&c| waiting[c] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while !ready.is_empty() {
        // Net change of live bytes if this call runs now; prefer the smallest, then IR order.
        let score = |c: usize| -> (i64, u64, usize) {
            let mut delta = 0i64;
            let mut seen = HashSet::new();
            for (v, _) in &acc[c] {
                if !seen.insert(*v) {
                    continue;
                }
                let uses_here = acc[c].iter().filter(|(w, _)| w == v).count();
                if !born.contains(v) {
                    delta += size(v) as i64;
                }
                if remaining[v] == uses_here {
                    delta -= size(v) as i64;
                }
            }
            (delta, scratch[c], c)
        };
        let (pos, _) = ready.iter().enumerate().min_by_key(|(_, &c)| score(c)).unwrap();
        let c = ready.swap_remove(pos);
        order.push(c);
        for (v, _) in &acc[c] {
            born.insert(*v);
            *remaining.get_mut(v).unwrap() -= 1;
        }
        for &u in &users[c] {
            waiting[u] -= 1;
            if waiting[u] == 0 {
                ready.push(u);
            }
        }
    }
    if order.len() != n {
        // A dependency cycle cannot happen for a valid program; keep the IR order if it does.
        return (0..n).collect();
    }
    order
}
