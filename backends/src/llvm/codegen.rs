//! Program → LLVM module → object file.
//!
//! Every kernel becomes an internal function whose buffer parameters are `noalias` (the planner
//! never gives a call's inputs and outputs overlapping storage), so LLVM's loop vectorizer can
//! work on the static loop nests. Constants are read-only globals (`.rodata`, flash on an MCU).
//! The exported symbols are the entry function and the `edgec_model` descriptor the C runtime
//! reads (layout in runtime/c/edgec_runtime.h).

use super::gemm::{self, BiasKind, GemmDesc, VectorIsa};
use super::lookup;
use super::math::MathLib;
use super::qgemm::{self, QTile};
use crate::kir::{self, Access, BinOp, CmpOp, Expr, Kernel, Stmt, Ty, UnOp};
use crate::lower::{Program, Slot};
use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::basic_block::BasicBlock;
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::{Linkage, Module};
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
};
use inkwell::types::{BasicTypeEnum, FloatType, IntType};
use inkwell::values::{BasicValueEnum, FastMathFlags, FloatValue, FunctionValue, IntValue, PointerValue};
use inkwell::{AddressSpace, FloatPredicate, IntPredicate, OptimizationLevel};
use std::collections::HashMap;

/// A machine to generate code for.
#[derive(Clone, Debug)]
pub struct MachineSpec {
    /// An LLVM triple (Rust-style RISC-V names are accepted).
    pub triple: String,
    pub cpu: String,
    pub features: String,
    /// Bare metal: static relocation model, no PIC.
    pub bare_metal: bool,
    /// Instrument every load and store with AddressSanitizer (for tests that run the model with
    /// its buffers on an ASan heap; the program must link clang's ASan runtime).
    pub sanitize_address: bool,
}

impl MachineSpec {
    pub fn host() -> MachineSpec {
        Target::initialize_native(&InitializationConfig::default()).expect("native target");
        MachineSpec {
            triple: TargetMachine::get_default_triple().as_str().to_string_lossy().into_owned(),
            cpu: TargetMachine::get_host_cpu_name().to_string(),
            features: TargetMachine::get_host_cpu_features().to_string(),
            bare_metal: false,
            sanitize_address: false,
        }
    }

    pub fn target_machine(&self) -> Result<TargetMachine, String> {
        Target::initialize_all(&InitializationConfig::default());
        // Rust-style RISC-V names (riscv64gc) become LLVM's arch plus extension features.
        let (triple, features) = gemm::normalize_triple(&self.triple, &self.features);
        let triple = TargetTriple::create(&triple);
        let target = Target::from_triple(&triple).map_err(|e| e.to_string())?;
        target
            .create_target_machine(
                &triple,
                &self.cpu,
                &features,
                OptimizationLevel::Aggressive,
                if self.bare_metal { RelocMode::Static } else { RelocMode::PIC },
                CodeModel::Default,
            )
            .ok_or_else(|| format!("LLVM cannot create a target machine for {} ({})", self.triple, self.cpu))
    }

    pub fn isa(&self) -> Result<VectorIsa, String> {
        Ok(VectorIsa::from_target_machine(&self.target_machine()?))
    }

    /// The int8 GEMM kernel and tile code generation uses on this machine.
    pub fn qtile(&self) -> Result<QTile, String> {
        Ok(QTile::for_target_machine(&self.target_machine()?))
    }
}

/// This machine's GEMM routines as lowering sees them: the f32 micro-kernel of [`gemm`] for
/// `isa` and the int8 kernel of [`qgemm`] for `qtile`.
#[derive(Clone, Copy, Debug)]
pub struct LlvmKernels {
    pub isa: VectorIsa,
    pub qtile: QTile,
}

impl crate::lower::TargetKernels for LlvmKernels {
    fn gemm_nr(&self) -> usize {
        let t = gemm::GemmTile::for_isa(self.isa);
        t.nv * t.lanes
    }
    fn f32_gemm(&self) -> Option<&dyn crate::lower::F32Gemm> {
        Some(self)
    }
    fn int8_gemm(&self) -> Option<&dyn crate::lower::Int8Gemm> {
        Some(self)
    }
}

impl crate::lower::F32Gemm for LlvmKernels {
    fn scratch_bytes(&self, s: &kir::GemmSpec) -> u64 {
        gemm::gemm_scratch_bytes(&gemm_desc(s), self.isa) as u64
    }
    fn pack_b(&self, s: &kir::GemmSpec, b: &[f32]) -> Vec<f32> {
        gemm::pack_b(&gemm_desc(s), self.isa, b)
    }
    fn panel_width(&self, s: &kir::GemmSpec) -> usize {
        gemm::plan(&gemm_desc(s), self.isa).nr
    }
}

impl crate::lower::Int8Gemm for LlvmKernels {
    fn scratch_bytes(&self, s: &kir::QGemmSpec, bias: bool) -> u64 {
        qgemm::qgemm_scratch_bytes(&s.desc(bias), self.qtile) as u64
    }
    fn pack(&self, s: &kir::QGemmSpec, bias: bool, w: &[i8]) -> Vec<i8> {
        qgemm::pack_weights(&s.desc(bias), self.qtile, w)
    }
    fn layout(&self, s: &kir::QGemmSpec) -> crate::quant::QPackedLayout {
        qgemm::packed_layout(&s.desc(false), self.qtile)
    }
}

fn gemm_desc(s: &kir::GemmSpec) -> GemmDesc {
    GemmDesc {
        m: s.shape.m,
        n: s.shape.n,
        k: s.shape.k,
        a_trans: s.shape.a_trans,
        b_trans: s.shape.b_trans,
        lda: s.shape.lda,
        ldb: s.shape.ldb,
        ldc: s.shape.ldc,
        b_prepacked: s.b_prepacked,
        accumulate: s.accumulate,
        bias: None,
    }
}

/// The B panel shape of the f32 GEMM on this ISA: (lanes, vectors per panel at most); a
/// product's panel width is `lanes × min(vectors, ceil(n / lanes))` (`gemm::plan`).
pub fn gemm_panel(isa: VectorIsa) -> (usize, usize) {
    let t = gemm::GemmTile::for_isa(isa);
    (t.lanes, t.nv)
}

/// The result of code generation.
pub struct Object {
    pub bytes: Vec<u8>,
    /// Textual LLVM IR after optimization, when asked for.
    pub llvm_ir: Option<String>,
}

pub use crate::c_header::onnx_dtype;

