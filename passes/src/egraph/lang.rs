//! The e-graph language (`Kernel`) and its e-class analysis (the tensor type of each class).
//!
//! The language covers the pure, single-result kernel-level ops the rules talk about, plus the
//! fused ops the rules produce. Everything else enters the e-graph as an opaque [`Leaf`] (one per
//! IR value), and single-element float constants as numeric [`Scalar`] leaves, so that rules can
//! test their value. Attributes that change an op's meaning are part of the node: a mean's axes
//! and keepdims, a softmax axis, a cast's target type and a transpose's permutation are node data, so two nodes with
//! different attributes never share an e-class by accident and a pattern names exactly the
//! attributes it accepts. The epsilon of the fused normalizations is a child (a [`Scalar`] class)
//! so that a pattern can carry it from the decomposed form to the fused one.

use edgec_ir::ops::{InferCtx, OpKind};
use edgec_ir::{Attr, Attrs, Dim, ScalarType, Tensor, TensorType};
use egg::{define_language, Analysis, DidMerge, EGraph, Id};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// A single-element float constant: its value (as f64 bits, so the node is `Eq`/`Hash`), its
/// element type and its rank (all dims 1). Type and rank are part of the leaf because a `1x1`
/// constant broadcasts differently from a rank-0 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scalar {
    pub bits: u64,
    pub dtype: ScalarType,
    pub rank: u8,
}

impl Scalar {
    pub fn new(value: f64, dtype: ScalarType, rank: u8) -> Scalar {
        Scalar { bits: value.to_bits(), dtype, rank }
    }
    pub fn value(&self) -> f64 {
        f64::from_bits(self.bits)
    }
    pub fn ty(&self) -> TensorType {
        TensorType::new(vec![Dim::Static(1); self.rank as usize], self.dtype)
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}:{}:{}", self.value(), self.dtype.name(), self.rank)
    }
}

impl FromStr for Scalar {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut it = s.strip_prefix('#').ok_or(())?.split(':');
        let v: f64 = it.next().ok_or(())?.parse().map_err(|_| ())?;
        let dtype = ScalarType::from_name(it.next().ok_or(())?).ok_or(())?;
        let rank: u8 = it.next().ok_or(())?.parse().map_err(|_| ())?;
        Ok(Scalar::new(v, dtype, rank))
    }
}

/// An IR value the e-graph does not look into (a parameter, a weight, the result of an op
/// outside the language), by its index in the function's value arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Leaf(pub u32);

impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

impl FromStr for Leaf {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        s.strip_prefix('%').ok_or(())?.parse().map(Leaf).map_err(|_| ())
    }
}

/// `nn.reduce_mean` attributes: axes counted from the end (`-1` is the last axis, whatever the
/// rank, so one pattern covers every rank), sorted, and keepdims. Text: `mean:-1:k` (keepdims)
/// or `mean:-2,-1:d`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeanSpec {
    pub axes: Vec<i64>,
    pub keepdims: bool,
}

impl fmt::Display for MeanSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let axes: Vec<String> = self.axes.iter().map(|a| a.to_string()).collect();
        write!(f, "mean:{}:{}", axes.join(","), if self.keepdims { "k" } else { "d" })
    }
}

impl FromStr for MeanSpec {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let rest = s.strip_prefix("mean:").ok_or(())?;
        let (axes, keep) = rest.rsplit_once(':').ok_or(())?;
        let axes = axes.split(',').map(|a| a.parse().map_err(|_| ())).collect::<Result<Vec<i64>, ()>>()?;
        let keepdims = match keep {
            "k" => true,
            "d" => false,
            _ => return Err(()),
        };
        Ok(MeanSpec { axes, keepdims })
    }
}

/// `nn.softmax` axis, counted from the end. Text: `softmax:-1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SoftmaxAxis(pub i64);

impl fmt::Display for SoftmaxAxis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "softmax:{}", self.0)
    }
}

impl FromStr for SoftmaxAxis {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        s.strip_prefix("softmax:").ok_or(())?.parse().map(SoftmaxAxis).map_err(|_| ())
    }
}

/// `math.cast` target type. Text: `cast:f32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CastTo(pub ScalarType);

impl fmt::Display for CastTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cast:{}", self.0.name())
    }
}

impl FromStr for CastTo {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ScalarType::from_name(s.strip_prefix("cast:").ok_or(())?).map(CastTo).ok_or(())
    }
}

/// `shape.transpose` permutation (never empty: a transpose without `perm` gets the reversed
/// axes spelled out). Text: `transpose:0,2,1,3`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Perm(pub Vec<u8>);

