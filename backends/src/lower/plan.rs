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
    pub alignment: u64,
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

pub fn plan(reqs: &[Request], align: u64) -> ArenaPlan {
    let steps = reqs.iter().map(|r| r.end + 1).max().unwrap_or(0);
    let mut live = vec![0u64; steps];
    for r in reqs {
        for s in &mut live[r.start..=r.end] {
            *s += r.size;
        }
    }
    let lower_bound_bytes = live.iter().copied().max().unwrap_or(0);
    let mut idx: Vec<usize> = (0..reqs.len()).collect();
    idx.sort_by_key(|&i| (std::cmp::Reverse(reqs[i].size), reqs[i].start, i));
    let mut offsets = vec![0u64; reqs.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_bytes = 0;
    for &i in &idx {
        let r = reqs[i];
        let size = align_up(r.size.max(1), align);
        let mut conflicts: Vec<(u64, u64)> = placed
            .iter()
            .filter(|&&j| reqs[j].start <= r.end && r.start <= reqs[j].end)
            .map(|&j| (offsets[j], offsets[j] + align_up(reqs[j].size.max(1), align)))
            .collect();
        conflicts.sort();
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
    let naive_bytes = reqs.iter().map(|r| align_up(r.size, align)).sum();
    ArenaPlan { offsets, arena_bytes, lower_bound_bytes, naive_bytes, alignment: align }
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
