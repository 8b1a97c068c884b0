//! The C sources of the runtime, embedded so that the edgec binary is self-contained.

use std::io;
use std::path::Path;

/// The runtime ABI header.
pub const RUNTIME_H: &str = include_str!("../c/edgec_runtime.h");
/// The runtime (init, run, kernel hook, status strings, dtype sizes).
pub const RUNTIME_C: &str = include_str!("../c/edgec_runtime.c");
/// Weak `memcpy`/`memmove`/`memset` for bare-metal targets without a libc.
pub const MEM_C: &str = include_str!("../c/edgec_mem.c");
/// The generic run harness (`in_<i>.bin` -> model -> `out_<i>.bin`).
pub const HARNESS_C: &str = include_str!("../c/harness.c");
/// Cortex-M vector table, reset and fault handlers.
pub const CORTEX_M_STARTUP_C: &str = include_str!("../c/cortex_m/startup.c");
/// Linker script for QEMU's mps2-an500 (Cortex-M7).
pub const MPS2_AN500_LD: &str = include_str!("../c/cortex_m/mps2_an500.ld");

/// Every embedded file with its path relative to the `c/` folder.
pub const ALL: &[(&str, &str)] = &[
    ("edgec_runtime.h", RUNTIME_H),
    ("edgec_runtime.c", RUNTIME_C),
    ("edgec_mem.c", MEM_C),
    ("harness.c", HARNESS_C),
    ("cortex_m/startup.c", CORTEX_M_STARTUP_C),
    ("cortex_m/mps2_an500.ld", MPS2_AN500_LD),
];

/// The linker script for QEMU's mps2-an386 (Cortex-M4): the an500 map with PSRAM at 0x21000000.
pub fn mps2_an386_ld() -> String {
    MPS2_AN500_LD
        .replace(
            "mps2_an500.ld -- memory map for QEMU's mps2-an500 (Cortex-M7)",
            "mps2_an386.ld -- derived from mps2_an500.ld for mps2-an386 (Cortex-M4)",
        )
        .replace("ORIGIN = 0x60000000", "ORIGIN = 0x21000000")
}

/// Writes every embedded file under `dir` (e.g. `dir/edgec_runtime.h`, `dir/cortex_m/startup.c`),
/// plus `cortex_m/mps2_an386.ld`.
pub fn write_all(dir: &Path) -> io::Result<()> {
    for (rel, text) in ALL {
        write_if_changed(&dir.join(rel), text)?;
    }
    write_if_changed(&dir.join("cortex_m/mps2_an386.ld"), &mps2_an386_ld())
}

fn write_if_changed(path: &Path, text: &str) -> io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Write then rename, so that a concurrent reader never sees a half-written file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
