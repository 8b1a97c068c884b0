//! Lowering of a graph-level function to a [`Program`]: a list of kernel calls over graph inputs,
//! graph outputs, constants and slots of one arena.
//!
//! Each op family has a lowering in a submodule. Ops whose operands are all known at compile time
//! are evaluated here with their reference semantics and become constants; view ops (reshape and
//! friends) share their operand's storage. [`lower_ops`] stops there, with calls over the
//! function's values ([`UnplannedProgram`]); [`plan_memory`] then schedules the calls and gives
//! every intermediate tensor an arena offset from its live range. [`lower`] does both.

mod attention;
mod einsum;
mod elementwise;
mod fused;
mod index;
mod linalg;
mod movement;
mod nbits;
mod norm;
mod plan;
mod print;
mod qint8;
mod quant;
mod quant_int;
mod reduce;
mod scan;
mod schedule;

use crate::kir::{Access, ConstId, Kernel, KernelId, Ty};
use edgec_ir::entity::{SecondaryMap, Value};
use edgec_ir::module::ValueDef;
use edgec_ir::ops::{EvalCtx, OpKind, Traits};
use edgec_ir::{Attrs, Function, Loc, ScalarType, Tensor, TensorType};
use std::collections::{HashMap, HashSet};

pub use plan::{
    memory_plot, memory_svg, plan_memory, ArenaBox, ArenaPlan, MemoryPlot, PlotFrame, PLOT_BOUND_COLOR,
    PLOT_SCRATCH_COLOR, PLOT_TENSOR_COLORS,
};
pub use print::print_program;

/// Where a kernel argument lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    Input(usize),
    Output(usize),
    Const(ConstId),
    /// A byte offset into the arena.
    Arena(u64),
}

/// One kernel call of the schedule.
#[derive(Clone, Debug)]
pub struct Call {
    pub kernel: KernelId,
    pub args: Vec<Slot>,
    /// The ONNX node(s) this call computes, for diagnostics and profiling.
    pub label: String,
}

/// A graph input or output as the generated API describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct IoDesc {
    pub name: String,
    pub ty: ScalarType,
    pub dims: Vec<usize>,
}

impl IoDesc {
    /// Bytes of the tensor. Lowering rejects every tensor whose size does not fit the target's
    /// address space ([`check_sizes`]), so this cannot overflow for a lowered program.
    pub fn bytes(&self) -> u64 {
        let elems = self.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
        elems
            .and_then(|n| n.checked_mul(self.ty.bits() as u64))
            .map(|b| b.div_ceil(8))
            .expect("lowering checks every tensor's size")
    }
}

/// Constant data the program reads (weights, folded tensors, index tables).
#[derive(Clone, Debug)]
pub struct ConstData {
    pub ty: Ty,
    pub bytes: bytes::Bytes,
}

/// A lowered function, ready for a machine backend.
#[derive(Clone, Debug)]
pub struct Program {
    pub name: String,
    pub inputs: Vec<IoDesc>,
    pub outputs: Vec<IoDesc>,
    pub consts: Vec<ConstData>,
    pub kernels: Vec<Kernel>,
    pub calls: Vec<Call>,
    pub arena: ArenaPlan,
    /// Compute ops of the source graph (constants and views excluded).
    pub graph_ops: usize,
}

impl Program {
    pub fn weights_bytes(&self) -> u64 {
        self.consts.iter().map(|c| c.bytes.len() as u64).sum()
    }
}

/// How an ONNX location prints in messages: the node name quoted, fused nodes as a list.
pub fn loc_text(loc: &Loc) -> String {
    match loc {
        Loc::Name(n) => format!("{n:?}"),
        Loc::Fused(ns) => format!("{ns:?}"),
        Loc::Unknown => "<unnamed>".into(),
    }
}

