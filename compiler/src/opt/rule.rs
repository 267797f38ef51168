//! Rules as Rust matchers: a [`Rule`] looks at one e-class and proposes equivalent
//! expressions ([`Plan`]s) built from existing classes, new ops and new constants. An adapter
//! makes each rule an egg [`Rewrite`] (searcher + applier), so egg's runner, scheduler and
//! limits drive them. Matching in Rust (rather than egg's pattern language) lets a rule check
//! attributes and shapes (a permutation composes to the identity, a constant is per-channel)
//! and compute new attributes and folded weights.

use super::analysis::{infer_type, KGraph};
use super::lang::{KNode, KOp};
use egg::{Applier, Id, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};
use kiln_ir::Tensor;
use std::sync::Arc;

/// An expression to add to the e-graph.
#[derive(Clone, Debug)]
pub enum Plan {
    /// An existing e-class.
    Class(Id),
    /// A new constant.
    Tensor(Tensor),
    /// An op over sub-expressions.
    Node(KOp, Vec<Plan>),
}

/// A rewrite rule: for an e-class, the expressions equal to it that the rule knows.
pub trait Rule: Send + Sync + 'static {
    /// The rule's name (logged when it fires).
    fn name(&self) -> &'static str;
    /// Equivalent expressions for class `id` (empty when the rule does not match).
    fn find(&self, eg: &KGraph, id: Id) -> Vec<Plan>;
    /// Whether [`Rule::find`] would propose something (the search phase; a rule whose plans
    /// are costly to build, e.g. folded weights, answers without building them).
    fn matches(&self, eg: &KGraph, id: Id) -> bool {
        !self.find(eg, id).is_empty()
    }
}

/// True if class `id` already holds an e-node whose op satisfies `pred` (a recognizing rule
/// that fired once has nothing to add).
pub fn has_node(eg: &KGraph, id: Id, pred: impl Fn(&KOp) -> bool) -> bool {
    eg[id].nodes.iter().any(|n| pred(&n.op))
}

/// Adds a plan; `None` (logged) if a node would be ill-typed, which is a rule bug caught
/// before it can corrupt the graph.
pub fn build(eg: &mut KGraph, plan: &Plan) -> Option<Id> {
    match plan {
        Plan::Class(id) => Some(*id),
        Plan::Tensor(t) => {
            let k = eg.analysis.intern_const(t.clone());
            Some(eg.add(KNode::new(k, vec![])))
        }
        Plan::Node(op, kids) => {
            let ids: Vec<Id> = kids.iter().map(|k| build(eg, k)).collect::<Option<_>>()?;
            if let Err(e) = infer_type(eg, op, &ids) {
                log::warn!("optimizer: rule built an ill-typed {op:?} ({e}); skipped");
                return None;
            }
            Some(eg.add(KNode::new(op.clone(), ids)))
        }
    }
}

/// A [`Rule`] as egg's searcher and applier.
struct Adapter(Arc<dyn Rule>);

impl Searcher<KNode, super::analysis::KAnalysis> for Adapter {
    fn search_eclass_with_limit(&self, eg: &KGraph, eclass: Id, limit: usize) -> Option<SearchMatches<'_, KNode>> {
        (limit > 0 && self.0.matches(eg, eclass)).then(|| SearchMatches {
            eclass,
            substs: vec![Subst::with_capacity(0)],
            ast: None,
        })
    }

    fn vars(&self) -> Vec<Var> {
        Vec::new()
    }
}

impl Applier<KNode, super::analysis::KAnalysis> for Adapter {
    fn apply_one(
        &self,
        eg: &mut KGraph,
        eclass: Id,
        _subst: &Subst,
        _ast: Option<&PatternAst<KNode>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        let plans = self.0.find(eg, eclass);
        let want = eg[eclass].data.ty.clone();
        let mut changed = Vec::new();
        for p in &plans {
            let Some(id) = build(eg, p) else { continue };
            if eg[id].data.ty != want {
                log::warn!(
                    "optimizer: rule {} changed a type ({} to {}); skipped",
                    self.0.name(),
                    want.describe(),
                    eg[id].data.ty.describe()
                );
                continue;
            }
            if eg.union(eclass, id) {
                let name = eg[eclass].data.name.clone().unwrap_or_default();
                log::debug!("optimize: rule {} fired at {name}", self.0.name());
                changed.push(eclass);
            }
        }
        changed
    }
}

/// An egg rewrite running `rule`.
pub fn rewrite(rule: impl Rule) -> Rewrite<KNode, super::analysis::KAnalysis> {
    let r: Arc<dyn Rule> = Arc::new(rule);
    let name = r.name();
    Rewrite::new(name, Adapter(r.clone()), Adapter(r)).expect("rules bind no pattern variables")
}

/// The classes of `id`'s operands for each e-node whose op satisfies `pred`.
pub fn nodes_where(eg: &KGraph, id: Id, pred: impl Fn(&KOp) -> bool) -> Vec<(KOp, Vec<Id>)> {
    eg[id]
        .nodes
        .iter()
        .filter(|n| pred(&n.op))
        .map(|n| (n.op.clone(), n.children.iter().map(|&c| eg.find(c)).collect()))
        .collect()
}

/// The scalar value of a class that is a one-element constant.
pub fn scalar(eg: &KGraph, id: Id) -> Option<f64> {
    let t = super::analysis::const_of(eg, id)?;
    (t.numel() == 1).then(|| t.to_f64()[0])
}
