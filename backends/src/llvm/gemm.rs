//! f32 GEMM emitted as LLVM IR (Goto/BLIS-style blocking, register-blocked micro-kernel).
//!
//! `C[m×n] (+)= op(A)[m×k] · op(B)[k×n] (+ bias)` for sizes known at compile time. The generated
//! function packs `mr`-row panels of A and `nr`-column panels of B into a caller-provided scratch
//! buffer (B packing is skipped when B is a constant packed at compile time by [`pack_b`]), blocks
//! K by `kc`, M by `mc` and N by `nc`, and runs a micro-kernel that keeps an `mr × nr` accumulator
//! tile in vector registers (`nr = nv × lanes`), broadcasting one A element per row and issuing
//! `llvm.fma` on `<lanes x float>` vectors. Edge tiles go through a small tile buffer in the
//! scratch and a scalar copy loop. See `docs/gemm.md`.

// `usize::is_multiple_of` is newer than the workspace's rust-version (1.85).
#![allow(clippy::manual_is_multiple_of)]

use super::ir_helpers::{IrHelpers, R};
use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::{Linkage, Module};
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{CodeModel, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple};
use inkwell::types::{BasicTypeEnum, FloatType, IntType};
use inkwell::values::{BasicValue, BasicValueEnum, FloatValue, FunctionValue, IntValue, PointerValue};
use inkwell::{AddressSpace, IntPredicate, OptimizationLevel};

/// What the micro-kernel can use on the target: vector width, register count, fused multiply-add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VectorIsa {
    /// 512 (AVX-512), 256 (AVX/AVX2), 128 (NEON, SSE, RVV at VLEN ≥ 128), 0 (scalar FPU).
    pub vector_bits: u32,
    /// Architectural vector (or, when scalar, floating-point) registers.
    pub num_vregs: u32,
    /// Whether a fused multiply-add instruction exists (otherwise `llvm.fmuladd`, never a libcall).
    pub has_fma: bool,
}

/// A target machine's triple, CPU name and explicit feature string, for the `from_parts`
/// detections (`VectorIsa`, `QTile`, `LutIsa`).
pub fn machine_parts(tm: &TargetMachine) -> (String, String, String) {
    (
        tm.get_triple().as_str().to_string_lossy().into_owned(),
        tm.get_cpu().to_string(),
        tm.get_feature_string().to_string_lossy().into_owned(),
    )
}

/// What a `+a,-b` feature list says of `name`: `Some(true)` / `Some(false)` for the last `+name`
/// / `-name`, `None` when it is not mentioned (the CPU name decides then).
pub fn target_feature(features: &str, name: &str) -> Option<bool> {
    let mut v = None;
    for f in features.split(',').map(str::trim) {
        if f.strip_prefix('+') == Some(name) {
            v = Some(true);
        } else if f.strip_prefix('-') == Some(name) {
            v = Some(false);
        }
    }
    v
}

impl VectorIsa {
    pub const AVX512: VectorIsa = VectorIsa { vector_bits: 512, num_vregs: 32, has_fma: true };
    pub const AVX2: VectorIsa = VectorIsa { vector_bits: 256, num_vregs: 16, has_fma: true };
    pub const NEON: VectorIsa = VectorIsa { vector_bits: 128, num_vregs: 32, has_fma: true };
    pub const SSE: VectorIsa = VectorIsa { vector_bits: 128, num_vregs: 16, has_fma: false };
    /// Scalar FPU with 32 single-precision registers and FMA (Cortex-M7 FPv5, RV64GC).
    pub const SCALAR32: VectorIsa = VectorIsa { vector_bits: 0, num_vregs: 32, has_fma: true };

    /// Inspects the target machine's triple, CPU name and feature string.
    pub fn from_target_machine(tm: &TargetMachine) -> Self {
        let (triple, cpu, features) = machine_parts(tm);
        Self::from_parts(&triple, &cpu, &features)
    }

    /// [`VectorIsa::from_target_machine`] on plain strings (triple, CPU, `+a,-b` feature list).
    pub fn from_parts(triple: &str, cpu: &str, features: &str) -> Self {
        // Explicit `+x` / `-x` features win over what the CPU name implies.
        let feature = |name: &str| target_feature(features, name);
        let cpu = cpu.to_ascii_lowercase();
        let arch = triple.split('-').next().unwrap_or("");
        if arch == "x86_64" || arch.starts_with('i') && arch.ends_with("86") {
            let avx512_cpu = ["znver4", "znver5", "skylake-avx512", "cascadelake", "cooperlake"]
                .contains(&cpu.as_str())
                || cpu.starts_with("icelake")
                || cpu.starts_with("sapphirerapids")
                || cpu.starts_with("emeraldrapids")
                || cpu.starts_with("graniterapids")
                || cpu.starts_with("tigerlake")
                || cpu.starts_with("rocketlake")
                || cpu == "x86-64-v4";
            let avx2_cpu = avx512_cpu
                || ["haswell", "broadwell", "skylake", "znver1", "znver2", "znver3", "x86-64-v3"]
                    .contains(&cpu.as_str())
                || cpu.starts_with("alderlake")
                || cpu.starts_with("raptorlake")
                || cpu.starts_with("meteorlake")
                || cpu.starts_with("arrowlake")
                || cpu.starts_with("lunarlake")
                || cpu.starts_with("gracemont")
                || cpu.starts_with("coffeelake")
                || cpu.starts_with("cannonlake")
                || cpu.starts_with("kabylake");
            let fma = feature("fma").unwrap_or(avx2_cpu);
            if feature("avx512f").unwrap_or(avx512_cpu) {
                return VectorIsa { vector_bits: 512, num_vregs: 32, has_fma: true };
            }
            if feature("avx2").unwrap_or(avx2_cpu) || feature("avx").unwrap_or(false) {
                return VectorIsa { vector_bits: 256, num_vregs: 16, has_fma: fma };
            }
            return VectorIsa {
                vector_bits: 128,
                num_vregs: if arch == "x86_64" { 16 } else { 8 },
                has_fma: fma,
            };
        }
        if arch.starts_with("aarch64") || arch.starts_with("arm64") {
            if feature("neon").unwrap_or(true) {
                return Self::NEON;
            }
            return VectorIsa { vector_bits: 0, num_vregs: 32, has_fma: true };
        }
        if arch.starts_with("riscv") {
            let fp = feature("f").unwrap_or(true) || feature("d").unwrap_or(false);
            if feature("v").unwrap_or(false) || features.contains("+zve32f") || features.contains("+zvl128b")
            {
                return VectorIsa { vector_bits: 128, num_vregs: 32, has_fma: true };
            }
            return VectorIsa { vector_bits: 0, num_vregs: 32, has_fma: fp };
        }
        if arch.starts_with("thumb") || arch.starts_with("arm") {
            // Cortex-M: scalar single-precision FPU (FPv4-SP on M4, FPv5 on M7/M33/M55), 32 S registers,
            // VFMA available. A-profile with NEON: 16 Q registers.
            if cpu.starts_with("cortex-m") || arch.starts_with("thumbv7em") || arch.starts_with("thumbv8m") {
                let has_fpu = !(cpu == "cortex-m0" || cpu == "cortex-m0plus" || cpu == "cortex-m3")
                    && feature("soft-float") != Some(true);
                return VectorIsa {
                    vector_bits: 0,
                    num_vregs: if has_fpu { 32 } else { 16 },
                    has_fma: has_fpu,
                };
            }
            if feature("neon").unwrap_or(cpu.starts_with("cortex-a")) {
                return VectorIsa {
                    vector_bits: 128,
                    num_vregs: 16,
                    has_fma: feature("vfp4").unwrap_or(true),
                };
            }
            return VectorIsa { vector_bits: 0, num_vregs: 32, has_fma: false };
        }
        VectorIsa { vector_bits: 0, num_vregs: 16, has_fma: false }
    }