/// Why a function cannot be lowered.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// The op (from the named ONNX node) cannot be compiled as it is: an op, attribute, element
    /// type or dynamic shape the kernels do not cover. The input is at fault.
    #[error("{op} (node {}): {message}", loc_text(loc))]
    Unsupported { op: &'static str, loc: Loc, message: String },
    /// Lowering broke one of its own invariants (a memory plan that does not hold up): a bug.
    #[error("internal error in {op}: {message} (this is a bug in edgec)")]
    Internal { op: &'static str, message: String },
}

/// The backend's GEMM routines as lowering sees them: how much scratch a product needs, how
/// constant operands are packed at compile time and in which layout. A backend that emits its
/// own GEMM micro-kernels implements this (the LLVM backend's `llvm::codegen::LlvmKernels`);
/// [`PortableKernels`] has none, so products lower to plain loops over unpacked operands.
pub trait TargetKernels: Send + Sync {
    /// Columns of the f32 GEMM's register tile: a row-major B with a multiple of this many
    /// columns is read without packing, and `q.matmul_nbits` dequantizes weight blocks of a
    /// multiple of this many rows.
    fn gemm_nr(&self) -> usize;
    /// The f32 GEMM's packing, if constants are packed for it at compile time.
    fn f32_gemm(&self) -> Option<&dyn F32Gemm>;
    /// The int8 GEMM; `None` lowers int8 products to plain loops.
    fn int8_gemm(&self) -> Option<&dyn Int8Gemm>;
}

/// An f32 GEMM routine with compile-time packing of constant B operands.
pub trait F32Gemm: Send + Sync {
    /// Bytes of packing scratch a product needs at run time (0 for none).
    fn scratch_bytes(&self, spec: &crate::kir::GemmSpec) -> u64;
    /// Packs a constant B (in the spec's `b_trans`/`ldb` layout) for a `b_prepacked` product.
    fn pack_b(&self, spec: &crate::kir::GemmSpec, b: &[f32]) -> Vec<f32>;
    /// The panel width (`nr`) a `b_prepacked` product reads: a constant B that `choose-layout`
    /// already stored as `layout.from_panels` of panels this wide is bound as it is.
    fn panel_width(&self, spec: &crate::kir::GemmSpec) -> usize;
}

/// An int8 GEMM routine with compile-time packing of constant weights.
pub trait Int8Gemm: Send + Sync {
    /// Bytes of scratch a product needs at run time (with or without a bias).
    fn scratch_bytes(&self, spec: &crate::kir::QGemmSpec, bias: bool) -> u64;
    /// Packs constant int8 weights (in the spec's layout) for a `prepacked` product.
    fn pack(&self, spec: &crate::kir::QGemmSpec, bias: bool, w: &[i8]) -> Vec<i8>;
    /// Where [`Int8Gemm::pack`] puts each weight: with it, a constant that is only ever an int8
    /// fully connected layer's weight or a `q.gather` table (a tied LM head and its token
    /// embedding) is stored once, packed, and the lookup reads the packed panels.
    fn layout(&self, spec: &crate::kir::QGemmSpec) -> crate::quant::QPackedLayout;
}

/// No GEMM routine of the backend's own: every product is a loop nest, nothing is packed.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortableKernels;

impl TargetKernels for PortableKernels {
    fn gemm_nr(&self) -> usize {
        16
    }
    fn f32_gemm(&self) -> Option<&dyn F32Gemm> {
        None
    }
    fn int8_gemm(&self) -> Option<&dyn Int8Gemm> {
        None
    }
}

/// Options that shape lowering.
#[derive(Clone)]
pub struct LowerOptions {
    /// The backend's GEMM routines (see [`TargetKernels`]).
    pub kernels: std::sync::Arc<dyn TargetKernels>,
    /// The largest tensor (and arena) the target can address, in bytes: `isize::MAX` of its
    /// pointer width.
    pub max_bytes: u64,
    /// Alignment of every arena slot, in bytes.
    pub align: u64,
    /// Constants larger than this many elements are not produced by compile-time folding.
    pub fold_limit: usize,
    /// Per-call scratch for the dequantized weight block of `q.matmul_nbits` (bytes; the
    /// block is this many bytes of f32 rows, at least one row).
    pub nbits_block_bytes: u64,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions {
            kernels: std::sync::Arc::new(PortableKernels),
            max_bytes: i64::MAX as u64,
            align: 64,
            fold_limit: 1 << 22,
            nbits_block_bytes: 512 << 10,
        }
    }
}

/// Constants that every user reads as an int8 weight matrix: a `q.fully_connected` weight
/// (operand 1) whose other uses are further fully connected weights or `q.gather` tables. Packing
/// depends only on the matrix (`[N, K]`), so all these users can share one packed copy and the
/// original layout is never stored: a tied LM head and its token embedding cost one table.
fn packed_weight_tables(f: &Function) -> HashSet<Value> {
    // Each use as (op kind, operand index); a use by a fused kernel is the uses of its region
    // argument inside (an int8 layer anchoring a fused epilogue reads its weights there).
    let mut uses: HashMap<Value, Vec<(OpKind, usize)>> = HashMap::new();
    for &op in f.body_ops() {
        let d = &f.ops[op];
        // Only a fused kernel's region arguments are its operands one for one.
        let region_args = (d.kind == OpKind::FusedKernel)
            .then(|| d.regions.first().and_then(|r| r.blocks.first()).map(|&b| &f.blocks[b]))
            .flatten();
        for (i, &o) in d.operands.iter().enumerate() {
            let entry = uses.entry(o).or_default();
            match region_args.and_then(|b| b.args.get(i).map(|&a| (a, &b.ops))) {
                Some((arg, inner)) => {
                    for &iop in inner {
                        for (j, &io) in f.ops[iop].operands.iter().enumerate() {
                            if io == arg {
                                entry.push((f.ops[iop].kind, j));
                            }
                        }
                    }
                }
                None => entry.push((d.kind, i)),
            }
        }
    }
    let is_constant = |v: Value| matches!(f.values[v].def, ValueDef::Result { op, .. } if f.ops[op].kind == OpKind::Constant);
    uses.into_iter()
        .filter(|&(v, ref us)| {
            is_constant(v)
                && f.values[v].ty.rank() == 2
                && us.contains(&(OpKind::QFullyConnected, 1))
                && us.iter().all(|u| matches!(u, (OpKind::QFullyConnected, 1) | (OpKind::QGather, 0)))
        })
        .map(|(v, _)| v)
        .collect()
}

