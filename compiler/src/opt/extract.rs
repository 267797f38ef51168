//! Greedy extraction: the cheapest e-node of every e-class under a [`CostFunction`], found
//! with a worklist.
//!
//! egg's own `Extractor` sweeps over every class until nothing improves; on a long chain (a
//! graph 15,000 ops deep) the sweeps visit the classes in hash order, settle only a few links of
//! the chain each, and the whole run is quadratic in the graph's size. Here a class is looked at
//! again only when one of its operands became cheaper: each class is costed about once per
//! improvement of its operands, so a graph with few rewrites costs a linear number of calls.
//! The result is the same fixpoint as egg's (a class takes a node only when it is strictly
//! cheaper than its current one, the first cheapest node of the class otherwise).

use super::analysis::KGraph;
use super::lang::KNode;
use egg::{CostFunction, Id, Language};
use std::collections::{HashMap, VecDeque};

/// A class is re-costed at most this many times; an improvement past it is dropped (with a
/// warning). Costs only fall, so this bounds the work even where rounding in a cycle of the
/// e-graph would keep producing "cheaper" forms.
const MAX_UPDATES_PER_CLASS: u32 = 64;

/// The cheapest e-node of each class and its cost.
pub struct Extractor<'a, CF: CostFunction<KNode>> {
    eg: &'a KGraph,
    best: HashMap<Id, (CF::Cost, KNode)>,
    /// How many times the cost function was called (the regression tests check that the
    /// work stays linear).
    pub cost_calls: usize,
}

impl<'a, CF: CostFunction<KNode>> Extractor<'a, CF> {
    /// Costs every class of `eg` reachable from the leaves with `cf`.
    pub fn new(eg: &'a KGraph, mut cf: CF) -> Self {
        // For each class, the classes that have an e-node using it.
        let mut users: HashMap<Id, Vec<Id>> = HashMap::new();
        for class in eg.classes() {
            for node in &class.nodes {
                for &c in node.children() {
                    users.entry(eg.find(c)).or_default().push(class.id);
                }
            }
        }
        for list in users.values_mut() {
            list.sort_unstable();
            list.dedup();
        }
        let mut ex = Extractor {
            eg,
            best: HashMap::new(),
            cost_calls: 0,
        };
        let mut updates: HashMap<Id, u32> = HashMap::new();
        // Start from the classes that have a leaf (the only ones that can be costed first).
        let mut queue: VecDeque<Id> = eg
            .classes()
            .filter(|c| c.nodes.iter().any(|n| n.is_leaf()))
            .map(|c| c.id)
            .collect();
        let mut queued: std::collections::HashSet<Id> = queue.iter().copied().collect();
        while let Some(id) = queue.pop_front() {
            queued.remove(&id);
            let Some(candidate) = ex.cheapest_node(id, &mut cf) else {
                continue;
            };
            let improves = match ex.best.get(&id) {
                None => true,
                Some(old) => candidate.0 < old.0,
            };
            if !improves {
                continue;
            }
            let n = updates.entry(id).or_insert(0);
            if *n >= MAX_UPDATES_PER_CLASS {
                log::warn!("optimize: extraction keeps finding cheaper forms of class {id}; kept the last one");
                continue;
            }
            *n += 1;
            ex.best.insert(id, candidate);
            for &u in users.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
                if queued.insert(u) {
                    queue.push_back(u);
                }
            }
        }
        for class in eg.classes() {
            if !ex.best.contains_key(&class.id) {
                log::warn!("optimize: no cost for e-class {}: {:?}", class.id, class.nodes);
            }
        }
        ex
    }

    /// The first cheapest e-node of class `id` whose operands all have a cost.
    fn cheapest_node(&mut self, id: Id, cf: &mut CF) -> Option<(CF::Cost, KNode)> {
        let eg = self.eg;
        let mut best: Option<(CF::Cost, &KNode)> = None;
        for node in &eg[id].nodes {
            if !node.all(|c| self.best.contains_key(&eg.find(c))) {
                continue;
            }
            self.cost_calls += 1;
            let best_of = &self.best;
            let cost = cf.cost(node, |c| best_of[&eg.find(c)].0.clone());
            let better = match &best {
                None => true,
                Some((b, _)) => cost < *b,
            };
            if better {
                best = Some((cost, node));
            }
        }
        best.map(|(c, n)| (c, n.clone()))
    }

    /// The cheapest e-node of the class of `id`.
    ///
    /// # Panics
    /// When the class has no cost (no e-node of it is built from leaves only): the e-graphs
    /// Kiln builds from a graph always have one.
    pub fn find_best_node(&self, id: Id) -> &KNode {
        &self.best[&self.eg.find(id)].1
    }

    /// The cost of the cheapest form of the class of `id` (see [`Self::find_best_node`]).
    pub fn find_best_cost(&self, id: Id) -> CF::Cost {
        self.best[&self.eg.find(id)].0.clone()
    }
}