    /// f32 lanes per vector register (1 when scalar).
    pub fn lanes(&self) -> usize {
        ((self.vector_bits / 32) as usize).max(1)
    }
}

/// Where the optional bias lives: one value per row of C (len m) or per column (len n).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiasKind {
    PerRow,
    PerCol,
}

/// A GEMM with static sizes. Matrices are row-major with leading dimensions `lda`, `ldb`, `ldc`.
#[derive(Clone, Debug)]
pub struct GemmDesc {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A given as K×M row-major instead of M×K.
    pub a_trans: bool,
    /// B given as N×K instead of K×N.
    pub b_trans: bool,
    pub lda: usize,
    pub ldb: usize,
    pub ldc: usize,
    /// B is a constant already in the packed layout produced by [`pack_b`].
    pub b_prepacked: bool,
    /// C += A·B instead of C = A·B.
    pub accumulate: bool,
    /// Bias added once (per row: len m, per column: len n).
    pub bias: Option<BiasKind>,
}

impl GemmDesc {
    /// Dense row-major `C = A·B` with tight leading dimensions.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        GemmDesc {
            m,
            n,
            k,
            a_trans: false,
            b_trans: false,
            lda: k,
            ldb: n,
            ldc: n,
            b_prepacked: false,
            accumulate: false,
            bias: None,
        }
    }

    /// Sets `a_trans`/`b_trans` and the tight leading dimensions that go with them.
    pub fn with_trans(mut self, a_trans: bool, b_trans: bool) -> Self {
        self.a_trans = a_trans;
        self.b_trans = b_trans;
        self.lda = if a_trans { self.m } else { self.k };
        self.ldb = if b_trans { self.k } else { self.n };
        self
    }
}

/// Micro-kernel tile and cache blocking. [`GemmTile::for_isa`] gives the defaults; the
/// `*_with_tile` functions take an explicit one (benchmarks, tuning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmTile {
    /// f32 lanes per vector (1 = scalar).
    pub lanes: usize,
    /// Rows of the accumulator tile (broadcast A elements).
    pub mr: usize,
    /// Vectors per row of the accumulator tile; `nr = nv × lanes` columns.
    pub nv: usize,
    /// K block (the packed micro-panels of A and B are `kc` deep).
    pub kc: usize,
    /// M block (rows of packed A kept in L2).
    pub mc: usize,
    /// N block (columns of packed B).
    pub nc: usize,
    /// Unroll factor of the micro-kernel's k loop.
    pub ku: usize,
    /// Use `llvm.fma` (true) or `llvm.fmuladd` (false).
    pub fma: bool,
}

impl GemmTile {
    /// Default tile and blocking for an ISA (see docs/gemm.md for the reasoning).
    pub fn for_isa(isa: VectorIsa) -> Self {
        let lanes = isa.lanes();
        let regs = isa.num_vregs.max(8) as usize;
        let (mr, nv, kc, mc, nc) = match (isa.vector_bits, regs) {
            // AVX-512: 6×64 tile = 24 zmm accumulators + 4 B vectors + broadcasts (no spills; measured
            // best on Zen 4 against 14×32, 12×32 and 8×48, and nr = 64 divides power-of-two N).
            (512, r) if r >= 32 => (6, 4, 384, 168, 3072),
            (512, _) => (6, 2, 384, 96, 3072),
            // AVX2: 6×16 = 12 ymm accumulators + 2 B + 1 broadcast (of 16).
            (256, _) => (6, 2, 256, 96, 2048),
            // NEON / RVV with 32 registers: 8×12 = 24 accumulators + 3 B + A.
            (128, r) if r >= 32 => (8, 3, 256, 128, 1536),
            // SSE / ARMv7 NEON (16 registers): 4×12 = 12 accumulators + 3 B + 1.
            (128, _) => (4, 3, 256, 96, 1536),
            // Scalar FPU with 32 registers (Cortex-M7, RV64GC): 4×4 = 16 accumulators + 4 A + 4 B.
            (_, r) if r >= 32 => (4, 4, 128, 64, 256),
            (_, _) => (2, 4, 128, 64, 256),
        };
        GemmTile { lanes, mr, nv, kc, mc, nc, ku: 4, fma: isa.has_fma }
    }

    /// Columns of the accumulator tile.
    pub fn nr(&self) -> usize {
        self.nv * self.lanes
    }
}

