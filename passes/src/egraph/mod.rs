//! `egraph`: equality saturation over the kernel-level ops of each function body, to recover
//! fused ops (gelu, swish, layer norm, rms norm, attention) that exporters decompose into
//! chains of small ops.
//!
//! 1. **Build.** The pure single-result ops the [`lang::Kernel`] language covers become e-nodes,
//!    in body order; other values become opaque leaves, single-element float constants numeric
//!    leaves. Casts to the operand's own type are unioned with the operand.
//! 2. **Saturate** with the [`rules`] groups under explicit limits ([`Limits`]); why the runner
//!    stopped is part of the pass's [`EgraphPass::last_report`].
//! 3. **Extract** the cheapest term of every class ([`cost::CostModel`]).
//! 4. **Rebuild.** Every value the modeled ops produce and anything else uses (an unmodeled op, a
//!    region, the return) is a root. A root whose best term is its original op over unchanged
//!    operands stays as is; otherwise the term is rebuilt as new ops (types from the ops' shape
//!    rules), the root's uses are redirected, the new ops are placed before their first user,
//!    and dead code elimination removes what the new ops replaced. A recognized op's location is
//!    `Loc::Fused` of the ops it replaced.
//!
//! The same machinery runs a second time as `egraph-kernels` ([`Phase::Kernels`]): over the IR
//! the first run left, [`kernels::form`] adds a `fused` node for every kernel the ops may form
//! (a worklist instead of egg's runner, so each candidate grows once), and extraction with the
//! target's cost model decides which `fused.kernel`s to build.
//!
//! Output is deterministic: the e-graph is built in body order, egg is deterministic given its
//! insertion order, extraction ([`extract`]) walks classes in id order, and the rebuild walks
//! roots in body order (no hash-map iteration decides anything). The limits are
//! iterations and e-nodes, never wall-clock time, so machine load cannot change what it finds.

pub mod cost;
pub mod extract;
pub mod kernels;
pub mod lang;
pub mod rules;

use crate::pass::{Pass, PassError};
use crate::target::{CostWeights, TargetInfo};
use edgec_ir::entity::{Block, EntityRef, SecondaryMap};
use edgec_ir::module::ValueDef;
use edgec_ir::ops::{InferCtx, OpKind, Traits};
use edgec_ir::verify::constant_value;
use edgec_ir::{Attr, Attrs, ConstTensor, Function, Loc, Module, Op, ScalarType, Tensor, TensorType, Value};
use egg::{BackoffScheduler, Id, Language, Runner, StopReason};
use kernels::{Role, ValueInfo, OUTSIDE};
use lang::{
    ir_op, is_fused, mean_axes_tensor, CastTo, IrValue, KGraph, Kernel, Leaf, MeanSpec, Perm, Scalar,
    SoftmaxAxis, TypeInfo,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Limits of one saturation run: deterministic work bounds only (a wall-clock limit would make
/// the result depend on machine load).
#[derive(Clone, Debug)]
pub struct Limits {
    pub iterations: usize,
    /// E-node budget: `nodes_per_input_node` times the initial size, at least `min_nodes`.
    pub nodes_per_input_node: usize,
    pub min_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // The zoo saturates in under 10 iterations; the commutativity rules at most double a
        // class's nodes, so 16x the input is ample room.
        Limits { iterations: 30, nodes_per_input_node: 16, min_nodes: 10_000 }
    }
}

/// What one function's run did.
#[derive(Clone, Debug, Default)]
pub struct FunctionReport {
    /// `egraph` or `egraph-kernels`.
    pub pass: String,
    pub function: String,
    pub input_nodes: usize,
    pub final_nodes: usize,
    pub iterations: usize,
    pub stop_reason: String,
    /// Fused ops created, by op name and kind (`math.gelu`, `nn.layer_norm`, ...).
    pub recognized: BTreeMap<String, usize>,
    /// Roots rebuilt.
    pub rewritten_roots: usize,
}

impl std::fmt::Display for FunctionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} @{}: {} -> {} e-nodes, {} iterations, stop: {}; {} roots rebuilt; recognized:",
            self.pass,
            self.function,
            self.input_nodes,
            self.final_nodes,
            self.iterations,
            self.stop_reason,
            self.rewritten_roots
        )?;
        if self.recognized.is_empty() {
            f.write_str(" nothing")?;
        }
        for (k, n) in &self.recognized {
            write!(f, " {n}x {k}")?;
        }
        Ok(())
    }
}

/// Which rule groups a run saturates with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// `algebra`, `activation`, `normalization`, `attention`: recover fused ops from decomposed
    /// graphs (the `egraph` pass).
    #[default]
    Recognize,
    /// `elementwise`, `epilogue`: form kernels (`fused.kernel`) from the recognized ops (the
    /// `egraph-kernels` pass). A separate saturation, after the first one's rebuild and dead
    /// code elimination, because whether a value may join a kernel depends on its uses, and
    /// those are only exact once the decomposed chains are gone (`x` has three uses in
    /// decomposed GELU and one in `gelu(x)`).
    Kernels,
}

