//! The text form of a lowered [`Program`]: its interface, constants, arena summary, kernels (in
//! the kernel-IR form of [`crate::kir::print`]) and the call schedule with each argument's slot.
//! The form is specified in `docs/kernel-ir.md`.

use super::{Program, Slot};
use crate::kir::print::write_kernel;
use crate::kir::{ConstId, KernelId};
use std::fmt::{self, Write};

/// The text form of a lowered program: its interface, constants, arena summary, kernels and the
/// call schedule with each argument's slot.
pub fn print_program(p: &Program) -> String {
    let mut s = String::new();
    write_program(&mut s, p).expect("writing to a String does not fail");
    s
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_program(f, self)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slot::Input(i) => write!(f, "in{i}"),
            Slot::Output(i) => write!(f, "out{i}"),
            Slot::Const(c) => write!(f, "{c}"),
            Slot::Arena(off) => write!(f, "arena+{off}"),
        }
    }
}

/// 64-bit FNV-1a: a short fingerprint of a constant's bytes (not a cryptographic hash; it only
/// has to make a change in the data visible in the text).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn write_program(w: &mut impl Write, p: &Program) -> fmt::Result {
    writeln!(w, "program @{}", p.name)?;
    for (what, list) in [("input in", &p.inputs), ("output out", &p.outputs)] {
        for (i, io) in list.iter().enumerate() {
            let dims: Vec<String> = io.dims.iter().map(|d| d.to_string()).collect();
            writeln!(w, "  {what}{i} {:?}: {}[{}]", io.name, io.ty.name(), dims.join("x"))?;
        }
    }
    for (i, c) in p.consts.iter().enumerate() {
        let n = c.bytes.len() / c.ty.bytes();
        writeln!(
            w,
            "  const {}: {} x {n}, {} B, fnv1a {:016x}",
            ConstId::new(i),
            c.ty.name(),
            c.bytes.len(),
            fnv1a(&c.bytes)
        )?;
    }
    let a = &p.arena;
    let buffers = a.offsets.len();
    writeln!(
        w,
        "  arena {} B: lower bound {} B, IR order {} B, greedy by size {} B, no reuse {} B, {buffers} buffer{}, {}, align {}",
        a.arena_bytes,
        a.lower_bound_bytes,
        a.topological_lower_bound_bytes,
        a.greedy_by_size_bytes,
        a.naive_bytes,
        if buffers == 1 { "" } else { "s" },
        if a.placement.is_empty() { "none" } else { a.placement },
        a.alignment
    )?;
    writeln!(w, "  graph ops {}", p.graph_ops)?;
    for (i, k) in p.kernels.iter().enumerate() {
        writeln!(w)?;
        write_kernel(w, k, Some(KernelId::new(i)))?;
    }
    writeln!(w)?;
    writeln!(w, "calls")?;
    for c in &p.calls {
        let args: Vec<String> = c.args.iter().map(|s| s.to_string()).collect();
        writeln!(w, "  {}({}) {:?}", c.kernel, args.join(", "), c.label)?;
    }
    Ok(())
}
