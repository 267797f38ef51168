//! The `optimize` pass (opt-level ≥ 2): equality saturation with `egg` over the IR, then
//! extraction of the cheapest equivalent graph under a device cost model.
//!
//! - [`lang`]: the e-graph language (one e-node per IR op, hashable attribute payloads;
//!   constants and unhashable ops are ids into side tables);
//! - [`analysis`]: dtype, symbolic shape, constness (weight-only ops evaluated at compile
//!   time, with a size cap), and byte sizes;
//! - [`rule`] and [`rules`]: rewrite rules as Rust matchers driven by egg's runner and
//!   `BackoffScheduler`;
//! - [`cost`]: seconds per kernel from a [`kiln_schedules::PerfProfile`];
//! - [`extract`]: the cheapest e-node of each class under that cost (a worklist, linear on
//!   long chains where egg's sweeping extractor is quadratic);
//! - [`convert`]: `Graph → EGraph → extracted Graph`;
//! - [`config`]: limits and parameters ([`OptConfig`]).

pub mod analysis;
pub mod config;
pub mod convert;
pub mod cost;
pub mod extract;
pub mod lang;
pub mod rule;
pub mod rules;

pub use config::OptConfig;

use crate::{CompileError, CompileOptions};
use egg::{BackoffScheduler, Runner};
use extract::Extractor;
use kiln_ir::Graph;
use kiln_schedules::PerfProfile;

/// What one optimizer run did.
#[derive(Clone, Debug, Default)]
pub struct OptReport {
    /// How often each rule fired, by name (summed over iterations).
    pub fired: Vec<(String, usize)>,
    /// Ops evaluated at compile time.
    pub folded: usize,
    /// Iterations run.
    pub iterations: usize,
    /// Why saturation stopped.
    pub stop: String,
    /// E-nodes at the end.
    pub enodes: usize,
    /// Estimated seconds of the input and the extracted graph.
    pub cost_before: f64,
    /// See `cost_before`.
    pub cost_after: f64,
    /// Cost-function calls of the final extraction (its work: about one per e-node).
    pub extract_cost_calls: usize,
}

/// The `optimize` pass: at opt-level ≥ 2, rewrites with the default [`OptConfig`] and the
/// performance profile named like the compile target (`webgpu-default` otherwise).
pub fn optimize(g: Graph, opts: &CompileOptions) -> Result<Graph, CompileError> {
    if opts.opt_level < 2 {
        return Ok(g);
    }
    let profile = PerfProfile::for_target(&opts.target.name);
    let (g, r) = optimize_with(g, &OptConfig::default(), &profile)?;
    log::debug!(
        "optimize: {} iterations ({}), {} e-nodes, {} ops folded, rules fired: {:?}; tree cost {:.1} us -> {:.1} us on {}",
        r.iterations,
        r.stop,
        r.enodes,
        r.folded,
        r.fired,
        r.cost_before * 1e6,
        r.cost_after * 1e6,
        profile.name
    );
    Ok(g)
}

/// Saturates `g` with every rule within `cfg`'s limits and extracts the cheapest graph on
/// `profile`. The weights move from `g` into the e-graph and on into the result (never
/// copied).
pub fn optimize_with(mut g: Graph, cfg: &OptConfig, profile: &PerfProfile) -> Result<(Graph, OptReport), CompileError> {
    let conv = convert::to_egraph(&mut g, cfg.fold_max_elems);
    let roots: Vec<egg::Id> = conv.outputs.iter().map(|o| o.1).collect();
    let cost_before = {
        let eg = &conv.egraph;
        let ex = Extractor::new(eg, cost::KernelCost::new(eg, profile, cfg.symbol_guess));
        roots.iter().map(|&r| ex.find_best_cost(r).seconds).sum()
    };
    let scheduler = BackoffScheduler::default()
        .with_initial_match_limit(cfg.match_limit)
        .with_ban_length(cfg.ban_length);
    let mut runner = Runner::default()
        .with_egraph(conv.egraph)
        .with_node_limit(cfg.node_limit)
        .with_iter_limit(cfg.iter_limit)
        .with_time_limit(cfg.time_limit)
        .with_scheduler(scheduler)
        .run(&rules::all());
    let eg = &runner.egraph;
    let iterations = runner.iterations.len();
    let stop = format!("{:?}", runner.stop_reason);
    let mut fired: Vec<(String, usize)> = Vec::new();
    for it in &runner.iterations {
        for (rule, &n) in &it.applied {
            match fired.iter_mut().find(|f| f.0 == rule.as_str()) {
                Some(f) => f.1 += n,
                None => fired.push((rule.to_string(), n)),
            }
        }
    }
    let ex = Extractor::new(eg, cost::KernelCost::new(eg, profile, cfg.symbol_guess));
    let cost_after = roots.iter().map(|&r| ex.find_best_cost(r).seconds).sum();
    let order = convert::extraction_order(eg, &ex, &conv.outputs)?;
    let (folded, enodes) = (eg.analysis.folded, eg.total_number_of_nodes());
    let extract_cost_calls = ex.cost_calls;
    drop(ex);
    let out = convert::from_egraph(&mut runner.egraph, order, &conv.outputs, &g)?;
    let report = OptReport {
        fired,
        folded,
        iterations,
        stop,
        enodes,
        cost_before,
        cost_after,
        extract_cost_calls,
    };
    Ok((out, report))
}

#[cfg(test)]
mod tests;