/// The pass. `last_report` describes the last run (one line per function); with
/// `EDGEC_LOG_EGRAPH=1` in the environment it is also printed to standard error.
#[derive(Default)]
pub struct EgraphPass {
    pub limits: Limits,
    pub reports: Vec<FunctionReport>,
    /// Whose cost model extraction uses.
    pub target: TargetInfo,
    pub phase: Phase,
}

impl EgraphPass {
    /// The `egraph` pass for `target`.
    pub fn for_target(target: &TargetInfo) -> EgraphPass {
        EgraphPass { target: target.clone(), ..EgraphPass::default() }
    }

    /// The `egraph-kernels` pass for `target`.
    pub fn kernels_for_target(target: &TargetInfo) -> EgraphPass {
        EgraphPass { target: target.clone(), phase: Phase::Kernels, ..EgraphPass::default() }
    }

    pub fn last_report(&self) -> String {
        self.reports.iter().map(|r| format!("{r}\n")).collect()
    }
}

impl Pass for EgraphPass {
    fn name(&self) -> &'static str {
        match self.phase {
            Phase::Recognize => "egraph",
            Phase::Kernels => "egraph-kernels",
        }
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        self.reports.clear();
        let weights = self.target.weights();
        for f in &mut module.functions {
            let report = optimize_function_with(f, &self.limits, self.phase, &weights)
                .map_err(|message| PassError::Failed { pass: self.name().into(), message })?;
            self.reports.push(report);
        }
        if std::env::var("EDGEC_LOG_EGRAPH").is_ok_and(|v| v == "1") {
            eprint!("{}", self.last_report());
        }
        Ok(())
    }
}

/// A modeled IR value: its op and the operand values in the order of the node's children.
struct Original {
    value: Value,
    op: Op,
    node: Kernel,
    children: Vec<Value>,
}

/// The e-graph of one function and the maps back to the IR.
struct Model {
    egraph: KGraph,
    class_of: HashMap<Value, Id>,
    /// Modeled values, in body order.
    originals: Vec<Original>,
    index_of: HashMap<Value, usize>,
    /// The first constant value holding each scalar, for reuse when a term needs it.
    scalar_values: HashMap<Scalar, Value>,
    /// The class of every value that entered as a leaf.
    leaf_class: HashMap<Value, Id>,
}

/// Whether kernel formation may model `op`: one result and operands of plain (not quantized)
/// element types, like the language's own ops.
fn modelable(f: &Function, op: Op) -> bool {
    let d = &f.ops[op];
    d.results.len() == 1
        && d.regions.is_empty()
        && is_plain(&f.values[d.results[0]].ty)
        && d.operands.iter().all(|&o| is_plain(&f.values[o].ty))
}

fn is_plain(t: &TensorType) -> bool {
    t.elem.as_scalar().is_some()
}

/// The scalar leaf for a single-element f32/f64 constant.
fn scalar_const(f: &Function, v: Value) -> Option<Scalar> {
    let ty = &f.values[v].ty;
    let dtype = ty.elem.as_scalar()?;
    if !matches!(dtype, ScalarType::F32 | ScalarType::F64) || ty.num_elements() != Some(1) || ty.rank() > 8 {
        return None;
    }
    let t = constant_value(f, v)?;
    Some(Scalar::new(*t.to_f64_vec().first()?, dtype, ty.rank() as u8))
}

/// Axis `a` of a rank-`rank` tensor counted from the end (`-1` = last).
fn from_end(a: i64, rank: usize) -> Option<i64> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a - r)
}

