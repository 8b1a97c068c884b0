//! Memory planning of a lowered program ([`plan_memory`]): the schedule, in-place results and
//! concats, and arena offsets from live ranges (greedy by size and other orders: lowest offset
//! that does not overlap a placed tensor whose live range intersects), checked by simulation.

use super::{Call, LowerError, Pending, Program, Slot, UnplannedProgram};
use crate::kir::{Access, Kernel, KernelId};
use edgec_ir::entity::{EntityRef, Value};
use std::collections::{HashMap, HashSet};

/// One buffer to place: `size` bytes live from call `start` to call `end`, inclusive.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub size: u64,
    pub start: usize,
    pub end: usize,
}

/// The planned arena.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ArenaPlan {
    /// Offset of each request.
    #[serde(skip)]
    pub offsets: Vec<u64>,
    /// Bytes the arena must have.
    pub arena_bytes: u64,
    /// Peak of simultaneously live bytes: no plan for this schedule can be smaller.
    pub lower_bound_bytes: u64,
    /// Sum of all buffers (no reuse).
    pub naive_bytes: u64,
    /// Arena of the plain greedy-by-size placement (the baseline the chosen placement improves on).
    pub greedy_by_size_bytes: u64,
    /// The lower bound of the IR's own (topological) order, before schedule choice.
    pub topological_lower_bound_bytes: u64,
    /// Which placement heuristic gave `arena_bytes`.
    pub placement: &'static str,
    pub alignment: u64,
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Places the requests in the given order, each at the lowest offset (or, with `best_fit`, in the
/// tightest gap) that does not overlap an already placed request whose live range intersects.
fn place(reqs: &[Request], align: u64, order: &[usize], best_fit: bool) -> (Vec<u64>, u64) {
    // Placed requests by the spans of `SPAN` calls their live ranges touch, so finding the
    // ones that overlap a request looks only at its own spans instead of at every placed
    // request (which made placement quadratic in the number of values).
    const SPAN: usize = 64;
    let spans = reqs.iter().map(|r| r.end / SPAN + 1).max().unwrap_or(0);
    let mut by_span: Vec<Vec<usize>> = vec![Vec::new(); spans];
    // The last request (position in `order`) that found `j` overlapping, so each counts once.
    let mut seen_by: Vec<usize> = vec![usize::MAX; reqs.len()];
    let mut offsets = vec![0u64; reqs.len()];
    let mut arena_bytes = 0;
    for (k, &i) in order.iter().enumerate() {
        let r = reqs[i];
        let size = align_up(r.size.max(1), align);
        let mut conflicts: Vec<(u64, u64)> = Vec::new();
        for span in &by_span[r.start / SPAN..=r.end / SPAN] {
            for &j in span {
                if seen_by[j] != k && reqs[j].start <= r.end && r.start <= reqs[j].end {
                    seen_by[j] = k;
                    conflicts.push((offsets[j], offsets[j] + align_up(reqs[j].size.max(1), align)));
                }
            }
        }
        conflicts.sort_unstable();
        // Gaps between the conflicting blocks, then the open space above them.
        let mut off = 0;
        let mut best: Option<(u64, u64)> = None; // (gap size, offset)
        for (lo, hi) in conflicts {
            if off + size <= lo {
                if !best_fit {
                    best = Some((0, off));
                    break;
                }
                if best.is_none_or(|(g, _)| lo - off < g) {
                    best = Some((lo - off, off));
                }
            }
            off = off.max(hi);
        }
        let at = best.map(|(_, o)| o).unwrap_or(off);
        offsets[i] = at;
        arena_bytes = arena_bytes.max(at + size);
        for span in &mut by_span[r.start / SPAN..=r.end / SPAN] {
            span.push(i);
        }
    }
    (offsets, arena_bytes)
}

/// Plans offsets: greedy-by-size (the baseline) and a few other placement orders (longest-lived
/// first, largest size×lifetime first, earliest first); the smallest arena wins, ties to the
/// earlier heuristic, so the result is deterministic.
pub fn plan(reqs: &[Request], align: u64) -> ArenaPlan {
    let steps = reqs.iter().map(|r| r.end + 1).max().unwrap_or(0);
    let mut live = vec![0u64; steps];
    for r in reqs {
        for s in &mut live[r.start..=r.end] {
            *s += r.size;
        }
    }
    let lower_bound_bytes = live.iter().copied().max().unwrap_or(0);
    let dur = |r: &Request| (r.end - r.start + 1) as u64;
    type Key = Box<dyn Fn(&Request, usize) -> (std::cmp::Reverse<u64>, u64, usize)>;
    let heuristics: Vec<(&'static str, Key)> = vec![
        ("greedy-by-size", Box::new(|r, i| (std::cmp::Reverse(r.size), r.start as u64, i))),
        ("greedy-by-lifetime", Box::new(move |r, i| (std::cmp::Reverse(dur(r)), r.start as u64, i))),
        ("greedy-by-area", Box::new(move |r, i| (std::cmp::Reverse(r.size * dur(r)), r.start as u64, i))),
        ("first-come", Box::new(|r, i| (std::cmp::Reverse(0), r.start as u64, i))),
    ];
    type Best = Option<(Vec<u64>, u64, &'static str)>;
    let mut best: Best = None;
    let mut greedy_by_size_bytes = 0;
    let consider = |offsets: Vec<u64>, bytes: u64, name: &'static str, best: &mut Best| {
        if best.as_ref().is_none_or(|b| bytes < b.1) {
            *best = Some((offsets, bytes, name));
        }
    };
    for (name, key) in &heuristics {
        let mut idx: Vec<usize> = (0..reqs.len()).collect();
        idx.sort_by_key(|&i| key(&reqs[i], i));
        for best_fit in [false, true] {
            let (offsets, bytes) = place(reqs, align, &idx, best_fit);
            if *name == "greedy-by-size" && !best_fit {
                greedy_by_size_bytes = bytes;
            }
            consider(offsets, bytes, if best_fit { "best-fit" } else { name }, &mut best);
        }
    }
    // Still above the bound: a bounded, deterministic local search over the size order (swap two
    // neighbours; keep the swap unless the arena grows), stopping at the bound or after a budget.
    let mut order: Vec<usize> = (0..reqs.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(reqs[i].size), reqs[i].start, i));
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut cur = best.as_ref().map(|b| b.1).unwrap_or(0);
    let n = order.len();
    // The budget counts work, not wall-clock time, so the plan is the same on every run and
    // machine: each placement costs about n² interval tests.
    let budget = (200_000_000 / (n * n).max(1)).clamp(50, 3000);
    let mut iters = 0;
    while n > 1 && best.as_ref().is_some_and(|b| b.1 > lower_bound_bytes) && iters < budget {
        iters += 1;
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let i = (seed >> 33) as usize % (n - 1);
        order.swap(i, i + 1);
        let (offsets, bytes) = place(reqs, align, &order, iters % 2 == 0);
        if bytes <= cur {
            cur = bytes;
            consider(offsets, bytes, "search", &mut best);
        } else {
            order.swap(i, i + 1);
        }
    }
    let (offsets, arena_bytes, placement) = best.unwrap_or_default();
    let naive_bytes = reqs.iter().map(|r| align_up(r.size, align)).sum();
    ArenaPlan {
        offsets,
        arena_bytes,
        lower_bound_bytes,
        naive_bytes,
        greedy_by_size_bytes,
        topological_lower_bound_bytes: lower_bound_bytes,
        placement,
        alignment: align,
    }
}