/// The tile/blocking actually used for one GEMM: the ISA tile shrunk to the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmPlan {
    pub lanes: usize,
    pub mr: usize,
    pub nv: usize,
    pub nr: usize,
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
    pub ku: usize,
    pub fma: bool,
}

fn ceil_div(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

fn round_up(a: usize, b: usize) -> usize {
    ceil_div(a, b) * b
}

/// Resolves the tile for a problem: `mr` balanced over the M tiles (m = 1 gets a 1-row kernel),
/// `nv` no wider than N needs, `kc` balanced over the K blocks, `mc`/`nc` multiples of `mr`/`nr`.
pub fn plan_with_tile(desc: &GemmDesc, tile: GemmTile) -> GemmPlan {
    let lanes = tile.lanes.max(1);
    let m = desc.m.max(1);
    let n = desc.n.max(1);
    let k = desc.k.max(1);
    let mr = row_tile(m, tile.mr.max(1));
    let nv = tile.nv.max(1).min(ceil_div(n, lanes));
    let nr = nv * lanes;
    let kc = ceil_div(k, ceil_div(k, tile.kc.max(1)));
    let mc = ((tile.mc / mr).max(1) * mr).min(round_up(m, mr));
    let nc = ((tile.nc / nr).max(1) * nr).min(round_up(n, nr));
    GemmPlan { lanes, mr, nv, nr, kc, mc, nc, ku: tile.ku.max(1), fma: tile.fma }
}

/// Rows of the micro-kernel for `m` rows with at most `max` per tile: the fewest padded rows
/// (`ceil(m / mr) * mr - m`), among `max` balanced over the tiles (m = 13, max = 6: 5) and the
/// sizes down to two thirds of `max`; ties go to fewer tiles. Padded rows cost full FMAs and send
/// their tile through the slow edge path, so m = 32 with max = 6 runs eight 4-row tiles (no
/// padding) rather than six 6-row ones (4 padded rows); the smaller tile still has enough
/// independent accumulators (`mr * nv`) to hide the FMA latency.
fn row_tile(m: usize, max: usize) -> usize {
    let balanced = ceil_div(m, ceil_div(m, max));
    let lo = (2 * max).div_ceil(3).max(1);
    let cost = |mr: usize| (ceil_div(m, mr) * mr, ceil_div(m, mr));
    (lo..=max).chain([balanced]).min_by_key(|&mr| cost(mr)).unwrap_or(balanced)
}

/// [`plan_with_tile`] with the ISA's default tile.
pub fn plan(desc: &GemmDesc, isa: VectorIsa) -> GemmPlan {
    plan_with_tile(desc, GemmTile::for_isa(isa))
}

/// Float offsets of the scratch regions (each 64-byte aligned relative to the scratch base).
struct ScratchLayout {
    a_off: usize,
    b_off: usize,
    tile_off: usize,
    total_floats: usize,
}

/// Whether the micro-kernel reads B in place (row-major, `ldb` apart) instead of packing it: when
/// every panel is full (`n % nr == 0`, so no column past `n` is ever loaded) and all of M fits in
/// one M block. Then each B element is read by only `ceil(m / mr)` micro-kernel calls right
/// after one another, so packing (a full read and write of B per K block) costs more than it
/// saves; convolutions' im2col columns (m = output channels, tens) are the typical case.
fn b_direct(desc: &GemmDesc, p: &GemmPlan) -> bool {
    !desc.b_prepacked && !desc.b_trans && desc.n % p.nr == 0 && desc.m <= p.mc
}

fn scratch_layout(desc: &GemmDesc, p: &GemmPlan) -> ScratchLayout {
    let a_floats = round_up(p.mc * p.kc, 16);
    let b_floats = if desc.b_prepacked || b_direct(desc, p) { 0 } else { round_up(p.nc * p.kc, 16) };
    let tile_floats = round_up(p.mr * p.nr, 16);
    ScratchLayout {
        a_off: 0,
        b_off: a_floats,
        tile_off: a_floats + b_floats,
        total_floats: a_floats + b_floats + tile_floats,
    }
}

/// Bytes of scratch the generated function needs (packed A block, packed B block, edge tile).
/// Any alignment is correct; 64-byte alignment is fastest.
pub fn gemm_scratch_bytes(desc: &GemmDesc, isa: VectorIsa) -> usize {
    gemm_scratch_bytes_with_tile(desc, GemmTile::for_isa(isa))
}

pub fn gemm_scratch_bytes_with_tile(desc: &GemmDesc, tile: GemmTile) -> usize {
    if desc.m == 0 || desc.n == 0 || desc.k == 0 {
        return 0;
    }
    4 * scratch_layout(desc, &plan_with_tile(desc, tile)).total_floats
}

/// Packs a constant B (given in its `b_trans`/`ldb` layout) into the layout the kernel reads
/// when `b_prepacked` is set: `ceil(n/nr)` panels, each `k × nr` row-major, zero-padded columns.
pub fn pack_b(desc: &GemmDesc, isa: VectorIsa, b: &[f32]) -> Vec<f32> {
    pack_b_with_tile(desc, GemmTile::for_isa(isa), b)
}

pub fn pack_b_with_tile(desc: &GemmDesc, tile: GemmTile, b: &[f32]) -> Vec<f32> {
    let p = plan_with_tile(desc, tile);
    let (n, k, nr) = (desc.n, desc.k, p.nr);
    let panels = ceil_div(n, nr);
    let mut out = vec![0.0f32; panels * k * nr];
    for q in 0..panels {
        for kk in 0..k {
            for c in 0..nr {
                let j = q * nr + c;
                if j < n {
                    let idx = if desc.b_trans { j * desc.ldb + kk } else { kk * desc.ldb + j };
                    out[(q * k + kk) * nr + c] = b[idx];
                }
            }
        }
    }
    out
}

/// Defines `name` as an internal function `void(ptr A, ptr B, ptr C, ptr bias_or_null, ptr scratch)`
/// computing the GEMM for these static sizes. Pointers are assumed not to alias C; `scratch` must
/// hold [`gemm_scratch_bytes`] bytes.
pub fn emit_sgemm<'ctx>(
    context: &'ctx Context,
    module: &Module<'ctx>,
    isa: VectorIsa,
    name: &str,
    desc: &GemmDesc,
) -> FunctionValue<'ctx> {
    emit_sgemm_with_tile(context, module, GemmTile::for_isa(isa), isa, name, desc)
}