/// The node for `op` (children given by `child`), if the language covers it with these
/// attributes. Returns the node's child operand values too.
fn to_node(f: &Function, op: Op, child: &mut dyn FnMut(Value) -> Id) -> Option<(Kernel, Vec<Value>)> {
    let d = &f.ops[op];
    if d.results.len() != 1 || !d.regions.is_empty() || !d.kind.traits().contains(Traits::PURE) {
        return None;
    }
    if !is_plain(&f.values[d.results[0]].ty) || d.operands.iter().any(|&o| !is_plain(&f.values[o].ty)) {
        return None;
    }
    let ops = &d.operands;
    let attrs_only = |allowed: &[&str]| d.attrs.iter().all(|(k, _)| allowed.contains(&k.as_str()));
    let bin = |k: fn([Id; 2]) -> Kernel, child: &mut dyn FnMut(Value) -> Id| {
        (ops.len() == 2 && d.attrs.is_empty())
            .then(|| (k([child(ops[0]), child(ops[1])]), vec![ops[0], ops[1]]))
    };
    let un = |k: fn(Id) -> Kernel, child: &mut dyn FnMut(Value) -> Id| {
        (ops.len() == 1).then(|| (k(child(ops[0])), vec![ops[0]]))
    };
    match d.kind {
        OpKind::Add => bin(Kernel::Add, child),
        OpKind::Sub => bin(Kernel::Sub, child),
        OpKind::Mul => bin(Kernel::Mul, child),
        OpKind::Div => bin(Kernel::Div, child),
        OpKind::Pow => bin(Kernel::Pow, child),
        OpKind::MatMul => bin(Kernel::MatMul, child),
        // The remaining plain ops take no attributes; one that carries some is left alone.
        k if !d.attrs.is_empty()
            && !matches!(
                k,
                OpKind::Gelu
                    | OpKind::Swish
                    | OpKind::ReduceMean
                    | OpKind::Softmax
                    | OpKind::Cast
                    | OpKind::Transpose
            ) =>
        {
            None
        }
        OpKind::Neg => un(Kernel::Neg, child),
        OpKind::Sqrt => un(Kernel::Sqrt, child),
        OpKind::Reciprocal => un(Kernel::Recip, child),
        OpKind::Exp => un(Kernel::Exp, child),
        OpKind::Erf => un(Kernel::Erf, child),
        OpKind::Tanh => un(Kernel::Tanh, child),
        OpKind::Sigmoid => un(Kernel::Sigmoid, child),
        OpKind::Gelu => match d.attrs.str("approximate") {
            None | Some("none") => un(Kernel::Gelu, child),
            Some("tanh") => un(Kernel::GeluTanh, child),
            _ => None,
        },
        OpKind::Swish if d.attrs.float("alpha").is_none_or(|a| a == 1.0) => un(Kernel::Swish, child),
        OpKind::ReduceMean => {
            let rank = f.values[ops[0]].ty.rank();
            if ops.len() != 2 || !attrs_only(&["keepdims", "noop_with_empty_axes"]) {
                return None;
            }
            let axes = constant_value(f, ops[1])?.to_i64_vec()?;
            let mut axes = axes.iter().map(|&a| from_end(a, rank)).collect::<Option<Vec<i64>>>()?;
            axes.sort_unstable();
            axes.dedup();
            if axes.is_empty() {
                return None;
            }
            let spec = MeanSpec { axes, keepdims: d.attrs.int("keepdims").unwrap_or(1) != 0 };
            Some((Kernel::Mean(spec, [child(ops[0])]), vec![ops[0]]))
        }
        OpKind::Softmax if ops.len() == 1 && attrs_only(&["axis"]) => {
            let axis = from_end(d.attrs.int("axis").unwrap_or(-1), f.values[ops[0]].ty.rank())?;
            Some((Kernel::Softmax(SoftmaxAxis(axis), [child(ops[0])]), vec![ops[0]]))
        }
        OpKind::Transpose if ops.len() == 1 && attrs_only(&["perm"]) => {
            let rank = f.values[ops[0]].ty.rank();
            // Without `perm` the axes are reversed; spelled out so one node means one thing.
            let perm: Vec<i64> = match d.attrs.ints("perm") {
                Some(p) => p.to_vec(),
                None => (0..rank as i64).rev().collect(),
            };
            let perm: Option<Vec<u8>> =
                perm.iter().map(|&a| from_end(a, rank).map(|a| (a + rank as i64) as u8)).collect();
            let perm = Perm(perm?);
            if perm.0.is_empty() || perm.0.len() != rank {
                return None;
            }
            Some((Kernel::Transpose(perm, [child(ops[0])]), vec![ops[0]]))
        }
        OpKind::Cast if ops.len() == 1 => {
            // `saturate` and `round_mode` only matter for float8 targets, which are not plain
            // float types we model; any other attribute keeps the op out.
            let to = d.attrs.ty("to")?;
            if !attrs_only(&["to", "saturate", "round_mode"]) || !to.is_float() {
                return None;
            }
            Some((Kernel::Cast(CastTo(to), [child(ops[0])]), vec![ops[0]]))
        }
        _ => None,
    }
}

impl Model {
    #[cfg(test)]
    fn build(f: &Function) -> Model {
        Model::build_phase(f, Phase::Recognize).0
    }