/// Why one op cannot be lowered. Op lowerings return it; `lower_ops` turns it into a
/// [`LowerError`] with the op and its ONNX node. Plain messages (`?` on a `String` or `&str`,
/// `Err("...".into())`) are [`OpError::Unsupported`]: the op as given is outside what the kernels
/// cover. [`bug`] marks a broken invariant of lowering itself.
#[derive(Debug)]
pub(crate) enum OpError {
    Unsupported(String),
    Bug(String),
}

impl From<String> for OpError {
    fn from(m: String) -> OpError {
        OpError::Unsupported(m)
    }
}

impl From<&str> for OpError {
    fn from(m: &str) -> OpError {
        OpError::Unsupported(m.to_string())
    }
}

impl OpError {
    /// The message, whichever kind.
    pub(crate) fn into_message(self) -> String {
        match self {
            OpError::Unsupported(m) | OpError::Bug(m) => m,
        }
    }
}

/// A broken invariant of lowering (not the input's fault).
pub(crate) fn bug(message: impl Into<String>) -> OpError {
    OpError::Bug(message.into())
}

/// What an op lowering produces.
pub(crate) enum Lowered {
    /// Result 0 is operand 0's bytes unchanged (reshape, squeeze, ...).
    View,
    /// Kernel calls; each binds its parameters to operands, results or scratch.
    Calls(Vec<(Kernel, Vec<Bind>)>),
}

/// What a kernel parameter is bound to.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bind {
    Operand(usize),
    Result(usize),
    /// A compile-time table made by the lowering (index `i` of `LowerCx::tables`).
    Table(usize),
    /// Per-call scratch of the parameter's size.
    Scratch,
}

/// What a lowering function sees of one op.
pub(crate) struct OpCx<'a> {
    pub kind: OpKind,
    pub attrs: &'a Attrs,
    pub operands: Vec<TensorType>,
    pub results: Vec<TensorType>,
    /// Compile-time values of operands (weights, folded shapes).
    pub consts: Vec<Option<&'a Tensor>>,
    /// Tables (index maps, packed constants) the lowering adds.
    pub tables: Vec<ConstData>,
    /// The backend's GEMM routines.
    pub kernels: &'a dyn TargetKernels,
    /// See [`LowerOptions::nbits_block_bytes`].
    pub nbits_block_bytes: u64,
    /// The panels of operands that are `layout.from_panels` of a constant (`consts` holds the
    /// matrix they mean).
    pub panels: Vec<Option<&'a Tensor>>,
    /// The function and region block of a region-holding op (`fused.kernel`).
    pub region: Option<(&'a Function, edgec_ir::Block)>,
    /// Whether each operand is also used by another op (so a compile-time rearranged copy of a
    /// constant would be stored beside the original instead of replacing it).
    pub shared: Vec<bool>,
    /// Whether each operand is a constant stored once in the int8 GEMM's packed layout and read
    /// from it by every user (see [`Int8Gemm::layout`] and [`packed_weight_tables`]).
    pub packed: Vec<bool>,
}

impl OpCx<'_> {
    pub fn shape(&self, i: usize) -> Vec<usize> {
        self.operands[i].static_shape().unwrap_or_default()
    }
    pub fn rshape(&self, i: usize) -> Vec<usize> {
        self.results[i].static_shape().unwrap_or_default()
    }
    pub fn ty(&self, i: usize) -> Result<Ty, OpError> {
        kty(self.operands[i].scalar())
    }
    pub fn rty(&self, i: usize) -> Result<Ty, OpError> {
        kty(self.results[i].scalar())
    }
    /// Whether optional operand `i` is given (present and not a zero-element placeholder).
    pub fn has(&self, i: usize) -> bool {
        i < self.operands.len() && self.operands[i].num_elements() != Some(0)
    }
    pub fn konst(&self, i: usize) -> Option<&Tensor> {
        self.consts.get(i).copied().flatten()
    }
    /// A constant operand as integers (axes, pads, shapes).
    pub fn const_ints(&self, i: usize) -> Result<Vec<i64>, OpError> {
        self.konst(i)
            .and_then(|t| t.to_i64_vec())
            .ok_or_else(|| OpError::from(format!("operand #{i} must be a compile-time constant")))
    }
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.attrs.int(name).unwrap_or(default)
    }
    pub fn float(&self, name: &str, default: f64) -> f64 {
        self.attrs.float(name).unwrap_or(default)
    }
    /// Bytes of packing scratch the backend's f32 GEMM needs for a product (0 without one).
    pub fn gemm_scratch(&self, spec: &crate::kir::GemmSpec) -> u64 {
        self.kernels.f32_gemm().map_or(0, |g| g.scratch_bytes(spec))
    }
    pub fn add_table(&mut self, c: ConstData) -> usize {
        self.tables.push(c);
        self.tables.len() - 1
    }
}

