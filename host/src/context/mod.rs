//! Context attribution (Inseq's `attribute-context`, PECoRe: Sarti et al. 2023,
//! arXiv 2310.01188): which generated tokens depend on the context, and which context tokens
//! caused them.
//!
//! The two steps compose the rest of the crate:
//! - **CTI** ([`cti`]): every generated token's context sensitivity, a contrastive step function
//!   (default `kl_divergence`) between the contextless and the contextual forward; tokens are
//!   selected by standard deviations above the mean and/or top-k ([`select`]);
//! - **CCI** ([`cci`]): for each selected token, an attribution (any method plugin) of that one
//!   position of the contextual output, contrasted with the contextless output when the
//!   attributed function is contrastive; its scores on the input and output context tokens are
//!   the context cues.
//!
//! [`settings`] holds the validated options, [`text`] Inseq's string and token helpers,
//! [`outputs`] the preparation (generation) of the outputs, [`output`] the JSON Inseq writes,
//! [`view`] the console and HTML views, and [`run`] the whole procedure.

pub mod cci;
pub mod cti;
pub mod output;
pub mod outputs;
pub mod run;
pub mod select;
pub mod settings;
pub mod text;
pub mod view;

use thiserror::Error;

pub use output::{AttributeContextOutput, CciOutput};
pub use run::{attribute_context, ContextPlugins};
pub use settings::{ContextSettings, OutputContextStrategy};

/// What can go wrong in context attribution (one line each, naming the fix).
#[derive(Debug, Error)]
pub enum ContextError {
    /// Bad options or texts.
    #[error("{0}")]
    BadInput(String),
    /// The attribution loop failed.
    #[error(transparent)]
    Attribution(#[from] crate::attribution::AttributionError),
    /// Tokenization or the model failed.
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    /// Generation failed.
    #[error(transparent)]
    Generation(#[from] crate::generation::GenerationError),
    /// Aggregating the CCI attributions failed.
    #[error(transparent)]
    Aggregation(#[from] crate::aggregation::AggregationError),
    /// A plugin could not be found or built.
    #[error(transparent)]
    Plugin(#[from] crate::plugins::PluginLoadError),
}

impl ContextError {
    /// A [`ContextError::BadInput`] from anything printable.
    pub(crate) fn bad(msg: impl Into<String>) -> Self {
        ContextError::BadInput(msg.into())
    }
}
