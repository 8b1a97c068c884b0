//! Extraction: the cheapest term of every e-class under a [`CostFunction`] whose cost of a node
//! is its own cost plus its children's (egg's tree cost).
//!
//! egg's `Extractor` finds the costs by sweeping over all classes until a sweep changes
//! nothing. Its class order is the hash map's, unrelated to the term structure, so a chain of N
//! ops takes up to N sweeps of N classes: quadratic (a 4,000-op elementwise chain spent most of
//! `egraph-kernels`' 11 s there). A worklist that revisits a class's parents whenever its cost
//! drops is quadratic too once rewrites have merged classes out of id order (a 15,000-op stack
//! of transformer blocks spent 80% of `egraph` there).
//!
//! Here the costs are found as Knuth's generalization of Dijkstra's algorithm finds least
//! fixpoints: a node's cost is its own non-negative cost plus its children's, so it is never
//! below any child's, and the class with the least tentative cost is final when it leaves a
//! priority queue. A node is priced once, when its last child becomes final. Work is
//! O(children · log classes); the costs are the same least fixpoint egg computes; the best node
//! of a class is the first of its nodes with the least cost, as egg's `min_by` picks it.

use egg::{Analysis, CostFunction, EGraph, Id, Language};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};

/// A cost ordered by `f64::total_cmp` (costs are non-negative; infinity sorts last).
#[derive(Clone, Copy, PartialEq)]
struct Cost(f64);

impl Eq for Cost {}

impl PartialOrd for Cost {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cost {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

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
        // For every node (class, index): how many distinct children are not final yet; for
        // every class, the nodes that wait for it.
        let mut waiting: HashMap<(Id, usize), usize> = HashMap::new();
        let mut users: HashMap<Id, Vec<(Id, usize)>> = HashMap::new();
        let mut queue: BinaryHeap<Reverse<(Cost, Id)>> = BinaryHeap::new();
        let mut priced: HashMap<(Id, usize), f64> = HashMap::new();
        let mut cost: HashMap<Id, f64> = HashMap::with_capacity(ids.len());
        let price =
            |cost_fn: &mut CF, cost: &HashMap<Id, f64>, n: &L| cost_fn.cost(n, |ch| cost[&egraph.find(ch)]);
        for &id in &ids {
            for (i, n) in egraph[id].nodes.iter().enumerate() {
                let mut children: Vec<Id> = n.children().iter().map(|&c| egraph.find(c)).collect();
                children.sort_unstable();
                children.dedup();
                if children.is_empty() {
                    let c = price(&mut cost_fn, &cost, n);
                    priced.insert((id, i), c);
                    queue.push(Reverse((Cost(c), id)));
                } else {
                    waiting.insert((id, i), children.len());
                    for ch in children {
                        users.entry(ch).or_default().push((id, i));
                    }
                }
            }
        }
        while let Some(Reverse((Cost(c), id))) = queue.pop() {
            if cost.contains_key(&id) {
                continue;
            }
            cost.insert(id, c);
            for &(p, i) in users.get(&id).into_iter().flatten() {
                let left = waiting.get_mut(&(p, i)).expect("a waiting node");
                *left -= 1;
                if *left == 0 && !cost.contains_key(&p) {
                    let pc = price(&mut cost_fn, &cost, &egraph[p].nodes[i]);
                    priced.insert((p, i), pc);
                    queue.push(Reverse((Cost(pc), p)));
                }
            }
        }
        // A node priced after its class became final may still tie the least cost; price the
        // rest of the complete nodes so the first least node wins, as in a full sweep.
        let mut best = HashMap::with_capacity(ids.len());
        for &id in &ids {
            let Some(&least) = cost.get(&id) else { continue };
            let node = egraph[id].nodes.iter().enumerate().find(|&(i, n)| {
                let c = priced.get(&(id, i)).copied().or_else(|| {
                    let complete = n.children().iter().all(|&ch| cost.contains_key(&egraph.find(ch)));
                    complete.then(|| price(&mut cost_fn, &cost, n))
                });
                c == Some(least)
            });
            if let Some((_, n)) = node {
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