pub(crate) fn kty(s: ScalarType) -> Result<Ty, OpError> {
    Ty::of(s).ok_or_else(|| {
        OpError::from(format!("element type {} is not supported by machine backends yet", s.name()))
    })
}

/// Normalizes a possibly negative axis.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Result<usize, OpError> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if a < 0 || a >= rank.max(1) as i64 {
        return Err(format!("axis {axis} is out of range for rank {rank}").into());
    }
    Ok(a as usize)
}

/// A kernel with one parameter per operand (read), then one per result (write), in that order.
pub(crate) fn io_kernel(cx: &OpCx, name: &str) -> Result<(Kernel, Vec<Bind>), OpError> {
    let mut k = Kernel::new(name);
    let mut binds = Vec::new();
    for (i, t) in cx.operands.iter().enumerate() {
        k.param(kty(t.scalar())?, t.num_elements().unwrap_or(0), Access::Read);
        binds.push(Bind::Operand(i));
    }
    for (i, t) in cx.results.iter().enumerate() {
        k.param(kty(t.scalar())?, t.num_elements().unwrap_or(0), Access::Write);
        binds.push(Bind::Result(i));
    }
    Ok((k, binds))
}

fn lower_op(cx: &mut OpCx) -> Result<Lowered, OpError> {
    use OpKind as K;
    match cx.kind {
        K::Reshape | K::Squeeze | K::Unsqueeze | K::Flatten => Ok(Lowered::View),
        // Without a training-mode operand dropout is the identity.
        K::Dropout if !cx.has(2) && cx.results.len() == 1 => Ok(Lowered::View),
        K::Dropout => dropout(cx),
        K::FusedKernel => {
            let (f, block) = cx.region.ok_or_else(|| bug("fused kernel without its region"))?;
            fused::lower(cx, f, block)
        }
        _ if cx.kind.traits().contains(Traits::ELEMENTWISE) => elementwise::lower(cx),
        K::Attention => attention::lower(cx),
        K::RotaryEmbedding => attention::rotary(cx),
        K::Einsum => einsum::lower(cx),
        _ => {
            if let Some(l) = linalg::lower(cx)? {
                return Ok(l);
            }
            if let Some(l) = reduce::lower(cx)? {
                return Ok(l);
            }
            if let Some(l) = norm::lower(cx)? {
                return Ok(l);
            }
            if let Some(l) = qint8::lower(cx)? {
                return Ok(l);
            }
            if let Some(l) = nbits::lower(cx)? {
                return Ok(l);
            }
            if let Some(l) = quant_int::lower(cx)? {
                return Ok(l);
            }
            if let Some(l) = quant::lower(cx)? {
                return Ok(l);
            }
            if let Some(l) = scan::lower(cx)? {
                return Ok(l);
            }
            if let Some(l) = index::lower(cx)? {
                return Ok(l);
            }
            if let Some(l) = movement::lower(cx)? {
                return Ok(l);
            }
            Err("the machine backends cannot compile this op yet".into())
        }
    }
}

/// Ops that no lowering handles: they compile only when lowering can evaluate them, i.e. when
/// their operands are compile-time constants (or computed from constants). Every other op has a
/// lowering in [`lower_op`], whose fallthrough these reach.
const NOT_LOWERED: &[OpKind] = &[
    OpKind::Subgraph,
    OpKind::Yield,
    OpKind::MeanVarianceNorm,
    OpKind::Lrn,
    OpKind::Shape,
    OpKind::Size,
    OpKind::ConstantOfShape,
    OpKind::Range,
    OpKind::NonZero,
];

/// Whether [`lower`] can compile `op` of `f` (checked for every op before lowering starts, so
/// that all unsupported ops are reported together). Shapes and element types are checked by
/// lowering itself.
pub fn supports(f: &Function, op: edgec_ir::Op) -> Result<(), String> {
    let d = &f.ops[op];
    if !NOT_LOWERED.contains(&d.kind) {
        return Ok(());
    }
    // Whether a value is known at compile time: a constant, or a pure op of known values
    // (lowering folds those). Bounded, since it only runs for the rare ops above.
    fn known(f: &Function, v: Value, depth: usize) -> bool {
        let ValueDef::Result { op, .. } = f.values[v].def else { return false };
        let d = &f.ops[op];
        d.kind == OpKind::Constant
            || depth > 0
                && d.kind.traits().contains(Traits::PURE)
                && !d.kind.traits().contains(Traits::HAS_REGIONS)
                && d.operands.iter().all(|&o| known(f, o, depth - 1))
    }
    if d.kind.traits().contains(Traits::PURE) && d.operands.iter().all(|&o| known(f, o, 16)) {
        return Ok(());
    }
    Err("the machine backends cannot compile this op with run-time operands".into())
}

