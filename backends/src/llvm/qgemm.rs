//! int8 GEMM with int32 accumulation and TFLite requantization, emitted as LLVM IR.
//!
//! `C[i][j] = clamp(requantize(Σ_k (A[i][k] − a_zp)(B[k][j] − b_zp) + bias[ch], mult[ch], shift[ch])
//! + c_zp, act_min, act_max)` for sizes known at compile time ([`QGemmDesc`]; the arithmetic and
//! the plain-Rust reference are in [`crate::quant`], re-exported here).
//!
//! Same Goto/BLIS shape as the f32 routine in `gemm.rs` (pack panels of A and B into a caller's
//! scratch, `mr × nr` register tile), but K is not blocked: int8 results cannot be accumulated in
//! C across K blocks, and the int8 panels are a quarter of the f32 ones, so whole-K panels still
//! fit the caches that `kc` blocking targets. Packed panels interleave K in groups of `kg` bytes
//! (4 for the dot-product instructions: one 32-bit lane holds four consecutive k of one row or
//! column), so the micro-kernel is per k group: `nv` vector loads of B, one 32-bit broadcast of
//! A per row, `mr·nv` dot products:
//!
//! * x86-64 AVX-512 VNNI: `vpdpbusd` (u8 × s8). The activation operand is packed with `x ^ 0x80`
//!   (= x + 128, unsigned) and the weights stay signed; the extra `128·Σ_k w` is folded into a
//!   per-channel correction (see below).
//! * AArch64 with the dot-product extension: `sdot` (s8 × s8), no offset needed.
//! * Cortex-M with DSP (thumbv7em): `smlad` on `sxtb16` halves of one packed word (bytes 0/2 and,
//!   after `ror #8`, bytes 1/3), two `smlad` per four k.
//! * Otherwise (RISC-V, x86/AArch64 without those extensions): plain IR, `kg = 1`, i8 → i16
//!   products widened into i32 accumulators (vectors where the target has them).
//!
//! Zero points are not subtracted in the inner loop. With the packed values `A + sa`, `B + sb`
//! (`sa`/`sb` = 128 on the operand made unsigned, else 0) the kernel computes `raw = Σ (A+sa)(B+sb)`
//! and
//!
//! ```text
//! Σ (A − a_zp)(B − b_zp) = raw − (sa + a_zp)·ΣB_j − (sb + b_zp)·ΣA_i + K·a_zp·b_zp
//! ```
//!
//! (`sa·sb = 0`), with `ΣA_i`/`ΣB_j` the sums along K of the stored values. The row and column
//! terms (plus the bias on its axis) are computed once per call into two int32 arrays in the
//! scratch; the sums of a prepacked weight operand come from the packed constant (computed at
//! compile time by [`pack_weights`]), the others from one pass over the operand. All of it is
//! wrapping int32 arithmetic, so the result equals the reference's wrapping accumulator.
//!
//! The epilogue adds the corrections, requantizes with the per-channel multiplier and shift
//! (integer only, bit-exact: 64-bit product, nudge, truncating division by 2^31, the saturating
//! `INT32_MIN · INT32_MIN` case, RoundingDivideByPOT), adds `c_zp`, clamps, and stores int8 —
//! on whole vectors for tiles inside C, through a tile buffer and a scalar loop at the edges.

// `usize::is_multiple_of` is newer than the workspace's rust-version (1.85).
#![allow(clippy::manual_is_multiple_of)]

pub use crate::quant::*;

use super::ir_helpers::{IrHelpers, R};
use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::{Linkage, Module};
use inkwell::targets::TargetMachine;
use inkwell::types::{IntType, VectorType};
use inkwell::values::{BasicValue, BasicValueEnum, FunctionValue, IntValue, PointerValue, VectorValue};
use inkwell::{AddressSpace, IntPredicate};

/// The inner-loop instruction family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QKernel {
    /// x86 AVX-512 VNNI `vpdpbusd` on zmm (u8 × s8, 4 products per 32-bit lane).
    Vnni,
    /// AArch64 `sdot` (s8 × s8, 4 products per lane).
    Sdot,
    /// Arm DSP `smlad` (two 16×16 products per instruction) on `sxtb16`-extended words.
    Smlad,
    /// Plain IR on vectors: i8 → i16 products, widened into i32 accumulators.
    Widen,
    /// Plain scalar IR.
    Scalar,
}

impl QKernel {
    /// K values per packed group (consecutive k of one row/column stored together).
    pub fn kg(self) -> usize {
        match self {
            QKernel::Vnni | QKernel::Sdot | QKernel::Smlad => 4,
            QKernel::Widen | QKernel::Scalar => 1,
        }
    }
}

/// Micro-kernel and blocking for a target ([`QTile::for_target_machine`]); explicit values for
/// tests and tuning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QTile {
    pub kernel: QKernel,
    /// int32 lanes per accumulator vector (1 = scalar).
    pub lanes: usize,
    /// Rows of the register tile.
    pub mr: usize,
    /// Accumulator vectors per row; `nr = nv · lanes` columns.
    pub nv: usize,
    /// Bytes of packed A per M block (rows · padded K), at most.
    pub mc_bytes: usize,
    /// Bytes of packed B per N block, at most.
    pub nc_bytes: usize,
    /// Unroll of the micro-kernel's loop over k groups.
    pub ku: usize,
}

impl QTile {
    /// The tile for a kernel family with `lanes` int32 lanes per vector (defaults below).
    pub fn for_kernel(kernel: QKernel, lanes: usize) -> QTile {
        let (lanes, mr, nv, mc_bytes, nc_bytes, ku) = match kernel {
            // 6×64: 24 zmm accumulators + 4 B vectors + a broadcast, like the f32 kernel. The A
            // block (mc × K bytes) stays in L2; B micro-panels (64 × K) stream from L1/L2.
            QKernel::Vnni => (16, 6, 4, 96 << 10, 512 << 10, 4),
            // 8×12: 24 of the 32 NEON registers.
            QKernel::Sdot => (4, 8, 3, 64 << 10, 256 << 10, 2),
            // 2×2 words: 4 accumulators + 4 extended A halves + 4 extended B halves of the 13
            // allocatable core registers. Small blocks: the scratch is an MCU's RAM.
            QKernel::Smlad => (1, 2, 2, 2 << 10, 4 << 10, 1),
            QKernel::Widen => (lanes.max(4), 4, 1, 64 << 10, 256 << 10, 2),
            QKernel::Scalar => (1, 4, 4, 4 << 10, 8 << 10, 1),
        };
        QTile { kernel, lanes, mr, nv, mc_bytes, nc_bytes, ku }
    }

    /// Inspects the target machine's triple, CPU and features.
    pub fn for_target_machine(tm: &TargetMachine) -> QTile {
        let (triple, cpu, features) = super::gemm::machine_parts(tm);
        Self::from_parts(&triple, &cpu, &features)
    }