    /// The e-graph of `f` for `phase`. Kernel formation models only the ops a kernel may hold
    /// (elementwise ops and anchors; those outside the rules' vocabulary as `Op` nodes) and
    /// returns what its rules need to know about them.
    fn build_phase(f: &Function, phase: Phase) -> (Model, kernels::Context) {
        let mut m = Model {
            egraph: KGraph::new(TypeInfo::default()),
            class_of: HashMap::new(),
            originals: Vec::new(),
            index_of: HashMap::new(),
            scalar_values: HashMap::new(),
            leaf_class: HashMap::new(),
        };
        let mut ctx = kernels::Context::default();
        let mut identity_casts = Vec::new();
        let mut duplicates = Vec::new();
        for (pos, &op) in f.body_ops().iter().enumerate() {
            let d = &f.ops[op];
            if phase == Phase::Kernels && d.kind != OpKind::Constant {
                for &r in &d.results {
                    ctx.def_pos.insert(r.index() as u32, pos);
                }
            }
            let role = match phase {
                Phase::Recognize => Role::Other,
                Phase::Kernels if !modelable(f, op) => continue,
                Phase::Kernels if crate::fuse::fusable_elementwise(f, op) => Role::Elementwise,
                Phase::Kernels if crate::fuse::fusable_anchor(f, op) => Role::Anchor,
                Phase::Kernels => continue,
            };
            let mut child = |v: Value| m.leaf_or_class(f, v);
            let covered = to_node(f, op, &mut child);
            let (node, children) = match (covered, phase) {
                (Some(nc), _) => nc,
                (None, Phase::Kernels) => {
                    let operands = d.operands.clone();
                    let ids = operands.iter().map(|&v| m.leaf_or_class(f, v)).collect();
                    (Kernel::Op(IrValue(d.results[0].index() as u32), ids), operands)
                }
                (None, Phase::Recognize) => continue,
            };
            let value = f.ops[op].results[0];
            if phase == Phase::Kernels {
                let v = value.index() as u32;
                m.egraph.analysis.leaf_types.insert(v, f.values[value].ty.clone());
                m.egraph.analysis.op_kinds.insert(v, d.kind);
            }
            let id = m.egraph.add(node.clone());
            if let Kernel::Cast(CastTo(to), [x]) = node {
                if f.values[children[0]].ty.elem.as_scalar() == Some(to) {
                    identity_casts.push((id, x));
                }
            }
            if phase == Phase::Kernels {
                // Two identical ops share a class; the rules would not know whose uses count,
                // so neither joins a kernel (`cse` normally merged them already).
                match m.egraph[id].data.origin {
                    Some(first) => duplicates.extend([first, value.index() as u32]),
                    None => m.egraph[id].data.origin = Some(value.index() as u32),
                }
                let operands = children.iter().map(|c| c.index() as u32).collect();
                let info = ValueInfo {
                    role,
                    node: node.clone(),
                    operands,
                    users: Vec::new(),
                    ty: f.values[value].ty.clone(),
                    pos,
                };
                ctx.values.insert(value.index() as u32, info);
            }
            m.class_of.insert(value, id);
            m.index_of.insert(value, m.originals.len());
            m.originals.push(Original { value, op, node, children });
        }
        // A cast to the type its operand already has is the identity. (Kernel formation keeps
        // one value per class; `simplify` removes such casts.)
        if phase == Phase::Recognize {
            for (a, b) in identity_casts {
                m.egraph.union(a, b);
            }
        }
        m.egraph.rebuild();
        if phase == Phase::Kernels {
            for v in duplicates {
                if let Some(info) = ctx.values.get_mut(&v) {
                    info.role = Role::Other;
                }
            }
            // Users, as modeled values (a use inside a region is a use by the region's op,
            // which is never modeled).
            let mut blocks = Vec::new();
            all_blocks(f, f.body, &mut blocks);
            for &b in &blocks {
                for &op in &f.blocks[b].ops {
                    let user = match f.ops[op].results.first() {
                        Some(r) if b == f.body && m.class_of.contains_key(r) => r.index() as u32,
                        _ => OUTSIDE,
                    };
                    let mut stack = vec![op];
                    while let Some(o) = stack.pop() {
                        for &v in &f.ops[o].operands {
                            if let Some(info) = ctx.values.get_mut(&(v.index() as u32)) {
                                info.users.push(if o == op { user } else { OUTSIDE });
                            }
                        }
                        for r in &f.ops[o].regions {
                            for &rb in &r.blocks {
                                stack.extend(f.blocks[rb].ops.iter().copied());
                            }
                        }
                    }
                }
            }
            for (&v, &id) in m.class_of.iter().chain(m.leaf_class.iter()) {
                ctx.class_of.insert(v.index() as u32, id);
            }
        }
        (m, ctx)
    }

    fn leaf_or_class(&mut self, f: &Function, v: Value) -> Id {
        if let Some(&id) = self.class_of.get(&v) {
            return id;
        }
        let id = if let Some(s) = scalar_const(f, v) {
            self.scalar_values.entry(s).or_insert(v);
            self.egraph.add(Kernel::Num(s))
        } else {
            let leaf = Leaf(v.index() as u32);
            self.egraph.analysis.leaf_types.insert(leaf.0, f.values[v].ty.clone());
            self.egraph.add(Kernel::Opaque(leaf))
        };
        self.leaf_class.insert(v, id);
        id
    }
}

/// Result types of `kind` on these operands by its shape rule.
fn infer(f: &Function, kind: OpKind, operands: &[Value], attrs: &Attrs) -> Result<Vec<TensorType>, String> {
    let types: Vec<TensorType> = operands.iter().map(|&v| f.values[v].ty.clone()).collect();
    let consts: Vec<Option<Tensor>> = operands.iter().map(|&v| constant_value(f, v)).collect();
    let ctx = InferCtx { attrs, operands: &types, consts: &consts, num_results: 1 };
    (kind.def().infer)(&ctx)
}

