//! The extraction cost model, per target: each kernel costs a fixed launch overhead, the bytes
//! it reads and writes, and its arithmetic, weighted by the target's [`CostWeights`] (units are
//! byte-equivalents; see [`crate::TargetInfo::weights`]). Fusing five elementwise kernels into
//! one gelu saves four launches and the intermediate tensors' traffic, so it wins everywhere; a
//! rewrite that only reshuffles the same work (a commuted operand order, `x*(1/c)` for `x/c`)
//! costs the same plus a small penalty for not being an original node, so extraction keeps the
//! input unless a rewrite really is cheaper.
//!
//! Where the targets disagree is a rewrite that trades arithmetic or extra copies for fewer
//! launches and less intermediate traffic. `nn.attention` is one: it copies scaled Q and K and
//! V once (more bytes and flops than the chain) but never writes the scores between five
//! kernels. On the AVX-512 host (a launch is 4096 byte-equivalents, a flop 0.25) that always
//! pays; on the Cortex-M7 (a launch is 256, a flop 2, no cache) a short sequence with wide
//! heads is cheaper decomposed, because the scores are few and the copies are not.

use super::lang::{node_type_in, type_of, KGraph, Kernel, SoftmaxAxis, Template, STEP_BASE};
use crate::target::CostWeights;
use edgec_ir::{Dim, OpKind, TensorType};
use egg::{CostFunction, Id, Language};
use std::collections::HashSet;

/// Added to every node that was not in the input, so ties go to the input.
pub const NEW_NODE_PENALTY: f64 = 1.0;
/// Extent assumed for a symbolic or unknown dim.
const DYNAMIC_DIM: u64 = 64;

fn elements(t: &TensorType) -> f64 {
    t.dims
        .iter()
        .map(|d| match d {
            Dim::Static(n) => *n as f64,
            _ => DYNAMIC_DIM as f64,
        })
        .product()
}

fn bytes(t: &TensorType) -> f64 {
    elements(t) * (t.elem.storage().bits() as f64 / 8.0)
}

/// Arithmetic per output element (matmul: per multiply-add of the contraction).
fn flops_per_element(node: &Kernel) -> f64 {
    match node {
        // Division costs what multiplication does: `x/c` and `x*(1/c)` round differently, and
        // the model should not prefer rewriting one into the other.
        Kernel::Add(_)
        | Kernel::Sub(_)
        | Kernel::Mul(_)
        | Kernel::Div(_)
        | Kernel::Neg(_)
        | Kernel::Cast(..) => 1.0,
        Kernel::Recip(_) | Kernel::Sqrt(_) => 4.0,
        Kernel::Pow(_) | Kernel::Exp(_) | Kernel::Erf(_) | Kernel::Tanh(_) | Kernel::Sigmoid(_) => 10.0,
        Kernel::Swish(_) => 12.0,
        Kernel::Gelu(_) | Kernel::GeluTanh(_) => 14.0,
        Kernel::Mean(..) => 1.0,
        Kernel::Softmax(..) => 14.0,
        Kernel::LayerNorm(_) => 8.0,
        Kernel::RmsNorm(_) => 6.0,
        Kernel::MatMul(_) => 2.0,
        // A copy; movement is all traffic.
        Kernel::Transpose(..) => 0.0,
        // Computed per score in `node_cost`.
        Kernel::Attention(_) | Kernel::AttentionMask(_) => 0.0,
        Kernel::Num(_) | Kernel::Opaque(_) => 0.0,
        // Priced from their kind (`op_flops`) and template (`fused_cost`).
        Kernel::Op(..) | Kernel::Fused(..) => 0.0,
    }
}

/// Extent of dim `i` of `t` (the dynamic guess for a symbolic one).
fn dim(t: &TensorType, i: usize) -> f64 {
    match t.dims.get(i) {
        Some(Dim::Static(n)) => *n as f64,
        Some(_) => DYNAMIC_DIM as f64,
        None => 1.0,
    }
}

/// Arithmetic of an op kept whole (`Kernel::Op`), from its operand and result types.
fn op_flops(kind: OpKind, inputs: &[&TensorType], out: &TensorType) -> f64 {
    let weight_per = |w: &TensorType| elements(w) / dim(w, 0).max(1.0);
    match (kind, inputs) {
        // Each output element is a dot product over Cin/group × kernel taps (the weight's
        // elements per output channel).
        (OpKind::Conv, [_, w, ..]) => 2.0 * elements(out) * weight_per(w),
        // Each input element is scattered through Cout/group × kernel taps.
        (OpKind::ConvTranspose, [x, w, ..]) => 2.0 * elements(x) * weight_per(w),
        // (M·K)(K·N)/(M·N) = K².
        (OpKind::Gemm, [a, b, ..]) => {
            2.0 * elements(out) * (elements(a) * elements(b) / elements(out).max(1.0)).sqrt()
        }
        (OpKind::MatMul, [a, ..]) => 2.0 * elements(out) * dim(a, a.rank().saturating_sub(1)),
        // Elementwise ops outside the rules' vocabulary (relu, clip, leaky_relu, ...): a
        // compare and a select or a multiply-add per element.
        _ => 2.0 * elements(out),
    }
}

/// Arithmetic of one template step, all of whose values have type `out`; `slot` gives an
/// operand's type.
fn step_flops(
    egraph: &KGraph,
    step: &Kernel,
    slot: &dyn Fn(Id) -> Option<TensorType>,
    out: &TensorType,
) -> f64 {
    match step {
        Kernel::Op(v, c) => {
            let Some(&kind) = egraph.analysis.op_kinds.get(&v.0) else { return 0.0 };
            let types: Vec<TensorType> = c.iter().map(|&i| slot(i).unwrap_or_else(|| out.clone())).collect();
            op_flops(kind, &types.iter().collect::<Vec<_>>(), out)
        }
        Kernel::MatMul([a, _]) => {
            let a = slot(*a).unwrap_or_else(|| out.clone());
            op_flops(OpKind::MatMul, &[&a], out)
        }
        n => elements(out) * flops_per_element(n),
    }
}

