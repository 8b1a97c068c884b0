//! Arena offsets from live ranges: greedy by size (largest first, lowest offset that does not
//! overlap a placed tensor whose live range intersects). Issue-level planning (schedule search,
//! in-place reuse) builds on this.

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

/// Places the requests in the given order, each at the lowest offset that does not overlap an
/// already placed request whose live range intersects.
fn place(reqs: &[Request], align: u64, order: &[usize]) -> (Vec<u64>, u64) {
    let mut offsets = vec![0u64; reqs.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_bytes = 0;
    for &i in order {
        let r = reqs[i];
        let size = align_up(r.size.max(1), align);
        let mut conflicts: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&j| reqs[j].start <= r.end && r.start <= reqs[j].end)
            .map(|&j| (offsets[j], offsets[j] + align_up(reqs[j].size.max(1), align)))
            .collect();
        conflicts.sort_unstable();
        let mut off = 0;
        for (lo, hi) in conflicts {
            if off + size <= lo {
                break;
            }
            off = off.max(hi);
        }
        offsets[i] = off;
        arena_bytes = arena_bytes.max(off + size);
        placed.push(i);
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
    let mut best: Option<(Vec<u64>, u64, &'static str)> = None;
    let mut greedy_by_size_bytes = 0;
    for (name, key) in &heuristics {
        let mut idx: Vec<usize> = (0..reqs.len()).collect();
        idx.sort_by_key(|&i| key(&reqs[i], i));
        let (offsets, bytes) = place(reqs, align, &idx);
        if *name == "greedy-by-size" {
            greedy_by_size_bytes = bytes;
        }
        if best.as_ref().is_none_or(|b| bytes < b.1) {
            best = Some((offsets, bytes, name));
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
        let k = &p.kernels[call.kernel];
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
