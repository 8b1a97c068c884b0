//! The extraction cost model (one host model): each kernel costs a fixed launch/loop overhead,
//! the bytes it reads and writes, and its arithmetic. Units are byte-equivalents. Fusing five
//! elementwise kernels into one gelu saves four overheads and the intermediate tensors' traffic,
//! so it wins; a rewrite that only reshuffles the same work (a commuted operand order, `x*(1/c)`
//! for `x/c`) costs the same plus a small penalty for not being an original node, so extraction
//! keeps the input unless a rewrite really is cheaper.

use super::lang::{node_type, type_of, KGraph, Kernel, SoftmaxAxis};
use edgec_ir::{Dim, TensorType};
use egg::{CostFunction, Id, Language};
use std::collections::HashSet;

/// Fixed cost of one kernel (dispatch, loop setup), in byte-equivalents.
pub const KERNEL_OVERHEAD: f64 = 4096.0;
/// Cost of one arithmetic operation relative to one byte of memory traffic.
pub const FLOP_WEIGHT: f64 = 0.25;
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
    }
}

/// The cost of one node alone, from its operand and result types; infinite when a type is
/// unknown (the node could not be rebuilt as IR).
pub fn node_cost(egraph: &KGraph, node: &Kernel) -> f64 {
    if matches!(node, Kernel::Num(_) | Kernel::Opaque(_)) {
        return 0.0;
    }
    let Some(out) = node_type(node, |c| type_of(egraph, c).cloned()) else { return f64::INFINITY };
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
        Kernel::Attention(_) | Kernel::AttentionMask(_) => {
            // The same arithmetic as the decomposed chain (two GEMMs over the [Sq, Skv] scores,
            // the scale, the mask and the softmax), but the scores live in a per-head scratch
            // row block instead of round-tripping through memory between five kernels. The
            // kernel copies scaled Q, K and V once, so they count twice.
            let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
            let dim = |t: &TensorType, i: usize| {
                t.dims.get(i).map_or(1.0, |d| elements(&TensorType::new(vec![d.clone()], t.elem.clone())))
            };
            let scores = elements(&out) / dim(&out, 3) * dim(k, 2);
            // Per score: the QK^T and PV multiply-adds, the scale and mask, the softmax.
            let softmax = flops_per_element(&Kernel::Softmax(SoftmaxAxis(-1), [Id::from(0usize)]));
            work = scores * (2.0 * dim(q, 3) + 2.0 * dim(v, 3) + 2.0 + softmax);
            traffic += bytes(q) + bytes(k) + bytes(v);
        }
        _ => {}
    }
    KERNEL_OVERHEAD + traffic + work * FLOP_WEIGHT
}

/// The cost function given to egg's extractor: a term's cost is the sum of its nodes' costs
/// (shared subterms count once per use, egg's tree cost).
pub struct CostModel<'a> {
    pub egraph: &'a KGraph,
    /// The input's nodes, with canonical children.
    pub originals: HashSet<Kernel>,
}

impl CostFunction<Kernel> for CostModel<'_> {
    type Cost = f64;
    fn cost<C>(&mut self, enode: &Kernel, mut costs: C) -> f64
    where
        C: FnMut(Id) -> f64,
    {
        let mut c = node_cost(self.egraph, enode);
        if !self.originals.contains(enode) {
            c += NEW_NODE_PENALTY;
        }
        enode.fold(c, |sum, id| sum + costs(id))
    }
}