impl Perm {
    /// The permutation swapping the last two of `rank` axes (a matrix transpose per batch).
    pub fn swap_last(rank: usize) -> Perm {
        let mut p: Vec<u8> = (0..rank as u8).collect();
        p.swap(rank - 2, rank - 1);
        Perm(p)
    }
    pub fn is_identity(&self) -> bool {
        self.0.iter().enumerate().all(|(i, &a)| a as usize == i)
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let axes: Vec<String> = self.0.iter().map(|a| a.to_string()).collect();
        write!(f, "transpose:{}", axes.join(","))
    }
}

impl FromStr for Perm {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let axes = s.strip_prefix("transpose:").ok_or(())?;
        let p = axes.split(',').map(|a| a.parse().map_err(|_| ())).collect::<Result<Vec<u8>, ()>>()?;
        let mut sorted = p.clone();
        sorted.sort_unstable();
        if p.is_empty() || sorted.iter().enumerate().any(|(i, &a)| a as usize != i) {
            return Err(());
        }
        Ok(Perm(p))
    }
}

/// An IR op kept whole, by the index of the value it defines: the ops kernel formation needs to
/// see that the rules have no vocabulary for (convolutions, gemm, relu, clip, ...). Its kind and
/// attributes are the original op's, its type the original value's. Text: `op%12`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IrValue(pub u32);

impl fmt::Display for IrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op%{}", self.0)
    }
}

impl FromStr for IrValue {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        s.strip_prefix("op%").ok_or(())?.parse().map(IrValue).map_err(|_| ())
    }
}

/// Children of a template step at or above this index name an earlier step (`STEP_BASE + j`);
/// below it, an operand of the fused node.
pub const STEP_BASE: usize = 1 << 24;

/// The expression a `fused` node computes over its operands: one loop nest (or an anchor's
/// kernel with the rest as its epilogue). Each step is a node of the language whose children
/// are slots: `Id(i)` is the fused node's operand `i`, `Id(STEP_BASE + j)` step `j`'s value.
/// The anchor, if any, is step 0 and reads only operands; the last step is the result. Every
/// step computes a value of the result's type (nothing is broadcast or recomputed).
///
/// `members` are the IR values (by index) the steps stand for, in step order: kernel formation
/// only groups ops that exist in the input, and legality (no intermediate escapes) is decided
/// on their uses. Text: `fused[%3,%5,%6]` (patterns never spell a fused node; the appliers
/// build them).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Template {
    pub steps: Vec<Kernel>,
    pub members: Vec<u32>,
    pub anchor: bool,
}

impl Template {
    /// The IR value the template's result stands for.
    pub fn root(&self) -> u32 {
        *self.members.last().expect("a template has steps")
    }
}

/// A [`Template`] behind a shared pointer: egg clones every node into its hash-cons and its
/// class, and a chain's candidate kernels carry up to a few dozen steps each.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedTemplate(pub std::sync::Arc<Template>);

impl std::ops::Deref for SharedTemplate {
    type Target = Template;
    fn deref(&self) -> &Template {
        &self.0
    }
}

impl fmt::Display for SharedTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SharedTemplate {
    type Err = ();
    fn from_str(_: &str) -> Result<Self, ()> {
        Err(())
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m: Vec<String> = self.members.iter().map(|v| format!("%{v}")).collect();
        write!(f, "fused[{}]", m.join(","))
    }
}

define_language! {
    /// Kernel-level ops. Children are operands in IR order; `layer_norm` is
    /// `(layer_norm x scale bias epsilon)` and `rms_norm` is `(rms_norm x scale epsilon)`, always
    /// over the last axis; a bias equal to the scalar 0 means "no bias". `attention` is
    /// `(attention q k v scale)` and `attention_mask` is `(attention_mask q k v mask scale)`
    /// (`nn.attention` on 4-D operands with an additive mask); the scale is a child for the same
    /// reason as epsilon. `Op` is an IR op kept whole and `Fused` a kernel formed from several
    /// (see [`IrValue`] and [`Template`]); only the kernel-formation phase adds them.
    pub enum Kernel {
        "add" = Add([Id; 2]),
        "sub" = Sub([Id; 2]),
        "mul" = Mul([Id; 2]),
        "div" = Div([Id; 2]),
        "pow" = Pow([Id; 2]),
        "matmul" = MatMul([Id; 2]),
        "neg" = Neg(Id),
        "sqrt" = Sqrt(Id),
        "recip" = Recip(Id),
        "exp" = Exp(Id),
        "erf" = Erf(Id),
        "tanh" = Tanh(Id),
        "sigmoid" = Sigmoid(Id),
        "gelu" = Gelu(Id),
        "gelu_tanh" = GeluTanh(Id),
        "swish" = Swish(Id),
        "layer_norm" = LayerNorm([Id; 4]),
        "rms_norm" = RmsNorm([Id; 3]),
        "attention" = Attention([Id; 4]),
        "attention_mask" = AttentionMask([Id; 5]),
        Transpose(Perm, [Id; 1]),
        Mean(MeanSpec, [Id; 1]),
        Softmax(SoftmaxAxis, [Id; 1]),
        Cast(CastTo, [Id; 1]),
        Op(IrValue, Vec<Id>),
        Fused(SharedTemplate, Vec<Id>),
        Num(Scalar),
        Opaque(Leaf),
    }
}