/// [`emit_sgemm`] with an explicit tile (must match the one given to [`pack_b_with_tile`] and
/// [`gemm_scratch_bytes_with_tile`]).
pub fn emit_sgemm_with_tile<'ctx>(
    context: &'ctx Context,
    module: &Module<'ctx>,
    tile: GemmTile,
    isa: VectorIsa,
    name: &str,
    desc: &GemmDesc,
) -> FunctionValue<'ctx> {
    let ptr = context.ptr_type(AddressSpace::default());
    let fn_ty = context.void_type().fn_type(&[ptr.into(); 5], false);
    let func = module.add_function(name, fn_ty, Some(Linkage::Internal));
    for (kind, locs) in [("nounwind", None), ("noalias", Some(0u32..5))] {
        let id = Attribute::get_named_enum_kind_id(kind);
        if id == 0 {
            continue;
        }
        match locs {
            None => func.add_attribute(AttributeLoc::Function, context.create_enum_attribute(id, 0)),
            Some(r) => {
                for i in r {
                    func.add_attribute(AttributeLoc::Param(i), context.create_enum_attribute(id, 0));
                }
            }
        }
    }
    if isa.vector_bits >= 256 {
        let w = isa.vector_bits.to_string();
        func.add_attribute(
            AttributeLoc::Function,
            context.create_string_attribute("min-legal-vector-width", &w),
        );
    }
    let builder = context.create_builder();
    let entry = context.append_basic_block(func, "entry");
    builder.position_at_end(entry);
    let p = plan_with_tile(desc, tile);
    let f32t = context.f32_type();
    let vty: BasicTypeEnum = if p.lanes > 1 { f32t.vec_type(p.lanes as u32).into() } else { f32t.into() };
    let intr = Intrinsic::find(if p.fma { "llvm.fma" } else { "llvm.fmuladd" }).expect("fma intrinsic");
    let fma_v = intr.get_declaration(module, &[vty]).expect("fma decl");
    let e = Emitter {
        ctx: context,
        b: builder,
        func,
        i64t: context.i64_type(),
        f32t,
        vty,
        fma_v,
        p,
        d: desc.clone(),
        b_row: if b_direct(desc, &p) { desc.ldb } else { p.nr },
    };
    e.emit_body().expect("gemm IR emission");
    func
}

struct Emitter<'ctx> {
    ctx: &'ctx Context,
    b: Builder<'ctx>,
    func: FunctionValue<'ctx>,
    i64t: IntType<'ctx>,
    f32t: FloatType<'ctx>,
    vty: BasicTypeEnum<'ctx>,
    fma_v: FunctionValue<'ctx>,
    p: GemmPlan,
    d: GemmDesc,
    /// Floats between consecutive k rows of the B micro-panel: `nr` when packed, `ldb` when B is
    /// read in place ([`b_direct`]).
    b_row: usize,
}

