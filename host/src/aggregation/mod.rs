//! Aggregation of attribution outputs: Inseq's `FeatureAttributionOutput.aggregate(aggregator=[…],
//! aggregate_fn=[…], **kwargs)` over aggregator plugins.
//!
//! An [`AggregationSpec`] names a pipeline of aggregators (plugin names such as `spans`,
//! `scores`, `subwords`, or one of the seven functions `mean`, `max`, `min`, `sum`, `prod`,
//! `absmax`, `vnorm`), an optional aggregation function per aggregator, and keyword arguments.
//! Each keyword goes to every aggregator of the pipeline whose parameters have that name (as
//! Inseq passes `**kwargs` to each aggregator); a keyword no aggregator takes is an error rather
//! than silently ignored. An empty pipeline means the class's default aggregation
//! ([`default_pipeline`]).
//!
//! Host-level keywords: `do_post_aggregation_checks` (default true: after a pipeline with a
//! `scores`-family aggregator the attributions must be 2-D, as Inseq checks) and `paired_attr`
//! given as a path (the `pair` aggregator then gets sequence *i* of that Inseq file for
//! sequence *i*).

mod error;
mod history;
mod paired;
mod pipeline;
mod spec;

pub use error::AggregationError;
pub use paired::sequence_to_json;
pub use pipeline::{aggregate_for_view, aggregate_output, aggregate_sequence, apply_named, diff};
pub use spec::{default_pipeline, AggregationSpec, Step};