    /// [`QTile::for_target_machine`] on plain strings (triple, CPU, `+a,-b` feature list).
    pub fn from_parts(triple: &str, cpu: &str, features: &str) -> QTile {
        let feature = |name: &str| super::gemm::target_feature(features, name);
        let cpu = cpu.to_ascii_lowercase();
        let arch = triple.split('-').next().unwrap_or("");
        let visa = super::gemm::VectorIsa::from_parts(triple, &cpu, features);
        if arch == "x86_64" || arch.starts_with('i') && arch.ends_with("86") {
            let vnni_cpu = ["znver4", "znver5", "cascadelake", "cooperlake", "tigerlake", "rocketlake"]
                .contains(&cpu.as_str())
                || cpu.starts_with("icelake")
                || cpu.starts_with("sapphirerapids")
                || cpu.starts_with("emeraldrapids")
                || cpu.starts_with("graniterapids")
                || cpu.starts_with("diamondrapids");
            if visa.vector_bits == 512
                && feature("avx512vnni").unwrap_or(vnni_cpu)
                && feature("avx512bw") != Some(false)
            {
                return Self::for_kernel(QKernel::Vnni, 16);
            }
            return Self::for_kernel(QKernel::Widen, (visa.vector_bits / 32).max(4) as usize);
        }
        if arch.starts_with("aarch64") || arch.starts_with("arm64") {
            // CPUs that implement the (optional in v8.2, mandatory from v8.4) dot product.
            let dot_cpu = cpu.starts_with("cortex-a55")
                || cpu.starts_with("cortex-a65")
                || cpu.starts_with("cortex-a7") && cpu != "cortex-a72" && cpu != "cortex-a73"
                || cpu.starts_with("cortex-a5") && cpu.len() == 11 && cpu.as_bytes()[10] >= b'1'
                || cpu.starts_with("cortex-x")
                || cpu.starts_with("cortex-r82")
                || cpu.starts_with("neoverse-")
                || cpu.starts_with("ampere1")
                || cpu.starts_with("oryon")
                || cpu.starts_with("apple-m")
                || ["apple-a13", "apple-a14", "apple-a15", "apple-a16", "apple-a17", "apple-a18"]
                    .contains(&cpu.as_str());
            if feature("dotprod").unwrap_or(dot_cpu) && feature("neon") != Some(false) {
                return Self::for_kernel(QKernel::Sdot, 4);
            }
            if feature("neon") != Some(false) {
                return Self::for_kernel(QKernel::Widen, 16);
            }
            return Self::for_kernel(QKernel::Scalar, 1);
        }
        if arch.starts_with("thumb") || arch.starts_with("arm") {
            let dsp_cpu = ["cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85"]
                .contains(&cpu.as_str())
                || arch.starts_with("thumbv7em")
                || cpu.starts_with("cortex-a")
                || cpu.starts_with("cortex-r");
            if feature("dsp").unwrap_or(dsp_cpu) {
                return Self::for_kernel(QKernel::Smlad, 1);
            }
            return QTile { mr: 2, nv: 2, ..Self::for_kernel(QKernel::Scalar, 1) };
        }
        if arch.starts_with("riscv") && visa.vector_bits >= 128 {
            return Self::for_kernel(QKernel::Widen, 8);
        }
        if visa.num_vregs < 32 {
            return QTile { mr: 2, nv: 2, ..Self::for_kernel(QKernel::Scalar, 1) };
        }
        Self::for_kernel(QKernel::Scalar, 1)
    }

    /// Columns of the register tile.
    pub fn nr(&self) -> usize {
        self.nv * self.lanes
    }
}

/// The tile and blocking used for one product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QPlan {
    pub kernel: QKernel,
    pub lanes: usize,
    pub kg: usize,
    pub mr: usize,
    pub nv: usize,
    pub nr: usize,
    /// K groups (`ceil(k / kg)`) and padded K (`kq · kg`).
    pub kq: usize,
    pub kp: usize,
    /// Rows per M block / columns per N block (multiples of `mr` / `nr`).
    pub mc: usize,
    pub nc: usize,
    pub ku: usize,
    /// The operand stored with `^ 0x80` (unsigned) for `vpdpbusd`.
    pub xor_a: bool,
    pub xor_b: bool,
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

fn round_up(a: usize, b: usize) -> usize {
    ceil_div(a, b) * b
}

/// Rows per tile for `m` rows with at most `max`: the fewest padded rows among the sizes from ⅔
/// of `max` up to `max` and `max` balanced over the tiles (as the f32 GEMM does).
fn row_tile(m: usize, max: usize) -> usize {
    let balanced = ceil_div(m, ceil_div(m, max));
    let lo = (2 * max).div_ceil(3).max(1);
    let cost = |mr: usize| (ceil_div(m, mr) * mr, ceil_div(m, mr));
    (lo..=max).chain([balanced]).min_by_key(|&mr| cost(mr)).unwrap_or(balanced)
}

/// Resolves the tile for a problem: `mr` balanced over M, `nv` no wider than N needs, blocks from
/// the byte budgets (one block covering the whole prepacked operand).
pub fn qplan(desc: &QGemmDesc, tile: QTile) -> QPlan {
    let lanes = tile.lanes.max(1);
    let kg = tile.kernel.kg();
    let m = desc.m.max(1);
    let n = desc.n.max(1);
    let mr = row_tile(m, tile.mr.max(1));
    let nv = tile.nv.max(1).min(ceil_div(n, lanes));
    let nr = nv * lanes;
    let kq = ceil_div(desc.k, kg);
    let kp = kq * kg;
    let a_pre = desc.prepacked && desc.weights == QWeights::A;
    let b_pre = desc.prepacked && desc.weights == QWeights::B;
    let mc = if a_pre {
        round_up(m, mr)
    } else {
        ((tile.mc_bytes / kp.max(1) / mr).max(1) * mr).min(round_up(m, mr))
    };
    let nc = if b_pre {
        round_up(n, nr)
    } else {
        ((tile.nc_bytes / kp.max(1) / nr).max(1) * nr).min(round_up(n, nr))
    };
    let vnni = tile.kernel == QKernel::Vnni;
    QPlan {
        kernel: tile.kernel,
        lanes,
        kg,
        mr,
        nv,
        nr,
        kq,
        kp,
        mc,
        nc,
        ku: tile.ku.max(1),
        xor_a: vnni && desc.weights == QWeights::B,
        xor_b: vnni && desc.weights == QWeights::A,
    }
}

/// The correction terms (see the module docs).
#[derive(Clone, Copy, Debug)]
struct Corr {
    /// Multiplies ΣA_i (per row).
    row_coef: i32,
    /// Multiplies ΣB_j (per column).
    col_coef: i32,
    /// `K · a_zp · b_zp`.
    konst: i32,
    use_row: bool,
    use_col: bool,
}

fn corr(d: &QGemmDesc, p: &QPlan) -> Corr {
    let sa = if p.xor_a { 128 } else { 0 };
    let sb = if p.xor_b { 128 } else { 0 };
    let row_coef = if d.k == 0 { 0 } else { -(sb + d.b_zp) };
    let col_coef = if d.k == 0 { 0 } else { -(sa + d.a_zp) };
    Corr {
        row_coef,
        col_coef,
        konst: (d.k as i32).wrapping_mul(d.a_zp).wrapping_mul(d.b_zp),
        use_row: row_coef != 0 || d.bias && d.channel == QChannel::PerRow,
        use_col: col_coef != 0 || d.bias && d.channel == QChannel::PerCol,
    }
}

/// Byte offsets of the scratch regions (each a multiple of 64).
struct Layout {
    a_off: usize,
    b_off: usize,
    tile_off: usize,
    row_off: usize,
    col_off: usize,
    total: usize,
}

fn a_packed_at_run_time(d: &QGemmDesc) -> bool {
    !(d.prepacked && d.weights == QWeights::A)
}

fn b_packed_at_run_time(d: &QGemmDesc) -> bool {
    !(d.prepacked && d.weights == QWeights::B)
}

