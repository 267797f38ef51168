//! The rewrite rules, one family per module. [`all`] is the set the `optimize` pass runs.
//!
//! No rule reassociates or commutes arithmetic: matchers accept both operand orders of
//! `Add`/`Mul`, which is matching, not rewriting.

pub mod conv;
pub mod layout;
pub mod norm;

use super::analysis::KAnalysis;
use super::lang::KNode;
use super::rule::rewrite;
use egg::Rewrite;

/// Every rule, in no particular order (egg applies them all each iteration).
pub fn all() -> Vec<Rewrite<KNode, KAnalysis>> {
    vec![
        rewrite(layout::TransposeTranspose),
        rewrite(layout::IdentityTranspose),
        rewrite(layout::UnitAxisTranspose),
        rewrite(layout::ReshapeReshape),
        rewrite(layout::IdentityReshape),
        rewrite(norm::layer_norm()),
        rewrite(norm::rms_norm()),
        rewrite(norm::SoftmaxRule),
        rewrite(conv::ConvAffine),
    ]
}