/// Whether C is being written for the first K block (initialise from 0/bias, or C when
/// accumulating) or a later one (add to C).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    First,
    Rest,
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
    fn gep(&self, base: PointerValue<'ctx>, idx: IntValue<'ctx>) -> R<PointerValue<'ctx>> {
        unsafe { self.b.build_in_bounds_gep(self.f32t, base, &[idx], "") }
    }
    fn gepc(&self, base: PointerValue<'ctx>, idx: usize) -> R<PointerValue<'ctx>> {
        if idx == 0 {
            return Ok(base);
        }
        self.gep(base, self.c(idx))
    }
    fn load_f(&self, ptr: PointerValue<'ctx>) -> R<FloatValue<'ctx>> {
        let v = self.b.build_load(self.f32t, ptr, "")?;
        v.as_instruction_value().unwrap().set_alignment(4).unwrap();
        Ok(v.into_float_value())
    }
    fn load_v(&self, ptr: PointerValue<'ctx>) -> R<BasicValueEnum<'ctx>> {
        let v = self.b.build_load(self.vty, ptr, "")?;
        v.as_instruction_value().unwrap().set_alignment(4).unwrap();
        Ok(v)
    }
    fn store<V: BasicValue<'ctx>>(&self, ptr: PointerValue<'ctx>, v: V) -> R<()> {
        let st = self.b.build_store(ptr, v)?;
        st.set_alignment(4).unwrap();
        Ok(())
    }
    fn zero_v(&self) -> BasicValueEnum<'ctx> {
        match self.vty {
            BasicTypeEnum::VectorType(t) => t.const_zero().into(),
            _ => self.f32t.const_zero().into(),
        }
    }
    fn splat(&self, f: FloatValue<'ctx>) -> R<BasicValueEnum<'ctx>> {
        match self.vty {
            BasicTypeEnum::VectorType(t) => {
                let undef = t.get_poison();
                let ins = self.b.build_insert_element(undef, f, self.i64t.const_zero(), "")?;
                let mask = self.ctx.i32_type().vec_type(self.p.lanes as u32).const_zero();
                Ok(self.b.build_shuffle_vector(ins, undef, mask, "")?.into())
            }
            _ => Ok(f.into()),
        }
    }
    fn fma(
        &self,
        a: BasicValueEnum<'ctx>,
        b: BasicValueEnum<'ctx>,
        c: BasicValueEnum<'ctx>,
    ) -> R<BasicValueEnum<'ctx>> {
        let call = self.b.build_call(self.fma_v, &[a.into(), b.into(), c.into()], "")?;
        Ok(call.try_as_basic_value().basic().unwrap())
    }
    fn fadd(&self, a: BasicValueEnum<'ctx>, b: BasicValueEnum<'ctx>) -> R<BasicValueEnum<'ctx>> {
        Ok(match (a, b) {
            (BasicValueEnum::VectorValue(x), BasicValueEnum::VectorValue(y)) => {
                self.b.build_float_add(x, y, "")?.into()
            }
            (BasicValueEnum::FloatValue(x), BasicValueEnum::FloatValue(y)) => {
                self.b.build_float_add(x, y, "")?.into()
            }
            _ => unreachable!("fadd on mismatched types"),
        })
    }

    fn emit_body(&self) -> R<()> {
        let d = &self.d;
        let p = self.p;
        let a = self.func.get_nth_param(0).unwrap().into_pointer_value();
        let bmat = self.func.get_nth_param(1).unwrap().into_pointer_value();
        let cmat = self.func.get_nth_param(2).unwrap().into_pointer_value();
        let bias = self.func.get_nth_param(3).unwrap().into_pointer_value();
        let scratch = self.func.get_nth_param(4).unwrap().into_pointer_value();
        if d.m == 0 || d.n == 0 {
            self.b.build_return(None)?;
            return Ok(());
        }
        if d.k == 0 {
            // C = init (bias or 0, plus C when accumulating).
            self.for_loop("i", self.c(0), self.c(d.m), 1, |i| {
                self.for_loop("j", self.c(0), self.c(d.n), 1, |j| {
                    self.store_scalar(cmat, bias, i, j, self.f32t.const_zero(), Phase::First)
                })
            })?;
            self.b.build_return(None)?;
            return Ok(());
        }
        let lay = scratch_layout(d, &p);
        let ap_buf = self.gepc(scratch, lay.a_off)?;
        let bp_buf = self.gepc(scratch, lay.b_off)?;
        let tile_buf = self.gepc(scratch, lay.tile_off)?;
        let single_kblock = p.kc >= d.k;

        self.for_loop("jc", self.c(0), self.c(d.n), p.nc, |jc| {
            let nc_cur = self.umin(self.c(p.nc), self.sub(self.c(d.n), jc)?)?;
            let nb_panels = self.udivc(self.addc(nc_cur, p.nr - 1)?, p.nr)?;
            self.for_loop("pc", self.c(0), self.c(d.k), p.kc, |pc| {
                let kc_cur = self.umin(self.c(p.kc), self.sub(self.c(d.k), pc)?)?;
                let direct = b_direct(d, &p);
                if !d.b_prepacked && !direct {
                    self.pack_b(bmat, bp_buf, jc, pc, kc_cur, nb_panels)?;
                }
                let first = self.b.build_int_compare(IntPredicate::EQ, pc, self.c(0), "first")?;
                self.for_loop("ic", self.c(0), self.c(d.m), p.mc, |ic| {
                    let mc_cur = self.umin(self.c(p.mc), self.sub(self.c(d.m), ic)?)?;
                    let na_panels = self.udivc(self.addc(mc_cur, p.mr - 1)?, p.mr)?;
                    self.pack_a(a, ap_buf, ic, pc, kc_cur, na_panels)?;
                    self.for_loop("jr", self.c(0), nb_panels, 1, |q| {
                        let bpanel = if d.b_prepacked {
                            // Panel (jc/nr + q) of the whole packed B, row pc.
                            let gq = self.add(self.udivc(jc, p.nr)?, q)?;
                            let off = self.add(self.mulc(gq, d.k * p.nr)?, self.mulc(pc, p.nr)?)?;
                            self.gep(bmat, off)?
                        } else if direct {
                            // B itself at row pc, column jc + q·nr.
                            let col = self.add(jc, self.mulc(q, p.nr)?)?;
                            self.gep(bmat, self.add(self.mulc(pc, d.ldb)?, col)?)?
                        } else {
                            self.gep(bp_buf, self.mul(self.mulc(q, p.nr)?, kc_cur)?)?
                        };
                        let j0 = self.add(jc, self.mulc(q, p.nr)?)?;
                        self.for_loop("ir", self.c(0), na_panels, 1, |pi| {
                            let apanel = self.gep(ap_buf, self.mul(self.mulc(pi, p.mr)?, kc_cur)?)?;
                            let i0 = self.add(ic, self.mulc(pi, p.mr)?)?;
                            let accs = self.kernel(apanel, bpanel, kc_cur)?;
                            if single_kblock {
                                self.epilogue(cmat, bias, tile_buf, &accs, i0, j0, Phase::First)
                            } else {
                                self.if_else(
                                    first,
                                    || self.epilogue(cmat, bias, tile_buf, &accs, i0, j0, Phase::First),
                                    || self.epilogue(cmat, bias, tile_buf, &accs, i0, j0, Phase::Rest),
                                )
                            }
                        })
                    })
                })
            })
        })?;
        self.b.build_return(None)?;
        Ok(())
    }

    /// Packs rows `ic..ic+mr*na_panels` × cols `pc..pc+kc_cur` of op(A) into `na_panels` panels of
    /// `kc_cur × mr` (rows past m are zero).
    fn pack_a(
        &self,
        a: PointerValue<'ctx>,
        dst_buf: PointerValue<'ctx>,
        ic: IntValue<'ctx>,
        pc: IntValue<'ctx>,
        kc_cur: IntValue<'ctx>,
        na_panels: IntValue<'ctx>,
    ) -> R<()> {
        let d = &self.d;
        let p = self.p;
        let need_mask = d.m % p.mr != 0;
        self.for_loop("pa", self.c(0), na_panels, 1, |pi| {
            let dst = self.gep(dst_buf, self.mul(self.mulc(pi, p.mr)?, kc_cur)?)?;
            let i_base = self.add(ic, self.mulc(pi, p.mr)?)?;
            // Transposed A with a full panel: each k row of the panel is `mr` contiguous floats.
            let vector_copy = || -> R<()> {
                let vt = self.f32t.vec_type(p.mr as u32);
                let src0 = self.gep(a, self.add(self.mulc(pc, d.lda)?, i_base)?)?;
                self.for_loop("pav", self.c(0), kc_cur, 1, |kk| {
                    let v = self.b.build_load(vt, self.gep(src0, self.mulc(kk, d.lda)?)?, "")?;
                    v.as_instruction_value().unwrap().set_alignment(4).unwrap();
                    self.store(self.gep(dst, self.mulc(kk, p.mr)?)?, v)
                })
            };
            let scalar_copy = || -> R<()> {
                // Per-row source pointer (at kk = 0) and validity.
                let mut rows = Vec::with_capacity(p.mr);
                for r in 0..p.mr {
                    let i = self.addc(i_base, r)?;
                    let (ic_, valid) = if need_mask {
                        let valid = self.b.build_int_compare(IntPredicate::ULT, i, self.c(d.m), "")?;
                        (self.umin(i, self.c(d.m - 1))?, Some(valid))
                    } else {
                        (i, None)
                    };
                    let src = if d.a_trans {
                        self.gep(a, self.add(self.mulc(pc, d.lda)?, ic_)?)?
                    } else {
                        self.gep(a, self.add(self.mulc(ic_, d.lda)?, pc)?)?
                    };
                    rows.push((src, valid));
                }
                self.for_loop("pak", self.c(0), kc_cur, 1, |kk| {
                    let src_off = if d.a_trans { self.mulc(kk, d.lda)? } else { kk };
                    let dst_row = self.gep(dst, self.mulc(kk, p.mr)?)?;
                    for (r, (src, valid)) in rows.iter().enumerate() {
                        let mut v = self.load_f(self.gep(*src, src_off)?)?;
                        if let Some(valid) = valid {
                            v = self
                                .b
                                .build_select(*valid, v, self.f32t.const_zero(), "")?
                                .into_float_value();
                        }
                        self.store(self.gepc(dst_row, r)?, v)?;
                    }
                    Ok(())
                })
            };
            if !d.a_trans || p.mr == 1 {
                scalar_copy()
            } else if !need_mask {
                vector_copy()
            } else {
                let full =
                    self.b.build_int_compare(IntPredicate::ULE, self.addc(i_base, p.mr)?, self.c(d.m), "")?;
                self.if_else(full, vector_copy, scalar_copy)
            }
        })
    }

    /// Packs cols `jc..jc+nr*nb_panels` × rows `pc..pc+kc_cur` of op(B) into panels of `kc_cur × nr`
    /// (columns past n are zero).
    fn pack_b(
        &self,
        bmat: PointerValue<'ctx>,
        dst_buf: PointerValue<'ctx>,
        jc: IntValue<'ctx>,
        pc: IntValue<'ctx>,
        kc_cur: IntValue<'ctx>,
        nb_panels: IntValue<'ctx>,
    ) -> R<()> {
        let d = &self.d;
        let p = self.p;
        self.for_loop("pb", self.c(0), nb_panels, 1, |q| {
            let dst = self.gep(dst_buf, self.mul(self.mulc(q, p.nr)?, kc_cur)?)?;
            let j_base = self.add(jc, self.mulc(q, p.nr)?)?;
            // Vector copy of contiguous rows of B for full panels.
            let vector_copy = || -> R<()> {
                let src0 = self.gep(bmat, self.add(self.mulc(pc, d.ldb)?, j_base)?)?;
                self.for_loop("pbv", self.c(0), kc_cur, 1, |kk| {
                    let src = self.gep(src0, self.mulc(kk, d.ldb)?)?;
                    let dst_row = self.gep(dst, self.mulc(kk, p.nr)?)?;
                    for j in 0..p.nv {
                        let v = self.load_v(self.gepc(src, j * p.lanes)?)?;
                        self.store(self.gepc(dst_row, j * p.lanes)?, v)?;
                    }
                    Ok(())
                })
            };
            let scalar_copy = || -> R<()> {
                let mut cols = Vec::with_capacity(p.nr);
                for c in 0..p.nr {
                    let j = self.addc(j_base, c)?;
                    let valid = self.b.build_int_compare(IntPredicate::ULT, j, self.c(d.n), "")?;
                    let jcl = self.umin(j, self.c(d.n - 1))?;
                    let src = if d.b_trans {
                        self.gep(bmat, self.add(self.mulc(jcl, d.ldb)?, pc)?)?
                    } else {
                        self.gep(bmat, self.add(self.mulc(pc, d.ldb)?, jcl)?)?
                    };
                    cols.push((src, valid));
                }
                self.for_loop("pbs", self.c(0), kc_cur, 1, |kk| {
                    let src_off = if d.b_trans { kk } else { self.mulc(kk, d.ldb)? };
                    let dst_row = self.gep(dst, self.mulc(kk, p.nr)?)?;
                    for (c, (src, valid)) in cols.iter().enumerate() {
                        let v = self.load_f(self.gep(*src, src_off)?)?;
                        let v = self.b.build_select(*valid, v, self.f32t.const_zero(), "")?;
                        self.store(self.gepc(dst_row, c)?, v)?;
                    }
                    Ok(())
                })
            };
            if d.b_trans {
                scalar_copy()
            } else if d.n % p.nr == 0 {
                vector_copy()
            } else {
                let full =
                    self.b.build_int_compare(IntPredicate::ULE, self.addc(j_base, p.nr)?, self.c(d.n), "")?;
                self.if_else(full, vector_copy, scalar_copy)
            }
        })
    }

    /// One k step of the micro-kernel: `acc[r][j] += A[kk][r] * B[kk][j*lanes..]`.
    fn kernel_step(
        &self,
        ap: PointerValue<'ctx>,
        bp: PointerValue<'ctx>,
        u: usize,
        accs: &mut [BasicValueEnum<'ctx>],
    ) -> R<()> {
        let p = self.p;
        let mut bv = Vec::with_capacity(p.nv);
        for j in 0..p.nv {
            bv.push(self.load_v(self.gepc(bp, u * self.b_row + j * p.lanes)?)?);
        }
        for r in 0..p.mr {
            let a = self.splat(self.load_f(self.gepc(ap, u * p.mr + r)?)?)?;
            for j in 0..p.nv {
                accs[r * p.nv + j] = self.fma(a, bv[j], accs[r * p.nv + j])?;
            }
        }
        Ok(())
    }

    /// A k loop over `trips` iterations of `per` k steps, carrying pointers and accumulators.
    fn kernel_loop(
        &self,
        name: &str,
        trips: IntValue<'ctx>,
        per: usize,
        ap0: PointerValue<'ctx>,
        bp0: PointerValue<'ctx>,
        accs0: Vec<BasicValueEnum<'ctx>>,
    ) -> R<(PointerValue<'ctx>, PointerValue<'ctx>, Vec<BasicValueEnum<'ctx>>)> {
        let p = self.p;
        let ptr_t = self.ctx.ptr_type(AddressSpace::default());
        let pre = self.b.get_insert_block().unwrap();
        let header = self.ctx.append_basic_block(self.func, &format!("{name}.head"));
        let body = self.ctx.append_basic_block(self.func, &format!("{name}.body"));
        let exit = self.ctx.append_basic_block(self.func, &format!("{name}.exit"));
        self.b.build_unconditional_branch(header)?;
        self.b.position_at_end(header);
        let t_phi = self.b.build_phi(self.i64t, "t")?;
        let a_phi = self.b.build_phi(ptr_t, "ap")?;
        let b_phi = self.b.build_phi(ptr_t, "bp")?;
        let acc_phis: Vec<_> =
            (0..accs0.len()).map(|_| self.b.build_phi(self.vty, "acc")).collect::<R<_>>()?;
        t_phi.add_incoming(&[(&self.c(0), pre)]);
        a_phi.add_incoming(&[(&ap0, pre)]);
        b_phi.add_incoming(&[(&bp0, pre)]);
        for (phi, v) in acc_phis.iter().zip(&accs0) {
            phi.add_incoming(&[(v, pre)]);
        }
        let t = t_phi.as_basic_value().into_int_value();
        let ap = a_phi.as_basic_value().into_pointer_value();
        let bp = b_phi.as_basic_value().into_pointer_value();
        let cur: Vec<BasicValueEnum> = acc_phis.iter().map(|p| p.as_basic_value()).collect();
        let cond = self.b.build_int_compare(IntPredicate::ULT, t, trips, "")?;
        self.b.build_conditional_branch(cond, body, exit)?;
        self.b.position_at_end(body);
        let mut accs = cur.clone();
        for u in 0..per {
            self.kernel_step(ap, bp, u, &mut accs)?;
        }
        let t_next = self.addc(t, 1)?;
        let ap_next = self.gepc(ap, per * p.mr)?;
        let bp_next = self.gepc(bp, per * self.b_row)?;
        let latch = self.b.get_insert_block().unwrap();
        self.b.build_unconditional_branch(header)?;
        t_phi.add_incoming(&[(&t_next, latch)]);
        a_phi.add_incoming(&[(&ap_next, latch)]);
        b_phi.add_incoming(&[(&bp_next, latch)]);
        for (phi, v) in acc_phis.iter().zip(&accs) {
            phi.add_incoming(&[(v, latch)]);
        }
        self.b.position_at_end(exit);
        Ok((ap, bp, cur))
    }

    /// The micro-kernel: returns the `mr × nv` accumulator vectors for `kc_cur` steps over the
    /// packed panels.
    fn kernel(
        &self,
        apanel: PointerValue<'ctx>,
        bpanel: PointerValue<'ctx>,
        kc_cur: IntValue<'ctx>,
    ) -> R<Vec<BasicValueEnum<'ctx>>> {
        let p = self.p;
        let accs0 = vec![self.zero_v(); p.mr * p.nv];
        if p.ku <= 1 {
            return Ok(self.kernel_loop("k", kc_cur, 1, apanel, bpanel, accs0)?.2);
        }
        let main = self.udivc(kc_cur, p.ku)?;
        let (ap, bp, accs) = self.kernel_loop("ku", main, p.ku, apanel, bpanel, accs0)?;
        let rem = self.sub(kc_cur, self.mulc(main, p.ku)?)?;
        Ok(self.kernel_loop("kr", rem, 1, ap, bp, accs)?.2)
    }

    /// Initial value of C[i][j] (scalar) for the given phase, plus `acc`, stored.
    fn store_scalar(
        &self,
        cmat: PointerValue<'ctx>,
        bias: PointerValue<'ctx>,
        i: IntValue<'ctx>,
        j: IntValue<'ctx>,
        acc: FloatValue<'ctx>,
        phase: Phase,
    ) -> R<()> {
        let d = &self.d;
        let cp = self.gep(cmat, self.add(self.mulc(i, d.ldc)?, j)?)?;
        let mut v = acc;
        if phase == Phase::Rest || d.accumulate {
            v = self.b.build_float_add(self.load_f(cp)?, v, "")?;
        }
        if phase == Phase::First {
            match d.bias {
                Some(BiasKind::PerRow) => {
                    v = self.b.build_float_add(v, self.load_f(self.gep(bias, i)?)?, "")?
                }
                Some(BiasKind::PerCol) => {
                    v = self.b.build_float_add(v, self.load_f(self.gep(bias, j)?)?, "")?
                }
                None => {}
            }
        }
        self.store(cp, v)
    }

    /// Writes the accumulator tile at (i0, j0): vector stores when the tile is inside C, else via
    /// the tile buffer and a scalar copy of the valid part.
    #[allow(clippy::too_many_arguments)]
    fn epilogue(
        &self,
        cmat: PointerValue<'ctx>,
        bias: PointerValue<'ctx>,
        tile_buf: PointerValue<'ctx>,
        accs: &[BasicValueEnum<'ctx>],
        i0: IntValue<'ctx>,
        j0: IntValue<'ctx>,
        phase: Phase,
    ) -> R<()> {
        let d = &self.d;
        let p = self.p;
        let full_tile = || -> R<()> {
            for r in 0..p.mr {
                let i = self.addc(i0, r)?;
                let row = self.gep(cmat, self.add(self.mulc(i, d.ldc)?, j0)?)?;
                let row_bias = match (phase, d.bias) {
                    (Phase::First, Some(BiasKind::PerRow)) => {
                        Some(self.splat(self.load_f(self.gep(bias, i)?)?)?)
                    }
                    _ => None,
                };
                for j in 0..p.nv {
                    let cp = self.gepc(row, j * p.lanes)?;
                    let mut v = accs[r * p.nv + j];
                    if phase == Phase::Rest || d.accumulate {
                        v = self.fadd(self.load_v(cp)?, v)?;
                    }
                    if let Some(rb) = row_bias {
                        v = self.fadd(v, rb)?;
                    }
                    if phase == Phase::First && d.bias == Some(BiasKind::PerCol) {
                        let bj = self.addc(j0, j * p.lanes)?;
                        v = self.fadd(v, self.load_v(self.gep(bias, bj)?)?)?;
                    }
                    self.store(cp, v)?;
                }
            }
            Ok(())
        };
        let edge_tile = || -> R<()> {
            for (idx, v) in accs.iter().enumerate() {
                let (r, j) = (idx / p.nv, idx % p.nv);
                self.store(self.gepc(tile_buf, r * p.nr + j * p.lanes)?, *v)?;
            }
            let rows = self.umin(self.c(p.mr), self.sub(self.c(d.m), i0)?)?;
            let cols = self.umin(self.c(p.nr), self.sub(self.c(d.n), j0)?)?;
            self.for_loop("er", self.c(0), rows, 1, |rr| {
                self.for_loop("ec", self.c(0), cols, 1, |cc| {
                    let t = self.load_f(self.gep(tile_buf, self.add(self.mulc(rr, p.nr)?, cc)?)?)?;
                    self.store_scalar(cmat, bias, self.add(i0, rr)?, self.add(j0, cc)?, t, phase)
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

// ----- Host helpers (JIT tests and the benchmark) -----

/// A target machine for the host (CPU name and features detected by LLVM).
pub fn host_target_machine() -> TargetMachine {
    Target::initialize_native(&InitializationConfig::default()).expect("native target");
    let triple = TargetMachine::get_default_triple();
    let cpu = TargetMachine::get_host_cpu_name().to_string();
    let features = TargetMachine::get_host_cpu_features().to_string();
    Target::from_triple(&triple)
        .expect("host target")
        .create_target_machine(
            &triple,
            &cpu,
            &features,
            OptimizationLevel::Aggressive,
            RelocMode::Default,
            CodeModel::JITDefault,
        )
        .expect("host target machine")
}

/// A target machine for a triple/CPU (all LLVM targets edgec supports are initialised). Rust-style
/// RISC-V triples (`riscv64gc-…`, `riscv32imac-…`) become LLVM's `riscv64-…` plus the extension
/// features.
pub fn target_machine(triple: &str, cpu: &str, features: &str) -> TargetMachine {
    Target::initialize_all(&InitializationConfig::default());
    let (triple, features) = normalize_triple(triple, features);
    let triple = TargetTriple::create(&triple);
    let features = features.as_str();
    Target::from_triple(&triple)
        .expect("target")
        .create_target_machine(
            &triple,
            cpu,
            features,
            OptimizationLevel::Aggressive,
            RelocMode::PIC,
            CodeModel::Default,
        )
        .expect("target machine")
}

/// Sets the module's triple/data layout and every defined function's `target-cpu` /
/// `target-features` from `tm` (MCJIT otherwise compiles for a generic CPU), then runs the
/// `default<O3>` pipeline.
pub fn prepare_module_for(module: &Module, tm: &TargetMachine) -> Result<(), String> {
    prepare_module_with(module, tm, "default<O3>")
}

/// [`prepare_module_for`] with another pass pipeline (e.g. `default<Os>` for flash-limited MCUs).
pub fn prepare_module_with(module: &Module, tm: &TargetMachine, pipeline: &str) -> Result<(), String> {
    let ctx = module.get_context();
    module.set_triple(&tm.get_triple());
    module.set_data_layout(&tm.get_target_data().get_data_layout());
    let cpu = tm.get_cpu().to_string();
    let features = tm.get_feature_string().to_string_lossy().into_owned();
    for f in module.get_functions() {
        if f.count_basic_blocks() == 0 {
            continue;
        }
        f.add_attribute(AttributeLoc::Function, ctx.create_string_attribute("target-cpu", &cpu));
        if !features.is_empty() {
            f.add_attribute(
                AttributeLoc::Function,
                ctx.create_string_attribute("target-features", &features),
            );
        }
    }
    module.verify().map_err(|e| e.to_string())?;
    let opts = PassBuilderOptions::create();
    // No loop unrolling: the kernels' loops have constant trip counts, which LLVM unrolled fully
    // after vectorizing, multiplying code size by ~10 (vocoder 487 KB -> 46 KB of code) and
    // compile time by ~20 (vocoder, same loaded machine: 23.2 s -> 1.2 s) for no measured speed-up (the zoo's host latency is
    // the same within noise; the GEMM micro-kernel is unrolled by construction and still runs
    // at 110 GFLOP/s). The vectorizer still interleaves.
    opts.set_loop_unrolling(false);
    module.run_passes(pipeline, tm, opts).map_err(|e| e.to_string())
}

/// Splits Rust's `riscv64gc` / `riscv32imac` arch names into LLVM's arch and `+ext` features.
pub(crate) fn normalize_triple(triple: &str, features: &str) -> (String, String) {
    let (arch, rest) = triple.split_once('-').unwrap_or((triple, ""));
    for base in ["riscv64", "riscv32"] {
        if let Some(exts) = arch.strip_prefix(base) {
            if exts.is_empty() {
                break;
            }
            let mut feats: Vec<String> = Vec::new();
            for ch in exts.chars() {
                let add: Vec<char> = match ch {
                    'g' => vec!['m', 'a', 'f', 'd'],
                    'i' | 'e' => vec![],
                    'm' | 'a' | 'f' | 'd' | 'c' | 'v' | 'b' | 'q' => vec![ch],
                    _ => return (triple.to_string(), features.to_string()),
                };
                for f in add {
                    let f = format!("+{f}");
                    if !feats.contains(&f) {
                        feats.push(f);
                    }
                }
            }
            if !features.is_empty() {
                feats.push(features.to_string());
            }
            return (format!("{base}-{rest}"), feats.join(","));
        }
    }
    (triple.to_string(), features.to_string())
}