/// Lowers the function and plans its memory: [`check_sizes`], [`lower_ops`], then
/// [`plan_memory`] with the options' alignment; the arena must fit the address space too.
pub fn lower(f: &Function, opts: &LowerOptions) -> Result<Program, LowerError> {
    check_sizes(f, opts.max_bytes)?;
    let program = plan_memory(lower_ops(f, opts)?, opts.align)?;
    if program.arena.arena_bytes > opts.max_bytes {
        return Err(LowerError::Unsupported {
            op: "func",
            loc: Loc::Unknown,
            message: format!(
                "the arena needs {} bytes, more than the target can address ({} bytes)",
                program.arena.arena_bytes, opts.max_bytes
            ),
        });
    }
    Ok(program)
}

/// Every tensor of the function (its inputs and every op's results, in regions too) must fit
/// in `max_bytes`: sizes are computed with checked arithmetic, so a shape whose byte count
/// overflows is reported with its exact size instead of wrapping. Names the tensor and the op
/// (ONNX node) that defines it.
pub fn check_sizes(f: &Function, max_bytes: u64) -> Result<(), LowerError> {
    let too_big = |v: Value| -> Option<String> {
        let ty = &f.values[v].ty;
        if !ty.is_static() || ty.size_bytes().is_some_and(|b| b <= max_bytes) {
            return None;
        }
        let size = match ty.size_bytes_wide() {
            Some(b) => format!("{b} bytes"),
            None => "more than 2^128 bytes".into(),
        };
        let name = f.values[v].name.clone().map(|n| format!("{n:?}")).unwrap_or_else(|| v.to_string());
        Some(format!(
            "tensor {name} ({ty}) needs {size}, more than the target can address ({max_bytes} bytes)"
        ))
    };
    for &p in f.params() {
        if let Some(message) = too_big(p) {
            return Err(LowerError::Unsupported { op: "func", loc: Loc::Unknown, message });
        }
    }
    // Body order, a region's ops right after the op that holds them.
    let mut stack: Vec<edgec_ir::Op> = f.body_ops().iter().rev().copied().collect();
    while let Some(op) = stack.pop() {
        let d = &f.ops[op];
        for &r in &d.results {
            if let Some(message) = too_big(r) {
                return Err(LowerError::Unsupported { op: d.kind.name(), loc: d.loc.clone(), message });
            }
        }
        for r in d.regions.iter().rev() {
            for &b in r.blocks.iter().rev() {
                stack.extend(f.blocks[b].ops.iter().rev().copied());
            }
        }
    }
    Ok(())
}

