//! The library API's error: one line each, wrapping the error of the step that failed.

use thiserror::Error;

use crate::aggregation::AggregationError;
use crate::attribution::AttributionError;
use crate::generation::GenerationError;
use crate::models::ModelError;
use crate::output::OutputError;
use crate::plugins::PluginLoadError;
use crate::source::SourceError;

/// What can go wrong in [`load_model`](super::load_model) and
/// [`AttributeRequest::run`](super::AttributeRequest::run) (one line each).
#[derive(Debug, Error)]
pub enum ApiError {
    /// A bad argument (kwargs that are not a JSON object, an unknown dtype...).
    #[error("{0}")]
    Invalid(String),
    /// The model could not be found or downloaded.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The model could not be loaded or run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Bad generation parameters.
    #[error(transparent)]
    Generation(#[from] GenerationError),
    /// A plugin could not be loaded or instantiated.
    #[error(transparent)]
    Plugin(#[from] PluginLoadError),
    /// The attribution loop failed.
    #[error(transparent)]
    Attribution(#[from] AttributionError),
    /// Saving failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Aggregation failed.
    #[error(transparent)]
    Aggregation(#[from] AggregationError),
}

impl From<String> for ApiError {
    fn from(s: String) -> Self {
        Self::Invalid(s)
    }
}
