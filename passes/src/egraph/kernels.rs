//! The kernel-formation rule groups, `elementwise` and `epilogue`: they add `fused` nodes
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

use super::lang::{KGraph, Kernel, Template, TypeInfo, STEP_BASE};
use edgec_ir::TensorType;
use egg::{Applier, Id, Language, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

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
#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    members: BTreeSet<u32>,
    anchor: Option<u32>,
}

impl Context {
    /// The candidates a class already holds: its own elementwise op alone, and its fused nodes.
    fn candidates(&self, egraph: &KGraph, class: Id) -> Vec<Group> {
        let Some(root) = egraph[class].data.origin else { return vec![] };
        let mut out = Vec::new();
        if self.values.get(&root).is_some_and(|v| v.role == Role::Elementwise) {
            out.push(Group { members: BTreeSet::from([root]), anchor: None });
        }
        for n in &egraph[class].nodes {
            if let Kernel::Fused(t, _) = n {
                let anchor = t.anchor.then(|| t.members[0]);
                out.push(Group { members: t.members.iter().copied().collect(), anchor });
            }
        }
        out
    }

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
    fn delays_anchor(&self, a: u32, members: &BTreeSet<u32>, o: u32) -> bool {
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
        Kernel::Fused(Template { steps, members: order, anchor: g.anchor.is_some() }, children)
    }

    /// The groups one application of `mode` makes from the candidates of `class`.
    fn grow(&self, egraph: &KGraph, class: Id, mode: Mode) -> Vec<Group> {
        let Some(root) = egraph[class].data.origin else { return vec![] };
        let mut out = Vec::new();
        for g in self.candidates(egraph, class) {
            // The anchor's operands are its own; only the epilogue grows.
            let frontier: Vec<u32> = g
                .members
                .iter()
                .filter(|&&m| Some(m) != g.anchor)
                .flat_map(|m| self.values[m].operands.iter().copied())
                .collect();
            match mode {
                Mode::Elementwise => {
                    let mut grown = g.clone();
                    for &o in &frontier {
                        if self.may_join(&g, root, o, false) {
                            grown.members.insert(o);
                        }
                    }
                    if grown != g {
                        out.push(grown);
                    }
                }
                Mode::Epilogue => {
                    for &o in &frontier {
                        if self.may_join(&g, root, o, true) {
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
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Elementwise,
    Epilogue,
}

/// The searcher and applier of one group: it matches a class whenever one of its candidates can
/// grow, and adds the grown candidates' `fused` nodes to the class.
struct FormKernels {
    ctx: Arc<Context>,
    mode: Mode,
}

impl Searcher<Kernel, TypeInfo> for FormKernels {
    fn search_eclass_with_limit(
        &self,
        egraph: &KGraph,
        eclass: Id,
        limit: usize,
    ) -> Option<SearchMatches<'_, Kernel>> {
        if limit == 0 || self.ctx.grow(egraph, eclass, self.mode).is_empty() {
            return None;
        }
        Some(SearchMatches { eclass, substs: vec![Subst::default()], ast: None })
    }
    fn vars(&self) -> Vec<Var> {
        vec![]
    }
}

impl Applier<Kernel, TypeInfo> for FormKernels {
    fn apply_one(
        &self,
        egraph: &mut KGraph,
        eclass: Id,
        _subst: &Subst,
        _ast: Option<&PatternAst<Kernel>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        let mut changed = Vec::new();
        for g in self.ctx.grow(egraph, eclass, self.mode) {
            let node = self.ctx.node(egraph, &g);
            let id = egraph.add(node);
            if egraph.union(eclass, id) {
                changed.push(eclass);
            }
        }
        changed
    }
}

/// `elementwise`: chains of elementwise ops become one loop nest.
pub fn elementwise(ctx: &Arc<Context>) -> Vec<Rewrite<Kernel, TypeInfo>> {
    let r = |mode| FormKernels { ctx: ctx.clone(), mode };
    vec![Rewrite::new("elementwise-chain", r(Mode::Elementwise), r(Mode::Elementwise)).expect("valid rule")]
}

/// `epilogue`: an anchor takes the elementwise ops after it as its epilogue.
pub fn epilogue(ctx: &Arc<Context>) -> Vec<Rewrite<Kernel, TypeInfo>> {
    let r = |mode| FormKernels { ctx: ctx.clone(), mode };
    vec![Rewrite::new("epilogue-anchor", r(Mode::Epilogue), r(Mode::Epilogue)).expect("valid rule")]
}