/// Lowers every op of the function to kernel calls over its values, without memory planning.
/// The function must be verifier-clean with static shapes throughout.
pub fn lower_ops(f: &Function, opts: &LowerOptions) -> Result<UnplannedProgram, LowerError> {
    let err = |op: &'static str, loc: &Loc, message: String| LowerError::Unsupported {
        op,
        loc: loc.clone(),
        message,
    };
    let mut b = Builder::default();
    let mut known: SecondaryMap<Value, Option<Tensor>> = SecondaryMap::with_default(None);
    // Storage: each value is the root of its own storage or a view of another value's.
    let mut root: HashMap<Value, Value> = HashMap::new();

    let inputs: Vec<IoDesc> = f
        .params()
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let d = &f.values[p];
            let dims = d.ty.static_shape().ok_or_else(|| {
                err("func", &Loc::Unknown, format!("input #{i} has a non-static type {}", d.ty))
            })?;
            Ok(IoDesc {
                name: d.name.clone().unwrap_or_else(|| format!("input_{i}")),
                ty: d.ty.scalar(),
                dims,
            })
        })
        .collect::<Result<_, LowerError>>()?;
    for (i, &p) in f.params().iter().enumerate() {
        b.storage.insert(p, Slot::Input(i));
    }
    let mut graph_ops = 0;
    let mut panels: HashMap<Value, Tensor> = HashMap::new();
    let mut use_count: SecondaryMap<Value, u32> = SecondaryMap::with_default(0);
    for &op in f.body_ops() {
        for &o in &f.ops[op].operands {
            use_count.set(o, use_count.get(o) + 1);
        }
    }
    let packed = if opts.kernels.int8_gemm().is_some() { packed_weight_tables(f) } else { HashSet::new() };
    for &op in f.body_ops() {
        let d = &f.ops[op];
        let name = d.kind.name();
        match d.kind {
            OpKind::Return => continue,
            OpKind::Constant => {
                let bug = |message| LowerError::Internal { op: name, message };
                let t =
                    d.attrs.tensor("value").ok_or_else(|| bug("a verified constant has no value".into()))?;
                let t = t.to_tensor().map_err(bug)?;
                known.set(d.results[0], Some(t));
                continue;
            }
            _ => {}
        }
        for &r in &d.results {
            if !f.values[r].ty.is_static() {
                return Err(err(name, &d.loc, format!("result type {} is not static", f.values[r].ty)));
            }
        }
        // A constant in panel layout: the matrix it means is known (for any consumer), and the
        // panels themselves are kept for the GEMMs that read B in exactly that layout.
        if d.kind == OpKind::FromPanels {
            if let Some(p) = known.get(d.operands[0]).clone() {
                let ecx = EvalCtx {
                    attrs: &d.attrs,
                    inputs: std::slice::from_ref(&p),
                    operand_types: &[f.values[d.operands[0]].ty.clone()],
                    result_types: &[f.values[d.results[0]].ty.clone()],
                };
                let out = (d.kind.def().eval)(&ecx).map_err(|m| err(name, &d.loc, m))?;
                known.set(d.results[0], out.into_iter().next());
                panels.insert(d.results[0], p);
                continue;
            }
        }
        // Fold ops whose operands are all known.
        let traits = d.kind.traits();
        let all_known = d.operands.iter().all(|&o| known.get(o).is_some());
        let small = d
            .results
            .iter()
            .all(|&r| f.values[r].ty.num_elements().is_some_and(|n| n as usize <= opts.fold_limit));
        if all_known && small && traits.contains(Traits::PURE) && !traits.contains(Traits::HAS_REGIONS) {
            let inputs: Vec<Tensor> = d.operands.iter().map(|&o| known.get(o).clone().unwrap()).collect();
            let operand_types: Vec<TensorType> = d.operands.iter().map(|&v| f.values[v].ty.clone()).collect();
            let result_types: Vec<TensorType> = d.results.iter().map(|&v| f.values[v].ty.clone()).collect();
            let ecx = EvalCtx {
                attrs: &d.attrs,
                inputs: &inputs,
                operand_types: &operand_types,
                result_types: &result_types,
            };
            let outs = (d.kind.def().eval)(&ecx).map_err(|m| err(name, &d.loc, m))?;
            for (&r, t) in d.results.iter().zip(outs) {
                known.set(r, Some(t));
            }
            continue;
        }
        graph_ops += 1;
        let mut cx = OpCx {
            kind: d.kind,
            attrs: &d.attrs,
            operands: d.operands.iter().map(|&v| f.values[v].ty.clone()).collect(),
            results: d.results.iter().map(|&v| f.values[v].ty.clone()).collect(),
            consts: d.operands.iter().map(|&v| known.get(v).as_ref()).collect(),
            tables: Vec::new(),
            kernels: opts.kernels.as_ref(),
            nbits_block_bytes: opts.nbits_block_bytes,
            panels: d.operands.iter().map(|v| panels.get(v)).collect(),
            region: d.regions.first().and_then(|r| r.blocks.first()).map(|&b| (f, b)),
            shared: d.operands.iter().map(|&v| *use_count.get(v) > 1).collect(),
            packed: d.operands.iter().map(|v| packed.contains(v)).collect(),
        };
        let lowered = lower_op(&mut cx).map_err(|e| match e {
            OpError::Unsupported(m) => err(name, &d.loc, m),
            OpError::Bug(message) => LowerError::Internal { op: name, message },
        })?;
        let label = match &d.loc {
            Loc::Name(n) => n.clone(),
            Loc::Fused(ns) => ns.join("+"),
            Loc::Unknown => name.to_string(),
        };
        match lowered {
            Lowered::View => {
                let src = d.operands[0];
                if known.get(src).is_some() {
                    // A view of a constant is that constant reshaped.
                    let t = known.get(src).clone().unwrap();
                    let shape = f.values[d.results[0]].ty.static_shape().unwrap();
                    let t = t.to_shape(&shape).map_err(|m| err(name, &d.loc, m))?;
                    known.set(d.results[0], Some(t));
                    graph_ops -= 1;
                } else {
                    let r = *root.get(&src).unwrap_or(&src);
                    root.insert(d.results[0], r);
                }
            }
            Lowered::Calls(calls) => {
                // Identical tables (an int4 table shared by a tied head and its embedding) are
                // stored once.
                let table_slots: Vec<ConstId> = cx.tables.drain(..).map(|c| b.intern(c)).collect();
                for (kernel, binds) in calls {
                    let mut args = Vec::new();
                    for (pi, bind) in binds.iter().enumerate() {
                        let slot = match *bind {
                            Bind::Operand(i) => {
                                let v = d.operands[i];
                                if let Some(t) = known.get(v) {
                                    b.const_slot(v, t)
                                } else {
                                    Pending::Value(*root.get(&v).unwrap_or(&v))
                                }
                            }
                            Bind::Result(i) => Pending::Value(d.results[i]),
                            Bind::Table(t) => Pending::Ready(Slot::Const(table_slots[t])),
                            Bind::Scratch => {
                                let p = &kernel.params[pi];
                                Pending::Scratch(p.len * p.ty.bytes() as u64)
                            }
                        };
                        args.push(slot);
                    }
                    b.push_call(kernel, args, label.clone());
                }
            }
        }
    }

    // Graph outputs: the producing storage becomes the output buffer where it can; otherwise
    // (inputs, constants, a value returned twice) a copy kernel fills the output.
    let results = f.results().to_vec();
    let mut outputs = Vec::new();
    for (j, &v) in results.iter().enumerate() {
        let ty = &f.values[v].ty;
        let dims = ty
            .static_shape()
            .ok_or_else(|| err("func.return", &Loc::Unknown, format!("output #{j} is not static")))?;
        outputs.push(IoDesc {
            name: f.result_names.get(j).cloned().unwrap_or_else(|| format!("output_{j}")),
            ty: ty.scalar(),
            dims,
        });
    }
    for (j, &v) in results.iter().enumerate() {
        let r = *root.get(&v).unwrap_or(&v);
        let produced = known.get(r).is_none() && !b.storage.contains_key(&r) && b.defined.contains_key(&r);
        if produced {
            b.storage.insert(r, Slot::Output(j));
            continue;
        }
        let ty = kty(outputs[j].ty).map_err(|e| err("func.return", &Loc::Unknown, e.into_message()))?;
        let n = outputs[j].dims.iter().product::<usize>() as u64;
        let src = match known.get(r) {
            Some(t) => b.const_slot(r, t),
            None => Pending::Value(r),
        };
        let mut k = Kernel::new("copy");
        let s = k.param(ty, n, Access::Read);
        let dst = k.param(ty, n, Access::Write);
        k.body.push(crate::kir::Stmt::Copy {
            dst: crate::kir::View { buf: dst, offset: crate::kir::idx(0) },
            src: crate::kir::View { buf: s, offset: crate::kir::idx(0) },
            elems: n,
        });
        b.push_call(k, vec![src, Pending::Ready(Slot::Output(j))], format!("output {}", outputs[j].name));
    }
    Ok(b.unplanned(f, inputs, outputs, graph_ops))
}