/// Rebuilds extracted terms as IR.
struct Rebuild<'a> {
    model: &'a Model,
    best: HashMap<Id, Kernel>,
    /// The originals (indices into `model.originals`) of every class, in body order: an index,
    /// so that looking a class's originals up does not scan every original.
    originals_of: HashMap<Id, Vec<usize>>,
    memo: HashMap<(Id, Option<Value>), Value>,
    /// Ops created (not yet placed in a block), and reused scalar constants (free to move
    /// earlier).
    created: Vec<Op>,
    /// Created kernels, each to be placed where the op computing its result was (as `fuse`
    /// does), not merely before its first user: the memory-aware schedule of the input stays.
    pinned: HashMap<Op, Op>,
    recognized: BTreeMap<String, usize>,
}

impl Rebuild<'_> {
    fn best(&self, id: Id) -> &Kernel {
        &self.best[&self.model.egraph.find(id)]
    }

    fn canonical(&self, node: &Kernel) -> Kernel {
        node.clone().map_children(|c| self.model.egraph.find(c))
    }

    /// The IR value computing class `id`'s best term, preferring `hint` (the value the caller
    /// had there) when it computes exactly that term.
    fn value(&mut self, f: &mut Function, id: Id, hint: Option<Value>) -> Result<Value, String> {
        let id = self.model.egraph.find(id);
        if let Some(&v) = self.memo.get(&(id, hint)) {
            return Ok(v);
        }
        let v = self.compute(f, id, hint)?;
        self.memo.insert((id, hint), v);
        Ok(v)
    }

    fn compute(&mut self, f: &mut Function, id: Id, hint: Option<Value>) -> Result<Value, String> {
        let best = self.best(id).clone();
        match best {
            Kernel::Opaque(leaf) => return Ok(Value::new(leaf.0 as usize)),
            Kernel::Num(s) => {
                if let Some(h) = hint.filter(|&h| scalar_const(f, h) == Some(s)) {
                    return Ok(h);
                }
                if let Some(&v) = self.model.scalar_values.get(&s) {
                    // Another layer's copy of the scalar may be defined after the op that now
                    // needs it: let `place_created` move the constant up to its first user.
                    if let ValueDef::Result { op, .. } = f.values[v].def {
                        self.created.push(op);
                    }
                    return Ok(v);
                }
                return Ok(self.constant(f, s));
            }
            _ => {}
        }
        // The original op, if it is exactly this term: the hint first, then the class's other
        // original values in body order.
        let mut candidates: Vec<Value> = hint.into_iter().collect();
        candidates
            .extend(self.originals_of.get(&id).into_iter().flatten().map(|&i| self.model.originals[i].value));
        for v in candidates {
            let Some(&i) = self.model.index_of.get(&v) else { continue };
            let o = &self.model.originals[i];
            if self.canonical(&o.node) != best {
                continue;
            }
            let children = o.children.clone();
            let mut same = true;
            for (&c, &want) in best.children().iter().zip(&children) {
                if self.value(f, c, Some(want))? != want {
                    same = false;
                    break;
                }
            }
            if same {
                return Ok(v);
            }
        }
        // A new term: build it once, whichever value asked first.
        if let Some(&v) = self.memo.get(&(id, None)) {
            return Ok(v);
        }
        let v = self.build_op(f, id, &best)?;
        self.memo.insert((id, None), v);
        Ok(v)
    }

    fn constant(&mut self, f: &mut Function, s: Scalar) -> Value {
        let ty = s.ty();
        let bytes = match s.dtype {
            ScalarType::F64 => s.value().to_le_bytes().to_vec(),
            _ => (s.value() as f32).to_le_bytes().to_vec(),
        };
        let value = ConstTensor { ty: ty.clone(), bytes: bytes.into() };
        let op = f.create_op(
            OpKind::Constant,
            vec![],
            vec![ty],
            Attrs::new().with("value", Attr::Tensor(value)),
            Loc::Unknown,
        );
        self.created.push(op);
        f.ops[op].results[0]
    }

    /// An op kept whole (`Kernel::Op`) over new operands: a copy of the original.
    fn build_whole(&mut self, f: &mut Function, v: IrValue, children: &[Id]) -> Result<Value, String> {
        let orig = Value::new(v.0 as usize);
        let ValueDef::Result { op: o, .. } = f.values[orig].def else {
            return Err("op node without op".into());
        };
        let d = f.ops[o].clone();
        let mut operands = Vec::with_capacity(children.len());
        for (&c, &hint) in children.iter().zip(&d.operands) {
            operands.push(self.value(f, c, Some(hint))?);
        }
        let ty = f.values[orig].ty.clone();
        let op = f.create_op(d.kind, operands, vec![ty], d.attrs.clone(), d.loc.clone());
        self.created.push(op);
        Ok(f.ops[op].results[0])
    }

    /// A `fused` node as a `fused.kernel` holding copies of its members, placed where its root
    /// was.
    fn build_kernel(
        &mut self,
        f: &mut Function,
        t: &lang::Template,
        children: &[Id],
    ) -> Result<Value, String> {
        let mut members = Vec::with_capacity(t.members.len());
        for &m in &t.members {
            match f.values[Value::new(m as usize)].def {
                ValueDef::Result { op, .. } => members.push(op),
                _ => return Err("a kernel member is not an op result".into()),
            }
        }
        let mut err = None;
        let mut seen = 0usize;
        let class_of = &self.model.class_of;
        let mut operand_classes: Vec<(Value, Option<Id>)> = Vec::new();
        let op = crate::fuse::fused_kernel_op(f, &members, &mut |_, v| {
            operand_classes.push((v, class_of.get(&v).copied()));
            v
        });
        // The operands are the external values of the original ops; point those whose class
        // was rebuilt at the new values.
        for (i, (v, class)) in operand_classes.into_iter().enumerate() {
            seen += 1;
            if let Some(c) = class {
                match self.value(f, c, Some(v)) {
                    Ok(nv) => f.ops[op].operands[i] = nv,
                    Err(e) => err = Some(e),
                }
            }
        }
        if let Some(e) = err {
            return Err(e);
        }
        if seen != children.len() {
            return Err(format!("kernel of {} operands rebuilt with {seen}", children.len()));
        }
        self.created.push(op);
        self.pinned.insert(op, *members.last().expect("a kernel has members"));
        *self.recognized.entry("fused.kernel".into()).or_default() += 1;
        Ok(f.ops[op].results[0])
    }

    fn build_op(&mut self, f: &mut Function, id: Id, best: &Kernel) -> Result<Value, String> {
        match best {
            Kernel::Op(v, children) => return self.build_whole(f, *v, &children.clone()),
            Kernel::Fused(t, children) => return self.build_kernel(f, &t.clone(), &children.clone()),
            _ => {}
        }
        let (kind, mut attrs) = ir_op(best).ok_or("a leaf has no op")?;
        let eg = &self.model.egraph;
        let mut operands = Vec::new();
        let tensor_children: &[Id] = match best {
            Kernel::LayerNorm(c) => {
                let eps = lang::scalar_of(eg, c[3]).ok_or("layer_norm epsilon is not a constant")?;
                attrs.set("epsilon", Attr::Float(eps.value()));
                // A zero bias is the absent bias.
                let zero_bias = matches!(self.best(c[2]), Kernel::Num(s) if s.value() == 0.0);
                if zero_bias {
                    &c[..2]
                } else {
                    &c[..3]
                }
            }
            Kernel::RmsNorm(c) => {
                let eps = lang::scalar_of(eg, c[2]).ok_or("rms_norm epsilon is not a constant")?;
                attrs.set("epsilon", Attr::Float(eps.value()));
                &c[..2]
            }
            Kernel::Attention(c) => {
                let scale = lang::scalar_of(eg, c[3]).ok_or("attention scale is not a constant")?;
                attrs.set("scale", Attr::Float(scale.value()));
                &c[..3]
            }
            Kernel::AttentionMask(c) => {
                let scale = lang::scalar_of(eg, c[4]).ok_or("attention scale is not a constant")?;
                attrs.set("scale", Attr::Float(scale.value()));
                &c[..4]
            }
            n => n.children(),
        };
        for &c in tensor_children.to_vec().iter() {
            operands.push(self.value(f, c, None)?);
        }
        if let Kernel::Mean(spec, _) = best {
            let axes = ConstTensor::from_tensor(&mean_axes_tensor(spec));
            let ty = axes.ty.clone();
            let op = f.create_op(
                OpKind::Constant,
                vec![],
                vec![ty],
                Attrs::new().with("value", Attr::Tensor(axes)),
                Loc::Unknown,
            );
            self.created.push(op);
            operands.push(f.ops[op].results[0]);
        }
        let types =
            infer(f, kind, &operands, &attrs).map_err(|e| format!("rebuilding {}: {e}", kind.name()))?;
        let loc = self.loc_for(f, id, best);
        let op = f.create_op(kind, operands, types, attrs, loc);
        self.created.push(op);
        if is_fused(best) {
            let label = match f.ops[op].attrs.str("approximate") {
                Some(a) => format!("{}({a})", kind.name()),
                None => kind.name().to_string(),
            };
            *self.recognized.entry(label).or_default() += 1;
        }
        Ok(f.ops[op].results[0])
    }

    /// The location of a new op for class `id`: the names of the original ops it replaces (those
    /// computing the class, and what they need that the new op's operands don't provide).
    fn loc_for(&self, f: &Function, id: Id, best: &Kernel) -> Loc {
        let eg = &self.model.egraph;
        let stop: HashSet<Id> = best.children().iter().map(|&c| eg.find(c)).collect();
        let mut covered: Vec<usize> = Vec::new();
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = self.originals_of.get(&id).cloned().unwrap_or_default();
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            covered.push(i);
            for c in &self.model.originals[i].children {
                if let Some(&j) = self.model.index_of.get(c) {
                    if !stop.contains(&eg.find(self.model.class_of[c])) {
                        stack.push(j);
                    }
                }
            }
        }
        covered.sort_unstable();
        let mut names: Vec<String> = Vec::new();
        for i in covered {
            match &f.ops[self.model.originals[i].op].loc {
                Loc::Name(n) => names.push(n.clone()),
                Loc::Fused(ns) => names.extend(ns.iter().cloned()),
                Loc::Unknown => {}
            }
        }
        let mut unique = HashSet::new();
        names.retain(|n| unique.insert(n.clone()));
        match names.len() {
            0 => Loc::Unknown,
            1 if !is_fused(best) => Loc::Name(names.pop().expect("one name")),
            _ => Loc::Fused(names),
        }
    }
}