/// One `fused` node: one launch, each distinct operand read once, the result written once, and
/// every step's arithmetic. Where the model assumes no data cache, an anchor's epilogue reads
/// and rewrites the anchor's output a second time (the backend appends the epilogue loop to
/// the anchor's last kernel, in place); with a cache that tile is still hot.
fn fused_cost(egraph: &KGraph, t: &Template, operands: &[Id], w: &CostWeights) -> f64 {
    let Some(out) = egraph.analysis.leaf_types.get(&t.root()).cloned() else { return f64::INFINITY };
    let mut traffic = bytes(&out);
    for &c in operands {
        let Some(ty) = type_of(egraph, c) else { return f64::INFINITY };
        traffic += bytes(ty);
    }
    if t.anchor && !w.cached {
        traffic += 2.0 * bytes(&out);
    }
    let slot = |i: Id| {
        let i = usize::from(i);
        if i >= STEP_BASE {
            Some(out.clone())
        } else {
            operands.get(i).and_then(|&c| type_of(egraph, c).cloned())
        }
    };
    let work: f64 = t.steps.iter().map(|s| step_flops(egraph, s, &slot, &out)).sum();
    w.launch + traffic * w.byte + work * w.flop
}

/// The cost of one node alone, from its operand and result types; infinite when a type is
/// unknown (the node could not be rebuilt as IR).
pub fn node_cost(egraph: &KGraph, node: &Kernel, w: &CostWeights) -> f64 {
    if matches!(node, Kernel::Num(_) | Kernel::Opaque(_)) {
        return 0.0;
    }
    if let Kernel::Fused(t, operands) = node {
        return fused_cost(egraph, t, operands, w);
    }
    let Some(out) = node_type_in(egraph, node) else { return f64::INFINITY };
    let inputs: Option<Vec<&TensorType>> = match node {
        // The epsilon is an attribute, not a tensor read.
        Kernel::LayerNorm(c) => c[..3].iter().map(|&i| type_of(egraph, i)).collect(),
        Kernel::RmsNorm(c) => c[..2].iter().map(|&i| type_of(egraph, i)).collect(),
        // So is the attention scale.
        Kernel::Attention(c) => c[..3].iter().map(|&i| type_of(egraph, i)).collect(),
        Kernel::AttentionMask(c) => c[..4].iter().map(|&i| type_of(egraph, i)).collect(),
        n => n.children().iter().map(|&i| type_of(egraph, i)).collect(),
    };
    let Some(inputs) = inputs else { return f64::INFINITY };
    let mut traffic: f64 = inputs.iter().map(|t| bytes(t)).sum::<f64>() + bytes(&out);
    let mut work = elements(&out) * flops_per_element(node);
    match node {
        // The statistics pass reads the input a second time.
        Kernel::LayerNorm(_) | Kernel::RmsNorm(_) | Kernel::Softmax(..) => traffic += bytes(inputs[0]),
        Kernel::MatMul(_) => {
            work *= inputs[0]
                .dims
                .last()
                .map_or(1.0, |d| elements(&TensorType::new(vec![d.clone()], out.elem.clone())))
        }
        Kernel::Mean(..) => work = elements(inputs[0]),
        Kernel::Op(v, _) => {
            if let Some(&kind) = egraph.analysis.op_kinds.get(&v.0) {
                work = op_flops(kind, &inputs, &out);
            }
        }
        Kernel::Attention(_) | Kernel::AttentionMask(_) => {
            // The same arithmetic as the decomposed chain (two GEMMs over the [Sq, Skv] scores,
            // the scale, the mask and the softmax), but the scores live in a per-head scratch
            // row block instead of round-tripping through memory between five kernels. The
            // kernel copies scaled Q, K and V once, so they count twice, and scaling Q and K
            // is one multiply per element.
            let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
            let scores = elements(&out) / dim(&out, 3) * dim(k, 2);
            // Per score: the QK^T and PV multiply-adds, the scale and mask, the softmax.
            let softmax = flops_per_element(&Kernel::Softmax(SoftmaxAxis(-1), [Id::from(0usize)]));
            work = scores * (2.0 * dim(q, 3) + 2.0 * dim(v, 3) + 2.0 + softmax) + elements(q) + elements(k);
            traffic += bytes(q) + bytes(k) + bytes(v);
        }
        _ => {}
    }
    w.launch + traffic * w.byte + work * w.flop
}

/// The cost function given to egg's extractor: a term's cost is the sum of its nodes' costs
/// (shared subterms count once per use, egg's tree cost).
pub struct CostModel<'a> {
    pub egraph: &'a KGraph,
    /// The target's weights.
    pub weights: CostWeights,
    /// The input's nodes, with canonical children.
    pub originals: HashSet<Kernel>,
}

impl CostFunction<Kernel> for CostModel<'_> {
    type Cost = f64;
    fn cost<C>(&mut self, enode: &Kernel, mut costs: C) -> f64
    where
        C: FnMut(Id) -> f64,
    {
        let mut c = node_cost(self.egraph, enode, &self.weights);
        if !self.originals.contains(enode) {
            c += NEW_NODE_PENALTY;
        }
        enode.fold(c, |sum, id| sum + costs(id))
    }
}