/// Whether a node is one of the fused ops the rules produce (its IR op gets a fused location).
pub fn is_fused(node: &Kernel) -> bool {
    matches!(
        node,
        Kernel::Gelu(_)
            | Kernel::GeluTanh(_)
            | Kernel::Swish(_)
            | Kernel::LayerNorm(_)
            | Kernel::RmsNorm(_)
            | Kernel::Attention(_)
            | Kernel::AttentionMask(_)
    )
}

/// The IR op a non-leaf node stands for and its attributes. The normalizations' epsilon and the
/// attention scale (children) are added by the caller, which knows its value; `nn.reduce_mean` also needs its axes operand
/// ([`mean_axes_tensor`]).
pub fn ir_op(node: &Kernel) -> Option<(OpKind, Attrs)> {
    let plain = |k: OpKind| Some((k, Attrs::new()));
    match node {
        Kernel::Add(_) => plain(OpKind::Add),
        Kernel::Sub(_) => plain(OpKind::Sub),
        Kernel::Mul(_) => plain(OpKind::Mul),
        Kernel::Div(_) => plain(OpKind::Div),
        Kernel::Pow(_) => plain(OpKind::Pow),
        Kernel::MatMul(_) => plain(OpKind::MatMul),
        Kernel::Neg(_) => plain(OpKind::Neg),
        Kernel::Sqrt(_) => plain(OpKind::Sqrt),
        Kernel::Recip(_) => plain(OpKind::Reciprocal),
        Kernel::Exp(_) => plain(OpKind::Exp),
        Kernel::Erf(_) => plain(OpKind::Erf),
        Kernel::Tanh(_) => plain(OpKind::Tanh),
        Kernel::Sigmoid(_) => plain(OpKind::Sigmoid),
        Kernel::Gelu(_) => Some((OpKind::Gelu, Attrs::new().with("approximate", Attr::Str("none".into())))),
        Kernel::GeluTanh(_) => {
            Some((OpKind::Gelu, Attrs::new().with("approximate", Attr::Str("tanh".into()))))
        }
        Kernel::Swish(_) => Some((OpKind::Swish, Attrs::new().with("alpha", Attr::Float(1.0)))),
        Kernel::LayerNorm(_) => Some((OpKind::LayerNorm, Attrs::new().with("axis", Attr::Int(-1)))),
        Kernel::RmsNorm(_) => Some((OpKind::RmsNorm, Attrs::new().with("axis", Attr::Int(-1)))),
        Kernel::Attention(_) | Kernel::AttentionMask(_) => plain(OpKind::Attention),
        Kernel::Transpose(perm, _) => {
            let axes = perm.0.iter().map(|&a| a as i64).collect();
            Some((OpKind::Transpose, Attrs::new().with("perm", Attr::Ints(axes))))
        }
        Kernel::Mean(spec, _) => {
            Some((OpKind::ReduceMean, Attrs::new().with("keepdims", Attr::Int(spec.keepdims as i64))))
        }
        Kernel::Softmax(axis, _) => Some((OpKind::Softmax, Attrs::new().with("axis", Attr::Int(axis.0)))),
        Kernel::Cast(to, _) => Some((OpKind::Cast, Attrs::new().with("to", Attr::Type(to.0)))),
        Kernel::Num(_) | Kernel::Opaque(_) | Kernel::Op(..) | Kernel::Fused(..) => None,
    }
}

/// The axes operand of a mean node, as the constant the IR op takes.
pub fn mean_axes_tensor(spec: &MeanSpec) -> Tensor {
    let bytes: Vec<u8> = spec.axes.iter().flat_map(|a| a.to_le_bytes()).collect();
    Tensor::from_le_bytes(ScalarType::I64, &[spec.axes.len()], &bytes).expect("i64 axes")
}