fn layout(d: &QGemmDesc, p: &QPlan) -> Layout {
    let c = corr(d, p);
    let a = if a_packed_at_run_time(d) { round_up(p.mc * p.kp, 64) } else { 0 };
    let b = if b_packed_at_run_time(d) { round_up(p.nc * p.kp, 64) } else { 0 };
    let tile = round_up(p.mr * p.nr * 4, 64);
    let row = if c.use_row { round_up(d.m * 4, 64) } else { 0 };
    let col = if c.use_col { round_up(d.n * 4, 64) } else { 0 };
    Layout {
        a_off: 0,
        b_off: a,
        tile_off: a + b,
        row_off: a + b + tile,
        col_off: a + b + tile + row,
        total: a + b + tile + row + col,
    }
}

/// Bytes of scratch the routine needs (pass a 4-byte aligned buffer; 64 is best).
pub fn qgemm_scratch_bytes(desc: &QGemmDesc, tile: QTile) -> usize {
    if desc.m == 0 || desc.n == 0 {
        return 0;
    }
    layout(desc, &qplan(desc, tile)).total
}

/// Panel count, panel bytes and the byte offset of the sums in the packed weight operand.
fn packed_geometry(desc: &QGemmDesc, p: &QPlan) -> (usize, usize, usize) {
    let (dim, w) = match desc.weights {
        QWeights::A => (desc.m, p.mr),
        QWeights::B => (desc.n, p.nr),
    };
    let panels = ceil_div(dim, w);
    let panel_bytes = p.kq * w * p.kg;
    (panels, panel_bytes, round_up(panels * panel_bytes, 64))
}

/// Where [`pack_weights`] stores each weight (the panel geometry of `desc`'s weight operand).
pub fn packed_layout(desc: &QGemmDesc, tile: QTile) -> QPackedLayout {
    let p = qplan(desc, tile);
    let (_, panel_bytes, _) = packed_geometry(desc, &p);
    let width = match desc.weights {
        QWeights::A => p.mr,
        QWeights::B => p.nr,
    };
    QPackedLayout { width, kg: p.kg, panel_bytes }
}

/// Length in bytes of [`pack_weights`]'s result.
pub fn qgemm_packed_len(desc: &QGemmDesc, tile: QTile) -> usize {
    let p = qplan(desc, tile);
    let (_, _, sums_off) = packed_geometry(desc, &p);
    let count = match desc.weights {
        QWeights::A => desc.m,
        QWeights::B => desc.n,
    };
    sums_off + 4 * count
}

/// Packs the constant weight operand (A or B per `desc.weights`, in its stored layout) for
/// `desc.prepacked`: `ceil(dim / w)` panels (`w` = `mr` for A, `nr` for B), each `kq` groups of
/// `w × kg` bytes (`[group][row or column][k within group]`), zero-padded past `dim` and `k`;
/// then, at the next multiple of 64 bytes, the weights' sums along K ([`weight_sums`]) as
/// little-endian int32. The values are stored unchanged (signed).
pub fn pack_weights(desc: &QGemmDesc, tile: QTile, w: &[i8]) -> Vec<i8> {
    let p = qplan(desc, tile);
    let (panels, panel_bytes, sums_off) = packed_geometry(desc, &p);
    let (dim, width) = match desc.weights {
        QWeights::A => (desc.m, p.mr),
        QWeights::B => (desc.n, p.nr),
    };
    let mut out = vec![0i8; qgemm_packed_len(desc, tile)];
    for pi in 0..panels {
        for q in 0..p.kq {
            for r in 0..width {
                for g in 0..p.kg {
                    let (idx, k) = (pi * width + r, q * p.kg + g);
                    if idx < dim && k < desc.k {
                        out[pi * panel_bytes + (q * width + r) * p.kg + g] = match desc.weights {
                            QWeights::A => desc.a_at(w, idx, k),
                            QWeights::B => desc.b_at(w, k, idx),
                        };
                    }
                }
            }
        }
    }
    for (c, s) in weight_sums(desc, w).into_iter().enumerate() {
        for (b, byte) in s.to_le_bytes().into_iter().enumerate() {
            out[sums_off + 4 * c + b] = byte as i8;
        }
    }
    out
}

/// Defines `name` as an internal function
/// `void(ptr A, ptr B, ptr C, ptr bias_or_null, ptr mult, ptr shift, ptr scratch)` computing the
/// product for these static sizes (A or B packed by [`pack_weights`] when `desc.prepacked`).
/// `mult`/`shift` are int32 per channel, `shift` in −31..=31; `scratch` holds
/// [`qgemm_scratch_bytes`] bytes. C must not overlap the other buffers.
pub fn emit_qgemm<'ctx>(
    context: &'ctx Context,
    module: &Module<'ctx>,
    tile: QTile,
    name: &str,
    desc: &QGemmDesc,
) -> FunctionValue<'ctx> {
    let ptr = context.ptr_type(AddressSpace::default());
    let fn_ty = context.void_type().fn_type(&[ptr.into(); 7], false);
    let func = module.add_function(name, fn_ty, Some(Linkage::Internal));
    let attr = |n: &str| context.create_enum_attribute(Attribute::get_named_enum_kind_id(n), 0);
    func.add_attribute(AttributeLoc::Function, attr("nounwind"));
    for i in 0..7 {
        func.add_attribute(AttributeLoc::Param(i), attr("noalias"));
    }
    let p = qplan(desc, tile);
    if p.lanes * 32 >= 256 {
        let w = (p.lanes * 32).to_string();
        func.add_attribute(
            AttributeLoc::Function,
            context.create_string_attribute("min-legal-vector-width", &w),
        );
    }
    let builder = context.create_builder();
    let entry = context.append_basic_block(func, "entry");
    builder.position_at_end(entry);
    let decl = |n: &str, tys: &[inkwell::types::BasicTypeEnum<'ctx>]| {
        Intrinsic::find(n).and_then(|i| i.get_declaration(module, tys)).unwrap_or_else(|| panic!("{n}"))
    };
    let i8t = context.i8_type();
    let i32t = context.i32_type();
    let dot = match p.kernel {
        QKernel::Vnni => vec![decl("llvm.x86.avx512.vpdpbusd.512", &[])],
        QKernel::Sdot => {
            vec![decl("llvm.aarch64.neon.sdot", &[i32t.vec_type(4).into(), i8t.vec_type(16).into()])]
        }
        QKernel::Smlad => {
            vec![decl("llvm.arm.smlad", &[]), decl("llvm.arm.sxtb16", &[]), decl("llvm.fshr", &[i32t.into()])]
        }
        QKernel::Widen | QKernel::Scalar => vec![],
    };
    let e = Emitter {
        ctx: context,
        b: builder,
        func,
        i64t: context.i64_type(),
        i32t,
        i8t,
        p,
        d: desc.clone(),
        corr: corr(desc, &p),
        lay: layout(desc, &p),
        dot,
    };
    e.emit_body().expect("qgemm IR emission");
    func
}

struct Emitter<'ctx> {
    ctx: &'ctx Context,
    b: Builder<'ctx>,
    func: FunctionValue<'ctx>,
    i64t: IntType<'ctx>,
    i32t: IntType<'ctx>,
    i8t: IntType<'ctx>,
    p: QPlan,
    d: QGemmDesc,
    corr: Corr,
    lay: Layout,
    /// The kernel's intrinsics (see [`emit_qgemm`]).
    dot: Vec<FunctionValue<'ctx>>,
}

/// The function's pointer arguments and scratch regions.
#[derive(Clone, Copy)]
struct Ptrs<'ctx> {
    a: PointerValue<'ctx>,
    b: PointerValue<'ctx>,
    c: PointerValue<'ctx>,
    bias: PointerValue<'ctx>,
    mult: PointerValue<'ctx>,
    shift: PointerValue<'ctx>,
    ap_buf: PointerValue<'ctx>,
    bp_buf: PointerValue<'ctx>,
    tile: PointerValue<'ctx>,
    row: PointerValue<'ctx>,
    col: PointerValue<'ctx>,
}

