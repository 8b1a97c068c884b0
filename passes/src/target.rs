//! What the passes know about the machine they optimize for.
//!
//! Passes that make machine-dependent choices (the `egraph` passes' cost model, `choose-layout`)
//! read a [`TargetInfo`]; the others ignore it. The compiler builds one from its `--target`
//! (`Backend::pass_target` of the target's backend); a pipeline built without one gets [`TargetInfo::generic`],
//! which is the model the passes were tuned with on the AVX-512 host, so IR text optimized
//! without a target keeps the results it always had.
//!
//! The description is deliberately small: how wide the floating-point vectors are, whether
//! there is an FMA, how many vector pipes issue per cycle, whether the model may assume a data
//! cache, the sustained bytes per cycle of a streaming kernel and the fixed cycles of one kernel
//! call. [`TargetInfo::weights`] turns those into the three numbers the cost model multiplies.

/// A target as the passes see it.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetInfo {
    /// For reports (`generic`, `host`, `cortex-m7`, a triple).
    pub name: String,
    /// Width of the f32 vectors the kernels use, in bytes (4: a scalar FPU).
    pub vector_bytes: u32,
    /// Whether there is a fused multiply-add (two flops per lane and cycle).
    pub fma: bool,
    /// Floating-point vector instructions issued per cycle (2 on the out-of-order application
    /// cores, 1 on a microcontroller).
    pub fp_pipes: u32,
    /// Data cache the model may assume. `None`: every access goes to (tightly coupled or
    /// on-chip) memory, so re-reading a tensor costs as much as reading it the first time.
    pub data_cache_bytes: Option<u64>,
    /// Bytes a streaming kernel moves per cycle (L2 on application cores, SRAM on an MCU).
    pub bytes_per_cycle: f64,
    /// Fixed cycles of one kernel call: the call through the runtime's per-kernel hook, loop
    /// setup, and the pipeline and prefetcher ramp of a new loop nest.
    pub launch_cycles: f64,
    /// The backend f32 GEMM micro-kernel's B panels (`docs/gemm.md`): `choose-layout` stores
    /// constant weights in panels of [`TargetInfo::gemm_panel_width`] columns. `None`: the
    /// pipeline does not serve that backend, and no weight is re-laid out.
    pub gemm_panel: Option<GemmPanel>,
}

/// The shape of the backend GEMM's B panels: `max_vectors` vectors of `lanes` f32 columns,
/// fewer when the product has fewer columns (the backend's `plan` shrinks the tile to N).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmPanel {
    pub lanes: u32,
    pub max_vectors: u32,
}

/// The cost model's weights, in byte-equivalents (one byte of memory traffic costs 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostWeights {
    /// One kernel call.
    pub launch: f64,
    /// One byte read or written.
    pub byte: f64,
    /// One floating-point operation.
    pub flop: f64,
    /// Whether the model may assume a data cache: a kernel re-reading what it has just
    /// written (an anchor's epilogue rewriting its output in place) then costs nothing extra.
    pub cached: bool,
}

impl Default for TargetInfo {
    fn default() -> Self {
        TargetInfo::generic()
    }
}

impl TargetInfo {
    /// The model without a target: the AVX-512 application core the cost model was tuned on
    /// (16 f32 lanes, FMA, 2 pipes: 64 flops per cycle against 16 bytes per cycle of L2
    /// streaming, so a flop weighs a quarter of a byte, and a kernel call 256 cycles = 4096
    /// byte-equivalents). No GEMM panel width: without a backend nothing is pre-packed.
    pub fn generic() -> TargetInfo {
        TargetInfo { name: "generic".into(), ..TargetInfo::application_core("generic", 64, true) }
    }

    /// An application processor (Linux, caches): `vector_bytes` wide f32 vectors (4 for a
    /// scalar FPU), two floating-point pipes, 16 bytes per cycle from L2, 256 cycles per kernel
    /// call.
    pub fn application_core(name: &str, vector_bytes: u32, fma: bool) -> TargetInfo {
        TargetInfo {
            name: name.into(),
            vector_bytes: vector_bytes.max(4),
            fma,
            fp_pipes: 2,
            data_cache_bytes: Some(1 << 20),
            bytes_per_cycle: 16.0,
            launch_cycles: 256.0,
            gemm_panel: None,
        }
    }

    /// A microcontroller core without a data cache in the model (Cortex-M7 as the zoo uses it:
    /// weights in flash, the arena in SRAM): a scalar FPU issuing one instruction per cycle,
    /// about one 32-bit word per cycle of memory traffic, and a cheap kernel call (a plain
    /// function call, no OS, short loops).
    pub fn microcontroller(name: &str, fma: bool) -> TargetInfo {
        TargetInfo {
            name: name.into(),
            vector_bytes: 4,
            fma,
            fp_pipes: 1,
            data_cache_bytes: None,
            bytes_per_cycle: 4.0,
            launch_cycles: 64.0,
            gemm_panel: None,
        }
    }

    /// The panel width the backend's GEMM uses for a product with `n` columns:
    /// `lanes × min(max_vectors, ceil(n / lanes))`.
    pub fn gemm_panel_width(&self, n: usize) -> Option<usize> {
        let p = self.gemm_panel?;
        let lanes = p.lanes.max(1) as usize;
        Some(lanes * (p.max_vectors.max(1) as usize).min(n.div_ceil(lanes)).max(1))
    }

    /// f32 lanes of one vector.
    pub fn lanes(&self) -> u32 {
        (self.vector_bytes / 4).max(1)
    }

    /// Peak f32 flops per cycle: lanes × (2 with FMA) × pipes.
    pub fn flops_per_cycle(&self) -> f64 {
        (self.lanes() * if self.fma { 2 } else { 1 } * self.fp_pipes.max(1)) as f64
    }

    /// The cost model's weights: a byte costs 1, a flop `bytes_per_cycle / flops_per_cycle`
    /// (the bytes the machine could have moved in the time of that flop), a kernel call
    /// `launch_cycles × bytes_per_cycle`.
    pub fn weights(&self) -> CostWeights {
        CostWeights {
            launch: self.launch_cycles * self.bytes_per_cycle,
            byte: 1.0,
            flop: self.bytes_per_cycle / self.flops_per_cycle(),
            cached: self.data_cache_bytes.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generic_weights_are_the_tuned_host_model() {
        let w = TargetInfo::generic().weights();
        assert_eq!((w.launch, w.byte, w.flop, w.cached), (4096.0, 1.0, 0.25, true));
    }

    #[test]
    fn microcontroller_flops_weigh_more_and_calls_less() {
        let host = TargetInfo::application_core("host", 64, true).weights();
        let m7 = TargetInfo::microcontroller("cortex-m7", true).weights();
        assert_eq!((m7.launch, m7.flop, m7.cached), (256.0, 2.0, false));
        assert!(m7.flop > 4.0 * host.flop && m7.launch < host.launch / 8.0);
    }
}

#[cfg(test)]
mod panel_tests {
    use super::*;

    #[test]
    fn panel_width_follows_the_product() {
        let mut t = TargetInfo::application_core("host", 64, true);
        assert_eq!(t.gemm_panel_width(100), None);
        t.gemm_panel = Some(GemmPanel { lanes: 16, max_vectors: 4 });
        assert_eq!(t.gemm_panel_width(1000), Some(64));
        assert_eq!(t.gemm_panel_width(20), Some(32));
        assert_eq!(t.gemm_panel_width(3), Some(16));
    }
}