/// The tensor type a node produces given its children's types, by the op's own shape rule, so
/// the analysis, the cost model and the rebuilt IR agree. `None` when a child's type is unknown
/// or the shape rule rejects the operands (such a node is never extracted).
pub fn node_type(node: &Kernel, child: impl Fn(Id) -> Option<TensorType>) -> Option<TensorType> {
    let (kind, attrs) = ir_op(node)?;
    let ids: &[Id] = match node {
        // The epsilon child is an attribute in the IR.
        Kernel::LayerNorm(c) => &c[..3],
        Kernel::RmsNorm(c) => &c[..2],
        // So is the attention scale.
        Kernel::Attention(c) => &c[..3],
        Kernel::AttentionMask(c) => &c[..4],
        n => egg::Language::children(n),
    };
    let mut types = ids.iter().map(|&c| child(c)).collect::<Option<Vec<_>>>()?;
    let mut consts: Vec<Option<Tensor>> = vec![None; types.len()];
    if let Kernel::Mean(spec, _) = node {
        let axes = mean_axes_tensor(spec);
        types.push(axes.ty());
        consts.push(Some(axes));
    }
    let ctx = InferCtx { attrs: &attrs, operands: &types, consts: &consts, num_results: 1 };
    (kind.def().infer)(&ctx).ok()?.into_iter().next()
}

/// The e-class analysis: the tensor type of every class (all nodes of a class have the same
/// type; rules check types so that this holds), and the types of the opaque leaves.
#[derive(Default)]
pub struct TypeInfo {
    /// Types of IR values by index: the opaque leaves, and the values `Op` and `Fused` nodes
    /// stand for.
    pub leaf_types: HashMap<u32, TensorType>,
    /// The kind of the op defining each value an `Op` node stands for.
    pub op_kinds: HashMap<u32, OpKind>,
}

pub type KGraph = EGraph<Kernel, TypeInfo>;

/// What the analysis knows of a class.
#[derive(Clone, Debug, Default)]
pub struct ClassData {
    pub ty: Option<TensorType>,
    /// The IR value (by index) the class was built from, set by the kernel-formation phase so
    /// its rules can go from a class back to the op and its uses.
    pub origin: Option<u32>,
}

/// The type of a node from the analysis: `Op` and `Fused` nodes have the type of the value they
/// stand for, leaves theirs, everything else follows its op's shape rule.
pub fn node_type_in(egraph: &KGraph, node: &Kernel) -> Option<TensorType> {
    match node {
        Kernel::Opaque(leaf) => egraph.analysis.leaf_types.get(&leaf.0).cloned(),
        Kernel::Op(v, _) => egraph.analysis.leaf_types.get(&v.0).cloned(),
        Kernel::Fused(t, _) => egraph.analysis.leaf_types.get(&t.root()).cloned(),
        Kernel::Num(s) => Some(s.ty()),
        n => node_type(n, |c| egraph[c].data.ty.clone()),
    }
}

impl Analysis<Kernel> for TypeInfo {
    type Data = ClassData;

    fn make(egraph: &mut KGraph, enode: &Kernel) -> Self::Data {
        ClassData { ty: node_type_in(egraph, enode), origin: None }
    }

    fn merge(&mut self, a: &mut Self::Data, b: Self::Data) -> DidMerge {
        // Rules only union terms of equal types; a class first built without a type (a shape
        // rule that failed) takes the other side's. Likewise for the origin.
        let mut changed = (false, false);
        match (a.ty.is_some(), b.ty.is_some()) {
            (false, true) => {
                a.ty = b.ty;
                changed.0 = true;
            }
            (true, false) => changed.1 = true,
            _ => {}
        }
        match (a.origin.is_some(), b.origin.is_some()) {
            (false, true) => {
                a.origin = b.origin;
                changed.0 = true;
            }
            (true, false) => changed.1 = true,
            _ => {}
        }
        DidMerge(changed.0, changed.1)
    }
}

/// The scalar constant in a class, if it holds one.
pub fn scalar_of(egraph: &KGraph, id: Id) -> Option<Scalar> {
    egraph[id].nodes.iter().find_map(|n| match n {
        Kernel::Num(s) => Some(*s),
        _ => None,
    })
}

/// The type of a class.
pub fn type_of(egraph: &KGraph, id: Id) -> Option<&TensorType> {
    egraph[id].data.ty.as_ref()
}
