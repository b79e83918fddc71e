//! The aggregation flags shared by `rinseq aggregate`, `show` and `attribute`.

use crate::aggregation::{AggregationError, AggregationSpec};

/// `--aggregator`, `--aggregate-fn`, `--aggregator-kwargs` (Inseq's `aggregate(aggregator=[…],
/// aggregate_fn=[…], **kwargs)`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AggregationArgs {
    /// Aggregator to apply (repeat for a pipeline, applied in order): scores, spans, subwords,
    /// split, slices, pair, a function name (mean, max, min, sum, prod, absmax, vnorm) or any
    /// aggregator plugin. Default: the output class's default aggregation.
    #[arg(long = "aggregator", value_name = "NAME")]
    pub aggregators: Vec<String>,
    /// Aggregation function of the aggregator at the same position (repeat; 'none' keeps that
    /// aggregator's default).
    #[arg(long = "aggregate-fn", value_name = "FN")]
    pub functions: Vec<String>,
    /// Aggregator arguments as a JSON object, e.g. '{"source_spans": [[1, 3]]}'; each key goes to
    /// the aggregators that have a parameter of that name.
    #[arg(long = "aggregator-kwargs", value_name = "JSON")]
    pub kwargs: Option<String>,
}

impl AggregationArgs {
    /// The aggregation these flags ask for.
    pub fn spec(&self) -> Result<AggregationSpec, AggregationError> {
        AggregationSpec::from_flags(&self.aggregators, &self.functions, self.kwargs.as_deref())
    }
}
