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

/// Places the requests in the given order, each at the lowest offset (or, with `best_fit`, in the
/// tightest gap) that does not overlap an already placed request whose live range intersects.
fn place(reqs: &[Request], align: u64, order: &[usize], best_fit: bool) -> (Vec<u64>, u64) {
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

/// An SVG picture of a program's arena: time (kernel calls) across, byte offset down, one box per
/// tensor or scratch buffer from its first to its last use, labelled with the call that made it.
/// The dashed line is the lower bound.
pub fn memory_svg(p: &super::Program) -> String {
    use super::Slot;
    use std::collections::BTreeMap;
    use std::fmt::Write;
    // Boxes: (offset, bytes) -> (first call, last call, label of the first call).
    let mut boxes: BTreeMap<(u64, u64, usize), (usize, String)> = BTreeMap::new();
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
            boxes.insert((*off, len, start), (ci, call.label.clone()));
        }
    }
    let (w, h, left, top) = (1000.0f64, 600.0f64, 70.0f64, 30.0f64);
    let calls = p.calls.len().max(1) as f64;
    let bytes = p.arena.arena_bytes.max(1) as f64;
    let x = |c: f64| left + c / calls * w;
    let y = |b: f64| top + b / bytes * h;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        w + left + 20.0,
        h + top + 40.0
    );
    let _ = write!(
        s,
        r#"<text x="{left}" y="18">{}: arena {} B, lower bound {} B, no reuse {} B; {} calls (time →), offset ↓</text>"#,
        xml(&p.name),
        p.arena.arena_bytes,
        p.arena.lower_bound_bytes,
        p.arena.naive_bytes,
        p.calls.len()
    );
    let _ =
        write!(s, r##"<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#f8f8f8" stroke="#888"/>"##);
    for (i, ((off, len, start), (end, label))) in boxes.iter().enumerate() {
        // A light palette in plain hex colors (every SVG viewer understands them).
        const PALETTE: [&str; 8] =
            ["#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5"];
        let fill = PALETTE[i % PALETTE.len()];
        let (x0, x1) = (x(*start as f64), x(*end as f64 + 1.0));
        let (y0, y1) = (y(*off as f64), y((*off + *len) as f64));
        let _ = write!(
            s,
            r##"<rect x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{:.1}" fill="{fill}" stroke="#555" stroke-width="0.5"><title>{} — {} B at offset {}, calls {}..={}</title></rect>"##,
            (x1 - x0).max(0.5),
            (y1 - y0).max(0.5),
            xml(label),
            len,
            off,
            start,
            end
        );
    }
    let lb = y(p.arena.lower_bound_bytes as f64);
    let _ = write!(
        s,
        r##"<line x1="{left}" y1="{lb:.1}" x2="{:.1}" y2="{lb:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="4" y="{:.1}" fill="#c00">lower bound</text>"##,
        left + w,
        lb + 4.0
    );
    let _ = write!(
        s,
        r#"<text x="4" y="{:.1}">0 B</text><text x="4" y="{:.1}">{} B</text>"#,
        top + 4.0,
        top + h,
        p.arena.arena_bytes
    );
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