/// Plans the memory of a lowered program: chooses the schedule (the IR's order or a
/// memory-aware reordering, `schedule.rs`), puts results over operands that die at their call
/// (`Kernel::inplace`) and concat operands into their runs of the result (`Kernel::concat`),
/// gives every remaining arena value and per-call scratch buffer an offset from its live range
/// (slots aligned to `align` bytes), and checks the plan by simulation. [`super::lower`] is
/// [`super::lower_ops`] followed by this.
pub fn plan_memory(u: UnplannedProgram, align: u64) -> Result<Program, LowerError> {
    let UnplannedProgram {
        name,
        inputs,
        outputs,
        consts,
        mut kernels,
        calls,
        fixed: mut storage,
        value_bytes,
        graph_ops,
    } = u;
    let calls: Vec<(KernelId, Vec<Pending>, String)> =
        calls.into_iter().map(|c| (c.kernel, c.args, c.label)).collect();
    let bytes_of = |v: Value| value_bytes.get(&v).copied().unwrap_or(0);
    // Values in graph inputs/outputs take part in the dependencies but not in arena bytes.
    let size_of = |v: &Value| if storage.contains_key(v) { 0 } else { bytes_of(*v) };
    // Choose the schedule: the IR's order, or a memory-aware reordering of the calls when
    // that has a lower peak of live bytes.
    let accesses: Vec<Vec<(Value, Access)>> = calls
        .iter()
        .map(|(ki, args, _)| {
            args.iter()
                .zip(&kernels[ki.index()].params)
                .filter_map(|(a, p)| match a {
                    Pending::Value(v) => Some((*v, p.access)),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let scratch: Vec<u64> = calls
        .iter()
        .map(|(_, args, _)| args.iter().map(|a| if let Pending::Scratch(b) = a { *b } else { 0 }).sum())
        .collect();
    let ready_slots: Vec<Vec<Slot>> = calls
        .iter()
        .map(|(_, args, _)| {
            args.iter().filter_map(|a| if let Pending::Ready(s) = a { Some(*s) } else { None }).collect()
        })
        .collect();
    let sched = super::schedule::choose(&accesses, &scratch, &ready_slots, &size_of);
    let topo_peak = sched.original_peak;
    let mut calls: Vec<_> = calls.into_iter().map(Some).collect();
    let mut calls: Vec<_> = sched.order.iter().map(|&i| calls[i].take().expect("each call once")).collect();
    let alias = place_in_place(&mut calls, &mut kernels, &storage);
    let in_place_root = |mut v: Value| {
        while let Some(&a) = alias.get(&v) {
            v = a;
        }
        v
    };
    let parts = place_concats(&mut calls, &kernels, &storage, &alias, &bytes_of, align);
    // Storage root and byte offset of every arena value.
    let resolve = |v: Value| {
        let r = in_place_root(v);
        parts.get(&r).copied().unwrap_or((r, 0))
    };
    let canon = |v: Value| resolve(v).0;
    // Live ranges of arena values (by call index) and per-call scratch.
    let mut first: HashMap<Value, usize> = HashMap::new();
    let mut last: HashMap<Value, usize> = HashMap::new();
    let mut sizes: HashMap<Value, u64> = HashMap::new();
    let mut order: Vec<Value> = Vec::new();
    for (ci, (ki, args, _)) in calls.iter().enumerate() {
        for (a, p) in args.iter().zip(&kernels[ki.index()].params) {
            if let Pending::Value(v) = a {
                if storage.contains_key(v) {
                    continue;
                }
                let v = &canon(*v);
                if !first.contains_key(v) {
                    if p.access != Access::Write {
                        return Err(plan_error(format!("value {v} is read before it is computed")));
                    }
                    first.insert(*v, ci);
                    order.push(*v);
                    sizes.insert(*v, bytes_of(*v));
                }
                last.insert(*v, ci);
            }
        }
    }
    let mut requests = Vec::new();
    for &v in &order {
        requests.push(Request { size: sizes[&v], start: first[&v], end: last[&v] });
    }
    let mut scratch_req = Vec::new();
    for (ci, (_, args, _)) in calls.iter().enumerate() {
        for a in args {
            if let Pending::Scratch(bytes) = a {
                scratch_req.push(requests.len());
                requests.push(Request { size: *bytes, start: ci, end: ci });
            }
        }
    }
    let mut arena = plan(&requests, align);
    arena.topological_lower_bound_bytes = topo_peak;
    for (i, &v) in order.iter().enumerate() {
        storage.insert(v, Slot::Arena(arena.offsets[i]));
    }
    for &v in alias.keys().chain(parts.keys()) {
        let (root, off) = resolve(v);
        let Slot::Arena(base) = storage[&root] else { unreachable!("roots are arena values") };
        storage.insert(v, Slot::Arena(base + off));
    }
    let mut scratch_iter = scratch_req.into_iter();
    // For the plan checker: which value (or scratch buffer) each arena argument holds.
    let mut next_scratch = u32::MAX;
    let mut owners: Vec<Vec<Option<u32>>> = Vec::new();
    let calls = calls
        .into_iter()
        .map(|(kernel, args, label)| {
            let mut own = Vec::new();
            let args = args
                .into_iter()
                .map(|a| match a {
                    Pending::Ready(s) => {
                        own.push(None);
                        s
                    }
                    Pending::Value(v) => {
                        // A concat part's bytes belong to the concat's result, which reads
                        // them as its own; an in-place result keeps its own identity.
                        let owner = if parts.contains_key(&v) { resolve(v).0 } else { v };
                        own.push(Some(owner.index() as u32));
                        storage[&v]
                    }
                    Pending::Scratch(_) => {
                        next_scratch -= 1;
                        own.push(Some(next_scratch));
                        Slot::Arena(arena.offsets[scratch_iter.next().unwrap()])
                    }
                })
                .collect();
            owners.push(own);
            Call { kernel, args, label }
        })
        .collect();
    let program = Program { name, inputs, outputs, consts, kernels, calls, arena, graph_ops };
    check(&program, &owners).map_err(|m| plan_error(format!("the memory plan is wrong: {m}")))?;
    Ok(program)
}

/// A planning failure: lowering broke one of its own invariants, a bug.
fn plan_error(message: String) -> LowerError {
    LowerError::Internal { op: "func", message }
}

/// In-place results: where a call's kernel may write its result over an operand (its
/// `inplace` pairs), the operand is an arena value that dies at this call and is read only
/// through that parameter, and the result is an arena value this call computes first, the
/// result takes over the operand's storage: the call switches to the kernel's in-place variant
/// and the result is recorded as an alias of the operand. Returns the aliases (result -> the
/// value whose storage it uses, already followed to the end of a chain of in-place calls, so
/// that a chain of N elementwise kernels does not cost N steps per lookup).
fn place_in_place(
    calls: &mut [(KernelId, Vec<Pending>, String)],
    kernels: &mut Vec<Kernel>,
    storage: &HashMap<Value, Slot>,
) -> HashMap<Value, Value> {
    let mut first: HashMap<Value, usize> = HashMap::new();
    let mut last: HashMap<Value, usize> = HashMap::new();
    for (ci, (_, args, _)) in calls.iter().enumerate() {
        for a in args {
            if let Pending::Value(v) = a {
                first.entry(*v).or_insert(ci);
                last.insert(*v, ci);
            }
        }
    }
    let mut alias = HashMap::new();
    for (ci, (ki, args, _)) in calls.iter_mut().enumerate() {
        for (pin, pout) in kernels[ki.index()].inplace.clone() {
            let (Pending::Value(vin), Pending::Value(vout)) = (&args[pin], &args[pout]) else { continue };
            let (vin, vout) = (*vin, *vout);
            let arena_values = !storage.contains_key(&vin) && !storage.contains_key(&vout);
            let reads = args.iter().filter(|a| matches!(a, Pending::Value(v) if *v == vin)).count();
            if !arena_values || last[&vin] != ci || first[&vout] != ci || reads != 1 {
                continue;
            }
            let variant = kernels[ki.index()].in_place(pin, pout);
            *ki = match kernels.iter().position(|k| *k == variant) {
                Some(i) => KernelId::new(i),
                None => {
                    kernels.push(variant);
                    KernelId::new(kernels.len() - 1)
                }
            };
            // `vin` was computed by an earlier call, so its own alias is already final.
            let root = alias.get(&vin).copied().unwrap_or(vin);
            alias.insert(vout, root);
            break;
        }
    }
    alias
}

/// Peak of live arena bytes over `calls` (those not `dropped`), with every value stored at
/// `root(v)` (scratch included).
fn live_peak(
    calls: &[(KernelId, Vec<Pending>, String)],
    dropped: &[bool],
    storage: &HashMap<Value, Slot>,
    root: &dyn Fn(Value) -> Value,
    bytes: &dyn Fn(Value) -> u64,
) -> u64 {
    let mut span: HashMap<Value, (usize, usize)> = HashMap::new();
    let mut live = vec![0u64; calls.len()];
    for (ci, (_, args, _)) in calls.iter().enumerate().filter(|(ci, _)| !dropped[*ci]) {
        for a in args {
            match a {
                Pending::Value(v) if !storage.contains_key(v) => {
                    let e = span.entry(root(*v)).or_insert((ci, ci));
                    e.1 = ci;
                }
                Pending::Scratch(b) => live[ci] += b,
                _ => {}
            }
        }
    }
    for (v, (a, b)) in span {
        for l in &mut live[a..=b] {
            *l += bytes(v);
        }
    }
    live.into_iter().max().unwrap_or(0)
}

/// Concat in place: where a concat kernel copies each operand into one contiguous run of its
/// result (`Kernel::concat`), every operand is an arena value used once there and not already
/// sharing storage, and its run starts aligned, the operands become views into the result at
/// their runs (so their producers write there directly) and the concat call is dropped. That
/// extends the result's life back to its first part's producer, so each concat is taken only
/// if the peak of live bytes does not grow (a UNet skip connection produced long before its
/// concat stays a copy). Returns `part -> (result, byte offset)`.
fn place_concats(
    calls: &mut Vec<(KernelId, Vec<Pending>, String)>,
    kernels: &[Kernel],
    storage: &HashMap<Value, Slot>,
    in_place: &HashMap<Value, Value>,
    bytes: &dyn Fn(Value) -> u64,
    align: u64,
) -> HashMap<Value, (Value, u64)> {
    let mut parts: HashMap<Value, (Value, u64)> = HashMap::new();
    let mut dropped = vec![false; calls.len()];
    let sharing: HashSet<Value> = in_place.iter().flat_map(|(&a, &b)| [a, b]).collect();
    let shares = |v: &Value| sharing.contains(v);
    let root_of = |parts: &HashMap<Value, (Value, u64)>, v: Value| {
        let mut r = v;
        while let Some(&a) = in_place.get(&r) {
            r = a;
        }
        parts.get(&r).map(|p| p.0).unwrap_or(r)
    };
    let mut best = live_peak(calls, &dropped, storage, &|v| root_of(&parts, v), bytes);
    for ci in 0..calls.len() {
        let (ki, args, _) = &calls[ci];
        let Some((out, runs)) = &kernels[ki.index()].concat else { continue };
        let Pending::Value(vout) = args[*out] else { continue };
        let elem = kernels[ki.index()].params[*out].ty.bytes() as u64;
        let mut candidate = Vec::new();
        for &(p, at) in runs {
            let Pending::Value(v) = args[p] else { break };
            let once = args.iter().filter(|a| matches!(a, Pending::Value(x) if *x == v)).count() == 1;
            let off = at * elem;
            if storage.contains_key(&v)
                || shares(&v)
                || parts.contains_key(&v)
                || !once
                || !off.is_multiple_of(align)
            {
                break;
            }
            candidate.push((v, (vout, off)));
        }
        if candidate.len() != runs.len() || storage.contains_key(&vout) || shares(&vout) {
            continue;
        }
        let mut trial = parts.clone();
        trial.extend(candidate.iter().copied());
        dropped[ci] = true;
        let peak = live_peak(calls, &dropped, storage, &|v| root_of(&trial, v), bytes);
        if peak <= best {
            best = peak;
            parts = trial;
        } else {
            dropped[ci] = false;
        }
    }
    let mut i = 0;
    calls.retain(|_| {
        i += 1;
        !dropped[i - 1]
    });
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_dead_buffers_and_never_overlaps_live_ones() {
        let reqs = [
            Request { size: 100, start: 0, end: 1 },
            Request { size: 50, start: 1, end: 2 },
            Request { size: 100, start: 2, end: 3 },
            Request { size: 10, start: 0, end: 3 },
        ];
        let p = plan(&reqs, 16);
        for (i, a) in reqs.iter().enumerate() {
            for (j, b) in reqs.iter().enumerate() {
                if i < j && a.start <= b.end && b.start <= a.end {
                    let (ao, bo) = (p.offsets[i], p.offsets[j]);
                    assert!(ao + a.size <= bo || bo + b.size <= ao, "{i} and {j} overlap");
                }
            }
        }
        assert_eq!(p.lower_bound_bytes, 160);
        assert!(p.arena_bytes < p.naive_bytes);
    }
}

/// Checks a finished program's memory plan by simulation: every arena argument is tagged with the
/// value (or scratch buffer) it holds (`owners[call][arg]`); a write claims its byte range, and a
/// read must find its whole range still holding the value it expects. Any overlap of two live
/// buffers shows up as a read of clobbered bytes.
pub(crate) fn check(p: &super::Program, owners: &[Vec<Option<u32>>]) -> Result<(), String> {
    use super::Slot;
    // Disjoint segments (start, end, owner), kept sorted.
    let mut segs: Vec<(u64, u64, u32)> = Vec::new();
    for (ci, (call, own)) in p.calls.iter().zip(owners).enumerate() {
        let k = &p.kernels[call.kernel.index()];
        let mut writes = Vec::new();
        for ((slot, o), param) in call.args.iter().zip(own).zip(&k.params) {
            // Graph outputs are checked too (a schedule must not read one before it is written),
            // each in an address range of its own far above the arena.
            let (off, in_arena) = match (slot, o) {
                (Slot::Arena(off), Some(_)) => (*off, true),
                (Slot::Output(j), Some(_)) => ((*j as u64 + 1) << 40, false),
                _ => continue,
            };
            let o = o.as_ref().expect("matched above");
            let len = param.len * param.ty.bytes() as u64;
            let (a, b) = (off, off + len);
            if in_arena && b > p.arena.arena_bytes {
                return Err(format!("call {ci} ({}) uses bytes {a}..{b} beyond the arena", call.label));
            }
            match param.access {
                crate::kir::Access::Read => {
                    let covered: u64 = segs
                        .iter()
                        .filter(|s| s.2 == *o && s.0 < b && a < s.1)
                        .map(|s| s.1.min(b) - s.0.max(a))
                        .sum();
                    if covered != b - a {
                        return Err(format!(
                            "call {ci} ({}) reads bytes {a}..{b}, which no longer hold the value it expects",
                            call.label
                        ));
                    }
                }
                _ => writes.push((a, b, *o)),
            }
        }
        for (a, b, o) in writes {
            let mut next = Vec::with_capacity(segs.len() + 2);
            for s in segs.drain(..) {
                if s.1 <= a || b <= s.0 {
                    next.push(s);
                    continue;
                }
                if s.0 < a {
                    next.push((s.0, a, s.2));
                }
                if b < s.1 {
                    next.push((b, s.1, s.2));
                }
            }
            next.push((a, b, o));
            next.sort_unstable();
            segs = next;
        }
    }
    Ok(())
}

/// One box of the memory plot: a tensor or scratch buffer at `offset` for `bytes`, live from call
/// `first` to call `last` (inclusive), made by the call labelled `label`.
#[derive(Clone, Debug, PartialEq)]
pub struct ArenaBox {
    pub offset: u64,
    pub bytes: u64,
    pub first: usize,
    pub last: usize,
    pub label: String,
    /// A kernel's private scratch (GEMM packing, dequantized weights), not a graph value.
    pub scratch: bool,
}

/// What the memory plots draw, in both forms (`memory.svg` here, `memory.png` by the driver).
#[derive(Clone, Debug)]
pub struct MemoryPlot {
    pub title: String,
    pub calls: usize,
    pub arena_bytes: u64,
    pub lower_bound_bytes: u64,
    pub boxes: Vec<ArenaBox>,
}

/// Fill colors of the plots: intermediate tensors alternate between two blues so that
/// neighbours stay apart, scratch is orange; the lower bound is a dashed red line.
pub const PLOT_TENSOR_COLORS: [(u8, u8, u8); 2] = [(0x80, 0xb1, 0xd3), (0xbe, 0xd7, 0xea)];
pub const PLOT_SCRATCH_COLOR: (u8, u8, u8) = (0xfd, 0xb4, 0x62);
pub const PLOT_BOUND_COLOR: (u8, u8, u8) = (0xcc, 0x00, 0x00);

impl MemoryPlot {
    /// The fill of box `i`.
    pub fn color(&self, i: usize) -> (u8, u8, u8) {
        if self.boxes[i].scratch {
            PLOT_SCRATCH_COLOR
        } else {
            PLOT_TENSOR_COLORS[i % 2]
        }
    }

    /// The legend: (color, text, dashed line rather than a box).
    pub fn legend(&self) -> Vec<((u8, u8, u8), String, bool)> {
        vec![
            (PLOT_TENSOR_COLORS[0], "tensor (graph value), first to last use".into(), false),
            (PLOT_SCRATCH_COLOR, "scratch of one kernel call".into(), false),
            (PLOT_BOUND_COLOR, format!("lower bound: {} B live at once", self.lower_bound_bytes), true),
        ]
    }
}

/// The boxes of a program's arena plan: every tensor or scratch buffer from its first to its
/// last use.
pub fn memory_plot(p: &super::Program) -> MemoryPlot {
    use super::Slot;
    use std::collections::BTreeMap;
    // Boxes: (offset, bytes, first call) -> (last call, label of the first call, scratch).
    let mut boxes: BTreeMap<(u64, u64, usize), (usize, String, bool)> = BTreeMap::new();
    let mut open: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for (ci, call) in p.calls.iter().enumerate() {
        let k = &p.kernels[call.kernel.index()];
        for (slot, param) in call.args.iter().zip(&k.params) {
            let Slot::Arena(off) = slot else { continue };
            let len = param.len * param.ty.bytes() as u64;
            let key = (*off, len);
            let start = match (param.access, open.get(&key)) {
                (crate::kir::Access::Read, Some(&s)) => s,
                _ => {
                    open.insert(key, ci);
                    ci
                }
            };
            let scratch = param.access == crate::kir::Access::Scratch;
            boxes.insert((*off, len, start), (ci, call.label.clone(), scratch));
        }
    }
    MemoryPlot {
        title: format!(
            "{}: arena {} B, lower bound {} B, no reuse {} B; {} calls (time →), offset ↓",
            p.name,
            p.arena.arena_bytes,
            p.arena.lower_bound_bytes,
            p.arena.naive_bytes,
            p.calls.len()
        ),
        calls: p.calls.len(),
        arena_bytes: p.arena.arena_bytes,
        lower_bound_bytes: p.arena.lower_bound_bytes,
        boxes: boxes
            .into_iter()
            .map(|((offset, bytes, first), (last, label, scratch))| ArenaBox {
                offset,
                bytes,
                first,
                last,
                label,
                scratch,
            })
            .collect(),
    }
}

/// Geometry shared by the SVG and the PNG: the plot area and where a call or byte offset lands.
#[derive(Clone, Copy, Debug)]
pub struct PlotFrame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub top: f64,
    /// Total picture size.
    pub total_width: f64,
    pub total_height: f64,
    calls: f64,
    bytes: f64,
}

/// Height of the legend below the plot: one row per entry.
const LEGEND_ROW: f64 = 16.0;

impl PlotFrame {
    pub fn of(plot: &MemoryPlot) -> PlotFrame {
        let (width, height, left, top) = (1000.0, 600.0, 70.0, 30.0);
        let legend = LEGEND_ROW * plot.legend().len() as f64 + 8.0;
        PlotFrame {
            width,
            height,
            left,
            top,
            total_width: width + left + 20.0,
            total_height: height + top + 30.0 + legend,
            calls: plot.calls.max(1) as f64,
            bytes: plot.arena_bytes.max(1) as f64,
        }
    }
    pub fn x(&self, call: f64) -> f64 {
        self.left + call / self.calls * self.width
    }
    pub fn y(&self, byte: f64) -> f64 {
        self.top + byte / self.bytes * self.height
    }
    /// Top of legend row `i` (below the plot and its axis labels).
    pub fn legend_y(&self, i: usize) -> f64 {
        self.top + self.height + 26.0 + LEGEND_ROW * i as f64
    }
}

/// An SVG picture of a program's arena: time (kernel calls) across, byte offset down, one box per
/// tensor or scratch buffer from its first to its last use (hover for the call that made it),
/// the lower bound as a dashed line, and a legend.
pub fn memory_svg(p: &super::Program) -> String {
    use std::fmt::Write;
    let plot = memory_plot(p);
    let f = PlotFrame::of(&plot);
    let hex = |(r, g, b): (u8, u8, u8)| format!("#{r:02x}{g:02x}{b:02x}");
    let (left, top, w, h) = (f.left, f.top, f.width, f.height);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        f.total_width, f.total_height
    );
    let _ = write!(s, r#"<text x="{left}" y="18">{}</text>"#, xml(&plot.title));
    let _ =
        write!(s, r##"<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#f8f8f8" stroke="#888"/>"##);
    for (i, b) in plot.boxes.iter().enumerate() {
        let (x0, x1) = (f.x(b.first as f64), f.x(b.last as f64 + 1.0));
        let (y0, y1) = (f.y(b.offset as f64), f.y((b.offset + b.bytes) as f64));
        let _ = write!(
            s,
            r##"<rect x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{}" stroke="#555" stroke-width="0.5"><title>{}{} — {} B at offset {}, calls {}..={}</title></rect>"##,
            (x1 - x0).max(0.5),
            (y1 - y0).max(0.5),
            hex(plot.color(i)),
            if b.scratch { "scratch of " } else { "" },
            xml(&b.label),
            b.bytes,
            b.offset,
            b.first,
            b.last
        );
    }
    let lb = f.y(plot.lower_bound_bytes as f64);
    let red = hex(PLOT_BOUND_COLOR);
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{lb:.1}" x2="{:.1}" y2="{lb:.1}" stroke="{red}" stroke-dasharray="6 4"/><text x="4" y="{:.1}" fill="{red}">lower bound</text>"##,
        left + w,
        lb + 4.0
    );
    let _ = write!(
        s,
        r#"<text x="4" y="{:.1}">0 B</text><text x="4" y="{:.1}">{} B</text>"#,
        top + 4.0,
        top + h,
        plot.arena_bytes
    );
    for (i, (color, text, dashed)) in plot.legend().into_iter().enumerate() {
        let y = f.legend_y(i);
        if dashed {
            let _ = write!(
                s,
                r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-dasharray="6 4"/>"##,
                y + 5.0,
                left + 24.0,
                y + 5.0,
                hex(color)
            );
        } else {
            let _ = write!(
                s,
                r##"<rect x="{left}" y="{y:.1}" width="24" height="10" fill="{}" stroke="#555" stroke-width="0.5"/>"##,
                hex(color)
            );
        }
        let _ = write!(s, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, left + 32.0, y + 9.0, xml(&text));
    }
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
