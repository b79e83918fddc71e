//! `spans` (Inseq's `ContiguousSpanAggregator`): merges the given contiguous token spans.

use rinseq_sdk::prelude::*;
use serde::Deserialize;

use crate::aggregate_fn::{AggregateFn, Family, Fns};
use crate::contiguous::{merge, validate};
use crate::params::Spans as SpanParam;

/// Parameters of `spans`.
#[derive(Deserialize, schemars::JsonSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SpansParams {
    /// Source token spans to merge: one [start, end] (end exclusive) or a list of ascending, non-overlapping ones.
    pub source_spans: Option<SpanParam>,
    /// Target token spans to merge, like source_spans (positions in the full target).
    pub target_spans: Option<SpanParam>,
    /// Function merging the scores of a span (mean, max, min, sum, prod, absmax, vnorm), or an object with one per field (source_attributions, target_attributions, sequence_scores, step_scores as one name or {score: name}); default absmax, with step scores probability→prod, entropy→sum, crossentropy→sum, perplexity→prod, ... as in Inseq.
    pub aggregate_fn: Option<AggregateFn>,
}

/// The resolved functions of the spans family (absmax defaults, L2 vnorm as Inseq passes no
/// order to span aggregation).
pub fn spans_fns(af: Option<&AggregateFn>) -> Result<Fns, PluginError> {
    Fns::resolve(af, Family::Spans, 2.0)
}

/// Inseq's `spans` aggregator: merges contiguous spans of source and/or target tokens into one
/// token each (id -1) and aggregates their scores, generated axis first.
pub struct Spans {
    source: Vec<(usize, usize)>,
    target: Vec<(usize, usize)>,
    fns: Fns,
}

impl PluginInfo for Spans {
    const NAME: &'static str = "spans";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "Merge contiguous token spans into single tokens (scores aggregated, default absmax).";
    type Params = SpansParams;
}

impl AggregatorPlugin for Spans {
    fn new(p: SpansParams) -> Result<Self, PluginError> {
        let source = p.source_spans.map(|s| s.0).unwrap_or_default();
        let target = p.target_spans.map(|s| s.0).unwrap_or_default();
        // Order and emptiness can be checked now; lengths only against a sequence.
        validate("source_spans", &source, usize::MAX)?;
        validate("target_spans", &target, usize::MAX)?;
        let fns = spans_fns(p.aggregate_fn.as_ref())?;
        Ok(Self {
            source,
            target,
            fns,
        })
    }
    fn aggregate(&self, seq: SequenceAttribution) -> Result<SequenceAttribution, PluginError> {
        validate("source_spans", &self.source, seq.source.len())?;
        validate("target_spans", &self.target, seq.target.len())?;
        merge(seq, &self.source, &self.target, &self.fns)
    }
}