/// A kernel argument before memory planning.
#[derive(Clone, Debug)]
pub enum Pending {
    /// A tensor value of the source function: stored where [`UnplannedProgram::fixed`] says, or
    /// in the arena where planning puts it.
    Value(Value),
    /// Storage lowering already knows (a constant, the graph output a copy fills).
    Ready(Slot),
    /// Per-call scratch of this many bytes.
    Scratch(u64),
}

/// One kernel call before memory planning.
#[derive(Clone, Debug)]
pub struct PendingCall {
    pub kernel: KernelId,
    pub args: Vec<Pending>,
    /// As [`Call::label`].
    pub label: String,
}

/// A lowered function before memory planning ([`lower_ops`]): kernels and calls over the
/// function's values, in the IR's order. [`plan_memory`] turns it into a [`Program`].
#[derive(Clone, Debug)]
pub struct UnplannedProgram {
    pub name: String,
    pub inputs: Vec<IoDesc>,
    pub outputs: Vec<IoDesc>,
    pub consts: Vec<ConstData>,
    pub kernels: Vec<Kernel>,
    pub calls: Vec<PendingCall>,
    /// Values whose storage lowering fixed (graph inputs, and graph outputs written by the call
    /// that produces them); every other value a call names lives in the arena.
    pub fixed: HashMap<Value, Slot>,
    /// Bytes of every value a call names.
    pub value_bytes: HashMap<Value, u64>,
    /// As [`Program::graph_ops`].
    pub graph_ops: usize,
}

#[derive(Default)]
struct Builder {
    consts: Vec<ConstData>,
    const_of: HashMap<Value, ConstId>,
    kernels: Vec<Kernel>,
    calls: Vec<(KernelId, Vec<Pending>, String)>,
    storage: HashMap<Value, Slot>,
    /// Call index that first writes each value.
    defined: HashMap<Value, usize>,
}

impl Builder {
    /// Index of a constant with these contents, added if there is none yet.
    fn intern(&mut self, c: ConstData) -> ConstId {
        match self.consts.iter().position(|o| o.ty == c.ty && o.bytes == c.bytes) {
            Some(i) => ConstId::new(i),
            None => {
                self.consts.push(c);
                ConstId::new(self.consts.len() - 1)
            }
        }
    }

