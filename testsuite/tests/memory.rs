//! Static memory planning on every zoo model: the arena is within 2% of the lower bound (the peak
//! of simultaneously live bytes for the chosen schedule), the schedule never raises the bound of
//! the IR's own order, and planning (lowering included) stays fast. Every plan is also checked
//! by simulation inside `lower` (a read of clobbered bytes is an error).

use edgec::{CompileOptions, Session};
use edgec_backends::lower::{lower, memory_svg, LowerOptions};
use edgec_testsuite::zoo::{discover_with_large, zoo_dir};
use std::time::Instant;

#[test]
fn zoo_arenas_are_at_the_lower_bound() {
    for m in discover_with_large(&zoo_dir()) {
        let session = Session::import(m.model(), &CompileOptions::default()).unwrap();
        // What `compile` lowers: the module after the default pass pipeline.
        let (optimized, _) = session.optimized().unwrap();
        let t = Instant::now();
        let p = lower(optimized.main().unwrap(), &LowerOptions::default()).unwrap();
        let secs = t.elapsed().as_secs_f64();
        let a = &p.arena;
        println!(
            "{:<22} arena {:>9} B  lower bound {:>9} B ({:.3}x)  IR-order bound {:>9} B  greedy-by-size {:>9} B  no reuse {:>10} B  [{}]  {:.3} s",
            m.name,
            a.arena_bytes,
            a.lower_bound_bytes,
            a.arena_bytes as f64 / a.lower_bound_bytes.max(1) as f64,
            a.topological_lower_bound_bytes,
            a.greedy_by_size_bytes,
            a.naive_bytes,
            a.placement,
            secs
        );
        assert!(
            a.arena_bytes as f64 <= 1.02 * a.lower_bound_bytes as f64,
            "{}: arena above 1.02x the bound",
            m.name
        );
        assert!(
            a.lower_bound_bytes <= a.topological_lower_bound_bytes,
            "{}: schedule raised the bound",
            m.name
        );
        assert!(a.arena_bytes <= a.greedy_by_size_bytes && a.arena_bytes <= a.naive_bytes, "{}", m.name);
        let svg = memory_svg(&p);
        assert!(svg.starts_with("<svg") && svg.contains("lower bound"), "{}", m.name);
    }
}