fn stop_reason(r: &StopReason) -> String {
    match r {
        StopReason::Saturated => "saturated".into(),
        StopReason::IterationLimit(n) => format!("iteration limit ({n})"),
        StopReason::NodeLimit(n) => format!("node limit ({n})"),
        StopReason::TimeLimit(s) => format!("time limit ({s} s)"),
        StopReason::Other(s) => s.clone(),
    }
}

/// Every block of `f` (the body and region blocks) in nesting order.
fn all_blocks(f: &Function, b: Block, out: &mut Vec<Block>) {
    out.push(b);
    for &op in &f.blocks[b].ops {
        for r in &f.ops[op].regions {
            for &rb in &r.blocks {
                all_blocks(f, rb, out);
            }
        }
    }
}

/// Runs the `egraph` pass on one function with the generic target's cost model.
pub fn optimize_function(f: &mut Function, limits: &Limits) -> Result<FunctionReport, String> {
    optimize_function_with(f, limits, Phase::Recognize, &TargetInfo::generic().weights())
}

/// Runs one phase on one function, extracting with `weights`.
pub fn optimize_function_with(
    f: &mut Function,
    limits: &Limits,
    phase: Phase,
    weights: &CostWeights,
) -> Result<FunctionReport, String> {
    let (model, ctx) = Model::build_phase(f, phase);
    let pass = match phase {
        Phase::Recognize => "egraph",
        Phase::Kernels => "egraph-kernels",
    };
    let mut report = FunctionReport { pass: pass.into(), function: f.name.clone(), ..Default::default() };
    report.input_nodes = model.egraph.total_number_of_nodes();
    if model.originals.is_empty() {
        report.stop_reason = "nothing to model".into();
        return Ok(report);
    }

    // Roots: modeled values used by anything that is not itself modeled.
    let modeled: HashSet<Op> = model.originals.iter().map(|o| o.op).collect();
    let mut blocks = Vec::new();
    all_blocks(f, f.body, &mut blocks);
    let mut is_root: HashSet<Value> = HashSet::new();
    for &b in &blocks {
        for &op in &f.blocks[b].ops {
            if !modeled.contains(&op) {
                is_root.extend(f.ops[op].operands.iter().copied().filter(|v| model.class_of.contains_key(v)));
            }
        }
    }
    let roots: Vec<Value> = model.originals.iter().map(|o| o.value).filter(|v| is_root.contains(v)).collect();

    let node_limit = (report.input_nodes * limits.nodes_per_input_node).max(limits.min_nodes);
    let Model { mut egraph, class_of, originals, index_of, scalar_values, leaf_class } = model;
    match phase {
        Phase::Recognize => {
            let runner = Runner::<Kernel, TypeInfo, ()>::new(TypeInfo::default())
                .with_egraph(egraph)
                .with_iter_limit(limits.iterations)
                .with_node_limit(node_limit)
                // egg's default is a 5 s time limit; the work bounds above end every run
                // instead, so only they decide what is found.
                .with_time_limit(std::time::Duration::from_secs(u32::MAX as u64))
                // egg bans a rule for a few iterations once it matches more than 1,000 times
                // in one, to tame rules that explode; on a large graph the harmless rules match
                // that often too, and saturation took more iterations the larger the graph
                // (3 at 4,000 ops, 9 at 64,000). A limit per input node keeps the iterations
                // independent of the graph's size.
                .with_scheduler(
                    BackoffScheduler::default().with_initial_match_limit(report.input_nodes.max(1000)),
                )
                .run(&rules::all());
            report.iterations = runner.iterations.len();
            report.stop_reason = stop_reason(runner.stop_reason.as_ref().expect("the runner ran"));
            egraph = runner.egraph;
        }
        Phase::Kernels => {
            let (steps, stop) = kernels::form(&mut egraph, &ctx, limits.iterations, node_limit);
            report.iterations = steps;
            report.stop_reason = stop.to_string();
        }
    }
    let model = Model { egraph, class_of, originals, index_of, scalar_values, leaf_class };
    report.final_nodes = model.egraph.total_number_of_nodes();

    // Extraction, ties going to the input's nodes.
    let eg = &model.egraph;
    let originals: HashSet<Kernel> = model
        .originals
        .iter()
        .map(|o| o.node.clone().map_children(|c| eg.find(c)))
        .chain(eg.classes().flat_map(|c| c.nodes.iter()).filter(|n| matches!(n, Kernel::Opaque(_))).cloned())
        .chain(model.scalar_values.keys().map(|&s| Kernel::Num(s)))
        .collect();
    let extractor = extract::BestNodes::new(eg, cost::CostModel { egraph: eg, weights: *weights, originals });
    let mut best = HashMap::new();
    for &v in &roots {
        collect_best(&extractor, eg, model.class_of[&v], &mut best);
    }

    let mut originals_of: HashMap<Id, Vec<usize>> = HashMap::new();
    for (i, o) in model.originals.iter().enumerate() {
        originals_of.entry(model.egraph.find(model.class_of[&o.value])).or_default().push(i);
    }
    let mut rb = Rebuild {
        model: &model,
        best,
        originals_of,
        memo: HashMap::new(),
        created: Vec::new(),
        pinned: HashMap::new(),
        recognized: BTreeMap::new(),
    };
    let mut replace = Vec::new();
    for &r in &roots {
        let nv = rb.value(f, model.class_of[&r], Some(r))?;
        if nv != r {
            if !f.values[nv].ty.is_compatible_with(&f.values[r].ty) {
                return Err(format!(
                    "rebuilt {} has type {} instead of {}",
                    nv, f.values[nv].ty, f.values[r].ty
                ));
            }
            replace.push((r, nv));
        }
    }
    report.rewritten_roots = replace.len();
    report.recognized = std::mem::take(&mut rb.recognized);
    let created = std::mem::take(&mut rb.created);
    let pinned = std::mem::take(&mut rb.pinned);
    if replace.is_empty() {
        return Ok(report);
    }
    f.replace_uses(&replace);
    place_created(f, &created, &pinned);
    crate::dce::eliminate_dead_ops(f);
    Ok(report)
}

