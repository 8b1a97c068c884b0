//! Kernel formation, in two kinds of growth step, `elementwise` and `epilogue`: they add `fused` nodes
//! ([`Template`]) to the e-graph, each equal to the class of the value its last step computes,
//! and leave the choice between fused and unfused forms to extraction under the target's cost
//! model.
//!
//! - `elementwise` grows a candidate kernel (an elementwise op alone, or a `fused` node) by
//!   every elementwise producer of its operands that may join it, all at once: one loop nest.
//! - `epilogue` puts an anchor (conv, conv_transpose, matmul, gemm with an f32 result) in front
//!   of a candidate that has none: the anchor's kernel, with the elementwise ops after it as its
//!   epilogue (bias, activation, residual).
//!
//! A candidate is a set of IR ops (its `members`, by the values they define); the node for a
//! set is canonical (anchor first, then body order; operands in order of first use), so a set
//! found twice is one node and saturation ends when no set grows. A producer may join when, as
//! in the greedy `fuse` pass:
//! - its value has exactly the result's type (each step computes every output element once:
//!   nothing is broadcast or recomputed, and an anchor's output can be rewritten in place);
//! - every use of its value is a member (no intermediate escapes: multi-use values join only
//!   together with all their users, so extraction can never need the value twice);
//! - it is not used by the anchor (the anchor runs first; there is no prologue);
//! - with an anchor, no epilogue operand from outside is computed after the anchor's own last
//!   operand (fusing must not make the anchor wait, which would keep its inputs live longer);
//! - no value involved is half precision (the reference rounds each intermediate to half).

use super::lang::{KGraph, Kernel, SharedTemplate, Template, STEP_BASE};
use edgec_ir::TensorType;
use egg::{Id, Language};
use std::collections::{HashMap, HashSet};

/// A user that is not a modeled single-result op (an unmodeled op, a region, the return).
pub const OUTSIDE: u32 = u32::MAX;

/// What kernel formation may do with an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A pure elementwise op with one result, no half-precision value.
    Elementwise,
    /// conv, conv_transpose, matmul or gemm with one f32 result.
    Anchor,
    /// Anything else the e-graph models.
    Other,
}

/// One modeled IR value, as the rules see it.
#[derive(Clone, Debug)]
pub struct ValueInfo {
    pub role: Role,
    /// The original node (children: the classes of `operands` at build time).
    pub node: Kernel,
    /// The op's operands (IR value indices), in the order of the node's children.
    pub operands: Vec<u32>,
    /// Users, as value indices; [`OUTSIDE`] for users that are not modeled.
    pub users: Vec<u32>,
    pub ty: TensorType,
    /// Position of the defining op in the body.
    pub pos: usize,
}

/// Everything the rules need about the function, fixed while the runner runs.
#[derive(Default)]
pub struct Context {
    pub values: HashMap<u32, ValueInfo>,
    /// The class of every value that entered the e-graph (modeled values and leaves).
    pub class_of: HashMap<u32, Id>,
    /// Body position of every value an op other than a constant defines.
    pub def_pos: HashMap<u32, usize>,
}

/// A candidate kernel: its member values and its anchor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Group {
    members: Members,
    anchor: Option<u32>,
}

/// A set of values as a sorted vector: candidates are small, and are cloned, hashed and
/// compared far more often than they grow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Members(Vec<u32>);

impl Members {
    fn contains(&self, v: &u32) -> bool {
        self.0.binary_search(v).is_ok()
    }
    fn insert(&mut self, v: u32) {
        if let Err(i) = self.0.binary_search(&v) {
            self.0.insert(i, v);
        }
    }
    fn iter(&self) -> std::slice::Iter<'_, u32> {
        self.0.iter()
    }
}

impl Context {
    /// Whether the producer of `o` may join group `g` (rooted at `root`), as the anchor when
    /// `as_anchor`.
    fn may_join(&self, g: &Group, root: u32, o: u32, as_anchor: bool) -> bool {
        if g.members.contains(&o) {
            return false;
        }
        let (Some(info), Some(root_info)) = (self.values.get(&o), self.values.get(&root)) else {
            return false;
        };
        let role_ok = if as_anchor {
            info.role == Role::Anchor && g.anchor.is_none()
        } else {
            info.role == Role::Elementwise
        };
        if !role_ok || info.ty != root_info.ty {
            return false;
        }
        if !info.users.iter().all(|u| g.members.contains(u))
            || g.anchor.is_some_and(|a| info.users.contains(&a))
        {
            return false;
        }
        let anchor = if as_anchor { Some(o) } else { g.anchor };
        match anchor {
            Some(a) => !self.delays_anchor(a, &g.members, o),
            None => true,
        }
    }

    /// Whether the group `members ∪ {o}` with anchor `a` would make the anchor wait for a
    /// value its own operands do not: an epilogue operand from outside the group that the body
    /// computes after the anchor's last operand (see `fuse::delays_anchor`).
    fn delays_anchor(&self, a: u32, members: &Members, o: u32) -> bool {
        let Some(anchor) = self.values.get(&a) else { return true };
        let ready = anchor.operands.iter().filter_map(|v| self.def_pos.get(v)).max();
        members.iter().copied().chain([o]).filter(|&m| m != a).any(|m| {
            self.values[&m].operands.iter().any(|v| {
                *v != a
                    && !members.contains(v)
                    && *v != o
                    && self.def_pos.get(v).is_some_and(|q| ready.is_none_or(|r| q > r))
            })
        })
    }

