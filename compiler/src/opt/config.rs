//! Settings of the e-graph optimizer: saturation limits, the rewrite scheduler's parameters,
//! the constant-folding cap and the cost model's guess for symbolic dims.

use std::time::Duration;

/// Limits and parameters of one optimizer run (see [`OptConfig::default`] for the values).
#[derive(Clone, Debug)]
pub struct OptConfig {
    /// Stop growing the e-graph past this many e-nodes.
    pub node_limit: usize,
    /// Stop after this many rewrite iterations.
    pub iter_limit: usize,
    /// Stop rewriting after this long (extraction still runs).
    pub time_limit: Duration,
    /// egg's `BackoffScheduler`: matches a rule may have in an iteration before it is banned.
    pub match_limit: usize,
    /// egg's `BackoffScheduler`: iterations a rule stays banned (doubling each time).
    pub ban_length: usize,
    /// A weight-only op is evaluated at compile time when its result has at most this many
    /// elements (or no more than its largest constant operand: folding never grows weights
    /// beyond that).
    pub fold_max_elems: usize,
    /// Value the cost model assumes for each symbolic dim (`batch`, `seq`).
    pub symbol_guess: i64,
}

impl Default for OptConfig {
    fn default() -> Self {
        OptConfig {
            node_limit: 100_000,
            iter_limit: 12,
            time_limit: Duration::from_millis(1500),
            match_limit: 1_000,
            ban_length: 5,
            fold_max_elems: 1 << 16,
            symbol_guess: 128,
        }
    }
}