/// Emits the program as an object for `spec`; `symbol` prefixes the exported names
/// (`<symbol>_model`, `<symbol>_entry`).
/// `instrument` brackets every kernel call with `edgec_rt_kernel_hook` (profiling builds only:
/// without it the entry calls the kernels and nothing else, so an unprofiled model pays nothing).
pub fn emit_object(
    p: &Program,
    spec: &MachineSpec,
    symbol: &str,
    want_ir: bool,
    instrument: bool,
) -> Result<Object, String> {
    let tm = spec.target_machine()?;
    let context = Context::create();
    let module = context.create_module(symbol);
    module.set_triple(&tm.get_triple());
    module.set_data_layout(&tm.get_target_data().get_data_layout());
    let ptr_bits = tm.get_target_data().get_pointer_byte_size(None) * 8;
    if spec.triple.ends_with("eabihf") {
        // The triple already selects the hard-float calling convention, but LLVM's C API cannot
        // set the float-ABI option that makes the object *say* so (Tag_ABI_VFP_args), and GNU ld
        // refuses to link it with hard-float code otherwise.
        module.set_inline_assembly(".eabi_attribute 28, 1");
    }
    {
        let mut cg = Codegen::new(&context, &module, &tm, ptr_bits);
        cg.program(p, symbol, spec, instrument)?;
    }
    // Microcontrollers have little flash and no vector unit to feed: optimize for size there
    // (the GEMM micro-kernel is unrolled in the IR it emits, so it keeps its register tile).
    // Elsewhere O2: every zoo model ran as fast as with O3 (within 2%, interleaved runs) and
    // compiled 5–8% faster (unet 0.95–1.02 s -> 0.90–0.93 s under load); what O3 adds
    // (non-trivial loop unswitching, more inlining) finds nothing to gain in static loop nests.
    let mut pipeline = if spec.bare_metal { "default<Os>" } else { "default<O2>" }.to_string();
    if spec.sanitize_address {
        // After optimization, as clang places it, so the checks guard the code that runs.
        for f in module.get_functions().filter(|f| f.count_basic_blocks() > 0) {
            f.add_attribute(AttributeLoc::Function, cg_attr(&context, "sanitize_address"));
        }
        pipeline.push_str(",asan");
    }
    super::gemm::prepare_module_with(&module, &tm, &pipeline)?;
    let llvm_ir = want_ir.then(|| module.print_to_string().to_string());
    let buf = tm.write_to_memory_buffer(&module, FileType::Object).map_err(|e| e.to_string())?;
    // The module holds every weight as an LLVM constant: free it before copying the object out,
    // so that the weights exist twice at this point instead of three times (compiler memory).
    drop(module);
    drop(context);
    Ok(Object { bytes: buf.as_slice().to_vec(), llvm_ir })
}

/// An LLVM enum attribute without a value (`noalias`, `noinline`, ...) by name.
fn cg_attr(cx: &Context, name: &str) -> Attribute {
    cx.create_enum_attribute(Attribute::get_named_enum_kind_id(name), 0)
}

/// Textual LLVM IR of one kernel, optimized for `spec` (for snapshots and `--emit-llvm`).
pub fn kernel_ir(k: &Kernel, spec: &MachineSpec) -> Result<String, String> {
    let tm = spec.target_machine()?;
    let context = Context::create();
    let module = context.create_module(&k.name);
    let ptr_bits = tm.get_target_data().get_pointer_byte_size(None) * 8;
    {
        let mut cg = Codegen::new(&context, &module, &tm, ptr_bits);
        let f = cg.kernel(k)?;
        f.set_linkage(Linkage::External);
    }
    super::gemm::prepare_module_for(&module, &tm)?;
    Ok(module.print_to_string().to_string())
}

struct Codegen<'ctx, 'm> {
    cx: &'ctx Context,
    module: &'m Module<'ctx>,
    b: Builder<'ctx>,
    math: MathLib<'ctx>,
    isa: VectorIsa,
    idx: IntType<'ctx>,
    gemms: HashMap<String, FunctionValue<'ctx>>,
    /// The int8 GEMM's kernel and blocking for this machine.
    qtile: QTile,
    qgemms: HashMap<String, FunctionValue<'ctx>>,
    /// How `Stmt::Lookup` finds bytes on this machine.
    lut: lookup::LutIsa,
    lookup: Option<FunctionValue<'ctx>>,
}

/// Per-kernel state.
struct Frame<'ctx> {
    f: FunctionValue<'ctx>,
    params: Vec<PointerValue<'ctx>>,
    vars: Vec<Option<PointerValue<'ctx>>>,
    alloca_bb: BasicBlock<'ctx>,
}

impl<'ctx, 'm> Codegen<'ctx, 'm> {
    fn new(cx: &'ctx Context, module: &'m Module<'ctx>, tm: &TargetMachine, ptr_bits: u32) -> Self {
        let isa = VectorIsa::from_target_machine(tm);
        let qtile = QTile::for_target_machine(tm);
        Codegen {
            cx,
            module,
            b: cx.create_builder(),
            math: MathLib::new(cx, module),
            isa,
            idx: if ptr_bits == 32 { cx.i32_type() } else { cx.i64_type() },
            gemms: HashMap::new(),
            qtile,
            qgemms: HashMap::new(),
            lut: lookup::LutIsa::for_target_machine(tm),
            lookup: None,
        }
    }