    /// The canonical `fused` node of a group: the anchor, then the other members in body
    /// order; operands in order of first use.
    fn node(&self, egraph: &KGraph, g: &Group) -> Kernel {
        let mut order: Vec<u32> = g.members.iter().copied().filter(|&m| Some(m) != g.anchor).collect();
        order.sort_by_key(|m| self.values[m].pos);
        order.splice(0..0, g.anchor);
        let step_of: HashMap<u32, usize> = order.iter().enumerate().map(|(i, &m)| (m, i)).collect();
        let mut operands: Vec<u32> = Vec::new();
        let mut steps = Vec::with_capacity(order.len());
        for &m in &order {
            let info = &self.values[&m];
            let mut slots = info.operands.iter().map(|o| match step_of.get(o) {
                Some(&j) => Id::from(STEP_BASE + j),
                None => {
                    let i = operands.iter().position(|x| x == o).unwrap_or_else(|| {
                        operands.push(*o);
                        operands.len() - 1
                    });
                    Id::from(i)
                }
            });
            steps.push(info.node.clone().map_children(|_| slots.next().expect("one slot per child")));
        }
        let children = operands.iter().map(|o| egraph.find(self.class_of[o])).collect();
        let template = Template { steps, members: order, anchor: g.anchor.is_some() };
        Kernel::Fused(SharedTemplate(std::sync::Arc::new(template)), children)
    }

    /// The groups `g` (rooted at `root`) grows into in one step of `mode`.
    fn grow(&self, g: &Group, root: u32, mode: Mode) -> Vec<Group> {
        // The anchor's operands are its own; only the epilogue grows.
        let frontier: Vec<u32> = g
            .members
            .iter()
            .filter(|&&m| Some(m) != g.anchor)
            .flat_map(|m| self.values[m].operands.iter().copied())
            .collect();
        let mut out = Vec::new();
        match mode {
            Mode::Elementwise => {
                let mut grown = g.clone();
                for &o in &frontier {
                    if self.may_join(g, root, o, false) {
                        grown.members.insert(o);
                    }
                }
                if grown != *g {
                    out.push(grown);
                }
            }
            Mode::Epilogue => {
                for &o in &frontier {
                    if self.may_join(g, root, o, true) {
                        let mut grown = g.clone();
                        grown.members.insert(o);
                        grown.anchor = Some(o);
                        if !out.contains(&grown) {
                            out.push(grown);
                        }
                    }
                }
            }
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Elementwise,
    Epilogue,
}

/// Why [`form`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// No candidate can grow.
    Saturated,
    /// The e-graph reached its node budget.
    NodeLimit(usize),
    /// The number of growth steps reached its limit.
    IterationLimit(usize),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Saturated => write!(f, "saturated"),
            Stop::NodeLimit(n) => write!(f, "node limit ({n})"),
            Stop::IterationLimit(n) => write!(f, "iteration limit ({n})"),
        }
    }
}

/// Adds every candidate kernel to the e-graph, breadth first: step `i` grows the candidates
/// step `i - 1` found, by one layer of elementwise producers (`elementwise`) or by an anchor
/// (`epilogue`), and each candidate grows exactly once. (Rewrite rules driven by egg's runner
/// would search every class again on every step and grow every old candidate again, only for
/// the hash-cons to drop the result: work quadratic in kernel size on every class.) Stops after
/// a step when nothing new was found, when the e-graph holds more than `node_limit` nodes or
/// after `iterations` steps; returns the steps taken and why it stopped. Deterministic: the
/// order is the body's, and only work bounds stop it.
pub fn form(egraph: &mut KGraph, ctx: &Context, iterations: usize, node_limit: usize) -> (usize, Stop) {
    let mut seeds: Vec<(u32, usize)> =
        ctx.values.iter().filter(|(_, v)| v.role == Role::Elementwise).map(|(&k, v)| (k, v.pos)).collect();
    seeds.sort_by_key(|&(k, pos)| (pos, k));
    let mut frontier: Vec<(u32, Group)> =
        seeds.into_iter().map(|(v, _)| (v, Group { members: Members(vec![v]), anchor: None })).collect();
    let mut seen: HashSet<Group> = HashSet::new();
    // Each union only merges a new node into its root's class, so nothing becomes congruent:
    // one rebuild at the end restores the invariants (`add` and `find` are valid before it).
    let (steps, stop) = grow_all(egraph, ctx, &mut frontier, &mut seen, iterations, node_limit);
    egraph.rebuild();
    (steps, stop)
}

fn grow_all(
    egraph: &mut KGraph,
    ctx: &Context,
    frontier: &mut Vec<(u32, Group)>,
    seen: &mut HashSet<Group>,
    iterations: usize,
    node_limit: usize,
) -> (usize, Stop) {
    for step in 0.. {
        if egraph.total_number_of_nodes() > node_limit {
            return (step, Stop::NodeLimit(node_limit));
        }
        if step >= iterations {
            return (step, Stop::IterationLimit(iterations));
        }
        let mut next: Vec<(u32, Group)> = Vec::new();
        for (root, g) in frontier.iter() {
            for mode in [Mode::Elementwise, Mode::Epilogue] {
                for grown in ctx.grow(g, *root, mode) {
                    if seen.insert(grown.clone()) {
                        next.push((*root, grown));
                    }
                }
            }
        }
        if next.is_empty() {
            return (step, Stop::Saturated);
        }
        for (root, g) in &next {
            let node = ctx.node(egraph, g);
            let id = egraph.add(node);
            egraph.union(ctx.class_of[root], id);
        }
        *frontier = next;
    }
    unreachable!("the loop returns")
}