    fn const_slot(&mut self, v: Value, t: &Tensor) -> Pending {
        let i = *self.const_of.entry(v).or_insert_with(|| {
            self.consts.push(ConstData {
                ty: Ty::of(t.scalar_type()).unwrap_or(Ty::U8),
                bytes: bytes::Bytes::from(t.to_le_bytes()),
            });
            ConstId::new(self.consts.len() - 1)
        });
        Pending::Ready(Slot::Const(i))
    }

    fn push_call(&mut self, kernel: Kernel, args: Vec<Pending>, label: String) {
        // Identical kernels (same body and parameter types) are emitted once.
        let ki = match self
            .kernels
            .iter()
            .position(|k| k.params == kernel.params && k.vars == kernel.vars && k.body == kernel.body)
        {
            Some(i) => KernelId::new(i),
            None => {
                let mut kernel = kernel;
                kernel.name = format!("{}_{}", kernel.name, self.kernels.len());
                self.kernels.push(kernel);
                KernelId::new(self.kernels.len() - 1)
            }
        };
        let ci = self.calls.len();
        for (a, p) in args.iter().zip(&self.kernels[ki.index()].params) {
            if let (Pending::Value(v), Access::Write) = (a, p.access) {
                self.defined.entry(*v).or_insert(ci);
            }
        }
        self.calls.push((ki, args, label));
    }

    /// The lowered program before memory planning (see [`UnplannedProgram`]).
    fn unplanned(
        self,
        f: &Function,
        inputs: Vec<IoDesc>,
        outputs: Vec<IoDesc>,
        graph_ops: usize,
    ) -> UnplannedProgram {
        let Builder { consts, kernels, calls, storage, .. } = self;
        let mut value_bytes = HashMap::new();
        for (_, args, _) in &calls {
            for a in args {
                if let Pending::Value(v) = a {
                    value_bytes.entry(*v).or_insert_with(|| f.values[*v].ty.size_bytes().unwrap_or(0));
                }
            }
        }
        let calls =
            calls.into_iter().map(|(kernel, args, label)| PendingCall { kernel, args, label }).collect();
        UnplannedProgram {
            name: f.name.clone(),
            inputs,
            outputs,
            consts,
            kernels,
            calls,
            fixed: storage,
            value_bytes,
            graph_ops,
        }
    }
}

/// Dropout with a (possibly run-time) training flag and ratio: the reference's random draws for
/// the op's seed are a compile-time table; each element is kept when training is off, the ratio is
/// 0, or its draw is at least the ratio, and kept elements are scaled by 1/(1-ratio) in training.
fn dropout(cx: &mut OpCx) -> Result<Lowered, OpError> {
    use crate::kir::*;
    let n = cx.operands[0].num_elements().unwrap_or(0) as usize;
    let seed = cx.int("seed", 0);
    let seed = u32::try_from(seed).map_err(|_| format!("seed {seed} is outside [0, 2^32)"))?;
    let draws = edgec_ir::ops::random::dropout_draws(seed, n);
    let table = cx.add_table(ConstData {
        ty: Ty::F64,
        bytes: draws.iter().flat_map(|d| d.to_le_bytes()).collect::<Vec<u8>>().into(),
    });
    let ty = cx.ty(0)?;
    let (has_ratio, has_training) = (cx.has(1), cx.has(2));
    let n_in = cx.operands.len();
    let with_mask = cx.results.len() > 1;
    let (mut k, mut binds) = io_kernel(cx, "dropout")?;
    let tb = k.param(Ty::F64, n as u64, Access::Read);
    binds.push(Bind::Table(table));
    let ratio = if has_ratio { cast(Ty::F64, load(1, idx(0))) } else { fc(0.5, Ty::F64) };
    let training = if has_training { load(2, idx(0)) } else { Expr::IConst(0, Ty::Bool) };
    let body = k.nest(&[n], |_, ix| {
        let i = ix[0].clone();
        let not_training = cmp(CmpOp::Eq, cast(Ty::I8, training.clone()), Expr::IConst(0, Ty::I8));
        let zero_ratio = cmp(CmpOp::Eq, ratio.clone(), fc(0.0, Ty::F64));
        let drawn = cmp(CmpOp::Ge, load(tb, i.clone()), ratio.clone());
        let keep = bin(BinOp::Or, bin(BinOp::Or, not_training.clone(), zero_ratio), drawn);
        let scale = select(
            not_training,
            fc(1.0, Ty::F64),
            bin(BinOp::Div, fc(1.0, Ty::F64), bin(BinOp::Sub, fc(1.0, Ty::F64), ratio.clone())),
        );
        let y = cast(ty, bin(BinOp::Mul, cast(Ty::F64, load(0, i.clone())), scale));
        let mut s =
            vec![Stmt::Store { buf: n_in, index: i.clone(), value: select(keep.clone(), y, cnst(0.0, ty)) }];
        if with_mask {
            s.push(Stmt::Store { buf: n_in + 1, index: i, value: keep });
        }
        s
    });
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}