    fn ptr(&self) -> inkwell::types::PointerType<'ctx> {
        self.cx.ptr_type(AddressSpace::default())
    }

    /// Register type of a kernel type.
    fn rty(&self, t: Ty) -> BasicTypeEnum<'ctx> {
        match t {
            Ty::Idx => self.idx.into(),
            Ty::Bool => self.cx.bool_type().into(),
            _ => self.mty(t),
        }
    }

    /// Memory type of a kernel type.
    fn mty(&self, t: Ty) -> BasicTypeEnum<'ctx> {
        match t {
            Ty::Idx => self.idx.into(),
            Ty::Bool | Ty::I8 | Ty::U8 => self.cx.i8_type().into(),
            Ty::I16 | Ty::U16 => self.cx.i16_type().into(),
            Ty::I32 | Ty::U32 => self.cx.i32_type().into(),
            Ty::I64 | Ty::U64 => self.cx.i64_type().into(),
            Ty::F16 => self.cx.f16_type().into(),
            Ty::BF16 => self.cx.bf16_type().into(),
            Ty::F32 => self.cx.f32_type().into(),
            Ty::F64 => self.cx.f64_type().into(),
        }
    }

    fn attr(&self, name: &str) -> Attribute {
        cg_attr(self.cx, name)
    }

    fn kernel(&mut self, k: &Kernel) -> Result<FunctionValue<'ctx>, String> {
        let ptr = self.ptr();
        let fnty = self.cx.void_type().fn_type(&vec![ptr.into(); k.params.len()], false);
        let f = self.module.add_function(&k.name, fnty, Some(Linkage::Internal));
        f.add_attribute(AttributeLoc::Function, self.attr("nounwind"));
        // A kernel is a loop nest; inlining it into the entry saves one call per kernel but
        // makes one huge function whose optimization time grows faster than linearly.
        f.add_attribute(AttributeLoc::Function, self.attr("noinline"));
        for (i, p) in k.params.iter().enumerate() {
            let loc = AttributeLoc::Param(i as u32);
            f.add_attribute(loc, self.attr("noalias"));
            if p.access == Access::Read {
                f.add_attribute(loc, self.attr("readonly"));
            }
        }
        let entry = self.cx.append_basic_block(f, "entry");
        let body = self.cx.append_basic_block(f, "body");
        self.b.position_at_end(body);
        let params =
            (0..k.params.len()).map(|i| f.get_nth_param(i as u32).unwrap().into_pointer_value()).collect();
        let mut fr = Frame { f, params, vars: vec![None; k.vars.len()], alloca_bb: entry };
        self.stmts(k, &mut fr, &k.body)?;
        self.b.build_return(None).map_err(e)?;
        self.b.position_at_end(entry);
        self.b.build_unconditional_branch(body).map_err(e)?;
        Ok(f)
    }

    fn var_ptr(&self, k: &Kernel, fr: &mut Frame<'ctx>, v: usize) -> Result<PointerValue<'ctx>, String> {
        if let Some(p) = fr.vars[v] {
            return Ok(p);
        }
        let cur = self.b.get_insert_block().unwrap();
        match fr.alloca_bb.get_first_instruction() {
            Some(i) => self.b.position_before(&i),
            None => self.b.position_at_end(fr.alloca_bb),
        }
        let p = self.b.build_alloca(self.rty(k.vars[v]), &format!("v{v}")).map_err(e)?;
        self.b.position_at_end(cur);
        fr.vars[v] = Some(p);
        Ok(p)
    }

    fn stmts(&mut self, k: &Kernel, fr: &mut Frame<'ctx>, ss: &[Stmt]) -> Result<(), String> {
        for s in ss {
            self.stmt(k, fr, s)?;
        }
        Ok(())
    }

    /// A counted loop `for i in 0..n` around `body`.
    fn for_loop(
        &mut self,
        fr: &mut Frame<'ctx>,
        n: u64,
        counter: PointerValue<'ctx>,
        body: &mut dyn FnMut(&mut Self, &mut Frame<'ctx>) -> Result<(), String>,
    ) -> Result<(), String> {
        let f = fr.f;
        let head = self.cx.append_basic_block(f, "loop");
        let bodyb = self.cx.append_basic_block(f, "loop.body");
        let exit = self.cx.append_basic_block(f, "loop.exit");
        self.b.build_store(counter, self.idx.const_zero()).map_err(e)?;
        self.b.build_unconditional_branch(head).map_err(e)?;
        self.b.position_at_end(head);
        let i = self.b.build_load(self.idx, counter, "i").map_err(e)?.into_int_value();
        let c =
            self.b.build_int_compare(IntPredicate::ULT, i, self.idx.const_int(n, false), "c").map_err(e)?;
        self.b.build_conditional_branch(c, bodyb, exit).map_err(e)?;
        self.b.position_at_end(bodyb);
        body(self, fr)?;
        let i = self.b.build_load(self.idx, counter, "i").map_err(e)?.into_int_value();
        let i1 = self.b.build_int_nuw_add(i, self.idx.const_int(1, false), "i1").map_err(e)?;
        self.b.build_store(counter, i1).map_err(e)?;
        self.b.build_unconditional_branch(head).map_err(e)?;
        self.b.position_at_end(exit);
        Ok(())
    }

    fn stmt(&mut self, k: &Kernel, fr: &mut Frame<'ctx>, s: &Stmt) -> Result<(), String> {
        match s {
            Stmt::For { var, extent, body } => {
                let p = self.var_ptr(k, fr, *var)?;
                self.for_loop(fr, *extent, p, &mut |cg, fr| cg.stmts(k, fr, body))?;
            }
            Stmt::Store { buf, index, value } => {
                let i = self.expr(k, fr, index)?.into_int_value();
                let v = self.expr(k, fr, value)?;
                let t = k.params[*buf].ty;
                let v = if t == Ty::Bool {
                    self.b.build_int_z_extend(v.into_int_value(), self.cx.i8_type(), "b8").map_err(e)?.into()
                } else {
                    v
                };
                let p = self.gep(t, fr.params[*buf], i)?;
                self.b.build_store(p, v).map_err(e)?;
            }
            Stmt::Assign { var, value: Expr::Bin(op @ (BinOp::Add | BinOp::Max | BinOp::Min), x, y) }
                if k.vars[*var].is_float()
                    && (matches!(**x, Expr::Var(v) if v == *var)
                        || matches!(**y, Expr::Var(v) if v == *var)) =>
            {
                // A float reduction `acc = acc ⊕ x`: mark the combining op reassociable (and
                // sign-of-zero agnostic) so that the loop vectorizer may split the accumulator into
                // lanes. Only accumulators get these flags, never the element computations.
                let p = self.var_ptr(k, fr, *var)?;
                let a = self.expr(k, fr, x)?;
                let b = self.expr(k, fr, y)?;
                let v = self.arith(*op, a, b, k.vars[*var])?;
                if let Some(inst) = v.into_float_value().as_instruction() {
                    let _ =
                        inst.set_fast_math_flags(FastMathFlags::AllowReassoc | FastMathFlags::NoSignedZeros);
                }
                self.b.build_store(p, v).map_err(e)?;
            }
            Stmt::Let { var, value } | Stmt::Assign { var, value } => {
                let p = self.var_ptr(k, fr, *var)?;
                let v = self.expr(k, fr, value)?;
                self.b.build_store(p, v).map_err(e)?;
            }
            Stmt::If { cond, then, els } => {
                let c = self.expr(k, fr, cond)?.into_int_value();
                let tb = self.cx.append_basic_block(fr.f, "then");
                let eb = self.cx.append_basic_block(fr.f, "else");
                let jb = self.cx.append_basic_block(fr.f, "join");
                self.b.build_conditional_branch(c, tb, eb).map_err(e)?;
                self.b.position_at_end(tb);
                self.stmts(k, fr, then)?;
                self.b.build_unconditional_branch(jb).map_err(e)?;
                self.b.position_at_end(eb);
                self.stmts(k, fr, els)?;
                self.b.build_unconditional_branch(jb).map_err(e)?;
                self.b.position_at_end(jb);
            }
            Stmt::Lookup { x, y, table, elems } => {
                let mut args = Vec::with_capacity(4);
                for v in [x, table, y] {
                    let i = self.expr(k, fr, &v.offset)?.into_int_value();
                    args.push(self.gep(Ty::I8, fr.params[v.buf], i)?.into());
                }
                args.push(self.idx.const_int(*elems, false).into());
                let f = self.lookup_fn()?;
                self.b.build_call(f, &args, "").map_err(e)?;
            }
            Stmt::Copy { dst, src, elems } => {
                let t = k.params[dst.buf].ty;
                let di = self.expr(k, fr, &dst.offset)?.into_int_value();
                let si = self.expr(k, fr, &src.offset)?.into_int_value();
                let d = self.gep(t, fr.params[dst.buf], di)?;
                let s = self.gep(t, fr.params[src.buf], si)?;
                let n = self.idx.const_int(elems * t.bytes() as u64, false);
                self.b.build_memcpy(d, 1, s, 1, n).map_err(e)?;
            }
            Stmt::Gemm { spec, a, b, c, bias, scratch } => {
                let t = k.params[c.buf].ty;
                let view = |cg: &mut Self,
                            fr: &mut Frame<'ctx>,
                            v: &kir::View|
                 -> Result<PointerValue<'ctx>, String> {
                    let i = cg.expr(k, fr, &v.offset)?.into_int_value();
                    cg.gep(k.params[v.buf].ty, fr.params[v.buf], i)
                };
                let (pa, pb, pc) = (view(self, fr, a)?, view(self, fr, b)?, view(self, fr, c)?);
                let kind = bias.as_ref().map(|b| if b.per_row { BiasKind::PerRow } else { BiasKind::PerCol });
                let pbias = match bias {
                    Some(b) => Some(view(self, fr, &b.view)?),
                    None => None,
                };
                if t == Ty::F32 && spec.shape.m * spec.shape.n * spec.shape.k > 0 {
                    let f = self.gemm_fn(spec, kind);
                    let null = self.ptr().const_null();
                    let sp = scratch.map(|s| fr.params[s]).unwrap_or(null);
                    let bp = pbias.unwrap_or(null);
                    self.b
                        .build_call(f, &[pa.into(), pb.into(), pc.into(), bp.into(), sp.into()], "")
                        .map_err(e)?;
                } else {
                    let bias = bias.as_ref().zip(pbias).map(|(b, p)| (p, b.per_row, k.params[b.view.buf].ty));
                    self.gemm_loops(fr, spec, t, pa, pb, pc, bias)?;
                }
            }
            Stmt::QGemm { spec, a, b, c, bias, mult, shift, scratch } => {
                if spec.shape.m * spec.shape.n == 0 {
                    return Ok(());
                }
                let mut args = Vec::with_capacity(7);
                for v in [Some(a), Some(b), Some(c), bias.as_ref(), Some(mult), Some(shift)] {
                    args.push(match v {
                        Some(v) => {
                            let i = self.expr(k, fr, &v.offset)?.into_int_value();
                            self.gep(k.params[v.buf].ty, fr.params[v.buf], i)?.into()
                        }
                        None => self.ptr().const_null().into(),
                    });
                }
                args.push(scratch.map(|s| fr.params[s]).unwrap_or(self.ptr().const_null()).into());
                let f = self.qgemm_fn(spec, bias.is_some());
                self.b.build_call(f, &args, "").map_err(e)?;
            }
        }
        Ok(())
    }

    fn lookup_fn(&mut self) -> Result<FunctionValue<'ctx>, String> {
        if let Some(f) = self.lookup {
            return Ok(f);
        }
        let f = lookup::emit_lookup(self.cx, self.module, "edgec_lookup", self.idx, self.lut)
            .map_err(|e| e.to_string())?;
        f.add_attribute(AttributeLoc::Function, self.attr("noinline"));
        self.lookup = Some(f);
        Ok(f)
    }

    fn qgemm_fn(&mut self, spec: &kir::QGemmSpec, bias: bool) -> FunctionValue<'ctx> {
        let key = format!("{spec:?} {bias}");
        if let Some(f) = self.qgemms.get(&key) {
            return *f;
        }
        let name = format!("edgec_qgemm_{}", self.qgemms.len());
        let f = qgemm::emit_qgemm(self.cx, self.module, self.qtile, &name, &spec.desc(bias));
        // One copy per distinct product, as for the f32 routine.
        f.add_attribute(AttributeLoc::Function, self.attr("noinline"));
        self.qgemms.insert(key, f);
        f
    }

    fn gemm_fn(&mut self, spec: &kir::GemmSpec, bias: Option<BiasKind>) -> FunctionValue<'ctx> {
        let key = format!("{spec:?} {bias:?}");
        if let Some(f) = self.gemms.get(&key) {
            return *f;
        }
        let name = format!("edgec_gemm_{}", self.gemms.len());
        let desc = GemmDesc { bias, ..gemm_desc(spec) };
        let f = gemm::emit_sgemm(self.cx, self.module, self.isa, &name, &desc);
        // One copy of each GEMM routine: LLVM would otherwise inline it into every kernel that
        // calls it (one call per product is nothing next to the product itself).
        f.add_attribute(AttributeLoc::Function, self.attr("noinline"));
        self.gemms.insert(key, f);
        f
    }

    /// Plain loops for non-f32 products: C[i][j] = Σ A[i][p]·B[p][j] (+ bias[i] or bias[j]; the
    /// bias pointer, whether it is per row, and its element type), accumulated in the element
    /// type (f32 for half types).
    #[allow(clippy::too_many_arguments)]
    fn gemm_loops(
        &mut self,
        fr: &mut Frame<'ctx>,
        s: &kir::GemmSpec,
        t: Ty,
        pa: PointerValue<'ctx>,
        pb: PointerValue<'ctx>,
        pc: PointerValue<'ctx>,
        bias: Option<(PointerValue<'ctx>, bool, Ty)>,
    ) -> Result<(), String> {
        let ct = if matches!(t, Ty::F16 | Ty::BF16) { Ty::F32 } else { t };
        let (ci, cj, cp) = (
            self.tmp_alloca(fr, self.idx.into())?,
            self.tmp_alloca(fr, self.idx.into())?,
            self.tmp_alloca(fr, self.idx.into())?,
        );
        let acc = self.tmp_alloca(fr, self.rty(ct))?;
        let s = s.clone();
        self.for_loop(fr, s.shape.m as u64, ci, &mut |cg, fr| {
            cg.for_loop(fr, s.shape.n as u64, cj, &mut |cg, fr| {
                let zero = cg.zero(ct);
                cg.b.build_store(acc, zero).map_err(e)?;
                cg.for_loop(fr, s.shape.k as u64, cp, &mut |cg, _fr| {
                    let i = cg.b.build_load(cg.idx, ci, "i").map_err(e)?.into_int_value();
                    let j = cg.b.build_load(cg.idx, cj, "j").map_err(e)?.into_int_value();
                    let p = cg.b.build_load(cg.idx, cp, "p").map_err(e)?.into_int_value();
                    let ai =
                        if s.shape.a_trans { cg.lin(p, s.shape.lda, i)? } else { cg.lin(i, s.shape.lda, p)? };
                    let bi =
                        if s.shape.b_trans { cg.lin(j, s.shape.ldb, p)? } else { cg.lin(p, s.shape.ldb, j)? };
                    let pa_ = cg.gep(t, pa, ai)?;
                    let av = cg.b.build_load(cg.mty(t), pa_, "a").map_err(e)?;
                    let pb_ = cg.gep(t, pb, bi)?;
                    let bv = cg.b.build_load(cg.mty(t), pb_, "b").map_err(e)?;
                    let av = cg.convert(av, t, ct)?;
                    let bv = cg.convert(bv, t, ct)?;
                    let prod = cg.arith(BinOp::Mul, av, bv, ct)?;
                    let cur = cg.b.build_load(cg.rty(ct), acc, "acc").map_err(e)?;
                    let sum = cg.arith(BinOp::Add, cur, prod, ct)?;
                    cg.b.build_store(acc, sum).map_err(e)?;
                    Ok(())
                })?;
                let i = cg.b.build_load(cg.idx, ci, "i").map_err(e)?.into_int_value();
                let j = cg.b.build_load(cg.idx, cj, "j").map_err(e)?.into_int_value();
                let cidx = cg.lin(i, s.shape.ldc, j)?;
                let pc_ = cg.gep(t, pc, cidx)?;
                let mut v = cg.b.build_load(cg.rty(ct), acc, "acc").map_err(e)?;
                if s.accumulate {
                    let old = cg.b.build_load(cg.mty(t), pc_, "c").map_err(e)?;
                    let old = cg.convert(old, t, ct)?;
                    v = cg.arith(BinOp::Add, old, v, ct)?;
                }
                if let Some((pbias, per_row, bt)) = bias {
                    let bi = if per_row { i } else { j };
                    let bp = cg.gep(bt, pbias, bi)?;
                    let bv = cg.b.build_load(cg.mty(bt), bp, "bias").map_err(e)?;
                    let bv = cg.convert(bv, bt, ct)?;
                    v = cg.arith(BinOp::Add, v, bv, ct)?;
                }
                let v = cg.convert(v, ct, t)?;
                cg.b.build_store(pc_, v).map_err(e)?;
                Ok(())
            })
        })
    }

    fn tmp_alloca(
        &mut self,
        fr: &mut Frame<'ctx>,
        t: BasicTypeEnum<'ctx>,
    ) -> Result<PointerValue<'ctx>, String> {
        let cur = self.b.get_insert_block().unwrap();
        match fr.alloca_bb.get_first_instruction() {
            Some(i) => self.b.position_before(&i),
            None => self.b.position_at_end(fr.alloca_bb),
        }
        let p = self.b.build_alloca(t, "t").map_err(e)?;
        self.b.position_at_end(cur);
        Ok(p)
    }

    fn lin(&self, r: IntValue<'ctx>, ld: usize, c: IntValue<'ctx>) -> Result<IntValue<'ctx>, String> {
        let m = self.b.build_int_mul(r, self.idx.const_int(ld as u64, false), "").map_err(e)?;
        self.b.build_int_add(m, c, "").map_err(e)
    }

    fn zero(&self, t: Ty) -> BasicValueEnum<'ctx> {
        match self.rty(t) {
            BasicTypeEnum::FloatType(f) => f.const_zero().into(),
            BasicTypeEnum::IntType(i) => i.const_zero().into(),
            _ => unreachable!(),
        }
    }

    fn gep(&self, t: Ty, base: PointerValue<'ctx>, i: IntValue<'ctx>) -> Result<PointerValue<'ctx>, String> {
        unsafe { self.b.build_in_bounds_gep(self.mty(t), base, &[i], "p") }.map_err(e)
    }

    fn expr(&mut self, k: &Kernel, fr: &mut Frame<'ctx>, x: &Expr) -> Result<BasicValueEnum<'ctx>, String> {
        Ok(match x {
            Expr::FConst(v, t) => self.rty(*t).into_float_type().const_float(*v).into(),
            Expr::IConst(v, t) => self.rty(*t).into_int_type().const_int(*v as u64, t.is_signed()).into(),
            Expr::Var(v) => {
                let p = self.var_ptr(k, fr, *v)?;
                self.b.build_load(self.rty(k.vars[*v]), p, "v").map_err(e)?
            }
            Expr::Load(b, i) => {
                let t = k.params[*b].ty;
                let i = self.expr(k, fr, i)?.into_int_value();
                let p = self.gep(t, fr.params[*b], i)?;
                let v = self.b.build_load(self.mty(t), p, "ld").map_err(e)?;
                if t == Ty::Bool {
                    self.b
                        .build_int_compare(
                            IntPredicate::NE,
                            v.into_int_value(),
                            self.cx.i8_type().const_zero(),
                            "b",
                        )
                        .map_err(e)?
                        .into()
                } else {
                    v
                }
            }
            Expr::Un(op, a) => {
                let t = k.ty(a);
                let v = self.expr(k, fr, a)?;
                self.unary(*op, v, t)?
            }
            Expr::Bin(op, a, b) => {
                let t = k.ty(a);
                let va = self.expr(k, fr, a)?;
                let vb = self.expr(k, fr, b)?;
                let vb = self.convert(vb, k.ty(b), t)?;
                self.arith(*op, va, vb, t)?
            }
            Expr::Cmp(op, a, b) => {
                let t = k.ty(a);
                let va = self.expr(k, fr, a)?;
                let vb = self.expr(k, fr, b)?;
                let vb = self.convert(vb, k.ty(b), t)?;
                self.compare(*op, va, vb, t)?
            }
            Expr::Select(c, a, b) => {
                let t = k.ty(a);
                let vc = self.expr(k, fr, c)?.into_int_value();
                let va = self.expr(k, fr, a)?;
                let vb = self.expr(k, fr, b)?;
                let vb = self.convert(vb, k.ty(b), t)?;
                self.b.build_select(vc, va, vb, "sel").map_err(e)?
            }
            Expr::Cast(t, a) => {
                let from = k.ty(a);
                let v = self.expr(k, fr, a)?;
                self.convert(v, from, *t)?
            }
            Expr::Math(f, args) => {
                let t = k.ty(&args[0]);
                let ct = if matches!(t, Ty::F16 | Ty::BF16) { Ty::F32 } else { t };
                let mut vals = Vec::new();
                for a in args {
                    let at = k.ty(a);
                    let v = self.expr(k, fr, a)?;
                    vals.push(self.convert(v, at, ct)?.into());
                }
                let ft: FloatType = self.rty(ct).into_float_type();
                let func = self.math.get(*f, ft);
                let r = self
                    .b
                    .build_call(func, &vals, "m")
                    .map_err(e)?
                    .try_as_basic_value()
                    .basic()
                    .ok_or("math function returned void")?;
                self.convert(r, ct, t)?
            }
        })
    }

    fn intrinsic(
        &self,
        name: &str,
        tys: &[BasicTypeEnum<'ctx>],
        args: &[BasicValueEnum<'ctx>],
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let i = Intrinsic::find(name).ok_or_else(|| format!("no LLVM intrinsic {name}"))?;
        let f = i.get_declaration(self.module, tys).ok_or_else(|| format!("cannot declare {name}"))?;
        let args: Vec<_> = args.iter().map(|&a| a.into()).collect();
        self.b
            .build_call(f, &args, "")
            .map_err(e)?
            .try_as_basic_value()
            .basic()
            .ok_or_else(|| format!("{name} returned void"))
    }

    fn unary(&mut self, op: UnOp, v: BasicValueEnum<'ctx>, t: Ty) -> Result<BasicValueEnum<'ctx>, String> {
        let ty = self.rty(t);
        if t.is_float() {
            let x = v.into_float_value();
            let inf = ty.into_float_type().const_float(f64::INFINITY);
            return Ok(match op {
                UnOp::Neg => self.b.build_float_neg(x, "").map_err(e)?.into(),
                UnOp::Abs => self.intrinsic("llvm.fabs", &[ty], &[v])?,
                UnOp::Sqrt => self.intrinsic("llvm.sqrt", &[ty], &[v])?,
                UnOp::Floor => self.intrinsic("llvm.floor", &[ty], &[v])?,
                UnOp::Ceil => self.intrinsic("llvm.ceil", &[ty], &[v])?,
                UnOp::Round => self.intrinsic("llvm.roundeven", &[ty], &[v])?,
                UnOp::Trunc => self.intrinsic("llvm.trunc", &[ty], &[v])?,
                UnOp::IsNan => self.b.build_float_compare(FloatPredicate::UNO, x, x, "").map_err(e)?.into(),
                UnOp::IsInf => {
                    let a = self.intrinsic("llvm.fabs", &[ty], &[v])?.into_float_value();
                    self.b.build_float_compare(FloatPredicate::OEQ, a, inf, "").map_err(e)?.into()
                }
                UnOp::IsPosInf => {
                    self.b.build_float_compare(FloatPredicate::OEQ, x, inf, "").map_err(e)?.into()
                }
                UnOp::IsNegInf => {
                    let ninf = ty.into_float_type().const_float(f64::NEG_INFINITY);
                    self.b.build_float_compare(FloatPredicate::OEQ, x, ninf, "").map_err(e)?.into()
                }
                UnOp::Not => return Err("bitwise not of a float".into()),
            });
        }
        let x = v.into_int_value();
        Ok(match op {
            UnOp::Neg => self.b.build_int_neg(x, "").map_err(e)?.into(),
            UnOp::Abs => {
                if t.is_signed() {
                    self.intrinsic("llvm.abs", &[ty], &[v, self.cx.bool_type().const_zero().into()])?
                } else {
                    v
                }
            }
            UnOp::Not => self.b.build_not(x, "").map_err(e)?.into(),
            UnOp::IsNan | UnOp::IsInf | UnOp::IsPosInf | UnOp::IsNegInf => {
                self.cx.bool_type().const_zero().into()
            }
            UnOp::Sqrt => {
                let f = self.convert(v, t, Ty::F64)?;
                let r = self.intrinsic("llvm.sqrt", &[self.cx.f64_type().into()], &[f])?;
                self.convert(r, Ty::F64, t)?
            }
            UnOp::Floor | UnOp::Ceil | UnOp::Round | UnOp::Trunc => v,
        })
    }

    fn arith(
        &mut self,
        op: BinOp,
        a: BasicValueEnum<'ctx>,
        b: BasicValueEnum<'ctx>,
        t: Ty,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        let ty = self.rty(t);
        if t.is_float() {
            let (x, y) = (a.into_float_value(), b.into_float_value());
            return Ok(match op {
                BinOp::Add => self.b.build_float_add(x, y, "").map_err(e)?.into(),
                BinOp::Sub => self.b.build_float_sub(x, y, "").map_err(e)?.into(),
                BinOp::Mul => self.b.build_float_mul(x, y, "").map_err(e)?.into(),
                BinOp::Div => self.b.build_float_div(x, y, "").map_err(e)?.into(),
                BinOp::Rem => {
                    // fmod without libm: x - trunc(x / y) * y (fused where the FPU can), exact
                    // for the quotients models produce; fmod(x, ±inf) = x for finite x.
                    let q = self.b.build_float_div(x, y, "").map_err(e)?;
                    let q = self.intrinsic("llvm.trunc", &[ty], &[q.into()])?.into_float_value();
                    let nq = self.b.build_float_neg(q, "").map_err(e)?;
                    let r = self.intrinsic("llvm.fmuladd", &[ty], &[nq.into(), b, a])?;
                    // Keep the dividend's sign for zero results (fmod(-4, 2) = -0).
                    let r = self.intrinsic("llvm.copysign", &[ty], &[r, a])?;
                    let inf = ty.into_float_type().const_float(f64::INFINITY);
                    let ay = self.intrinsic("llvm.fabs", &[ty], &[b])?.into_float_value();
                    let ax = self.intrinsic("llvm.fabs", &[ty], &[a])?.into_float_value();
                    let y_inf = self.b.build_float_compare(FloatPredicate::OEQ, ay, inf, "").map_err(e)?;
                    let x_fin = self.b.build_float_compare(FloatPredicate::OLT, ax, inf, "").map_err(e)?;
                    let keep = self.b.build_and(y_inf, x_fin, "").map_err(e)?;
                    self.b.build_select(keep, a, r, "").map_err(e)?
                }
                BinOp::Min => self.intrinsic("llvm.minimum", &[ty], &[a, b])?,
                BinOp::Max => self.intrinsic("llvm.maximum", &[ty], &[a, b])?,
                _ => return Err(format!("{op:?} on floats")),
            });
        }
        let (x, y) = (a.into_int_value(), b.into_int_value());
        let s = t.is_signed();
        Ok(match op {
            BinOp::Add => self.b.build_int_add(x, y, "").map_err(e)?.into(),
            BinOp::Sub => self.b.build_int_sub(x, y, "").map_err(e)?.into(),
            BinOp::Mul => self.b.build_int_mul(x, y, "").map_err(e)?.into(),
            BinOp::Div if s => self.b.build_int_signed_div(x, y, "").map_err(e)?.into(),
            BinOp::Div => self.b.build_int_unsigned_div(x, y, "").map_err(e)?.into(),
            BinOp::Rem if s => self.b.build_int_signed_rem(x, y, "").map_err(e)?.into(),
            BinOp::Rem => self.b.build_int_unsigned_rem(x, y, "").map_err(e)?.into(),
            BinOp::Min => self.intrinsic(if s { "llvm.smin" } else { "llvm.umin" }, &[ty], &[a, b])?,
            BinOp::Max => self.intrinsic(if s { "llvm.smax" } else { "llvm.umax" }, &[ty], &[a, b])?,
            BinOp::And => self.b.build_and(x, y, "").map_err(e)?.into(),
            BinOp::Or => self.b.build_or(x, y, "").map_err(e)?.into(),
            BinOp::Xor => self.b.build_xor(x, y, "").map_err(e)?.into(),
            BinOp::Shl | BinOp::Shr => {
                // Shifting by the width or more (or by a negative amount) gives 0, as in the
                // reference; in LLVM it would be poison.
                let width = x.get_type().const_int(x.get_type().get_bit_width() as u64, false);
                let big = self.b.build_int_compare(IntPredicate::UGE, y, width, "").map_err(e)?;
                if op == BinOp::Shr && s {
                    // An arithmetic shift by the width or more fills with the sign.
                    let wm1 = x.get_type().const_int(x.get_type().get_bit_width() as u64 - 1, false);
                    let amt = self.b.build_select(big, wm1, y, "").map_err(e)?.into_int_value();
                    self.b.build_right_shift(x, amt, true, "").map_err(e)?.into()
                } else {
                    let r = if op == BinOp::Shl {
                        self.b.build_left_shift(x, y, "").map_err(e)?
                    } else {
                        self.b.build_right_shift(x, y, false, "").map_err(e)?
                    };
                    self.b.build_select(big, x.get_type().const_zero(), r, "").map_err(e)?
                }
            }
        })
    }

    fn compare(
        &mut self,
        op: CmpOp,
        a: BasicValueEnum<'ctx>,
        b: BasicValueEnum<'ctx>,
        t: Ty,
    ) -> Result<BasicValueEnum<'ctx>, String> {
        if t.is_float() {
            let p = match op {
                CmpOp::Eq => FloatPredicate::OEQ,
                CmpOp::Ne => FloatPredicate::UNE,
                CmpOp::Lt => FloatPredicate::OLT,
                CmpOp::Le => FloatPredicate::OLE,
                CmpOp::Gt => FloatPredicate::OGT,
                CmpOp::Ge => FloatPredicate::OGE,
            };
            return Ok(self
                .b
                .build_float_compare(p, a.into_float_value(), b.into_float_value(), "")
                .map_err(e)?
                .into());
        }
        let s = t.is_signed();
        let p = match (op, s) {
            (CmpOp::Eq, _) => IntPredicate::EQ,
            (CmpOp::Ne, _) => IntPredicate::NE,
            (CmpOp::Lt, true) => IntPredicate::SLT,
            (CmpOp::Le, true) => IntPredicate::SLE,
            (CmpOp::Gt, true) => IntPredicate::SGT,
            (CmpOp::Ge, true) => IntPredicate::SGE,
            (CmpOp::Lt, false) => IntPredicate::ULT,
            (CmpOp::Le, false) => IntPredicate::ULE,
            (CmpOp::Gt, false) => IntPredicate::UGT,
            (CmpOp::Ge, false) => IntPredicate::UGE,
        };
        Ok(self.b.build_int_compare(p, a.into_int_value(), b.into_int_value(), "").map_err(e)?.into())
    }

    /// Numeric conversion between register types.
    fn convert(&mut self, v: BasicValueEnum<'ctx>, from: Ty, to: Ty) -> Result<BasicValueEnum<'ctx>, String> {
        if from == to {
            return Ok(v);
        }
        let tt = self.rty(to);
        if to == Ty::Bool {
            return Ok(if from.is_float() {
                let z = self.rty(from).into_float_type().const_zero();
                self.b
                    .build_float_compare(FloatPredicate::UNE, v.into_float_value(), z, "")
                    .map_err(e)?
                    .into()
            } else {
                let z = self.rty(from).into_int_type().const_zero();
                self.b.build_int_compare(IntPredicate::NE, v.into_int_value(), z, "").map_err(e)?.into()
            });
        }
        Ok(match (from.is_float(), to.is_float()) {
            (true, true) => {
                let x: FloatValue = v.into_float_value();
                let (fb, tb) = (float_rank(from), float_rank(to));
                if from == Ty::BF16 && to == Ty::F16 || from == Ty::F16 && to == Ty::BF16 {
                    let w = self.b.build_float_ext(x, self.cx.f32_type(), "").map_err(e)?;
                    self.b.build_float_trunc(w, tt.into_float_type(), "").map_err(e)?.into()
                } else if tb > fb {
                    self.b.build_float_ext(x, tt.into_float_type(), "").map_err(e)?.into()
                } else {
                    self.b.build_float_trunc(x, tt.into_float_type(), "").map_err(e)?.into()
                }
            }
            (true, false) => {
                // Saturating, NaN → 0 (`llvm.fpto[su]i.sat`'s semantics), written as a plain
                // conversion plus selects: the intrinsics are scalarized on vectors (x86), this
                // vectorizes. Out-of-range lanes of the plain conversion are poison, never selected.
                // Half types convert through f32.
                let src =
                    if matches!(from, Ty::F16 | Ty::BF16) { self.convert(v, from, Ty::F32)? } else { v };
                let x = src.into_float_value();
                let ft = x.get_type();
                let it = tt.into_int_type();
                let bits = it.get_bit_width();
                let signed = to.is_signed();
                let (lo, hi) = if signed {
                    (-(2f64.powi(bits as i32 - 1)), 2f64.powi(bits as i32 - 1))
                } else {
                    (0.0, 2f64.powi(bits as i32))
                };
                let (min, max) = if signed {
                    (it.const_int(1u64 << (bits - 1), false), it.const_int(u64::MAX >> (65 - bits), false))
                } else {
                    (it.const_zero(), it.const_all_ones())
                };
                let b = &self.b;
                let t = if signed {
                    b.build_float_to_signed_int(x, it, "").map_err(e)?
                } else {
                    b.build_float_to_unsigned_int(x, it, "").map_err(e)?
                };
                let big = b.build_float_compare(FloatPredicate::OGE, x, ft.const_float(hi), "").map_err(e)?;
                let t = b.build_select(big, max, t, "").map_err(e)?.into_int_value();
                let small =
                    b.build_float_compare(FloatPredicate::OLT, x, ft.const_float(lo), "").map_err(e)?;
                let t = b.build_select(small, min, t, "").map_err(e)?.into_int_value();
                let nan = b.build_float_compare(FloatPredicate::UNO, x, x, "").map_err(e)?;
                b.build_select(nan, it.const_zero(), t, "").map_err(e)?
            }
            (false, true) => {
                let x = v.into_int_value();
                let signed = from.is_signed();
                // Half targets convert through f32: integer → half directly needs library calls.
                if matches!(to, Ty::F16 | Ty::BF16) {
                    let w = self.convert(v, from, Ty::F32)?;
                    return self.convert(w, Ty::F32, to);
                }
                if signed {
                    self.b.build_signed_int_to_float(x, tt.into_float_type(), "").map_err(e)?.into()
                } else {
                    self.b.build_unsigned_int_to_float(x, tt.into_float_type(), "").map_err(e)?.into()
                }
            }
            (false, false) => {
                let x = v.into_int_value();
                let (fw, tw) = (x.get_type().get_bit_width(), tt.into_int_type().get_bit_width());
                if tw > fw {
                    if from.is_signed() && from != Ty::Bool {
                        self.b.build_int_s_extend(x, tt.into_int_type(), "").map_err(e)?.into()
                    } else {
                        self.b.build_int_z_extend(x, tt.into_int_type(), "").map_err(e)?.into()
                    }
                } else if tw < fw {
                    self.b.build_int_truncate(x, tt.into_int_type(), "").map_err(e)?.into()
                } else {
                    v
                }
            }
        })
    }

    /// Emits all kernels, constants, the entry function (with the per-kernel hook around each
    /// call when `instrument`) and the model descriptor.
    fn program(
        &mut self,
        p: &Program,
        symbol: &str,
        spec: &MachineSpec,
        instrument: bool,
    ) -> Result<(), String> {
        let ptr = self.ptr();
        let i32t = self.cx.i32_type();
        let align = if spec.bare_metal { 16 } else { 64 };
        let kernels: Vec<FunctionValue> =
            p.kernels.iter().map(|k| self.kernel(k)).collect::<Result<_, _>>()?;
        let consts: Vec<PointerValue> = p
            .consts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let init = self.cx.const_string(&c.bytes, false);
                let g = self.module.add_global(init.get_type(), None, &format!("{symbol}_const{i}"));
                g.set_initializer(&init);
                g.set_constant(true);
                g.set_linkage(Linkage::Internal);
                g.set_alignment(align);
                g.as_pointer_value()
            })
            .collect();
        // Entry: void entry(const void *const *in, void *const *out, uint8_t *arena, edgec_ctx *ctx)
        let fnty = self.cx.void_type().fn_type(&[ptr.into(); 4], false);
        let entry = self.module.add_function(&format!("{symbol}_entry"), fnty, Some(Linkage::External));
        entry.add_attribute(AttributeLoc::Function, self.attr("nounwind"));
        let hook_ty = self.cx.void_type().fn_type(&[ptr.into(), i32t.into(), i32t.into()], false);
        let hook = instrument
            .then(|| self.module.add_function("edgec_rt_kernel_hook", hook_ty, Some(Linkage::External)));
        let bb = self.cx.append_basic_block(entry, "entry");
        self.b.position_at_end(bb);
        let (pin, pout, parena, pctx) = (
            entry.get_nth_param(0).unwrap().into_pointer_value(),
            entry.get_nth_param(1).unwrap().into_pointer_value(),
            entry.get_nth_param(2).unwrap().into_pointer_value(),
            entry.get_nth_param(3).unwrap().into_pointer_value(),
        );
        let slot_ptr = |cg: &mut Self, s: Slot| -> Result<PointerValue<'ctx>, String> {
            Ok(match s {
                Slot::Input(i) | Slot::Output(i) => {
                    let table = if matches!(s, Slot::Input(_)) { pin } else { pout };
                    let at = unsafe {
                        cg.b.build_in_bounds_gep(ptr, table, &[cg.idx.const_int(i as u64, false)], "io")
                    }
                    .map_err(e)?;
                    cg.b.build_load(ptr, at, "iop").map_err(e)?.into_pointer_value()
                }
                Slot::Const(c) => consts[c.index()],
                Slot::Arena(off) => unsafe {
                    cg.b.build_in_bounds_gep(cg.cx.i8_type(), parena, &[cg.idx.const_int(off, false)], "slot")
                }
                .map_err(e)?,
            })
        };
        for (ci, call) in p.calls.iter().enumerate() {
            let ix = i32t.const_int(ci as u64, false);
            if let Some(hook) = hook {
                self.b
                    .build_call(hook, &[pctx.into(), ix.into(), i32t.const_zero().into()], "")
                    .map_err(e)?;
            }
            let args: Vec<_> =
                call.args.iter().map(|&s| slot_ptr(self, s).map(|p| p.into())).collect::<Result<_, _>>()?;
            self.b.build_call(kernels[call.kernel.index()], &args, "").map_err(e)?;
            if let Some(hook) = hook {
                self.b
                    .build_call(hook, &[pctx.into(), ix.into(), i32t.const_int(1, false).into()], "")
                    .map_err(e)?;
            }
        }
        self.b.build_return(None).map_err(e)?;

        // The descriptor (struct edgec_model).
        let cstr = |cg: &Self, s: &str, name: &str| -> PointerValue<'ctx> {
            let init = cg.cx.const_string(s.as_bytes(), true);
            let g = cg.module.add_global(init.get_type(), None, name);
            g.set_initializer(&init);
            g.set_constant(true);
            g.set_linkage(Linkage::Private);
            g.as_pointer_value()
        };
        let desc_ty =
            self.cx.struct_type(&[ptr.into(), i32t.into(), i32t.into(), ptr.into(), i32t.into()], false);
        let descs = |cg: &Self, list: &[crate::lower::IoDesc], what: &str| -> PointerValue<'ctx> {
            let vals: Vec<_> = list
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let name = cstr(cg, &d.name, &format!("{symbol}_{what}{i}_name"));
                    let dims: Vec<_> = d.dims.iter().map(|&x| i32t.const_int(x as u64, false)).collect();
                    let darr = i32t.const_array(&dims);
                    let dg = cg.module.add_global(darr.get_type(), None, &format!("{symbol}_{what}{i}_dims"));
                    dg.set_initializer(&darr);
                    dg.set_constant(true);
                    dg.set_linkage(Linkage::Private);
                    desc_ty.const_named_struct(&[
                        name.into(),
                        i32t.const_int(onnx_dtype(d.ty) as u64, true).into(),
                        i32t.const_int(d.dims.len() as u64, false).into(),
                        dg.as_pointer_value().into(),
                        i32t.const_int(d.bytes(), false).into(),
                    ])
                })
                .collect();
            let arr = desc_ty.const_array(&vals);
            let g = cg.module.add_global(arr.get_type(), None, &format!("{symbol}_{what}s"));
            g.set_initializer(&arr);
            g.set_constant(true);
            g.set_linkage(Linkage::Private);
            g.as_pointer_value()
        };
        let ins = descs(self, &p.inputs, "input");
        let outs = descs(self, &p.outputs, "output");
        let names: Vec<_> = p
            .calls
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cstr(
                    self,
                    &format!("{}:{}", p.kernels[c.kernel.index()].name, c.label),
                    &format!("{symbol}_kname{i}"),
                )
            })
            .collect();
        let narr = ptr.const_array(&names);
        let ng = self.module.add_global(narr.get_type(), None, &format!("{symbol}_knames"));
        ng.set_initializer(&narr);
        ng.set_constant(true);
        ng.set_linkage(Linkage::Private);
        let model_ty = self.cx.struct_type(
            &[
                ptr.into(),
                i32t.into(),
                i32t.into(),
                ptr.into(),
                ptr.into(),
                i32t.into(),
                i32t.into(),
                i32t.into(),
                ptr.into(),
                ptr.into(),
            ],
            false,
        );
        let name = cstr(self, &p.name, &format!("{symbol}_name"));
        let init = model_ty.const_named_struct(&[
            name.into(),
            i32t.const_int(p.inputs.len() as u64, false).into(),
            i32t.const_int(p.outputs.len() as u64, false).into(),
            ins.into(),
            outs.into(),
            i32t.const_int(p.arena.arena_bytes, false).into(),
            i32t.const_int(p.arena.alignment, false).into(),
            i32t.const_int(p.calls.len() as u64, false).into(),
            ng.as_pointer_value().into(),
            entry.as_global_value().as_pointer_value().into(),
        ]);
        let g = self.module.add_global(model_ty, None, &format!("{symbol}_model"));
        g.set_initializer(&init);
        g.set_constant(true);
        g.set_linkage(Linkage::External);
        Ok(())
    }
}

fn float_rank(t: Ty) -> u32 {
    match t {
        Ty::F16 | Ty::BF16 => 16,
        Ty::F32 => 32,
        _ => 64,
    }
}

fn e(err: impl std::fmt::Display) -> String {
    format!("LLVM: {err}")
}
