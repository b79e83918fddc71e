//! Aggregation errors: one line each, naming the thing and the fix.

use crate::output::OutputError;
use crate::plugins::PluginLoadError;

/// What can go wrong while aggregating.
#[derive(Debug, thiserror::Error)]
pub enum AggregationError {
    /// An aggregator could not be found or built (unknown name, bad parameters).
    #[error(transparent)]
    Plugin(#[from] PluginLoadError),
    /// An aggregator plugin failed on a sequence.
    #[error("aggregator '{aggregator}' failed on sequence {sequence}: {message}")]
    Failed {
        /// The aggregator's name.
        aggregator: String,
        /// Index of the sequence.
        sequence: usize,
        /// The plugin's message.
        message: String,
    },
    /// A keyword argument that no aggregator of the pipeline takes.
    #[error("--aggregator-kwargs key '{key}' is not a parameter of {aggregators} (see `rinseq plugins info NAME`)")]
    UnusedKwarg {
        /// The key.
        key: String,
        /// The pipeline's aggregators, comma-separated.
        aggregators: String,
    },
    /// The functions list does not match the aggregators list.
    #[error("{functions} aggregation functions for {aggregators} aggregators: give one --aggregate-fn per --aggregator (use 'none' for the default)")]
    FunctionCount {
        /// Number of functions given.
        functions: usize,
        /// Number of aggregators given.
        aggregators: usize,
    },
    /// Functions without aggregators.
    #[error("--aggregate-fn needs an --aggregator to apply to, e.g. --aggregator scores --aggregate-fn sum")]
    FunctionWithoutAggregator,
    /// An aggregation function given to an aggregator that takes none.
    #[error("aggregator '{aggregator}' takes no aggregation function: drop --aggregate-fn '{function}' or use 'none' at its position")]
    NoFunction {
        /// The aggregator.
        aggregator: String,
        /// The function given.
        function: String,
    },
    /// A malformed keyword argument.
    #[error("--aggregator-kwargs: {0}")]
    BadKwargs(String),
    /// Inseq's post-aggregation check: the result must be 2-D to be shown.
    #[error("after aggregation, sequence {sequence} has {side} attributions of shape {shape:?}: they must be 2-D (tokens × generated tokens) to be shown; aggregate the remaining dimensions (e.g. add --aggregator mean) or pass {{\"do_post_aggregation_checks\": false}}")]
    NotTwoDimensional {
        /// Index of the sequence.
        sequence: usize,
        /// `source` or `target`.
        side: &'static str,
        /// The shape found.
        shape: Vec<usize>,
    },
    /// Two outputs that cannot be paired.
    #[error("cannot pair outputs: {0}")]
    Pair(String),
    /// A paired file could not be read.
    #[error(transparent)]
    Output(#[from] OutputError),
}