/// One operand's geometry for packing: `dim` rows of the panel side (m for A, n for B), `w` the
/// panel width (`mr`/`nr`), whether K is contiguous in memory, the leading dimension, and
/// whether to store `x ^ 0x80`.
#[derive(Clone, Copy)]
struct Operand {
    dim: usize,
    w: usize,
    contig: bool,
    ld: usize,
    xor: bool,
}

impl<'ctx> IrHelpers<'ctx> for Emitter<'ctx> {
    fn context(&self) -> &'ctx Context {
        self.ctx
    }
    fn builder(&self) -> &Builder<'ctx> {
        &self.b
    }
    fn function(&self) -> FunctionValue<'ctx> {
        self.func
    }
    fn index_type(&self) -> IntType<'ctx> {
        self.i64t
    }
}

impl<'ctx> Emitter<'ctx> {
    /// Byte address `base + idx`.
    fn gep8(&self, base: PointerValue<'ctx>, idx: IntValue<'ctx>) -> R<PointerValue<'ctx>> {
        unsafe { self.b.build_in_bounds_gep(self.i8t, base, &[idx], "") }
    }
    fn gep8c(&self, base: PointerValue<'ctx>, idx: usize) -> R<PointerValue<'ctx>> {
        if idx == 0 {
            return Ok(base);
        }
        self.gep8(base, self.c(idx))
    }
    /// Address of int32 element `idx`.
    fn gep32(&self, base: PointerValue<'ctx>, idx: IntValue<'ctx>) -> R<PointerValue<'ctx>> {
        unsafe { self.b.build_in_bounds_gep(self.i32t, base, &[idx], "") }
    }
    fn load<T: inkwell::types::BasicType<'ctx>>(
        &self,
        ty: T,
        ptr: PointerValue<'ctx>,
        align: u32,
    ) -> R<BasicValueEnum<'ctx>> {
        let v = self.b.build_load(ty, ptr, "")?;
        v.as_instruction_value().unwrap().set_alignment(align).unwrap();
        Ok(v)
    }
    fn load_i8(&self, ptr: PointerValue<'ctx>) -> R<IntValue<'ctx>> {
        Ok(self.load(self.i8t, ptr, 1)?.into_int_value())
    }
    fn load_i32(&self, ptr: PointerValue<'ctx>, align: u32) -> R<IntValue<'ctx>> {
        Ok(self.load(self.i32t, ptr, align)?.into_int_value())
    }
    fn store<V: BasicValue<'ctx>>(&self, ptr: PointerValue<'ctx>, v: V, align: u32) -> R<()> {
        self.b.build_store(ptr, v)?.set_alignment(align).unwrap();
        Ok(())
    }
    fn v32(&self, w: usize) -> VectorType<'ctx> {
        self.i32t.vec_type(w as u32)
    }
    /// A constant int32 vector.
    fn kv32(&self, v: i64, w: usize) -> VectorValue<'ctx> {
        VectorType::const_vector(&vec![self.i32t.const_int(v as u64, true); w])
    }
    fn kv64(&self, v: i64, w: usize) -> VectorValue<'ctx> {
        VectorType::const_vector(&vec![self.i64t.const_int(v as u64, true); w])
    }
    /// `<w x T>` with every lane `x`.
    fn splat(&self, x: IntValue<'ctx>, w: usize) -> R<VectorValue<'ctx>> {
        let vt = x.get_type().vec_type(w as u32);
        let ins = self.b.build_insert_element(vt.get_poison(), x, self.i64t.const_zero(), "")?;
        let mask = self.i32t.vec_type(w as u32).const_zero();
        self.b.build_shuffle_vector(ins, vt.get_poison(), mask, "")
    }
    fn sel(&self, c: VectorValue<'ctx>, a: VectorValue<'ctx>, b: VectorValue<'ctx>) -> R<VectorValue<'ctx>> {
        Ok(self.b.build_select(c, a, b, "")?.into_vector_value())
    }

    /// `Σ_{i < n} term(i)` in int32 (a loop carrying the sum).
    fn sum_loop(
        &self,
        n: usize,
        mut term: impl FnMut(IntValue<'ctx>) -> R<IntValue<'ctx>>,
    ) -> R<IntValue<'ctx>> {
        let pre = self.b.get_insert_block().unwrap();
        let header = self.ctx.append_basic_block(self.func, "sum.head");
        let body_bb = self.ctx.append_basic_block(self.func, "sum.body");
        let exit = self.ctx.append_basic_block(self.func, "sum.exit");
        self.b.build_unconditional_branch(header)?;
        self.b.position_at_end(header);
        let phi = self.b.build_phi(self.i64t, "k")?;
        let acc = self.b.build_phi(self.i32t, "s")?;
        phi.add_incoming(&[(&self.c(0), pre)]);
        acc.add_incoming(&[(&self.i32t.const_zero(), pre)]);
        let i = phi.as_basic_value().into_int_value();
        let s = acc.as_basic_value().into_int_value();
        let cond = self.b.build_int_compare(IntPredicate::ULT, i, self.c(n), "")?;
        self.b.build_conditional_branch(cond, body_bb, exit)?;
        self.b.position_at_end(body_bb);
        let t = term(i)?;
        let s2 = self.b.build_int_add(s, t, "")?;
        let next = self.addc(i, 1)?;
        let latch = self.b.get_insert_block().unwrap();
        self.b.build_unconditional_branch(header)?;
        phi.add_incoming(&[(&next, latch)]);
        acc.add_incoming(&[(&s2, latch)]);
        self.b.position_at_end(exit);
        Ok(s)
    }

    fn operand_a(&self) -> Operand {
        let d = &self.d;
        Operand { dim: d.m, w: self.p.mr, contig: !d.a_trans, ld: d.lda, xor: self.p.xor_a }
    }

    fn operand_b(&self) -> Operand {
        let d = &self.d;
        Operand { dim: d.n, w: self.p.nr, contig: d.b_trans, ld: d.ldb, xor: self.p.xor_b }
    }

    fn emit_body(&self) -> R<()> {
        let d = &self.d;
        let p = self.p;
        let arg = |i: u32| self.func.get_nth_param(i).unwrap().into_pointer_value();
        let scratch = arg(6);
        if d.m == 0 || d.n == 0 {
            self.b.build_return(None)?;
            return Ok(());
        }
        let ptrs = Ptrs {
            a: arg(0),
            b: arg(1),
            c: arg(2),
            bias: arg(3),
            mult: arg(4),
            shift: arg(5),
            ap_buf: self.gep8c(scratch, self.lay.a_off)?,
            bp_buf: self.gep8c(scratch, self.lay.b_off)?,
            tile: self.gep8c(scratch, self.lay.tile_off)?,
            row: self.gep8c(scratch, self.lay.row_off)?,
            col: self.gep8c(scratch, self.lay.col_off)?,
        };
        self.corrections(&ptrs)?;
        let a_rt = a_packed_at_run_time(d);
        let b_rt = b_packed_at_run_time(d);
        let a_panel_bytes = p.kq * p.mr * p.kg;
        let b_panel_bytes = p.kq * p.nr * p.kg;
        self.for_loop("jc", self.c(0), self.c(d.n), p.nc, |jc| {
            let nc_cur = self.umin(self.c(p.nc), self.sub(self.c(d.n), jc)?)?;
            let nb_panels = self.udivc(self.addc(nc_cur, p.nr - 1)?, p.nr)?;
            if b_rt {
                self.pack(self.operand_b(), ptrs.b, ptrs.bp_buf, jc, nb_panels)?;
            }
            self.for_loop("ic", self.c(0), self.c(d.m), p.mc, |ic| {
                let mc_cur = self.umin(self.c(p.mc), self.sub(self.c(d.m), ic)?)?;
                let na_panels = self.udivc(self.addc(mc_cur, p.mr - 1)?, p.mr)?;
                if a_rt {
                    self.pack(self.operand_a(), ptrs.a, ptrs.ap_buf, ic, na_panels)?;
                }
                self.for_loop("jr", self.c(0), nb_panels, 1, |q| {
                    let bpanel = if b_rt {
                        self.gep8(ptrs.bp_buf, self.mulc(q, b_panel_bytes)?)?
                    } else {
                        let gq = self.add(self.udivc(jc, p.nr)?, q)?;
                        self.gep8(ptrs.b, self.mulc(gq, b_panel_bytes)?)?
                    };
                    let j0 = self.add(jc, self.mulc(q, p.nr)?)?;
                    self.for_loop("ir", self.c(0), na_panels, 1, |pi| {
                        let apanel = if a_rt {
                            self.gep8(ptrs.ap_buf, self.mulc(pi, a_panel_bytes)?)?
                        } else {
                            let gp = self.add(self.udivc(ic, p.mr)?, pi)?;
                            self.gep8(ptrs.a, self.mulc(gp, a_panel_bytes)?)?
                        };
                        let i0 = self.add(ic, self.mulc(pi, p.mr)?)?;
                        let accs = self.kernel(apanel, bpanel)?;
                        self.epilogue(&ptrs, &accs, i0, j0)
                    })
                })
            })
        })?;
        self.b.build_return(None)?;
        Ok(())
    }

    /// Fills the per-row and per-column int32 terms: `coef · Σ_k operand + bias`.
    fn corrections(&self, ptrs: &Ptrs<'ctx>) -> R<()> {
        let d = &self.d;
        let cr = self.corr;
        let (_, _, sums_off) = packed_geometry(d, &self.p);
        let per_row_bias = d.bias && d.channel == QChannel::PerRow;
        let per_col_bias = d.bias && d.channel == QChannel::PerCol;
        let sides = [
            (cr.use_row, cr.row_coef, ptrs.row, d.m, per_row_bias, QWeights::A, ptrs.a, !d.a_trans, d.lda),
            (cr.use_col, cr.col_coef, ptrs.col, d.n, per_col_bias, QWeights::B, ptrs.b, d.b_trans, d.ldb),
        ];
        for (used, coef, dst, count, bias, side, mat, contig, ld) in sides {
            if !used {
                continue;
            }
            if coef != 0 {
                if d.prepacked && d.weights == side {
                    // Sums computed at compile time, after the panels.
                    let sums = self.gep8c(mat, sums_off)?;
                    self.for_loop("sc", self.c(0), self.c(count), 1, |i| {
                        let s = self.load_i32(self.gep32(sums, i)?, 1)?;
                        self.store(self.gep32(dst, i)?, s, 4)
                    })?;
                } else if contig {
                    // K contiguous: one reduction per row/column.
                    self.for_loop("sr", self.c(0), self.c(count), 1, |i| {
                        let row = self.gep8(mat, self.mulc(i, ld)?)?;
                        let s = self.sum_loop(d.k, |k| {
                            let v = self.load_i8(self.gep8(row, k)?)?;
                            self.b.build_int_s_extend(v, self.i32t, "")
                        })?;
                        self.store(self.gep32(dst, i)?, s, 4)
                    })?;
                } else {
                    // K strided: accumulate whole rows of the matrix (vectorizable).
                    self.for_loop("sz", self.c(0), self.c(count), 1, |i| {
                        self.store(self.gep32(dst, i)?, self.i32t.const_zero(), 4)
                    })?;
                    self.for_loop("sk", self.c(0), self.c(d.k), 1, |k| {
                        let row = self.gep8(mat, self.mulc(k, ld)?)?;
                        self.for_loop("sj", self.c(0), self.c(count), 1, |i| {
                            let dp = self.gep32(dst, i)?;
                            let v = self.load_i8(self.gep8(row, i)?)?;
                            let v = self.b.build_int_s_extend(v, self.i32t, "")?;
                            let s = self.b.build_int_add(self.load_i32(dp, 4)?, v, "")?;
                            self.store(dp, s, 4)
                        })
                    })?;
                }
            }
            self.for_loop("sf", self.c(0), self.c(count), 1, |i| {
                let dp = self.gep32(dst, i)?;
                let mut v = if coef != 0 {
                    let s = self.load_i32(dp, 4)?;
                    self.b.build_int_mul(s, self.i32t.const_int(coef as i64 as u64, true), "")?
                } else {
                    self.i32t.const_zero()
                };
                if bias {
                    v = self.b.build_int_add(v, self.load_i32(self.gep32(ptrs.bias, i)?, 4)?, "")?;
                }
                self.store(dp, v, 4)
            })?;
        }
        Ok(())
    }

    /// Packs `npanels` panels of an operand starting at row/column `base` into `dst`:
    /// `[group][w][kg]` bytes each, zero past the operand's edge and past K.
    fn pack(
        &self,
        o: Operand,
        mat: PointerValue<'ctx>,
        dst: PointerValue<'ctx>,
        base: IntValue<'ctx>,
        npanels: IntValue<'ctx>,
    ) -> R<()> {
        let p = self.p;
        let k = self.d.k;
        let kg = p.kg;
        let kfull = k / kg;
        let rem = k % kg;
        let panel_bytes = p.kq * o.w * kg;
        let xor8 = |v: IntValue<'ctx>| -> R<IntValue<'ctx>> {
            if o.xor {
                self.b.build_xor(v, self.i8t.const_int(0x80, false), "")
            } else {
                Ok(v)
            }
        };
        self.for_loop("pp", self.c(0), npanels, 1, |pi| {
            let dst_p = self.gep8(dst, self.mulc(pi, panel_bytes)?)?;
            let rb = self.add(base, self.mulc(pi, o.w)?)?;
            let valid = self.umin(self.c(o.w), self.sub(self.c(o.dim), rb)?)?;
            // Element (row r of the panel, k) of the source.
            let src = |r: IntValue<'ctx>, kk: IntValue<'ctx>| -> R<PointerValue<'ctx>> {
                let row = self.add(rb, r)?;
                let idx = if o.contig {
                    self.add(self.mulc(row, o.ld)?, kk)?
                } else {
                    self.add(self.mulc(kk, o.ld)?, row)?
                };
                self.gep8(mat, idx)
            };
            let zero_panel = || -> R<()> {
                self.for_loop("pz", self.c(0), self.c(panel_bytes), 1, |t| {
                    self.store(self.gep8(dst_p, t)?, self.i8t.const_zero(), 1)
                })
            };
            // Byte by byte: zero the panel, then copy the valid rows (any layout).
            let bytewise = || -> R<()> {
                zero_panel()?;
                self.for_loop("pr", self.c(0), valid, 1, |r| {
                    let dst_r = self.gep8(dst_p, self.mulc(r, kg)?)?;
                    let copy_group = |q: IntValue<'ctx>, gs: usize| -> R<()> {
                        let dq = self.gep8(dst_r, self.mulc(q, o.w * kg)?)?;
                        for g in 0..gs {
                            let kk = self.addc(self.mulc(q, kg)?, g)?;
                            let v = xor8(self.load_i8(src(r, kk)?)?)?;
                            self.store(self.gep8c(dq, g)?, v, 1)?;
                        }
                        Ok(())
                    };
                    self.for_loop("pk", self.c(0), self.c(kfull), 1, |q| copy_group(q, kg))?;
                    if rem > 0 {
                        copy_group(self.c(kfull), rem)?;
                    }
                    Ok(())
                })
            };
            if kg == 4 && o.contig {
                // Each group is one (unaligned) 32-bit word of the source row.
                self.for_loop("pr", self.c(0), valid, 1, |r| {
                    let dst_r = self.gep8(dst_p, self.mulc(r, 4)?)?;
                    let src_r = src(r, self.c(0))?;
                    self.for_loop("pk", self.c(0), self.c(kfull), 1, |q| {
                        let mut v = self.load_i32(self.gep8(src_r, self.mulc(q, 4)?)?, 1)?;
                        if o.xor {
                            v = self.b.build_xor(v, self.i32t.const_int(0x8080_8080, false), "")?;
                        }
                        self.store(self.gep8(dst_r, self.mulc(q, o.w * 4)?)?, v, 1)
                    })?;
                    if rem > 0 {
                        let dq = self.gep8c(dst_r, kfull * o.w * 4)?;
                        for g in 0..4 {
                            let v = if g < rem {
                                xor8(self.load_i8(self.gep8c(src_r, kfull * 4 + g)?)?)?
                            } else {
                                self.i8t.const_zero()
                            };
                            self.store(self.gep8c(dq, g)?, v, 1)?;
                        }
                    }
                    Ok(())
                })?;
                // Rows past the operand's edge.
                self.for_loop("pe", valid, self.c(o.w), 1, |r| {
                    let dst_r = self.gep8(dst_p, self.mulc(r, 4)?)?;
                    self.for_loop("pk", self.c(0), self.c(p.kq), 1, |q| {
                        self.store(self.gep8(dst_r, self.mulc(q, o.w * 4)?)?, self.i32t.const_zero(), 1)
                    })
                })
            } else if !o.contig {
                // K strided: each k is `w` contiguous bytes; a full panel is copied with vectors,
                // interleaving 4 k rows for the dot-product layout.
                let vw = self.i8t.vec_type(o.w as u32);
                let vector = || -> R<()> {
                    let load_row = |kk: usize, q: IntValue<'ctx>| -> R<VectorValue<'ctx>> {
                        let kr = self.addc(self.mulc(q, kg)?, kk)?;
                        Ok(self.load(vw, src(self.c(0), kr)?, 1)?.into_vector_value())
                    };
                    let group = |q: IntValue<'ctx>, gs: usize| -> R<()> {
                        let rows: Vec<VectorValue<'ctx>> = (0..kg)
                            .map(|g| if g < gs { load_row(g, q) } else { Ok(vw.const_zero()) })
                            .collect::<R<_>>()?;
                        let mut v = if kg == 4 { self.interleave4(&rows, o.w)? } else { rows[0] };
                        if o.xor {
                            let x = self.i8t.const_int(0x80, false);
                            let xv = VectorType::const_vector(&vec![x; o.w * kg]);
                            // Padding groups stay 0 (not 0x80) so their products vanish.
                            let keep: Vec<_> = (0..o.w * kg)
                                .map(|t| if t % kg < gs { x } else { self.i8t.const_zero() })
                                .collect();
                            let xv = if gs == kg { xv } else { VectorType::const_vector(&keep) };
                            v = self.b.build_xor(v, xv, "")?;
                        }
                        let dq = self.gep8(dst_p, self.mulc(q, o.w * kg)?)?;
                        self.store(dq, v, 1)
                    };
                    self.for_loop("pv", self.c(0), self.c(kfull), 1, |q| group(q, kg))?;
                    if rem > 0 {
                        group(self.c(kfull), rem)?;
                    }
                    Ok(())
                };
                let full = self.b.build_int_compare(IntPredicate::EQ, valid, self.c(o.w), "")?;
                self.if_else(full, vector, bytewise)
            } else {
                bytewise()
            }
        })
    }

    /// `out[c·4 + g] = rows[g][c]` for four `<w x i8>` rows.
    fn interleave4(&self, rows: &[VectorValue<'ctx>], w: usize) -> R<VectorValue<'ctx>> {
        let idx = |v: &[usize]| {
            VectorType::const_vector(
                &v.iter().map(|&x| self.i32t.const_int(x as u64, false)).collect::<Vec<_>>(),
            )
        };
        let cat: Vec<usize> = (0..2 * w).collect();
        let s01 = self.b.build_shuffle_vector(rows[0], rows[1], idx(&cat), "")?;
        let s23 = self.b.build_shuffle_vector(rows[2], rows[3], idx(&cat), "")?;
        let mask: Vec<usize> = (0..4 * w).map(|t| (t % 4) * w + t / 4).collect();
        self.b.build_shuffle_vector(s01, s23, idx(&mask), "")
    }

    /// One k group of the micro-kernel.
    fn kernel_step(
        &self,
        ap: PointerValue<'ctx>,
        bp: PointerValue<'ctx>,
        u: usize,
        accs: &mut [VectorValue<'ctx>],
    ) -> R<()> {
        let p = self.p;
        let (mr, nv, nr, lanes, kg) = (p.mr, p.nv, p.nr, p.lanes, p.kg);
        let a_at = |r: usize| self.gep8c(ap, (u * mr + r) * kg);
        let b_at = |j: usize| self.gep8c(bp, (u * nr + j * lanes) * kg);
        let call = |f: FunctionValue<'ctx>, args: &[BasicValueEnum<'ctx>]| -> R<BasicValueEnum<'ctx>> {
            let args: Vec<_> = args.iter().map(|&a| a.into()).collect();
            Ok(self.b.build_call(f, &args, "")?.try_as_basic_value().basic().unwrap())
        };
        match p.kernel {
            QKernel::Vnni | QKernel::Sdot => {
                let vb = self.i8t.vec_type((lanes * 4) as u32);
                let bv: Vec<BasicValueEnum> =
                    (0..nv).map(|j| self.load(vb, b_at(j)?, 1)).collect::<R<_>>()?;
                for r in 0..mr {
                    let aw = self.load_i32(a_at(r)?, 1)?;
                    let av = self.b.build_bit_cast(self.splat(aw, lanes)?, vb, "")?;
                    for j in 0..nv {
                        let acc = accs[r * nv + j].into();
                        // vpdpbusd(acc, unsigned bytes, signed bytes); sdot is symmetric.
                        let (x, y) = if p.xor_b { (bv[j], av) } else { (av, bv[j]) };
                        accs[r * nv + j] = call(self.dot[0], &[acc, x, y])?.into_vector_value();
                    }
                }
            }
            QKernel::Smlad => {
                let (smlad, sxtb16, fshr) = (self.dot[0], self.dot[1], self.dot[2]);
                let eight = self.i32t.const_int(8, false).into();
                // (bytes 0 and 2, bytes 1 and 3) of a word as two pairs of int16.
                let halves = |w: IntValue<'ctx>| -> R<(BasicValueEnum<'ctx>, BasicValueEnum<'ctx>)> {
                    let lo = call(sxtb16, &[w.into()])?;
                    let rot = call(fshr, &[w.into(), w.into(), eight])?;
                    Ok((lo, call(sxtb16, &[rot])?))
                };
                let bh: Vec<_> = (0..nv).map(|j| halves(self.load_i32(b_at(j)?, 1)?)).collect::<R<_>>()?;
                for r in 0..mr {
                    let (a0, a1) = halves(self.load_i32(a_at(r)?, 1)?)?;
                    for j in 0..nv {
                        let acc = accs[r * nv + j];
                        let s = self.b.build_extract_element(acc, self.i64t.const_zero(), "")?;
                        let s = call(smlad, &[a0, bh[j].0, s])?;
                        let s = call(smlad, &[a1, bh[j].1, s])?;
                        accs[r * nv + j] = self.b.build_insert_element(
                            self.v32(1).get_poison(),
                            s,
                            self.i64t.const_zero(),
                            "",
                        )?;
                    }
                }
            }
            QKernel::Widen | QKernel::Scalar => {
                let i16t = self.ctx.i16_type();
                let vb = self.i8t.vec_type(lanes as u32);
                let v16 = i16t.vec_type(lanes as u32);
                let bv: Vec<VectorValue> = (0..nv)
                    .map(|j| {
                        let v = self.load(vb, b_at(j)?, 1)?.into_vector_value();
                        self.b.build_int_s_extend(v, v16, "")
                    })
                    .collect::<R<_>>()?;
                for r in 0..mr {
                    let a = self.b.build_int_s_extend(self.load_i8(a_at(r)?)?, i16t, "")?;
                    let a = self.splat(a, lanes)?;
                    for j in 0..nv {
                        // |a·b| ≤ 2^14: exact in int16, then widened (smull/smlal-style).
                        let prod = self.b.build_int_nsw_mul(a, bv[j], "")?;
                        let prod = self.b.build_int_s_extend(prod, self.v32(lanes), "")?;
                        accs[r * nv + j] = self.b.build_int_add(accs[r * nv + j], prod, "")?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The micro-kernel over all `kq` groups: `ku` groups per loop trip, the rest straight-line.
    fn kernel(&self, apanel: PointerValue<'ctx>, bpanel: PointerValue<'ctx>) -> R<Vec<VectorValue<'ctx>>> {
        let p = self.p;
        let ptr_t = self.ctx.ptr_type(AddressSpace::default());
        let vt = self.v32(p.lanes);
        let mut accs = vec![vt.const_zero(); p.mr * p.nv];
        let trips = p.kq / p.ku;
        let (mut ap, mut bp) = (apanel, bpanel);
        if trips > 0 {
            let pre = self.b.get_insert_block().unwrap();
            let header = self.ctx.append_basic_block(self.func, "k.head");
            let body = self.ctx.append_basic_block(self.func, "k.body");
            let exit = self.ctx.append_basic_block(self.func, "k.exit");
            self.b.build_unconditional_branch(header)?;
            self.b.position_at_end(header);
            let t_phi = self.b.build_phi(self.i64t, "t")?;
            let a_phi = self.b.build_phi(ptr_t, "ap")?;
            let b_phi = self.b.build_phi(ptr_t, "bp")?;
            let acc_phis: Vec<_> = (0..accs.len()).map(|_| self.b.build_phi(vt, "acc")).collect::<R<_>>()?;
            t_phi.add_incoming(&[(&self.c(0), pre)]);
            a_phi.add_incoming(&[(&ap, pre)]);
            b_phi.add_incoming(&[(&bp, pre)]);
            for (phi, v) in acc_phis.iter().zip(&accs) {
                phi.add_incoming(&[(v, pre)]);
            }
            let t = t_phi.as_basic_value().into_int_value();
            ap = a_phi.as_basic_value().into_pointer_value();
            bp = b_phi.as_basic_value().into_pointer_value();
            let cur: Vec<VectorValue> =
                acc_phis.iter().map(|p| p.as_basic_value().into_vector_value()).collect();
            let cond = self.b.build_int_compare(IntPredicate::ULT, t, self.c(trips), "")?;
            self.b.build_conditional_branch(cond, body, exit)?;
            self.b.position_at_end(body);
            let mut next = cur.clone();
            for u in 0..p.ku {
                self.kernel_step(ap, bp, u, &mut next)?;
            }
            let t_next = self.addc(t, 1)?;
            let ap_next = self.gep8c(ap, p.ku * p.mr * p.kg)?;
            let bp_next = self.gep8c(bp, p.ku * p.nr * p.kg)?;
            let latch = self.b.get_insert_block().unwrap();
            self.b.build_unconditional_branch(header)?;
            t_phi.add_incoming(&[(&t_next, latch)]);
            a_phi.add_incoming(&[(&ap_next, latch)]);
            b_phi.add_incoming(&[(&bp_next, latch)]);
            for (phi, v) in acc_phis.iter().zip(&next) {
                phi.add_incoming(&[(v, latch)]);
            }
            self.b.position_at_end(exit);
            accs = cur;
        }
        for u in 0..p.kq % p.ku {
            self.kernel_step(ap, bp, u, &mut accs)?;
        }
        Ok(accs)
    }

    /// TFLite's MultiplyByQuantizedMultiplier on `<w x i32>` lanes.
    fn requant(
        &self,
        x: VectorValue<'ctx>,
        mult: VectorValue<'ctx>,
        shift: VectorValue<'ctx>,
        w: usize,
    ) -> R<VectorValue<'ctx>> {
        let b = &self.b;
        let zero = self.kv32(0, w);
        let k31 = self.kv32(31, w);
        let pos = b.build_int_compare(IntPredicate::SGT, shift, zero, "")?;
        // `& 31` keeps out-of-range shifts from being poison (valid shifts are −31..=31).
        let left = b.build_and(self.sel(pos, shift, zero)?, k31, "")?;
        let right = b.build_and(self.sel(pos, zero, b.build_int_sub(zero, shift, "")?)?, k31, "")?;
        let xs = b.build_left_shift(x, left, "")?;
        // SaturatingRoundingDoublingHighMul. (ab + nudge) / 2^31 truncating toward zero, nudge =
        // 2^30 or 1 − 2^30 by the sign of ab, is floor((ab + 2^30) / 2^31) either way: for ab < 0
        // the truncation is a ceiling and ceil((ab + 1 − 2^30) / 2^31) = floor((ab + 1 − 2^30 +
        // 2^31 − 1) / 2^31).
        let q = if self.p.kernel == QKernel::Vnni && w % 2 == 0 {
            // Even and odd lanes as sign-extended i64 halves (`vpmuldq` products, no widening
            // of whole vectors); bits 31..62 of each product back into its i32 lane.
            let h = w / 2;
            let v64 = self.i64t.vec_type(h as u32);
            let k32 = self.kv64(32, h);
            let halves = |v: VectorValue<'ctx>| -> R<(VectorValue<'ctx>, VectorValue<'ctx>)> {
                let v = b.build_bit_cast(v, v64, "")?.into_vector_value();
                let even = b.build_right_shift(b.build_left_shift(v, k32, "")?, k32, true, "")?;
                Ok((even, b.build_right_shift(v, k32, true, "")?))
            };
            let ((xe, xo), (me, mo)) = (halves(xs)?, halves(mult)?);
            let round = self.kv64(1 << 30, h);
            let pe = b.build_int_add(b.build_int_nsw_mul(xe, me, "")?, round, "")?;
            let po = b.build_int_add(b.build_int_nsw_mul(xo, mo, "")?, round, "")?;
            let pe = b.build_right_shift(pe, self.kv64(31, h), true, "")?;
            let po = b.build_left_shift(po, self.kv64(1, h), "")?;
            let v32 = self.v32(w);
            let pe = b.build_bit_cast(pe, v32, "")?.into_vector_value();
            let po = b.build_bit_cast(po, v32, "")?.into_vector_value();
            let mask: Vec<_> = (0..w)
                .map(|l| self.i32t.const_int(if l % 2 == 0 { l } else { w + l } as u64, false))
                .collect();
            b.build_shuffle_vector(pe, po, VectorType::const_vector(&mask), "")?
        } else {
            let v64 = self.i64t.vec_type(w as u32);
            let ab = b.build_int_nsw_mul(
                b.build_int_s_extend(xs, v64, "")?,
                b.build_int_s_extend(mult, v64, "")?,
                "",
            )?;
            let s = b.build_int_add(ab, self.kv64(1 << 30, w), "")?;
            b.build_int_truncate(b.build_right_shift(s, self.kv64(31, w), true, "")?, self.v32(w), "")?
        };
        let min = self.kv32(i32::MIN as i64, w);
        let sat = b.build_and(
            b.build_int_compare(IntPredicate::EQ, xs, min, "")?,
            b.build_int_compare(IntPredicate::EQ, mult, min, "")?,
            "",
        )?;
        let h = self.sel(sat, self.kv32(i32::MAX as i64, w), q)?;
        // RoundingDivideByPOT(h, right).
        let one = self.kv32(1, w);
        let mask = b.build_int_sub(b.build_left_shift(one, right, "")?, one, "")?;
        let rem = b.build_and(h, mask, "")?;
        let neg =
            b.build_int_z_extend(b.build_int_compare(IntPredicate::SLT, h, zero, "")?, self.v32(w), "")?;
        let thr = b.build_int_add(b.build_right_shift(mask, one, true, "")?, neg, "")?;
        let up =
            b.build_int_z_extend(b.build_int_compare(IntPredicate::SGT, rem, thr, "")?, self.v32(w), "")?;
        b.build_int_add(b.build_right_shift(h, right, true, "")?, up, "")
    }

    /// Finishes `C[i][j..j+w]` from raw accumulators: corrections, requantization, zero point,
    /// clamp, int8 store.
    fn finish(
        &self,
        ptrs: &Ptrs<'ctx>,
        acc: VectorValue<'ctx>,
        w: usize,
        i: IntValue<'ctx>,
        j: IntValue<'ctx>,
    ) -> R<()> {
        let d = &self.d;
        let cr = self.corr;
        let b = &self.b;
        let per_row = |base: PointerValue<'ctx>| -> R<VectorValue<'ctx>> {
            self.splat(self.load_i32(self.gep32(base, i)?, 4)?, w)
        };
        let per_col = |base: PointerValue<'ctx>| -> R<VectorValue<'ctx>> {
            Ok(self.load(self.v32(w), self.gep32(base, j)?, 4)?.into_vector_value())
        };
        let mut v = acc;
        if cr.use_row {
            v = b.build_int_add(v, per_row(ptrs.row)?, "")?;
        }
        if cr.use_col {
            v = b.build_int_add(v, per_col(ptrs.col)?, "")?;
        }
        if cr.konst != 0 {
            v = b.build_int_add(v, self.kv32(cr.konst as i64, w), "")?;
        }
        if d.out == QOut::I32 {
            let cp = self.gep32(ptrs.c, self.add(self.mulc(i, d.ldc)?, j)?)?;
            return self.store(cp, v, 4);
        }
        if d.out == QOut::Scaled {
            // Two instructions per vector instead of the ~30 of the requantization: the reason
            // a layer with a float consumer skips its output quantization.
            let f32v = self.ctx.f32_type().vec_type(w as u32);
            let scale = match d.channel {
                QChannel::PerRow => per_row(ptrs.mult)?,
                QChannel::PerCol => per_col(ptrs.mult)?,
            };
            let scale = b.build_bit_cast(scale, f32v, "")?.into_vector_value();
            let f = b.build_signed_int_to_float(v, f32v, "")?;
            let y = b.build_float_mul(f, scale, "")?;
            let cp = self.gep32(ptrs.c, self.add(self.mulc(i, d.ldc)?, j)?)?;
            return self.store(cp, y, 4);
        }
        let (mult, shift) = match d.channel {
            QChannel::PerRow => (per_row(ptrs.mult)?, per_row(ptrs.shift)?),
            QChannel::PerCol => (per_col(ptrs.mult)?, per_col(ptrs.shift)?),
        };
        let y = self.requant(v, mult, shift, w)?;
        let y = b.build_int_add(y, self.kv32(d.c_zp as i64, w), "")?;
        let lo = self.kv32(d.act_min as i64, w);
        let hi = self.kv32(d.act_max as i64, w);
        let y = self.sel(b.build_int_compare(IntPredicate::SLT, y, lo, "")?, lo, y)?;
        let y = self.sel(b.build_int_compare(IntPredicate::SGT, y, hi, "")?, hi, y)?;
        let at = self.add(self.mulc(i, d.ldc)?, j)?;
        if let QOut::F32 { scale_bits } = d.out {
            // The int8 value, dequantized in registers instead of through an int8 C.
            let centered = b.build_int_sub(y, self.kv32(d.c_zp as i64, w), "")?;
            let f32v = self.ctx.f32_type().vec_type(w as u32);
            let f = b.build_signed_int_to_float(centered, f32v, "")?;
            let sc = self.ctx.f32_type().const_float(f32::from_bits(scale_bits) as f64);
            let scv = VectorType::const_vector(&vec![sc; w]);
            let v = b.build_float_mul(f, scv, "")?;
            return self.store(self.gep32(ptrs.c, at)?, v, 4);
        }
        let y = b.build_int_truncate(y, self.i8t.vec_type(w as u32), "")?;
        let cp = self.gep8(ptrs.c, at)?;
        self.store(cp, y, 1)
    }

    /// Writes the tile at (i0, j0): whole vectors inside C, else through the tile buffer.
    fn epilogue(
        &self,
        ptrs: &Ptrs<'ctx>,
        accs: &[VectorValue<'ctx>],
        i0: IntValue<'ctx>,
        j0: IntValue<'ctx>,
    ) -> R<()> {
        let d = &self.d;
        let p = self.p;
        let full_tile = || -> R<()> {
            for r in 0..p.mr {
                let i = self.addc(i0, r)?;
                for j in 0..p.nv {
                    self.finish(ptrs, accs[r * p.nv + j], p.lanes, i, self.addc(j0, j * p.lanes)?)?;
                }
            }
            Ok(())
        };
        let edge_tile = || -> R<()> {
            for (idx, v) in accs.iter().enumerate() {
                let (r, j) = (idx / p.nv, idx % p.nv);
                self.store(self.gep32(ptrs.tile, self.c(r * p.nr + j * p.lanes))?, *v, 4)?;
            }
            let rows = self.umin(self.c(p.mr), self.sub(self.c(d.m), i0)?)?;
            let cols = self.umin(self.c(p.nr), self.sub(self.c(d.n), j0)?)?;
            self.for_loop("er", self.c(0), rows, 1, |rr| {
                self.for_loop("ec", self.c(0), cols, 1, |cc| {
                    let t = self.gep32(ptrs.tile, self.add(self.mulc(rr, p.nr)?, cc)?)?;
                    let v = self.load(self.v32(1), t, 4)?.into_vector_value();
                    self.finish(ptrs, v, 1, self.add(i0, rr)?, self.add(j0, cc)?)
                })
            })
        };
        let rows_exact = d.m % p.mr == 0;
        let cols_exact = d.n % p.nr == 0;
        if rows_exact && cols_exact {
            return full_tile();
        }
        let mut conds = Vec::new();
        if !rows_exact {
            conds.push(self.b.build_int_compare(IntPredicate::ULE, self.addc(i0, p.mr)?, self.c(d.m), "")?);
        }
        if !cols_exact {
            conds.push(self.b.build_int_compare(IntPredicate::ULE, self.addc(j0, p.nr)?, self.c(d.n), "")?);
        }
        let mut full = conds[0];
        for c in &conds[1..] {
            full = self.b.build_and(full, *c, "")?;
        }
        self.if_else(full, full_tile, edge_tile)
    }
}
