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

/// Concat in place: the producers of a concat's operands write straight into their runs of its
/// result (contiguous, since the dims before the axis are 1), the copy disappears, and the peak
/// drops from a + b + concat to the concat alone. The plan checker inside `lower` verifies the
/// aliasing; the zoo's UNet exercises it on every target in `targets.rs`.
#[test]
fn concat_is_written_in_place_by_its_producers() {
    let text = r#"func @f(%x: tensor<1x4x8xf32>, %y: tensor<1x4x8xf32>) -> ("z": tensor<1x8x8xf32>) {
  %0 = math.relu %x : tensor<1x4x8xf32> loc("a")
  %1 = math.neg %y : tensor<1x4x8xf32> loc("b")
  %2 = shape.concat %0, %1 {axis = 1} : tensor<1x8x8xf32> loc("cat")
  %3 = math.exp %2 : tensor<1x8x8xf32> loc("exp")
  func.return %3 loc(unknown)
}
"#;
    let m = edgec_ir::parser::parse_module(text).unwrap();
    edgec_ir::verify::verify_module(&m).unwrap();
    let p = lower(m.main().unwrap(), &LowerOptions::default()).unwrap();
    let labels: Vec<&str> = p.calls.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["a", "b", "exp"], "the concat copy should be gone");
    // Both halves live inside the 256-byte concat result; nothing else is in the arena.
    assert_eq!(p.arena.lower_bound_bytes, 256);
    assert_eq!(p.arena.arena_bytes, 256);
}