/// Records the best node of `id` and of every class its best term reaches.
fn collect_best(ex: &extract::BestNodes<Kernel>, eg: &KGraph, id: Id, best: &mut HashMap<Id, Kernel>) {
    let mut stack = vec![eg.find(id)];
    while let Some(c) = stack.pop() {
        if best.contains_key(&c) {
            continue;
        }
        let n = ex.find_best_node(c).clone();
        stack.extend(n.children().iter().map(|&x| eg.find(x)));
        best.insert(c, n);
    }
}

/// Places the created ops in the body, each right before its first user (a `pinned` one at the
/// position of the original op it replaces, if that comes first), keeping the order of the
/// existing ops. Created ops nobody uses are left out.
fn place_created(f: &mut Function, created: &[Op], pinned: &HashMap<Op, Op>) {
    let mut pinned_at: HashMap<Op, Vec<Op>> = HashMap::new();
    for &c in created {
        if let Some(&at) = pinned.get(&c) {
            pinned_at.entry(at).or_default().push(c);
        }
    }
    let pending: HashSet<Op> = created.iter().copied().collect();
    let mut placed: SecondaryMap<Op, bool> = SecondaryMap::with_default(false);
    let mut order = Vec::with_capacity(f.blocks[f.body].ops.len() + created.len());
    fn place(
        f: &Function,
        op: Op,
        pending: &HashSet<Op>,
        placed: &mut SecondaryMap<Op, bool>,
        order: &mut Vec<Op>,
    ) {
        if *placed.get(op) {
            return;
        }
        placed.set(op, true);
        for &o in &f.ops[op].operands {
            if let ValueDef::Result { op: d, .. } = f.values[o].def {
                if pending.contains(&d) {
                    place(f, d, pending, placed, order);
                }
            }
        }
        order.push(op);
    }
    let body: Vec<Op> = f.blocks[f.body].ops.clone();
    for &op in &body {
        // Ops inside regions may use rebuilt values too: place those before the region's op.
        let mut inner = Vec::new();
        for r in &f.ops[op].regions {
            for &b in &r.blocks {
                all_blocks(f, b, &mut inner);
            }
        }
        for &b in &inner {
            for &iop in &f.blocks[b].ops {
                for &o in &f.ops[iop].operands {
                    if let ValueDef::Result { op: d, .. } = f.values[o].def {
                        if pending.contains(&d) {
                            place(f, d, &pending, &mut placed, &mut order);
                        }
                    }
                }
            }
        }
        for &c in pinned_at.get(&op).into_iter().flatten() {
            place(f, c, &pending, &mut placed, &mut order);
        }
        place(f, op, &pending, &mut placed, &mut order);
    }
    f.blocks[f.body].ops = order;
}

#[cfg(test)]
mod tests;
