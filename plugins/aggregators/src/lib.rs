//! Aggregators of the `scores` family (Inseq's `SequenceAttributionAggregator` with an
//! aggregation function): `mean`, `sum`, `max`, `min`, `prod`, `absmax`, `vnorm`. Each reduces
//! the last dimension of the attribution tensors (and of the sequence scores), then normalises
//! each generated-token column jointly over source and target (L1), as Inseq does.

#![warn(missing_docs)]

mod normalize;
mod reduce;
mod scores;

pub use reduce::Reduction;
pub use scores::{AbsMax, Max, Mean, Min, Prod, ScoresParams, Sum, VNorm};

rinseq_sdk::export_plugins! {
    aggregators: [Mean, Sum, Max, Min, Prod, AbsMax, VNorm],
}
