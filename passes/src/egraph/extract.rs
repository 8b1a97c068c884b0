//! Extraction: the cheapest term of every e-class under a [`CostFunction`] whose cost of a node
//! is its own cost plus its children's (egg's tree cost).
//!
//! egg's `Extractor` finds the costs by sweeping over all classes until a sweep changes
//! nothing. Its class order is the hash map's, unrelated to the term structure, so a chain of N
//! ops takes up to N sweeps of N classes: quadratic (a 4,000-op elementwise chain spent most of
//! `egraph-kernels`' 11 s there). Here the costs are found with a worklist instead: every class
//! is evaluated once in id order (children were added before their parents, so most costs are
//! final at once), and a class whose cost drops puts only its parents back on the worklist. The
//! costs are the same least fixpoint egg computes; the best node of a class is the first of its
//! nodes with the least cost under the final costs, as egg's `min_by` picks it.

use egg::{Analysis, CostFunction, EGraph, Id, Language};
use std::collections::{HashMap, VecDeque};

/// The best node of every class that has a finite-cost term.
pub struct BestNodes<L> {
    best: HashMap<Id, L>,
}

impl<L: Language> BestNodes<L> {
    /// Computes the costs and best nodes of every class of `egraph`.
    pub fn new<N, CF>(egraph: &EGraph<L, N>, mut cost_fn: CF) -> BestNodes<L>
    where
        N: Analysis<L>,
        CF: CostFunction<L, Cost = f64>,
    {
        let mut ids: Vec<Id> = egraph.classes().map(|c| c.id).collect();
        ids.sort_unstable();
        // Parents of every class (deduplicated), to revisit when its cost drops.
        let mut parents: HashMap<Id, Vec<Id>> = HashMap::new();
        for &id in &ids {
            for n in &egraph[id].nodes {
                for &ch in n.children() {
                    parents.entry(egraph.find(ch)).or_default().push(id);
                }
            }
        }
        for list in parents.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        let mut cost: HashMap<Id, f64> = HashMap::with_capacity(ids.len());
        let node_cost = |cost_fn: &mut CF, cost: &HashMap<Id, f64>, n: &L| -> Option<f64> {
            let known = n.children().iter().all(|&ch| cost.contains_key(&egraph.find(ch)));
            known.then(|| cost_fn.cost(n, |ch| cost[&egraph.find(ch)]))
        };
        let mut queue: VecDeque<Id> = ids.iter().copied().collect();
        let mut queued: HashMap<Id, bool> = ids.iter().map(|&id| (id, true)).collect();
        while let Some(id) = queue.pop_front() {
            queued.insert(id, false);
            let least = egraph[id]
                .nodes
                .iter()
                .filter_map(|n| node_cost(&mut cost_fn, &cost, n))
                .min_by(|a, b| a.total_cmp(b));
            let Some(least) = least else { continue };
            if cost.get(&id).is_some_and(|&old| old <= least) {
                continue;
            }
            cost.insert(id, least);
            for &p in parents.get(&id).into_iter().flatten() {
                if !queued.insert(p, true).unwrap_or(false) {
                    queue.push_back(p);
                }
            }
        }
        let mut best = HashMap::with_capacity(ids.len());
        for &id in &ids {
            let Some(&least) = cost.get(&id) else { continue };
            let node = egraph[id].nodes.iter().find(|n| node_cost(&mut cost_fn, &cost, n) == Some(least));
            if let Some(n) = node {
                best.insert(id, n.clone());
            }
        }
        BestNodes { best }
    }

    /// The best node of a class (canonical id); panics if the class has no finite-cost term, as
    /// egg's extractor does.
    pub fn find_best_node(&self, id: Id) -> &L {
        self.best.get(&id).expect("every class has a term of finite cost")
    }
}
